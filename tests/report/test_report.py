"""The HTML report, the SVG plots and the comparison table, from synthetic metrics.jsonl files."""

from __future__ import annotations

import json
import os
import re
import stat
from html.parser import HTMLParser
from pathlib import Path

import pytest
from rich.console import Console
from synthetic_runs import three_strategies, write_run

from forgetless.cli import main
from forgetless.errors import UserError
from forgetless.report.compare import compare_table, comparison
from forgetless.report.html import write_report
from forgetless.report.runs import load_runs, run_names
from forgetless.report.svg import (
    Point,
    Series,
    format_count,
    line_plot,
    nice_ticks,
    pareto_front,
    scatter_plot,
)


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.plots: list[str] = []
        self.tables: list[str] = []
        self.tags: list[str] = []
        self.refs: list[str] = []

    def handle_starttag(self, tag, attrs):
        values = dict(attrs)
        self.tags.append(tag)
        if tag == "svg":
            self.plots.append(values.get("data-plot") or "")
        if tag == "table":
            self.tables.append(values.get("data-table") or "")
        self.refs += [v for k, v in attrs if k in ("src", "href") and v and not v.startswith("#")]


def parse(html: str) -> _Elements:
    parser = _Elements()
    parser.feed(html)
    return parser


@pytest.fixture
def three_runs(tmp_path: Path) -> list[Path]:
    return three_strategies(tmp_path / "runs")


def test_report_file_mode_follows_the_umask(three_runs, tmp_path):
    before = os.umask(0o022)
    try:
        out = write_report(three_runs, tmp_path / "report.html")
    finally:
        os.umask(before)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644


def test_report_has_the_plots_and_tables(three_runs, tmp_path):
    out = write_report(three_runs, tmp_path / "report.html")
    html = out.read_text()
    page = parse(html)
    assert page.plots.count("scatter") == 1
    assert page.plots.count("loss") == 6  # 3 runs x 2 sources
    assert page.plots.count("lr") == 3
    assert page.plots.count("overlay") == 2  # one per source, all runs overlaid
    assert page.tables.count("overview") == 1
    for name in ("sources", "stages", "mcq"):
        assert page.tables.count(name) == 3
    assert "mcq-overview" in page.tables
    assert "matrix-loss" not in page.tables  # single-stage runs have no stage-by-source matrix
    for run in ("naive", "replay-5", "replay-25"):
        assert f">{run}<" in html
    assert "nan" not in html.lower().replace("nats", "")


def test_report_is_self_contained(three_runs, tmp_path):
    page = parse(write_report(three_runs, tmp_path / "report.html").read_text())
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert page.refs == []


def test_scatter_highlights_the_pareto_front(three_runs, tmp_path):
    dominated = write_run(tmp_path / "worse", forgetting=0.5, learning=0.9, gap=0.3)
    html = write_report([*three_runs, dominated], tmp_path / "report.html").read_text()
    front = re.findall(r'class="point front"[^>]*><title>([^<]*) \(Pareto front\)', html)
    assert sorted(front) == ["naive", "replay-25", "replay-5"]
    assert re.search(r'class="point"[^>]*><title>worse</title>', html)
    assert 'class="pareto-front"' in html


def test_multi_stage_run_gets_the_matrix_tables(tmp_path):
    run = write_run(
        tmp_path / "two-stage",
        forgetting=0.1,
        learning=0.8,
        gap=0.2,
        stages=(("security", "security"), ("code", "code")),
        sources=("general", "security", "code"),
    )
    html = write_report([run], tmp_path / "report.html").read_text()
    tables = parse(html).tables
    assert "matrix-loss" in tables and "matrix-mcq_acc" in tables
    assert "overlay" not in parse(html).plots  # one run: nothing to overlay
    assert html.count('class="vline"') >= 2 * 4  # two stage starts on each of 3 loss plots and the LR plot


def test_names_titles_and_escaping(three_runs, tmp_path):
    out = write_report(
        three_runs, tmp_path / "sub" / "r.html", names=["a<b>", "two", "three"], title="CPT & friends"
    )
    html = out.read_text()
    assert "<title>CPT &amp; friends</title>" in html
    assert "a&lt;b&gt;" in html and "a<b>" not in html
    with pytest.raises(UserError, match="names"):
        write_report(three_runs, tmp_path / "x.html", names=["only-one"])


