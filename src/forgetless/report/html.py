"""`forgetless report`: one self-contained HTML page comparing runs.

The page embeds everything it shows (inline SVG from `forgetless.report.svg`, inline CSS, no
scripts), so it can be mailed, attached to an issue or opened offline. Every number comes from
the ledger (`forgetless.evaluate.ledger`), recomputed from each run's metrics.jsonl.

Sections: the learning-vs-forgetting scatter of all runs with the Pareto front and the comparison
table; held-out loss per source with every run overlaid; MCQ accuracy before and after; then per
run: loss against tokens per source (base level dashed, stage boundaries dotted), the LR schedule,
the shares of a loss-driven mixture, and the ledger tables (sources, stages with stability gaps, stage-by-source matrix, MCQ).
"""

from __future__ import annotations

import os
import uuid
from html import escape
from pathlib import Path
from typing import Any

from forgetless import __version__
from forgetless.evaluate.ledger import CHANGE_FLOOR_NATS, GAP_TOLERANCE_NATS
from forgetless.report.compare import cell_tone, comparison, format_cell, in_bits_per_byte, mcq_change_text
from forgetless.report.runs import Run, load_runs
from forgetless.report.svg import (
    PALETTE,
    HLine,
    Point,
    Series,
    VLine,
    downsample,
    format_count,
    line_plot,
    pareto_front,
    scatter_plot,
)

LOSS_UNIT = "nats/token"
PAGE_WIDTH = 1090  # the width of a section's content; two plots of PLOT_WIDTH fit side by side
PLOT_WIDTH = 536


def write_report(
    run_dirs: list[Path],
    out: Path,
    *,
    names: list[str] | None = None,
    title: str = "forgetless report",
) -> Path:
    """Write the HTML report of `run_dirs` to `out` (atomically) and return `out`.

    Run names default to the folder names. Raises `UserError` for a folder without metrics.jsonl.
    """
    runs = load_runs([Path(d) for d in run_dirs], names)
    page = render_report(runs, title=title)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as handle:  # the umask's permissions (mkstemp's are 0600)
            handle.write(page)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def render_report(runs: list[Run], *, title: str = "forgetless report") -> str:
    """The whole page as a string."""
    source_colors = _colors(_union(run.ledger["sources"] for run in runs))
    run_colors = _colors([run.name for run in runs])
    body = [
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="meta">{len(runs)} run{"s" if len(runs) != 1 else ""} · ledger recomputed from '
        f"metrics.jsonl · forgetless {escape(__version__)}</p></header>",
        _nav(runs),
        _overview(runs, run_colors),
    ]
    if len(runs) > 1:
        body.append(_overlays(runs, run_colors))
    if any(run.ledger["mcq"] for run in runs):
        body.append(_mcq_overview(runs))
    body += [_run_section(run, i, source_colors) for i, run in enumerate(runs)]
    body.append(_definitions())
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


# --------------------------------------------------------------------------------------------------
# Sections


def _nav(runs: list[Run]) -> str:
    links = ['<a href="#overview">overview</a>']
    if len(runs) > 1:
        links.append('<a href="#by-source">loss by source</a>')
    if any(run.ledger["mcq"] for run in runs):
        links.append('<a href="#mcq">MCQ</a>')
    links += [f'<a href="#run-{i}">{escape(run.name)}</a>' for i, run in enumerate(runs)]
    return f"<nav>{' · '.join(links)}</nav>"


