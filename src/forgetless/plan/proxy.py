"""Proxy runs of a plan: one stage of a config, shortened to a token budget, once per replay ratio.

A proxy run is an ordinary forgetless run (`run_training`) of a config derived from the user's:
only the planned stage, its `tokens` set to the proxy budget, its replay ratio set to one of the
planned ratios (from the stage's replay sources, or the retained sources), evaluations every
1/`evals` of the stage and no question sets. It reuses the prepared shards of the config's cache.

Proxy runs live in `OUT/proxies/replay-<ratio>/`. A proxy whose run finished (a complete
`summary.json` and the same resolved config) is never run again; an unfinished one resumes from its
latest checkpoint (or starts over when it has none). A folder that holds a run of another config is
refused, never overwritten.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from forgetless.config import ReplayConfig, RunConfig, dump_config
from forgetless.errors import UserError

DEFAULT_EVALS = 8


@dataclass(frozen=True)
class PlanSetup:
    """What a plan varies and measures: the stage, the replay ratios, the proxy budget, the sources."""

    stage: str
    ratios: tuple[float, ...]  # replay ratios, ascending
    tokens: int  # the proxy stage's token budget
    full_tokens: int  # the stage's own token budget
    retained: tuple[str, ...]  # sources whose loss rise the budget bounds
    targets: tuple[str, ...]  # the stage's mix sources that are evaluated
    replay_from: tuple[str, ...]  # where replayed sequences come from
    evals: int = DEFAULT_EVALS


@dataclass
class ProxyResult:
    """The measurements of one proxy run (losses in nats/token)."""

    ratio: float
    run_dir: Path
    base: dict[str, float]  # held-out loss of each source before training
    final: dict[str, float]  # at the end of the proxy stage
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (stage tokens, losses)
    reused: bool = False  # finished before this plan started


def parse_ratios(text: str) -> list[float]:
    """`0,0.05,0.1` -> [0.0, 0.05, 0.1]; raise `UserError` naming the bad item."""
    values = []
    for item in text.split(","):
        try:
            values.append(float(item))
        except ValueError:
            raise UserError(f"--ratios {text}: {item.strip()!r} is not a number") from None
    return values


def parse_tokens(text: str, config: RunConfig, stage: str) -> int:
    """A token count (`30000`, `30_000`), or a share of the stage's tokens (`1/8`, `0.125`)."""
    raw = text.strip().replace("_", "")
    spec = next((s for s in config.stages if s.name == stage), None)
    try:
        if "/" in raw:
            num, den = raw.split("/")
            share = float(num) / float(den)
        elif "." in raw:
            share = float(raw)
        else:
            return int(raw)
    except (ValueError, ZeroDivisionError):
        raise UserError(
            f"--tokens {text}: expected a token count or a share of the stage such as 1/8"
        ) from None
    if spec is None or not 0 < share <= 1:
        raise UserError(f"--tokens {text}: a share of the stage must be in (0, 1]")
    return max(1, round(share * spec.tokens))


def plan_setup(
    config: RunConfig,
    stage: str,
    ratios: list[float],
    tokens: int,
    retained: list[str] | None = None,
    evals: int = DEFAULT_EVALS,
) -> PlanSetup:
    """Check the plan's arguments against the config; raise `UserError` with one line if they do not fit."""
    names = [s.name for s in config.stages]
    if stage not in names:
        raise UserError(f"--stage {stage}: no such stage in the config; stages: {names}")
    index = names.index(stage)
    if index > 0:
        raise UserError(
            f"--stage {stage}: the proxy runs start from model.path, which enters the first stage only; "
            f"plan {names[0]!r}, or write a config whose model.path is the model entering {stage!r}"
        )
    spec = config.stages[index]
    clean = sorted(set(ratios))
    if len(clean) < 3:
        raise UserError(f"--ratios: a fit needs at least three different replay ratios, got {len(clean)}")
    for ratio in clean:
        if not 0 <= ratio < 1:
            raise UserError(f"--ratios: {ratio:g} is not a replay ratio in [0, 1)")
    if tokens <= 0:
        raise UserError(f"--tokens: the proxy budget must be positive, got {tokens}")
    per_step = config.tokens_per_step_of(index)
    if tokens < 3 * per_step:
        raise UserError(
            f"--tokens {tokens:,}: fewer than three optimizer steps of {per_step:,} tokens (train.batch_tokens); "
            "give the proxy runs more tokens"
        )
    if retained:
        for name in retained:
            if name not in config.sources:
                raise UserError(f"--retained {name}: no such source; sources: {sorted(config.sources)}")
            if name in spec.mix:
                raise UserError(f"--retained {name}: it is trained in stage {stage}'s mix, not retained")
        kept = tuple(dict.fromkeys(retained))
    else:
        kept = tuple(s for s in config.eval_sources if s not in spec.mix)
    if not kept:
        raise UserError(
            f"stage {stage}: no retained source to keep within the budget; evaluate one (eval.sources) "
            "or name it with --retained"
        )
    replay_from = tuple(spec.replay.from_) if spec.replay is not None else kept
    targets = tuple(s for s in config.eval_sources if s in spec.mix)
    if not targets:
        raise UserError(f"eval.sources: none of stage {stage}'s mix sources is evaluated; add one")
    if evals < 3:
        raise UserError(f"--evals: at least 3 evaluations along each proxy run, got {evals}")
    return PlanSetup(stage, tuple(clean), int(tokens), spec.tokens, kept, targets, replay_from, evals)


