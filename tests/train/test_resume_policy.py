"""What may change on --resume: the rules, key by key, and the data check."""

from __future__ import annotations

from pathlib import Path

import pytest

from faults_helpers import fault_config, with_values
from forgetless.config import config_from_dict
from forgetless.errors import UserError
from forgetless.train.resume_policy import changed_keys, check_config, check_data, rule_for, rules_markdown


@pytest.fixture(scope="module")
def base() -> dict:
    return fault_config(Path("/data/general.jsonl"), Path("/tokenizer"), Path("/runs/run"), Path("/cache"))


@pytest.mark.parametrize(
    "key,value",
    [
        ("stages.0.schedule.peak_lr", 1e-3),
        ("stages.1.schedule.kind", "cosine"),
        ("train.micro_batch", 4),
        ("train.fused_loss", "off"),
        ("train.log_every_steps", 5),
        ("eval.every_tokens", 512),
        ("output.checkpoint_every_tokens", 2048),
        ("output.dir", "/elsewhere"),
        ("reliability.max_rollbacks", 3),
        ("sources.general.files", ["/moved/general.jsonl"]),
        ("cache_dir", "/other-cache"),
    ],
)
def test_what_may_change(base, key, value) -> None:
    old, new = config_from_dict(base), config_from_dict(with_values(base, **{key: value}))
    assert check_config(old, new) == [key]


@pytest.mark.parametrize(
    "key,value",
    [
        ("train.batch_tokens", 512),
        ("train.seq_len", 16),
        ("train.seed", 1),
        ("train.weight_decay", 0.0),
        ("train.betas", [0.9, 0.99]),
        ("train.lr_multipliers", {"*embed*": 0.1}),
        ("stages.0.tokens", 4096),
        ("stages.1.mix", {"general": 2.0}),
        ("stages.1.reset_optimizer", True),
        ("stages.0.methods.l2sp", {"weight": 0.1}),
        ("eval.max_tokens", 512),
        ("eval.mcq", ["bundled:security-mcq"]),
        ("sources.general.heldout", {"documents": 5}),
        ("model.init.hidden_size", 64),
    ],
)
def test_what_must_stay(base, key, value) -> None:
    old, new = config_from_dict(base), config_from_dict(with_values(base, **{key: value}))
    with pytest.raises(UserError) as refused:
        check_config(old, new)
    message = str(refused.value)
    assert message.split(":")[0].startswith(key) and "when the run started" in message
    assert message.endswith("put it back, or start a new run with --out")


def test_another_number_of_stages_and_evaluated_sources_are_changes(base) -> None:
    old = config_from_dict(base)
    one_stage = config_from_dict(with_values(base, stages=base["stages"][:1]))
    assert [key for key, _, _ in changed_keys(old, one_stage)] == ["stages"]
    # eval.sources left out means every source: a new source is then evaluated too
    more = with_values(base, **{"sources.code": {"files": ["/data/code"]}})
    assert [key for key, _, _ in changed_keys(old, config_from_dict(more))] == ["eval.sources"]
    only_general = with_values(more, **{"eval.sources": ["general"]})
    assert list(changed_keys(old, config_from_dict(only_general))) == []


def test_a_key_without_a_rule_must_stay() -> None:
    assert not rule_for("model.transforms").may_change
    assert not rule_for("some_future_key").may_change


def test_changed_data_is_refused_naming_the_source() -> None:
    run = {"general": {"train": "a" * 64, "heldout": "b" * 64}}
    check_data(
        run, {"general": {"train": "a" * 64, "heldout": "b" * 64}, "code": {"train": "c", "heldout": "d"}}
    )
    check_data(None, run)  # a run that recorded no hashes
    with pytest.raises(UserError, match=r"^sources\.general: its prepared held-out tokens changed"):
        check_data(run, {"general": {"train": "a" * 64, "heldout": "e" * 64}})


def test_the_rules_table_in_the_docs_is_current() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "reliability.md").read_text(encoding="utf-8")
    assert rules_markdown() in doc
