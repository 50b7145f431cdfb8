"""The model card of a run: `final/README.md`, written at the end of training and by
`forgetless card RUN_DIR` from the run directory alone (config.yaml, metrics.jsonl, summary.json).

The card opens with the Hugging Face metadata block (`base_model` when the base is a hub id,
`datasets` for hub datasets among the sources, `license` from the base model's own card, `tags`),
then says what the run did: the base, the sources with their token counts, the stages (mixture,
replay, schedule, methods), the model transforms, the ledger of learning and forgetting with the
multiple-choice accuracies and their standard errors, the cost, and how to reproduce it.
"""

from __future__ import annotations

import json
import math
import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from forgetless import __version__
from forgetless.errors import UserError
from forgetless.evaluate.ledger import SUMMARY_FILE, read_metrics, write_summary
from forgetless.evaluate.ledger_tables import mcq_table, source_table

CARD_FILE = "README.md"
TAGS = ["continual-pretraining", "forgetless"]
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def write_card(run_dir: Path) -> Path:
    """Write `run_dir/final/README.md` from the run's files and return its path.

    Raises `UserError` naming the file when the run has no config.yaml, metrics.jsonl or final/.
    """
    run_dir = Path(run_dir)
    final = run_dir / "final"
    if not (run_dir / "config.yaml").is_file():
        raise UserError(f"{run_dir}: not a run directory (no config.yaml)")
    if not final.is_dir():
        raise UserError(f"{final}: no final model yet (the run has not finished)")
    path = final / CARD_FILE
    path.write_text(model_card(run_dir), encoding="utf-8")
    return path


def model_card(run_dir: Path) -> str:
    """The text of the model card of `run_dir` (see the module docstring)."""
    run_dir = Path(run_dir)
    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise UserError(f"{run_dir / 'config.yaml'}: cannot read the run's config ({err})") from None
    records = read_metrics(run_dir / "metrics.jsonl")
    summary_path = run_dir / SUMMARY_FILE
    summary = (
        json.loads(summary_path.read_text(encoding="utf-8"))
        if summary_path.is_file()
        else write_summary(run_dir)
    )
    run_start = next((r for r in records if r.get("kind") == "run_start"), {})
    return _metadata(config) + "\n" + _body(run_dir, config, summary, run_start)


# ---------------------------------------------------------------------------------------------
# Metadata


def card_metadata(config: dict[str, Any]) -> dict[str, Any]:
    """The Hugging Face metadata of the card: base_model, datasets, license, tags, library, task."""
    from huggingface_hub import ModelCardData

    base = base_model_id(config)
    data = ModelCardData(
        base_model=base,
        datasets=hub_datasets(config) or None,
        license=base_license(config),
        tags=list(TAGS),
        library_name="transformers",
        pipeline_tag="text-generation",
    )
    return data.to_dict()


def _metadata(config: dict[str, Any]) -> str:
    return "---\n" + yaml.safe_dump(card_metadata(config), sort_keys=True, allow_unicode=True) + "---\n"


