"""`plan.html`: one self-contained page that shows a plan's measurements, fits and recommendation.

Sections: the recommendation; per source, the loss at the end of the proxy runs against the replay
ratio (measured points, the fitted law, the base level, the budget and the recommended ratio); per
retained source, its rise along each proxy run against tokens (the stability gap and whether it
passed its peak); the table of measured and predicted losses per ratio; the fits with their errors;
the prediction at the stage's own length from the curves along the runs.
Plots come from `forgetless.report.svg`, so the page needs no scripts or files.
"""

from __future__ import annotations

import math
from html import escape
from typing import Any

from forgetless import __version__
from forgetless.report.html import PAGE_STYLE
from forgetless.report.svg import PALETTE, HLine, Series, VLine, format_count, line_plot

CURVE_POINTS = 101


def render_plan(plan: dict[str, Any]) -> str:
    """The page of a plan (the content of `plan.json`) as a string."""
    title = f"forgetless plan: stage {plan['stage']}"
    body = [
        f"<header><h1>{escape(title)}</h1>",
        f'<p class="meta">{len(plan["proxies"])} proxy runs of {plan["proxy_tokens"]:,} tokens (the stage has '
        f"{plan['stage_tokens']:,}) · budget {escape(plan['budget']['text'])} per retained source · "
        f"forgetless {escape(__version__)}</p></header>",
        _summary(plan),
        _ratio_plots(plan),
        _along_runs(plan),
        _points_table(plan),
        _fits_table(plan),
        _at_stage(plan),
        _definitions(),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n</head>\n<body>\n<main>\n"
        + "\n".join(body)
        + "\n</main>\n</body>\n</html>\n"
    )


def _summary(plan: dict[str, Any]) -> str:
    rec = plan.get("recommendation")
    if rec is None:
        return (
            '<section id="recommendation"><h2>Recommendation</h2>'
            f'<ul class="warnings"><li>No recommendation: {escape(plan.get("message") or "")}</li></ul></section>'
        )
    facts = [("replay ratio", f"{rec['replay_ratio']:g}"), ("domain share", f"{rec['domain_share']:g}")]
    for name in plan["retained"]:
        facts.append((f"{name} rise (retained)", _signed(rec["predicted_delta"].get(name))))
    for name in plan["targets"]:
        facts.append((f"{name} change (target)", _signed(rec["predicted_delta"].get(name))))
    items = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts)
    note = (
        f"The least replay that keeps every retained source's loss within {escape(plan['budget']['text'])} of "
        f"the base model at the end of a {plan['predicted_at_tokens']:,}-token stage, by the fitted laws; "
        f"{escape(rec['limiting_source'])} decides it."
    )
    guessed = [n for n, how in (rec.get("predicted_by") or {}).items() if how != "fit"]
    if guessed:
        note += (
            f" The fit of {escape(', '.join(guessed))} did not converge: its value is interpolated between the "
            "measured ratios."
        )
    if rec["at_range_end"]:
        note += " The least replay planned already meets the budget: less replay was not measured."
    applied = plan.get("applied_config")
    if applied:
        note += f" Written to <code>{escape(applied)}</code>."
    return (
        f'<section id="recommendation"><h2>Recommendation</h2><dl class="facts">{items}</dl>'
        f'<p class="note">{note}</p></section>'
    )