def _overview(runs: list[Run], run_colors: dict[str, str]) -> str:
    bpb = in_bits_per_byte(runs)
    unit = "bits/byte" if bpb else LOSS_UNIT
    x_key, y_key = ("forgetting_bpb_mean", "learning_bpb_mean") if bpb else ("forgetting_mean", "learning_mean")
    placed = [
        (run, float(run.ledger[x_key]), float(run.ledger[y_key]))
        for run in runs
        if run.ledger.get(x_key) is not None and run.ledger.get(y_key) is not None
    ]
    front = set(pareto_front([(x, y) for _, x, y in placed]))
    points = [
        Point(x, y, run.name, color=run_colors[run.name], highlight=i in front)
        for i, (run, x, y) in enumerate(placed)
    ]
    scatter = scatter_plot(
        points,
        title="Learning vs forgetting (Pareto front highlighted)",
        x_label=f"forgetting: mean final − base loss on retained sources ({unit})",
        y_label=f"learning: mean base − final loss on targets ({unit})",
        front=[(p.x, p.y) for p in points if p.highlight],
        width=760,
        height=440,
    )
    columns, rows = comparison(runs)
    head = "".join(f'<th title="{escape(c.help)}">{escape(c.header)}</th>' for c in columns)
    lines = []
    for row in rows:
        cells = "".join(
            _td(format_cell(c.kind, v), cell_tone(c.kind, v), c.kind == "name")
            for c, v in zip(columns, row, strict=True)
        )
        lines.append(f"<tr>{cells}</tr>")
    front_names = ", ".join(escape(run.name) for i, (run, _, _) in enumerate(placed) if i in front)
    placed_runs = [run for run, _, _ in placed]
    left_out = ", ".join(escape(run.name) for run in runs if run not in placed_runs)
    note = (
        f'<p class="note">Up and to the left is better. On the Pareto front (no other run learned more while '
        f"forgetting less): <b>{front_names or '–'}</b>."
        + (
            f" Not plotted (no target or no retained source with a base and a final loss): {left_out}."
            if left_out
            else ""
        )
        + "</p>"
    )
    return (
        '<section id="overview"><h2>Learning and forgetting</h2>'
        f'<div class="figure">{scatter}</div>{note}'
        f'<table data-table="overview"><thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'
        '<p class="note">learn = base − final loss on a stage target; forget = final − base loss on any other '
        f"evaluated source (both in {unit}; green is good, a forgetting below zero is an improvement, and "
        f"a change under {CHANGE_FLOOR_NATS:g} nats per token counts as unchanged); worst gap = deepest rise of a "
        "retained source's loss after a stage starts (✗: not recovered); * = run did not finish."
        + (
            " A run changed its tokenizer: nats per token of its base and adapted models are not comparable, "
            "so learning and forgetting are in bits per byte, against each base with its own tokenizer."
            if bpb
            else ""
        )
        + "</p></section>"
    )


def _overlays(runs: list[Run], run_colors: dict[str, str]) -> str:
    plots = []
    for source in _union(run.ledger["sources"] for run in runs):
        series, bases = [], []
        for run in runs:
            points = _eval_points(run, f"eval/{source}/loss")
            if points:
                series.append(Series(run.name, points, color=run_colors[run.name], markers=len(points) <= 60))
            base = (run.ledger["sources"].get(source) or {}).get("base_loss")
            if base is not None and all(abs(base - b) > 1e-9 for b in bases):
                bases.append(base)
        hlines = [HLine(b, label="base" if i == 0 else "", color="#555") for i, b in enumerate(bases)]
        vlines = _union_lines(runs)
        plots.append(
            line_plot(
                series,
                title=f"{source}: held-out loss, all runs",
                kind="overlay",
                x_label="training tokens",
                y_label=f"loss ({LOSS_UNIT})",
                hlines=hlines,
                vlines=vlines,
                x_format=format_count,
                width=PLOT_WIDTH,
            )
        )
    figures = "".join(f'<div class="figure">{p}</div>' for p in plots)
    return (
        '<section id="by-source"><h2>Held-out loss by source, all runs</h2>'
        '<p class="note">Dashed: the base model. Dotted: stage starts (of any run).</p>'
        f'<div class="grid">{figures}</div></section>'
    )