def test_report_is_reproducible(three_runs, tmp_path):
    first = write_report(three_runs, tmp_path / "a.html").read_bytes()
    second = write_report(three_runs, tmp_path / "b.html").read_bytes()
    assert first == second


def test_unfinished_run_is_reported(tmp_path):
    run = write_run(tmp_path / "crashed", forgetting=0.2, learning=1.0, gap=0.1, finished=False)
    html = write_report([run], tmp_path / "report.html").read_text()
    assert "did not finish" in html
    columns, rows = comparison(load_runs([run]))
    assert rows[0][0] == "crashed *"


def test_run_dir_without_metrics_is_a_user_error(tmp_path, three_runs):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match=str(empty)):
        write_report([three_runs[0], empty], tmp_path / "report.html")
    with pytest.raises(UserError, match="nowhere"):
        compare_table([tmp_path / "nowhere"])


def test_comparison_rows(three_runs):
    columns, rows = comparison(load_runs(three_runs))
    headers = [c.header for c in columns]
    assert headers[:3] == ["run", "learn security", "forget general"]
    assert "worst gap" in headers and "Δacc security-mcq" in headers and headers[-2:] == ["tokens", "tok/s"]
    assert [row[0] for row in rows] == ["naive", "replay-5", "replay-25"]
    by_name = {row[0]: dict(zip(headers, row, strict=True)) for row in rows}
    assert by_name["naive"]["learn security"] == pytest.approx(1.2)
    assert by_name["naive"]["forget general"] == pytest.approx(0.4)
    assert by_name["replay-25"]["forget general"] == pytest.approx(0.03)
    assert by_name["naive"]["tokens"] == 1_000_000
    gap = by_name["naive"]["worst gap"]
    assert gap["source"] == "general" and gap["stage"] == "security" and gap["depth"] > 0.3


def test_compare_table_renders_one_row_per_run(three_runs):
    table = compare_table(three_runs)
    assert table.row_count == 3
    console = Console(record=True, width=200)
    console.print(table)
    text = console.export_text()
    assert "naive" in text and "+1.200" in text and "+0.400" in text and "1M" in text


def test_cli_report_and_compare(three_runs, tmp_path, capsys):
    out = tmp_path / "cli.html"
    main(["report", *map(str, three_runs), "--out", str(out)])  # success returns, no SystemExit
    assert "<svg" in out.read_text()
    main(["compare", *map(str, three_runs)])
    printed = capsys.readouterr().out
    assert "report:" in printed and "replay-25" in printed and "+0.030" in printed


def test_cli_missing_metrics_exits_2_naming_the_path(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["compare", str(tmp_path / "missing-run")])
    assert exit_.value.code == 2
    assert "missing-run" in capsys.readouterr().err


def test_run_names_are_folder_names_made_unique(tmp_path):
    assert run_names([tmp_path / "a" / "run", tmp_path / "b" / "run"]) == ["a/run", "b/run"]
    assert run_names([tmp_path / "x", tmp_path / "y"]) == ["x", "y"]


# --------------------------------------------------------------------------------------------------
# svg


def test_pareto_front_hand_cases():
    # (forgetting, learning): lower x and higher y are better.
    points = [(0.4, 1.2), (0.08, 1.15), (0.03, 1.0), (0.5, 0.9), (0.08, 1.0), (0.03, 1.0)]
    assert pareto_front(points) == [0, 1, 2, 5]  # (0.5, 0.9) and (0.08, 1.0) are dominated; ties stay
    assert pareto_front([]) == []


def test_nice_ticks_and_counts():
    assert nice_ticks(0, 1_000_000, 6) == [0, 200_000, 400_000, 600_000, 800_000, 1_000_000]
    # span 0.69 / 4 intervals = 0.1725 -> step 0.2; multiples of 0.2 inside [2.83, 3.52]
    assert nice_ticks(2.83, 3.52, 5) == pytest.approx([3.0, 3.2, 3.4])
    assert nice_ticks(-0.12, 0.41, 5) == pytest.approx([0.0, 0.2, 0.4])  # 0.1325 -> 0.2; zero is exact
    assert nice_ticks(1.0, 1.0) == [1.0]
    assert format_count(1_500) == "1.5k" and format_count(20_000_000) == "20M" and format_count(12) == "12"


