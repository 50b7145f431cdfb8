"""The model card in final/README.md: Hugging Face metadata that huggingface_hub parses, and a body
made from the run's own files."""

from __future__ import annotations

import json
from pathlib import Path

from huggingface_hub import ModelCard

from forgetless.cli import main
from forgetless.config import config_from_dict, dump_config
from forgetless.evaluate.mcq_stats import accuracy_stderr, pack_outcomes
from forgetless.train.model_card import write_card


def make_run(tmp: Path) -> Path:
    """A finished run directory, written by hand: a base with a card and a hub id, two sources (one a
    hub dataset), one stage with replay and EWC, and an MCQ set scored at the base and the end."""
    base = tmp / "base"
    base.mkdir()
    (base / "config.json").write_text(
        json.dumps({"_name_or_path": "example-org/base-1b", "model_type": "llama"})
    )
    (base / "README.md").write_text("---\nlicense: apache-2.0\n---\n# base\n")
    config = config_from_dict(
        {
            "model": {"path": str(base)},
            "sources": {
                "general": {"files": ["hf:example-org/web-text"]},
                "law": {"files": ["data/law/"]},
            },
            "stages": [
                {
                    "name": "law",
                    "tokens": 20_000_000,
                    "mix": {"law": 1.0},
                    "replay": {"from": "general", "ratio": 0.05},
                    "schedule": {"kind": "cosine", "peak_lr": 3e-4},
                    "methods": {"ewc": {"weight": 10.0, "from": ["general"]}},
                }
            ],
            "output": {"dir": str(tmp / "law-run")},
        }
    )
    run = tmp / "law-run"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(dump_config(config))
    before, after = [1] * 25 + [0] * 75, [1] * 40 + [0] * 60

    def mcq(outcomes):
        acc = sum(outcomes) / len(outcomes)
        values = {
            "acc": acc,
            "acc_norm": acc,
            "acc_stderr": accuracy_stderr(outcomes),
            "n": 100,
            "chance": 0.25,
        }
        return {
            **{f"mcq/law-mcq/{k}": v for k, v in values.items()},
            "mcq/law-mcq/outcomes": pack_outcomes(outcomes),
        }

    lines = [
        {
            "kind": "run_start",
            "stages": [
                {
                    "name": "law",
                    "tokens": 20_000_000,
                    "targets": ["law"],
                    "replay": ["general"],
                    "replay_ratio": 0.05,
                }
            ],
            "sources": ["general", "law"],
            "mcq": ["law-mcq"],
            "source_tokens": {"general": 123_456_789, "law": 45_678_901},
        },
        {
            "kind": "eval",
            "step": 0,
            "tokens": 0,
            "stage_index": 0,
            "point": "base",
            "eval/general/loss": 2.5,
            "eval/law/loss": 3.0,
            **mcq(before),
        },
        {"kind": "stage_start", "step": 0, "tokens": 0, "stage": "law", "stage_index": 0},
        {
            "kind": "eval",
            "step": 76,
            "tokens": 20_000_000,
            "stage_index": 0,
            "point": "stage_end",
            "eval/general/loss": 2.6,
            "eval/law/loss": 2.2,
            **mcq(after),
        },
        {"kind": "stage_end", "step": 76, "tokens": 20_000_000, "stage": "law", "stage_index": 0},
        {
            "kind": "run_end",
            "step": 76,
            "tokens": 20_000_000,
            "wall_s": 3600.0,
            "train_s": 3300.0,
            "eval_s": 300.0,
            "tokens_per_s": 6060.0,
        },
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return run


def test_card_metadata_and_body(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    card = ModelCard.load(write_card(run))
    meta = card.data.to_dict()
    assert meta["base_model"] == "example-org/base-1b"
    assert meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["example-org/web-text"]
    assert meta["tags"] == ["continual-pretraining", "forgetless"]
    body = card.text
    assert body.lstrip().startswith("# law-run")
    assert "| general | `hf:example-org/web-text` | 123,456,789 |" in body
    assert "| law | 20,000,000 | law 1 | 5% of general (compute_equivalent) | cosine, peak LR 0.0003" in body
    assert "ewc (weight 10.0" in body
    assert "| law | target | 3.0000 | 2.2000 | +0.8000 | – |" in body  # learned 0.8 nats/token
    assert "| general | retained | 2.5000 | 2.6000 | – | +0.1000 |" in body  # forgot 0.1
    # MCQ: 25% -> 40% on 100 questions, 15 gained and none lost: se 0.0359, a significant gain
    assert "| law-mcq | 100 | 25.0% ± 4.4 | 40.0% ± 4.9 | +15.0 pt | [+8.0, +22.0] pt | gain |" in body
    assert "forgetless train config.yaml --out runs/law-run" in body
    assert "- wall time: 1h 00m 00s" in body and "- time in evaluation: 8%" in body


def test_card_command_regenerates_it(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path)
    main(["card", str(run)])
    assert (run / "final" / "README.md").is_file()
    assert "model card:" in capsys.readouterr().out
    first = (run / "final" / "README.md").read_text()
    main(["card", str(run)])
    assert (run / "final" / "README.md").read_text() == first  # the same files give the same card


def test_a_model_built_from_scratch_has_no_base_model(tmp_path: Path) -> None:
    from forgetless.train.model_card import card_metadata

    meta = card_metadata(
        {"model": {"init": {"hidden_size": 8}}, "sources": {"a": {"files": ["bundled:general"]}}}
    )
    assert "base_model" not in meta and "datasets" not in meta and "license" not in meta
    assert meta["tags"] == ["continual-pretraining", "forgetless"]