def base_model_id(config: dict[str, Any]) -> str | None:
    """The base model's hub id: `model.path` when it is one (not a local folder), else the
    `_name_or_path` its config.json records when that is a hub id; None for a model built here."""
    path = (config.get("model") or {}).get("path")
    if not path:
        return None
    local = Path(path).expanduser()
    if not local.exists():
        return path if _HUB_ID.match(path) else None
    try:
        recorded = json.loads((local / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError):
        return None
    if isinstance(recorded, str) and _HUB_ID.match(recorded) and not Path(recorded).expanduser().exists():
        return recorded
    return None


def base_license(config: dict[str, Any]) -> str | None:
    """The `license` of the base model's own card (README.md metadata), when it has one."""
    path = (config.get("model") or {}).get("path")
    readme = Path(path).expanduser() / CARD_FILE if path else None
    if readme is None or not readme.is_file():
        return None
    from huggingface_hub import ModelCard

    try:
        license_ = ModelCard.load(readme).data.to_dict().get("license")
    except Exception:  # noqa: BLE001 - a base card we cannot parse simply names no license
        return None
    return license_ if isinstance(license_, str) else None


def hub_datasets(config: dict[str, Any]) -> list[str]:
    """Hub dataset ids among the sources' files (`hf:org/name`, or any entry of an hf_hub source)."""
    found: list[str] = []
    for source in (config.get("sources") or {}).values():
        for entry in source.get("files") or []:
            if entry.startswith("hf:") or source.get("format") == "hf_hub":
                dataset = entry.removeprefix("hf:")
                if dataset not in found:
                    found.append(dataset)
    return found


# ---------------------------------------------------------------------------------------------
# Body


def _body(run_dir: Path, config: dict[str, Any], summary: dict[str, Any], run_start: dict[str, Any]) -> str:
    model = config.get("model") or {}
    base = model.get("path") or "a model initialised from `model.init` (no base weights)"
    base_text = f"`{base}`" if model.get("path") else base
    parts = [
        f"# {run_dir.name}",
        f"Continued pretraining of {base_text} with forgetless "
        f"{summary.get('forgetless_version') or __version__}. The ledger below says, for every data source, "
        "what the model learned and what it forgot, measured from the base model onwards.",
        "## Data",
        _sources_table(config, run_start),
        "## Stages",
        _stages_table(config),
    ]
    transforms = model.get("transforms") or []
    parts += ["## Model transforms", _transforms_text(transforms)] if transforms else []
    parts += [
        "## What it learned and what it forgot",
        "Held-out loss in nats/token of the base model and of this model, per source "
        "(target sources are those a stage trains on; the others are retained)."
        if summary.get("units") != "bpb"
        else "Held-out bits per byte of the base model (with its own tokenizer) and of this model, per "
        "source (target sources are those a stage trains on; the others are retained). The vocabulary "
        "changed, so nats per token of the two models are not comparable; bits per byte are.",
        source_table(summary),
    ]
    if mcq := mcq_table(summary):
        parts += [
            "Multiple-choice accuracy ± its standard error; the change with its 95% interval, paired "
            "over the same questions. A change whose interval contains 0 is no significant change.",
            mcq,
        ]
    gap = summary.get("worst_stability_gap")
    if gap and gap.get("depth"):
        state = "recovered" if gap.get("recovered") else "did not recover"
        parts.append(
            f"Deepest stability gap: {gap['source']} rose {gap['depth']:.4f} nats/token during stage "
            f"{gap['stage']} and {state}."
        )
    parts += ["## Training", _training_text(config, summary)]
    parts += ["## Reproduce", _reproduce_text(run_dir, config)]
    parts += ["## Use", _use_text()]
    return "\n\n".join(parts) + "\n"


def _sources_table(config: dict[str, Any], run_start: dict[str, Any]) -> str:
    tokens = run_start.get("source_tokens") or {}
    rows = ["| source | files | training tokens (after the held-out split) |", "|---|---|---:|"]
    for name, source in (config.get("sources") or {}).items():
        files = ", ".join(f"`{f}`" for f in (source.get("files") or [])[:3])
        more = len(source.get("files") or []) - 3
        files += f" and {more} more" if more > 0 else ""
        count = tokens.get(name)
        rows.append(f"| {name} | {files} | {f'{count:,}' if isinstance(count, int) else '–'} |")
    return "\n".join(rows)


def _stages_table(config: dict[str, Any]) -> str:
    rows = ["| stage | tokens | mixture | replay | schedule | methods |", "|---|---:|---|---|---|---|"]
    for stage in config.get("stages") or []:
        mix = ", ".join(f"{name} {share:g}" for name, share in (stage.get("mix") or {}).items())
        replay = stage.get("replay")
        replay_text = (
            f"{replay['ratio']:.0%} of {', '.join(replay['from'])} ({replay.get('accounting', '')})"
            if replay
            else "none"
        )
        rows.append(
            f"| {stage['name']} | {stage['tokens']:,} | {mix} | {replay_text} | "
            f"{_schedule_text(stage.get('schedule') or {})} | {_methods_text(stage.get('methods') or {})} |"
        )
    return "\n".join(rows)


def _schedule_text(schedule: dict[str, Any]) -> str:
    text = f"{schedule.get('kind', 'cosine')}, peak LR {schedule.get('peak_lr', 0):g}"
    if schedule.get("warmup"):
        text += f", warmup {schedule['warmup']:g}"
    if schedule.get("kind") in ("cosine", "wsd"):
        text += f", final LR ratio {schedule.get('final_lr_ratio', 0):g}"
    return text


def _methods_text(methods: dict[str, Any]) -> str:
    used = []
    for name, value in methods.items():
        if value in (None, [], {}):
            continue
        if isinstance(value, dict):
            settings = ", ".join(f"{k} {v}" for k, v in value.items() if not isinstance(v, (dict, list)))
            used.append(f"{name} ({settings})" if settings else name)
        elif isinstance(value, list):
            used.append(f"{name}: {', '.join(map(str, value))}")
        else:
            used.append(f"{name} {value}")
    return "; ".join(used) or "none"


def _transforms_text(transforms: list[Any]) -> str:
    lines = []
    for transform in transforms:
        if isinstance(transform, dict):
            kind = transform.get("kind") or transform.get("type") or next(iter(transform), "transform")
            settings = ", ".join(f"{k} {v}" for k, v in transform.items() if k not in ("kind", "type"))
            lines.append(f"- {kind}" + (f": {settings}" if settings else ""))
        else:
            lines.append(f"- {transform}")
    return "Applied in order after loading the base, before training:\n\n" + "\n".join(lines)


def _training_text(config: dict[str, Any], summary: dict[str, Any]) -> str:
    train = config.get("train") or {}
    lengths = [stage.get("seq_len") or train.get("seq_len") for stage in config.get("stages") or []]
    length = _count(train.get("seq_len"))
    if len(set(lengths)) > 1:  # a length curriculum: each stage's
        length = " -> ".join(_count(n) or "–" for n in lengths)
    facts = [
        ("training tokens", _count(summary.get("tokens"))),
        ("optimizer steps", _count(summary.get("steps"))),
        ("sequence length", length),
        ("tokens per step", _count(train.get("batch_tokens"))),
        ("precision", train.get("precision")),
        ("wall time", _duration(summary.get("wall_s"))),
        ("training tokens per second", _count(summary.get("tokens_per_s"))),
        (
            "time in evaluation",
            "–" if summary.get("eval_fraction") is None else f"{summary['eval_fraction']:.0%}",
        ),
        ("seed", train.get("seed")),
    ]
    return "\n".join(f"- {name}: {value}" for name, value in facts if value not in (None, ""))


def _reproduce_text(run_dir: Path, config: dict[str, Any]) -> str:
    out = shlex.quote(run_dir.name)
    return (
        "The run directory's `config.yaml` is the resolved config, every default filled in:\n\n"
        f"```bash\nforgetless train config.yaml --out runs/{out}\n```\n\n"
        "<details><summary>config.yaml</summary>\n\n```yaml\n"
        + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        + "```\n\n</details>"
    )


def _use_text() -> str:
    return (
        "A standard Hugging Face model directory; no forgetless code is needed to load it:\n\n"
        "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\n"
        'model = AutoModelForCausalLM.from_pretrained("path/to/final")\n'
        'tokenizer = AutoTokenizer.from_pretrained("path/to/final")\n```'
    )


def _count(value: Any) -> str | None:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return f"{value:,.0f}"


def _duration(seconds: Any) -> str | None:
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        return None
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"