def test_line_plot_skips_non_finite_points_and_handles_no_data():
    svg = line_plot([Series("a", [(0, 1.0), (1, float("nan")), (2, 2.0)])], title="t", kind="loss")
    assert svg.startswith("<svg") and 'data-plot="loss"' in svg and "nan" not in svg.lower()
    assert svg.count("L") >= 1 and "M" in svg
    empty = line_plot([Series("a", [])], title="t", kind="loss")
    assert "no data" in empty and empty.endswith("</svg>")


def test_scatter_plot_labels_points():
    svg = scatter_plot([Point(0.1, 1.0, "x&y", highlight=True), Point(0.2, 0.5, "z")], title="s")
    assert "x&amp;y" in svg and ">z<" in svg and svg.count("<circle") == 2


def test_mcq_change_is_coloured_only_when_its_interval_excludes_zero(tmp_path: Path):
    from forgetless.evaluate.mcq_stats import accuracy_stderr, pack_outcomes
    from forgetless.report.compare import cell_tone, format_cell, mcq_change_text

    noise = {"acc": 0.016, "acc_ci95": [-0.01, 0.042], "significant": False}
    gain = {"acc": 0.06, "acc_ci95": [0.02, 0.10], "significant": True}
    assert cell_tone("mcq", noise) == "" and cell_tone("mcq", gain) == "good"
    assert format_cell("mcq", noise) == "+1.6 ± 2.6 pt, n.s."
    assert mcq_change_text(noise) == "+1.6 ± 2.6 pt, no significant change"
    assert mcq_change_text(gain) == "+6.0 ± 4.0 pt"

    def line(point, step, outcomes):
        acc = sum(outcomes) / len(outcomes)
        keys = {"acc": acc, "acc_norm": acc, "acc_stderr": accuracy_stderr(outcomes), "n": len(outcomes)}
        record = {f"mcq/q/{k}": v for k, v in keys.items()}
        record.update({"mcq/q/chance": 0.25, "mcq/q/outcomes": pack_outcomes(outcomes)})
        return {"kind": "eval", "step": step, "tokens": step, "stage_index": 0, "point": point, **record}

    run = tmp_path / "run"
    run.mkdir()
    before = [1] * 25 + [0] * 75
    after = [1] * 27 + [0] * 73  # +2 points on 100 questions: noise
    (run / "metrics.jsonl").write_text(
        "\n".join(json.dumps(r) for r in (line("base", 0, before), line("stage_end", 9, after))) + "\n"
    )
    page = write_report([run], tmp_path / "r.html").read_text()
    cell = re.search(r'<td class="([^"]*)">\+2\.0 ± [0-9.]+ pt, no significant change</td>', page)
    assert cell is not None and "good" not in cell.group(1)
    assert "At chance before and after" in page and ">q<" in page


def test_a_loss_driven_mixture_gets_a_plot_of_its_shares(tmp_path):
    run = write_run(tmp_path / "adaptive", forgetting=0.1, learning=0.8, gap=0.2)
    updates = [
        {"kind": "mix", "step": s, "tokens": s * 10_000, "stage": "security", "update": k,
         "weights": {"security": w, "code": 1 - w}, "changed": k > 0}
        for k, (s, w) in enumerate([(0, 0.5), (20, 0.6), (40, 0.7), (60, 0.55)])
    ]
    with open(run / "metrics.jsonl", "a") as fh:
        fh.writelines(json.dumps(u) + "\n" for u in updates)
    plain = write_run(tmp_path / "plain", forgetting=0.1, learning=0.8, gap=0.2)
    html = write_report([run, plain], tmp_path / "report.html").read_text()
    assert parse(html).plots.count("mix") == 1  # only the run with mix lines
    svg = html[html.index('data-plot="mix"') :]
    svg = svg[: svg.index("</svg>")]
    assert "share of the new tokens" in svg and "<title>code</title>" in svg