def _ratio_plots(plan: dict[str, Any]) -> str:
    rec = plan.get("recommendation")
    ratios = [p["ratio"] for p in plan["proxies"]]
    lo, hi = min(ratios), max(ratios)
    figures = []
    for i, name in enumerate([*plan["retained"], *plan["targets"]]):
        fit = plan["fits"].get(name, {})
        base = plan["base_loss"].get(name)
        measured = [(p["ratio"], p["final"][name]) for p in plan["proxies"] if name in p["final"]]
        series = [Series("measured", measured, color=PALETTE[i % len(PALETTE)], markers=True, width=0.01)]
        params = fit.get("params")
        if fit.get("converged") and params:
            xs = [lo + (hi - lo) * k / (CURVE_POINTS - 1) for k in range(CURVE_POINTS)]
            curve = [(x, _law(params, 1 - x)) for x in xs]
            series.append(Series("fitted a·R^s + b", curve, color=PALETTE[i % len(PALETTE)], dashed=True))
        hlines = [HLine(base, "base model")] if base is not None else []
        role = "retained" if name in plan["retained"] else "target"
        if role == "retained" and base is not None:
            limit = base + plan["budget_nats"][name]
            hlines.append(HLine(limit, "budget", color="#c0392b"))
        vlines = [VLine(rec["replay_ratio"], "recommended")] if rec else []
        figures.append(
            line_plot(
                series,
                title=f"{name} ({role}): held-out loss after {plan['predicted_at_tokens']:,} tokens",
                kind="plan-ratio",
                width=536,
                x_label="replay ratio (1 - R)",
                y_label="loss (nats/token)",
                hlines=hlines,
                vlines=vlines,
            )
        )
    return (
        '<section id="fits"><h2>Loss against the replay ratio</h2>'
        '<p class="note">Dots: the end of each proxy run; dashed: the fitted law L(R) = a·R^s + b, R = 1 - replay '
        "ratio.</p>"
        f'<div class="grid">{"".join(f"<div class=figure>{f}</div>" for f in figures)}</div></section>'
    )


def _along_runs(plan: dict[str, Any]) -> str:
    figures = []
    for name in [*plan["retained"], *plan["targets"]]:
        base = plan["base_loss"].get(name)
        if base is None:
            continue
        series = []
        for k, proxy in enumerate(plan["proxies"]):
            points = [(0.0, 0.0)] + [
                (float(t), losses[name] - base) for t, losses in proxy["curve"] if name in losses
            ]
            series.append(
                Series(f"replay {proxy['ratio']:g}", points, color=PALETTE[k % len(PALETTE)], markers=True)
            )
        role = "retained: rise" if name in plan["retained"] else "target: change"
        figures.append(
            line_plot(
                series,
                title=f"{name} ({role}) along each proxy run",
                kind="plan-curve",
                width=536,
                x_label="stage tokens",
                y_label="loss - base (nats/token)",
                hlines=[HLine(0.0)],
                x_format=format_count,
            )
        )
    return (
        '<section id="curves"><h2>Along the proxy runs</h2>'
        '<p class="note">Loss minus the base model\'s, at each evaluation of each proxy run (the increment '
        "against tokens of the critical-mixture-ratio law).</p>"
        f'<div class="grid">{"".join(f"<div class=figure>{f}</div>" for f in figures)}</div></section>'
    )


def _points_table(plan: dict[str, Any]) -> str:
    sources = [*plan["retained"], *plan["targets"]]
    head = "".join(f"<th>{escape(s)} measured</th><th>{escape(s)} fitted</th>" for s in sources)
    rows = []
    for proxy in plan["proxies"]:
        cells = []
        for name in sources:
            params = plan["fits"].get(name, {}).get("params")
            fitted = _law(params, 1 - proxy["ratio"]) if params and plan["fits"][name]["converged"] else None
            cells.append(_num(proxy["final"].get(name)))
            cells.append(_num(fitted))
        flags = [
            "acceptable" if proxy["ratio"] in plan["acceptable_measured"] else "",
            "feasible" if proxy["ratio"] in plan["feasible_measured"] else "",
            "reused" if proxy.get("reused") else "",
        ]
        rows.append(
            f"<tr><th>{proxy['ratio']:g}</th>{''.join(cells)}"
            f"<td class='text'>{escape(', '.join(f for f in flags if f))}</td></tr>"
        )
    base = "".join(f"{_num(plan['base_loss'].get(s))}<td></td>" for s in sources)
    return (
        '<section id="points"><h2>Proxy runs</h2>'
        f'<table data-table="plan-points"><thead><tr><th>replay ratio</th>{head}<th></th></tr></thead>'
        f"<tbody><tr><th>base model</th>{base}<td></td></tr>{''.join(rows)}</tbody></table>"
        '<p class="note">Held-out loss (nats/token) at the end of each proxy run. Acceptable: every retained '
        "source within budget (measured). Feasible: acceptable, and every retained loss passed its peak "
        "before the end of the run.</p></section>"
    )


