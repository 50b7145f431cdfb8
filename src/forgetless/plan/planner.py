"""`forgetless plan`: proxy runs, fits and a recommended replay ratio, written as plan.json and plan.html.

    make_plan(config, setup, budget, out)   # runs what is missing, fits, recommends, writes the files

The steps are one module each: `proxy` (the runs), `fit` (the laws), `recommend` (the ratio) and
`page` (the HTML). `apply_ratio` writes the user's config with the recommended ratio filled in.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from forgetless import __version__
from forgetless.config import RunConfig
from forgetless.errors import RunFailed, UserError
from forgetless.plan.fit import Fit, fit_power_law, fit_two_term
from forgetless.plan.proxy import PlanSetup, ProxyResult, run_proxies
from forgetless.plan.recommend import Budget, closest_ratio, recommend

PLAUSIBLE_LOSS_FACTOR = 2.0
"""An increment curve extended to the stage's length that predicts a loss outside (0, this x the
base loss] has left its data behind (a power law's far tail): it gives no prediction."""


class NoRecommendation(RunFailed):
    """A fit did not converge: the plan is written without a recommendation (exit code 1)."""


def make_plan(
    config: RunConfig,
    setup: PlanSetup,
    budget: Budget,
    out: Path,
    *,
    config_path: Path | None = None,
    apply: bool = False,
    quiet: bool = False,
    progress: Any = None,
) -> dict[str, Any]:
    """Run the plan's proxy runs (those not finished yet), fit, recommend and write `out/plan.json`
    and `out/plan.html`; return the plan.

    Raises `UserError` (nothing written) when no ratio meets the budget, naming the closest, and
    `NoRecommendation` (after writing the plan without one) when a fit does not converge.
    """
    out = Path(out)
    proxies = run_proxies(config, setup, out, quiet=quiet, progress=progress)
    plan = analyse(proxies, setup, budget)
    if plan["recommendation"] is not None and apply:
        if config_path is None:
            raise ValueError("apply needs the config's path")
        plan["applied_config"] = str(apply_ratio(config_path, setup, plan["recommendation"]["replay_ratio"]))
    write_plan(plan, out)
    if plan["recommendation"] is None:
        raise NoRecommendation(f"no recommendation: {plan['message']}; see {out / 'plan.html'}")
    return plan


def analyse(
    proxies: list[ProxyResult], setup: PlanSetup, budget: Budget, *, unmeetable: str = "raise"
) -> dict[str, Any]:
    """The plan from finished proxy runs: fits, acceptable and feasible ratios, the recommendation.

    When no ratio within the measured range meets the budget: raises `UserError` naming the closest
    (`unmeetable="raise"`), or returns the plan without a recommendation, the closest ratio in
    `closest` and the reason in `message` (`unmeetable="report"`).
    """
    sources = [*setup.retained, *setup.targets]
    base = dict(proxies[0].base)
    for proxy in proxies[1:]:  # the same model and held-out windows: the same base losses
        for name in sources:
            if name in proxy.base and not math.isclose(proxy.base[name], base[name], rel_tol=1e-4):
                raise UserError(
                    f"{proxy.run_dir}: its base loss on {name} ({proxy.base[name]:.5f}) differs from "
                    f"{proxies[0].run_dir}'s ({base[name]:.5f}): the proxy runs do not share a base model"
                )
    missing = [name for name in sources if name not in base]
    if missing:
        raise UserError(f"the proxy runs did not evaluate {missing}; add them to eval.sources")
    fits: dict[str, Fit] = {
        name: fit_power_law([1 - p.ratio for p in proxies], [p.final[name] for p in proxies])
        for name in sources
    }
    curve_fits = {
        f"{p.ratio:g}": {name: _increment_fit(p, name, base, name in setup.retained) for name in sources}
        for p in proxies
    }
    budget_nats = {name: budget.nats(base[name]) for name in setup.retained}
    acceptable = [
        p.ratio
        for p in proxies
        if all(p.final[j] - base[j] <= budget_nats[j] + 1e-12 for j in setup.retained)
    ]
    feasible = [
        r for r in acceptable if all(_passed_peak(_proxy(proxies, r), j, base) for j in setup.retained)
    ]
    plan: dict[str, Any] = {
        "kind": "plan",
        "forgetless_version": __version__,
        "stage": setup.stage,
        "ratios": list(setup.ratios),
        "proxy_tokens": setup.tokens,
        "stage_tokens": setup.full_tokens,
        "predicted_at_tokens": setup.tokens,
        "retained": list(setup.retained),
        "targets": list(setup.targets),
        "replay_from": list(setup.replay_from),
        "budget": budget.as_dict(),
        "budget_nats": budget_nats,
        "base_loss": {name: base[name] for name in sources},
        "proxies": [
            {
                "ratio": p.ratio,
                "run_dir": str(p.run_dir),
                "reused": p.reused,
                "final": p.final,
                "delta": {name: p.final[name] - base[name] for name in sources if name in p.final},
                "curve": [[tokens, losses] for tokens, losses in p.curve],
            }
            for p in proxies
        ],
        "fits": {name: fit.as_dict() for name, fit in fits.items()},
        "curve_fits": {ratio: {n: f.as_dict() for n, f in by.items()} for ratio, by in curve_fits.items()},
        "acceptable_measured": acceptable,
        "feasible_measured": feasible,
        "recommendation": None,
        "message": "",
        "at_stage": at_stage(proxies, setup, budget, base, curve_fits),
    }
    failed = [name for name in setup.retained if not fits[name].converged]
    if failed:  # the budget cannot be checked between the measured ratios
        plan["message"] = "; ".join(
            f"the fit of {n}'s loss did not converge ({fits[n].message})" for n in failed
        )
        return plan
    measured = {p.ratio: p.final for p in proxies}
    try:
        rec = recommend(fits, base, budget, list(setup.retained), list(setup.ratios), measured).as_dict()
    except UserError as err:
        if unmeetable == "raise":
            raise
        plan["message"] = str(err)
        plan["closest"] = closest_ratio(fits, base, budget, list(setup.retained), list(setup.ratios))
        return plan
    rec["predicted_by"] = {name: "fit" for name in rec["predicted_loss"]}
    for name in setup.targets:
        if not fits[name].converged:  # a target's loss is reported, not bounded: interpolate it
            value = float(np.interp(rec["replay_ratio"], setup.ratios, [p.final[name] for p in proxies]))
            rec["predicted_loss"][name] = value
            rec["predicted_delta"][name] = value - base[name]
            rec["predicted_by"][name] = (
                "linear interpolation between the measured ratios (the fit did not converge)"
            )
    plan["recommendation"] = rec
    unfit = [name for name in setup.targets if not fits[name].converged]
    plan["message"] = "converged" + (
        "; " + "; ".join(f"the fit of {n}'s loss did not converge ({fits[n].message})" for n in unfit)
        if unfit
        else ""
    )
    return plan


def at_stage(
    proxies: list[ProxyResult],
    setup: PlanSetup,
    budget: Budget,
    base: dict[str, float],
    curve_fits: dict[str, dict[str, Fit]],
) -> dict[str, Any]:
    """The prediction at the stage's own length: each proxy's increment-vs-tokens curve (fitted along
    the run, `curve_fits`) extended to the stage's tokens, the law L(R) fitted to those values, and
    the least replay that keeps every retained source within `budget` there.

    Also, per curve, a check of how it extrapolates: fitted on the evaluations of the first three
    quarters of the proxy run, its prediction at the run's end against the measured value."""
    sources = [*setup.retained, *setup.targets]
    predicted: dict[str, dict[str, float | None]] = {}
    checks: dict[str, dict[str, dict[str, Any] | None]] = {}
    why: dict[str, dict[str, str]] = {}  # per ratio and source: why there is no prediction
    factor = None
    for proxy in proxies:
        key = f"{proxy.ratio:g}"
        end = proxy.curve[-1][0] if proxy.curve else 0
        factor = setup.full_tokens / end if end else None
        predicted[key], checks[key], why[key] = {}, {}, {}
        for name in sources:
            fit = curve_fits[key][name]
            law = fit.law if fit.converged else None
            value = base[name] + float(law(factor)) if law is not None and factor else None
            why[key][name] = fit.message
            if value is not None and not 0 < value <= PLAUSIBLE_LOSS_FACTOR * base[name]:
                why[key][name] = (
                    f"the curve extends to a loss of {value:.4g} at the stage's length, outside (0, "
                    f"{PLAUSIBLE_LOSS_FACTOR:g} x the base loss {base[name]:.4g}]"
                )
                value = None
            predicted[key][name] = value
            checks[key][name] = _extrapolation_check(proxy, name, base, name in setup.retained)
    result: dict[str, Any] = {
        "predicted_at_tokens": setup.full_tokens,
        "extrapolation_factor": factor,
        "predicted_loss": predicted,
        "extrapolation_checks": checks,
        "fits": {},
        "recommendation": None,
        "message": "",
    }
    missing = [
        (ratio, name) for ratio, by in predicted.items() for name, v in by.items() if v is None and name in setup.retained
    ]
    if missing:
        ratio, name = missing[0]
        result["message"] = (
            f"{len(missing)} increment curve(s) of retained sources give no prediction, first {name}'s at "
            f"replay {ratio} ({why[ratio][name]})"
        )
        return result
    shares = [1 - proxy.ratio for proxy in proxies]
    fits = {
        name: fit_power_law(shares, [predicted[f"{p.ratio:g}"][name] for p in proxies])  # type: ignore[misc]
        for name in sources
        if all(predicted[f"{p.ratio:g}"][name] is not None for p in proxies)
    }
    result["fits"] = {name: fit.as_dict() for name, fit in fits.items()}
    failed = [name for name in setup.retained if not fits[name].converged]
    if failed:
        result["message"] = "; ".join(f"the fit of {n}'s loss did not converge ({fits[n].message})" for n in failed)
        return result
    try:
        rec = recommend(
            {n: f for n, f in fits.items() if f.converged}, base, budget, list(setup.retained), list(setup.ratios)
        )
    except UserError as err:
        result["message"] = str(err)
        result["closest"] = closest_ratio(fits, base, budget, list(setup.retained), list(setup.ratios))
        return result
    result["recommendation"] = rec.as_dict()
    result["message"] = "converged"
    return result


def _extrapolation_check(
    proxy: ProxyResult, name: str, base: dict[str, float], retained: bool
) -> dict[str, Any] | None:
    points = [(t, losses[name] - base[name]) for t, losses in proxy.curve if t > 0 and name in losses]
    keep = math.ceil(0.75 * len(points))
    if keep >= len(points):
        return None
    end = proxy.curve[-1][0]
    xs, ys = [t / end for t, _ in points[:keep]], [d for _, d in points[:keep]]
    fit = fit_two_term(xs, ys) if retained else fit_power_law(xs, ys)
    if not fit.converged or fit.law is None:
        return {"evaluations": keep, "converged": False, "message": fit.message}
    x_last = points[-1][0] / end
    value = float(fit.law(x_last))
    return {
        "evaluations": keep,
        "converged": True,
        "from_tokens": points[keep - 1][0],
        "to_tokens": points[-1][0],
        "predicted_delta": value,
        "measured_delta": points[-1][1],
        "error": value - points[-1][1],
    }


def write_plan(plan: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write `plan.json` and `plan.html` into `out` (each to a temporary name, then renamed)."""
    from forgetless.plan.page import render_plan

    out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out / "plan.json", out / "plan.html"
    _write_atomic(json_path, json.dumps(plan, indent=2, allow_nan=False) + "\n")
    _write_atomic(html_path, render_plan(plan))
    return json_path, html_path


def apply_ratio(config_path: Path, setup: PlanSetup, ratio: float) -> Path:
    """Write `<config>.planned.yaml` beside the config (relative paths keep working), with the
    planned stage's replay ratio set to `ratio`; return its path. Comments are not kept."""
    config_path = Path(config_path)
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    stage = next(s for s in data["stages"] if s.get("name") == setup.stage)
    replay = stage.get("replay") or {"from": list(setup.replay_from)}
    replay["ratio"] = ratio
    stage["replay"] = replay
    path = config_path.with_name(f"{config_path.stem}.planned.yaml")
    text = (
        f"# {config_path.name} with the replay ratio of stage {setup.stage} from `forgetless plan`\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
    _write_atomic(path, text)
    return path


def _increment_fit(proxy: ProxyResult, name: str, base: dict[str, float], retained: bool) -> Fit:
    points = [
        (tokens, losses[name] - base[name]) for tokens, losses in proxy.curve if tokens > 0 and name in losses
    ]
    xs = [t / proxy.curve[-1][0] for t, _ in points]  # tokens as a fraction of the proxy run
    ys = [d for _, d in points]
    return fit_two_term(xs, ys) if retained else fit_power_law(xs, ys)


def _passed_peak(proxy: ProxyResult, name: str, base: dict[str, float]) -> bool:
    """The retained loss peaked before the proxy's last evaluation (and did not end at its peak)."""
    values = [losses[name] for _, losses in proxy.curve if name in losses]
    return len(values) >= 2 and max(values) > values[-1]


def _proxy(proxies: list[ProxyResult], ratio: float) -> ProxyResult:
    return next(p for p in proxies if p.ratio == ratio)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