def _mcq_overview(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        for name, stats in run.ledger["mcq"].items():
            rows.append("<tr>" + _td(run.name, "", True) + _td(name, "", True) + _mcq_cells(stats) + "</tr>")
    return (
        '<section id="mcq"><h2>Multiple-choice accuracy before and after</h2>'
        '<table data-table="mcq-overview"><thead><tr><th>run</th><th>set</th><th>acc before</th><th>acc after</th>'
        "<th>Δ acc</th><th>acc_norm before</th><th>acc_norm after</th><th>Δ acc_norm</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>{_mcq_note(runs)}</section>"
    )


def _mcq_note(runs: list[Run]) -> str:
    at_chance = sorted(
        {name for run in runs for name, stats in run.ledger["mcq"].items() if stats.get("at_chance")}
    )
    note = (
        "acc ± its standard error; Δ acc ± half its 95% interval, paired over the same questions; "
        "no significant change: the interval contains 0 (such changes are never coloured)."
    )
    if at_chance:
        note += (
            f" At chance before and after (within the 95% interval of guessing): {escape(', '.join(at_chance))}; "
            "these sets say nothing about this model yet."
        )
    return f'<p class="note">{note}</p>'


def _run_section(run: Run, index: int, source_colors: dict[str, str]) -> str:
    ledger = run.ledger
    facts = [
        ("folder", str(run.path)),
        ("status", "finished" if ledger["complete"] else "did not finish"),
        ("tokens", format_count(ledger["tokens"]) if ledger["tokens"] is not None else "–"),
        ("steps", str(ledger["steps"])),
        ("wall time", _duration(ledger["wall_s"])),
        ("tokens/s", format_count(ledger["tokens_per_s"]) if ledger["tokens_per_s"] is not None else "–"),
        (
            "time in evaluation",
            _eval_share(ledger),
        ),
    ]
    if ledger["resumes"]:
        facts.append(("resumed", f"{ledger['resumes']}×"))
    fact_html = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    warnings = "".join(f"<li>{escape(w)}</li>" for w in ledger["warnings"])
    parts = [
        f'<section class="run" id="run-{index}"><h2>{escape(run.name)}</h2>',
        f'<dl class="facts">{fact_html}</dl>',
        f'<ul class="warnings">{warnings}</ul>' if warnings else "",
        f'<div class="grid">{"".join(_source_plots(run, source_colors))}</div>',
        f'<div class="figure">{_lr_plot(run)}</div>',
        *([f'<div class="figure">{mix}</div>'] if (mix := _mix_plot(run, source_colors)) else []),
        "<h3>Sources</h3>",
        _sources_table(ledger),
        _tokenizer_table(ledger),
        "<h3>Stages and stability gaps</h3>",
        _stages_table(ledger),
    ]
    for key, label, digits in (("loss", f"loss ({LOSS_UNIT})", 4), ("mcq_acc", "MCQ accuracy", 3)):
        matrix = ledger["matrix"].get(key)
        if matrix and len(matrix["rows"]) >= 2:
            parts += [
                f"<h3>Stage-by-{'source' if key == 'loss' else 'set'} matrix: {label}</h3>",
                _matrix_table(matrix, key, digits),
            ]
    if ledger["mcq"]:
        parts += ["<h3>Multiple-choice accuracy</h3>", _mcq_table(ledger)]
    if _changes_context(run):
        parts += [f"<h3>Held-out loss by position in the document ({LOSS_UNIT})</h3>", _positions_table(ledger)]
    parts.append("</section>")
    return "\n".join(parts)


def _source_plots(run: Run, source_colors: dict[str, str]) -> list[str]:
    plots = []
    vlines = _stage_lines(run)
    for source, stats in run.ledger["sources"].items():
        points = _eval_points(run, f"eval/{source}/loss")
        color = source_colors[source]
        hlines = (
            [HLine(stats["base_loss"], label=f"base {stats['base_loss']:.3f}", color=color)]
            if stats["base_loss"] is not None
            else []
        )
        plots.append(
            line_plot(
                [Series(source, points, color=color, markers=len(points) <= 80)],
                title=f"{source} ({stats['role']}): held-out loss",
                kind="loss",
                x_label="training tokens",
                y_label=f"loss ({LOSS_UNIT})",
                hlines=hlines,
                vlines=vlines,
                x_format=format_count,
                width=PLOT_WIDTH,
            )
        )
    return [f'<div class="figure">{p}</div>' for p in plots]


def _lr_plot(run: Run) -> str:
    points = downsample(
        [
            (r["tokens"], r["lr"])
            for r in run.records
            if r.get("kind") == "train" and _is_num(r.get("tokens")) and _is_num(r.get("lr"))
        ]
    )
    return line_plot(
        [Series("learning rate", points, color="#444", width=1.5)],
        title="learning-rate schedule",
        kind="lr",
        width=PAGE_WIDTH,
        height=170,
        x_label="training tokens",
        y_label="LR",
        vlines=_stage_lines(run),
        x_format=format_count,
        legend=False,
    )


def _tokenizer_table(ledger: dict) -> str:
    """After a tokenizer change: fertility and bits per byte against the base with its own tokenizer."""
    change = ledger.get("tokenizer")
    if not change:
        return ""
    rows = []
    for source, s in ledger["sources"].items():
        fert = (change.get("fertility") or {}).get(source) or {}
        before, after = fert.get("before") or {}, fert.get("after") or {}
        delta = s.get("delta_bpb_reference")
        tone = "" if delta is None else ("good" if delta < 0 else "bad" if delta > 0 else "")
        rows.append(
            "<tr>"
            + _td(source, "", True)
            + _td(f"{_f(before.get('tokens_per_byte'), digits=3)} → {_f(after.get('tokens_per_byte'), digits=3)}")
            + _td(f"{_f(before.get('tokens_per_word'), digits=2)} → {_f(after.get('tokens_per_word'), digits=2)}")
            + _td(_f(s.get("tokenizer_base_bpb")))
            + _td(_f(s.get("transform_jump_bpb"), signed=True))
            + _td(_f(s.get("final_bpb")))
            + _td(_f(delta, signed=True), tone)
            + "</tr>"
        )
    return (
        f"<h3>Tokenizer: {change.get('vocab_before')} → {change.get('vocab_after')} tokens</h3>"
        '<table data-table="tokenizer"><thead><tr><th>source</th><th>tokens/byte</th><th>tokens/word</th>'
        "<th>base bpb (own tokenizer)</th><th>jump at step 0</th><th>final bpb</th><th>Δ bpb</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">The tokenizer changed, so losses in nats per token before and after are not comparable; '
        "bits per byte are (the same held-out text). Jump at step 0: what the transforms alone changed.</p>"
    )


def _mix_plot(run: Run, source_colors: dict[str, str]) -> str:
    """The shares of a loss-driven mixture over the run (its `mix` lines), as steps: each share
    holds from one update to the next. Empty when the run has no such mixture."""
    updates = [
        r
        for r in run.records
        if r.get("kind") == "mix" and _is_num(r.get("tokens")) and isinstance(r.get("weights"), dict)
    ]
    if not updates:
        return ""
    end = max([r["tokens"] for r in run.records if _is_num(r.get("tokens"))], default=updates[-1]["tokens"])
    names = _union([list(r["weights"]) for r in updates])
    series = []
    for i, name in enumerate(names):
        points: list[tuple[float, float]] = []
        for k, record in enumerate(updates):
            share = float(record["weights"].get(name, 0.0))
            until = updates[k + 1]["tokens"] if k + 1 < len(updates) else end
            points += [(record["tokens"], share), (until, share)]
        color = source_colors.get(name, PALETTE[i % len(PALETTE)])
        series.append(Series(name, points, color=color))
    return line_plot(
        series,
        title="loss-driven mixture: share of the new tokens per source",
        kind="mix",
        width=PAGE_WIDTH,
        height=200,
        x_label="training tokens",
        y_label="share",
        vlines=_stage_lines(run),
        x_format=format_count,
        y_range=(0.0, 1.0),
    )


def _sources_table(ledger: dict) -> str:
    head = (
        "<tr><th>source</th><th>role</th><th>base</th><th>final</th><th>Δ final − base</th><th>change</th>"
        "<th>max (at tokens)</th><th>min (at tokens)</th><th>base bpb</th><th>final bpb</th><th>Δ bpb</th>"
        "<th>evaluated documents / tokens / bytes</th></tr>"
    )
    tones = {"learned": "good", "improved": "good", "forgotten": "bad", "regressed": "bad"}
    rows = []
    for source, s in ledger["sources"].items():
        change = s.get("change")
        tone = tones.get(change or "", "")
        size = s.get("eval_size")
        evaluated = (
            f"{size['documents']:,} / {_count(size['tokens'])} / {_count(size['bytes'])}" if size else "–"
        )
        rows.append(
            "<tr>"
            + _td(source, "", True)
            + _td(s["role"], "", True)
            + _td(_f(s["base_loss"]))
            + _td(_f(s["final_loss"]))
            + _td(_f(s["delta"], signed=True), tone)
            + _td(change or "–", tone, True)
            + _td(f"{_f(s['max_loss'])} ({_count(s['max_loss_tokens'])})")
            + _td(f"{_f(s['min_loss'])} ({_count(s['min_loss_tokens'])})")
            + _td(_f(s["base_bpb"]))
            + _td(_f(s["final_bpb"]))
            + _td(_f(s["delta_bpb"], signed=True))
            + _td(evaluated)
            + "</tr>"
        )
    return f'<table data-table="sources"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _changes_context(run: Run) -> bool:
    """Whether the run changed its RoPE or its sequence length between stages (a long-context run)."""
    start = next((r for r in run.records if r.get("kind") == "run_start"), {})
    kinds = {t.get("kind") for t in start.get("transforms") or []}
    lengths = {stage.get("seq_len") for stage in start.get("stages") or []}
    has_table = any(s.get("loss_by_position") for s in run.ledger["sources"].values())
    return has_table and (bool(kinds & {"rope", "rope_scaling"}) or len(lengths) > 1)


def _positions_table(ledger: dict) -> str:
    """Per position bucket (rows), each source's base and final loss, their difference and tokens."""
    sources = {name: s["loss_by_position"] for name, s in ledger["sources"].items() if s.get("loss_by_position")}
    head = "<tr><th>tokens into the document</th>" + "".join(
        f"<th>{escape(name)} base</th><th>{escape(name)} final</th><th>Δ</th><th>tokens</th>" for name in sources
    ) + "</tr>"
    labels = _union([list(table) for table in sources.values()])
    rows = []
    for label in labels:
        cells = _td(label, "", True)
        for table in sources.values():
            entry = table.get(label) or {}
            delta = entry.get("delta")
            tone = "" if delta is None else ("good" if delta < 0 else "bad")
            cells += (
                _td(_f(entry.get("base")))
                + _td(_f(entry.get("final")))
                + _td(_f(delta, signed=True), tone)
                + _td(_count(entry.get("tokens")))
            )
        rows.append(f"<tr>{cells}</tr>")
    return f'<table data-table="positions"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _stages_table(ledger: dict) -> str:
    head = (
        "<tr><th>stage</th><th>targets</th><th>replay</th><th>tokens</th><th>retained source</th><th>loss at start</th>"
        "<th>gap depth</th><th>peak at (stage tokens)</th><th>recovered at (stage tokens)</th><th>final loss</th></tr>"
    )
    rows = []
    for name, stage in ledger["stages"].items():
        replay = ", ".join(stage["replay"]) or "–"
        if stage["replay_ratio"] is not None and stage["replay"]:
            replay += f" ({stage['replay_ratio'] * 100:.3g}%)"
        tokens = _count(stage["tokens"]) + ("" if stage["complete"] else " (unfinished)")
        gaps = stage["stability_gap"] or {"–": None}
        first = True
        for source, gap in gaps.items():
            lead = (
                _td(name, "", True)
                + _td(", ".join(stage["targets"]) or "–", "", True)
                + _td(replay, "", True)
                + _td(tokens)
                if first
                else '<td colspan="4" class="cont"></td>'
            )
            lead_row, first = first, False
            if gap is None:
                rows.append(
                    f'<tr class="group">{lead}<td colspan="6" class="muted">no retained source</td></tr>'
                )
                continue
            if gap["depth"] is None:
                recovered = "–"
            elif gap["depth"] == 0:
                recovered = "no rise"
            elif gap.get("significant") is False:
                recovered = "within noise"
            elif gap["recovered"]:
                recovered = _count(gap["recovery_stage_tokens"])
            else:
                recovered = "not recovered"
            depth_tone = "bad" if gap["recovered"] is False else ""
            rows.append(
                ('<tr class="group">' if lead_row else "<tr>")
                + lead
                + _td(source, "", True)
                + _td(_f(gap["start_loss"]))
                + _td(_f(gap["depth"]), depth_tone)
                + _td(_count(gap["peak_stage_tokens"]))
                + _td(recovered, "bad" if recovered == "not recovered" else "")
                + _td(_f(stage["final_losses"].get(source)))
                + "</tr>"
            )
    return f'<table data-table="stages"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _matrix_table(matrix: dict, key: str, digits: int) -> str:
    columns = matrix["columns"]
    head = "<tr><th>after</th>" + "".join(f"<th>{escape(c)}</th>" for c in columns) + "</tr>"
    learned = "".join(f'<td class="num muted">{escape(s or "base")}</td>' for s in matrix["learned_in"])
    rows = [f'<tr class="muted"><th>learned in</th>{learned}</tr>']
    rows.append("<tr><th>base</th>" + "".join(_td(_f(v, digits=digits)) for v in matrix["base"]) + "</tr>")
    for name, values in zip(matrix["rows"], matrix["values"], strict=True):
        rows.append(
            f"<tr><th>{escape(name)}</th>" + "".join(_td(_f(v, digits=digits)) for v in values) + "</tr>"
        )
    better = "higher" if matrix["higher_is_better"] else "lower"
    metrics = "".join(
        f"<div><dt>{label}</dt><dd>{_f(matrix[field], digits=digits, signed=field in ('bwt', 'fwt'))}</dd></div>"
        for field, label in (
            ("acc", "ACC"),
            ("bwt", "BWT"),
            ("fwt", "FWT"),
            ("forgetting", "forgetting"),
            ("learned", "learned"),
        )
    )
    sign = (
        "BWT &gt; 0 means forgetting, FWT &lt; 0 means earlier stages helped"
        if not matrix["higher_is_better"]
        else "BWT &lt; 0 means forgetting, FWT &gt; 0 means earlier stages helped"
    )
    return (
        f'<table class="matrix" data-table="matrix-{key}"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'
        f'<dl class="facts">{metrics}</dl><p class="note">{better} is better; {sign}; '
        "forgetting (Chaudhry) &gt; 0 means forgotten.</p>"
    )


def _mcq_table(ledger: dict) -> str:
    rows = "".join(
        "<tr>" + _td(name, "", True) + _mcq_cells(stats) + "</tr>" for name, stats in ledger["mcq"].items()
    )
    return (
        '<table data-table="mcq"><thead><tr><th>set</th><th>acc before</th><th>acc after</th><th>Δ acc</th>'
        "<th>acc_norm before</th><th>acc_norm after</th><th>Δ acc_norm</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _mcq_cells(stats: dict) -> str:
    """acc before ± se, after ± se, the change ± its 95% interval (coloured only when significant),
    then acc_norm before, after and change."""
    before, after, delta = stats["before"], stats["after"], stats["delta"]
    cells = _td(_pct_se(before.get("acc"), before.get("acc_stderr")))
    cells += _td(_pct_se(after.get("acc"), after.get("acc_stderr")))
    cells += _td(mcq_change_text(delta), cell_tone("mcq", delta))
    norm = delta.get("acc_norm")
    cells += _td(_pct(before.get("acc_norm"))) + _td(_pct(after.get("acc_norm")))
    cells += _td("–" if norm is None else f"{norm * 100:+.1f} pt")
    return cells


def _eval_share(ledger: dict) -> str:
    """ "12.3%", with the budget and the points it skipped when the run had eval.budget."""
    if ledger.get("eval_fraction") is None:
        return "–"
    text = f"{ledger['eval_fraction'] * 100:.1f}%"
    if ledger.get("eval_budget") is not None:
        text += (
            f" (budget {ledger['eval_budget'] * 100:g}%, {ledger.get('evals_skipped') or 0} points skipped)"
        )
    return text


def _pct_se(value: float | None, stderr: float | None) -> str:
    return _pct(value) if value is None or stderr is None else f"{_pct(value)} ± {stderr * 100:.1f}"


def _definitions() -> str:
    return (
        '<section id="definitions"><h2>Definitions</h2><dl class="defs">'
        f"<dt>loss</dt><dd>held-out cross-entropy in {LOSS_UNIT}; bpb is bits per byte of text.</dd>"
        "<dt>base</dt><dd>the model before any training (the first evaluation), the reference for every delta.</dd>"
        "<dt>learning</dt><dd>base − final loss on the target sources of the stages (positive: learned).</dd>"
        "<dt>forgetting</dt><dd>final − base loss on every other evaluated source (positive: forgotten, "
        "negative: improved).</dd>"
        f"<dt>change</dt><dd>learned, regressed, forgotten or improved; unchanged when the loss moved by less than "
        f"{CHANGE_FLOOR_NATS:g} nats/token, the noise floor.</dd>"
        "<dt>stability gap</dt><dd>the largest rise of a retained source's loss above its value at the stage start; "
        f"a rise within max({GAP_TOLERANCE_NATS:g} nats, 10% of the depth) is noise, not a gap; a deeper one "
        "recovered at the first later evaluation back within that tolerance of the start.</dd>"
        "<dt>evaluated</dt><dd>the held-out documents, tokens and bytes each evaluation scores: a sample spread "
        "over the source's held-out split and its sub-sources (docs/evaluation.md).</dd>"
        "<dt>ACC, BWT, FWT, forgetting</dt><dd>the continual-learning metrics of the stage-by-source matrix with "
        "the base model as reference (GEM; Chaudhry et al. for forgetting); sources no stage targets count as "
        "learned by the base model.</dd></dl></section>"
    )


# --------------------------------------------------------------------------------------------------
# Helpers


def _eval_points(run: Run, key: str) -> list[tuple[float, float]]:
    evals = sorted((r for r in run.records if r.get("kind") == "eval"), key=lambda r: r.get("step") or 0)
    return [(r["tokens"], r[key]) for r in evals if _is_num(r.get(key)) and _is_num(r.get("tokens"))]


def _stage_lines(run: Run) -> list[VLine]:
    return [
        VLine(stage["start_tokens"], label=name)
        for name, stage in run.ledger["stages"].items()
        if stage["start_tokens"] is not None
    ]


def _union_lines(runs: list[Run]) -> list[VLine]:
    lines: dict[tuple[float, str], VLine] = {}
    for run in runs:
        for line in _stage_lines(run):
            lines.setdefault((line.x, line.label), line)
    return list(lines.values())


def _colors(names: list[str]) -> dict[str, str]:
    return {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}


def _union(lists) -> list[str]:
    out: list[str] = []
    for names in lists:
        out += [n for n in names if n not in out]
    return out


def _td(text: str, tone: str = "", is_text: bool = False) -> str:
    classes = " ".join(c for c in (tone, "text" if is_text else "num") if c)
    return f'<td class="{classes}">{escape(text)}</td>'


def _f(value: Any, *, digits: int = 4, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _pct(value: Any) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _count(value: Any) -> str:
    return "–" if value is None else format_count(value)


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def _is_num(value: Any) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


_CSS = """
:root { --fg:#1d1d1f; --muted:#6b6b70; --line:#e2e2e6; --bg:#fafafa; --good:#1a7f37; --bad:#c0392b; }
* { box-sizing: border-box; }
body { margin:0; background:var(--bg); color:var(--fg);
  font:14px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif; }
main { max-width:1200px; margin:0 auto; padding:24px 28px 60px; }
header h1 { margin:0 0 4px; font-size:26px; letter-spacing:-0.01em; }
.meta, .note, .muted { color:var(--muted); }
.note { font-size:13px; margin:8px 0 16px; }
nav { margin:12px 0 20px; padding:8px 12px; background:#fff; border:1px solid var(--line); border-radius:8px; }
nav a { color:#0b62a4; text-decoration:none; } nav a:hover { text-decoration:underline; }
section { background:#fff; border:1px solid var(--line); border-radius:10px; padding:18px 22px; margin:0 0 22px; }
h2 { font-size:19px; margin:0 0 12px; } h3 { font-size:15px; margin:22px 0 8px; }
.grid { display:flex; flex-wrap:wrap; gap:12px 16px; }
.figure svg { display:block; max-width:100%; height:auto; }
table { border-collapse:collapse; width:100%; margin:6px 0 4px; font-size:13px; }
th, td { padding:5px 9px; border-bottom:1px solid var(--line); vertical-align:top; }
thead th { text-align:left; font-weight:600; background:#f3f3f5; border-bottom:2px solid #d5d5da; white-space:nowrap; }
tbody th { text-align:left; font-weight:600; }
td.num { text-align:right; font-variant-numeric:tabular-nums; white-space:nowrap; }
td.text { text-align:left; }
table.matrix { width:auto; min-width:420px; }
table.matrix thead th:not(:first-child) { text-align:right; }
td.cont { border-bottom-color:transparent; }
table[data-table="stages"] tbody tr { background:none; }
table[data-table="stages"] tbody tr.group td { border-top:2px solid #d5d5da; }
tbody tr:nth-child(even) { background:#fbfbfc; }
.good { color:var(--good); font-weight:600; } .bad { color:var(--bad); font-weight:600; }
dl.facts { display:flex; flex-wrap:wrap; gap:6px 26px; margin:4px 0 14px; }
dl.facts div { display:flex; flex-direction:column; }
dl.facts dt { font-size:11px; text-transform:uppercase; letter-spacing:0.04em; color:var(--muted); }
dl.facts dd { margin:0; font-variant-numeric:tabular-nums; }
ul.warnings { margin:0 0 12px; padding:8px 12px 8px 30px; background:#fff6e5; border:1px solid #f0d9a8; border-radius:6px; }
dl.defs dt { font-weight:600; margin-top:8px; } dl.defs dd { margin:0 0 0 18px; color:#333; }
"""

PAGE_STYLE = _CSS
"""The report's stylesheet, for other pages of the same look (`forgetless.plan.page`)."""