def _fits_table(plan: dict[str, Any]) -> str:
    rows = []
    for name, fit in plan["fits"].items():
        params = fit.get("params") or {}
        text = ", ".join(f"{k} = {v:.5g}" for k, v in params.items())
        rows.append(
            f"<tr><th>{escape(name)}</th><td class='text'>{escape(fit['form'])}</td>"
            f"<td class='text'>{escape(text)}</td>{_num(fit.get('rmse'), 5)}{_num(fit.get('r2'), 4)}"
            f"{_num(fit.get('max_relative_error'), 5)}<td class='text'>{escape(fit['message'])}</td></tr>"
        )
    return (
        '<section id="fit-table"><h2>Fits</h2><table data-table="plan-fits"><thead><tr><th>source</th><th>form</th>'
        "<th>parameters (x = R)</th><th>RMSE</th><th>R²</th><th>max relative error</th><th>status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></section>"
    )


def _at_stage(plan: dict[str, Any]) -> str:
    at = plan.get("at_stage")
    if not at:
        return ""
    sources = [*plan["retained"], *plan["targets"]]
    head = "".join(f"<th>{escape(s)} predicted</th><th>{escape(s)} check error</th>" for s in sources)
    rows = []
    for ratio, by_source in at["predicted_loss"].items():
        cells = []
        for name in sources:
            check = (at["extrapolation_checks"].get(ratio) or {}).get(name) or {}
            cells.append(_num(by_source.get(name)))
            cells.append(_num(check.get("error")))
        rows.append(f"<tr><th>{escape(ratio)}</th>{''.join(cells)}</tr>")
    rec = at.get("recommendation")
    if rec is not None:
        deltas = ", ".join(f"{n} {_signed(v)}" for n, v in rec["predicted_delta"].items())
        verdict = f"least replay within budget there: {rec['replay_ratio']:g} ({deltas})"
    else:
        verdict = f"no recommendation there: {at.get('message') or ''}"
    factor = at.get("extrapolation_factor")
    return (
        '<section id="at-stage"><h2>At the stage\'s length</h2>'
        f"<p>Each proxy's increment-vs-tokens curve extended to the stage's {at['predicted_at_tokens']:,} tokens "
        f"({'' if factor is None else f'{factor:.3g} times the proxy run, '}beyond what the proxies measured); "
        f"{escape(verdict)}.</p>"
        f'<table data-table="plan-at-stage"><thead><tr><th>replay ratio</th>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
        '<p class="note">Predicted held-out loss (nats/token) at the stage\'s length. Check error: the curve '
        "fitted on the first three quarters of a proxy run's evaluations, its prediction at the run's end minus "
        "the measured value: how well it extrapolates a third further, a far shorter reach than the stage's.</p>"
        "</section>"
    )


def _definitions() -> str:
    return (
        '<section id="definitions"><h2>Definitions</h2><dl class="defs">'
        "<dt>R</dt><dd>the domain share of the stage's tokens: 1 - the replay ratio.</dd>"
        "<dt>Rise</dt><dd>a retained source's held-out loss minus the base model's, nats/token.</dd>"
        "<dt>Budget</dt><dd>the largest rise allowed for each retained source.</dd>"
        "<dt>Law</dt><dd>L(R) = a·R^s + b per source (Gu et al. 2024, the critical mixture ratio), "
        "fitted by least squares with bounded exponents from several starts.</dd></dl></section>"
    )


def _law(params: dict[str, float], share: float) -> float:
    return (
        params["a"] * share ** params["s"]
        + params.get("a2", 0.0) * share ** params.get("s2", 1.0)
        + params["b"]
    )


def _num(value: Any, digits: int = 4) -> str:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "<td class='num'>-</td>"
    return f"<td class='num'>{value:.{digits}f}</td>"


def _signed(value: Any) -> str:
    return "-" if not isinstance(value, (int, float)) else f"{value:+.4f} nats/token"