def proxy_config(config: RunConfig, setup: PlanSetup, ratio: float, run_dir: Path) -> RunConfig:
    """The config of the proxy run at `ratio`: the stage alone, at the proxy budget."""
    data = config.model_copy(deep=True)
    stage = next(s for s in data.stages if s.name == setup.stage)
    stage.tokens = setup.tokens
    if ratio > 0:
        old = stage.replay
        replay: dict = {"from": list(setup.replay_from), "ratio": ratio}
        if old is not None:  # the stage's own replay settings; else the defaults, as `--apply` writes it
            replay.update(accounting=old.accounting, order=old.order)
        stage.replay = ReplayConfig.model_validate(replay)
    else:
        stage.replay = None
    data.stages = [stage]
    per_step = data.tokens_per_step_of(0)
    data.eval.every_tokens = max(per_step, setup.tokens // setup.evals)
    data.eval.mcq = []
    data.eval.sources = list(dict.fromkeys([*setup.targets, *setup.retained]))
    data.output.dir = str(run_dir)
    # Validate like a loaded config, so that the proxy fails the way the user's run would.
    return RunConfig.model_validate(data.model_dump(by_alias=True))


def proxy_dir(out: Path, ratio: float) -> Path:
    return Path(out) / "proxies" / f"replay-{ratio:g}"


def finished(run_dir: Path, config: RunConfig) -> bool:
    """True when `run_dir` holds the finished run of `config`; raise `UserError` when it holds another config's run."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        return False
    if saved.read_text(encoding="utf-8") != dump_config(config):
        raise UserError(
            f"{run_dir}: holds a proxy run of a different config or plan (stage, tokens, sources or settings "
            "changed); use another --out, or delete that folder to run it again"
        )
    summary = run_dir / "summary.json"
    if not summary.is_file():
        return False
    try:
        return bool(json.loads(summary.read_text(encoding="utf-8")).get("complete"))
    except ValueError:
        return False


def run_proxies(
    config: RunConfig, setup: PlanSetup, out: Path, *, quiet: bool = False, progress: Any = None
) -> list[ProxyResult]:
    """Run (or reuse) every proxy run of the plan, in ratio order; return their measurements."""
    from forgetless.train.run import run_training

    configs = {ratio: proxy_config(config, setup, ratio, proxy_dir(out, ratio)) for ratio in setup.ratios}
    done = {ratio: finished(proxy_dir(out, ratio), cfg) for ratio, cfg in configs.items()}  # check all first
    results = []
    for ratio in setup.ratios:
        run_dir = proxy_dir(out, ratio)
        if not done[ratio]:
            if progress is not None:
                progress(f"proxy run: replay {ratio:g} for {setup.tokens:,} tokens -> {run_dir}")
            run_training(configs[ratio], resume=run_dir.exists(), quiet=quiet)
        elif progress is not None:
            progress(f"proxy run: replay {ratio:g} finished earlier, reused ({run_dir})")
        results.append(read_proxy(run_dir, ratio, reused=done[ratio]))
    return results


def read_proxy(run_dir: Path, ratio: float, *, reused: bool = False) -> ProxyResult:
    """The base, final and along-the-run held-out losses of a finished proxy run."""
    from forgetless.evaluate.ledger import read_metrics

    records = read_metrics(run_dir / "metrics.jsonl")
    evals = [r for r in records if r.get("kind") == "eval"]
    base_eval = next((r for r in evals if r.get("point") == "base"), None)
    if base_eval is None or len(evals) < 2:
        raise UserError(
            f"{run_dir}: the proxy run has no base or final evaluation; delete it to run it again"
        )

    def losses(record: dict) -> dict[str, float]:
        return {
            key.split("/")[1]: float(value)
            for key, value in record.items()
            if key.startswith("eval/") and key.endswith("/loss") and _finite(value)
        }

    curve = [(int(r.get("stage_tokens") or 0), losses(r)) for r in evals if r.get("point") != "base"]
    return ProxyResult(ratio, run_dir, losses(base_eval), curve[-1][1], curve, reused)


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
