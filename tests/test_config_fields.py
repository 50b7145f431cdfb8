"""Every field of the run config is read: a key the config accepts is never silently ignored.

The test walks `RunConfig` recursively for every field of every section, then runs a small run
whose config reaches every branch (three stages with the three schedule kinds, every method,
replay, both held-out sizes, question sets, checkpoints) and loads a model directory, recording
which fields the code reads. A field nobody reads fails the test unless `EXEMPT` gives the reason.
Reads made while the config is validated do not count: only the code that acts on the config.
"""

from __future__ import annotations

import typing
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from pydantic import BaseModel

from conftest import TINY_LLAMA, write_corpora
from forgetless.config import ModelConfig, RunConfig, _Strict, config_from_dict
from forgetless.data.sampler import RepetitionWarning
from forgetless.model.load import build_model, load_tokenizer
from forgetless.train.run import run_training

# "Section.field": why the run below does not read it. An exempt field that is read fails the test.
EXEMPT: dict[str, str] = {
    "ModelConfig.allow_pickle": "read only for a model directory without safetensors weights "
    "(tests/model/test_load.py loads and refuses pickled weights)",
    "ReliabilityConfig.max_rollbacks": "read only when a run diverges (tests/train/test_faults.py)",
    "ReliabilityConfig.spike_factor": "read only once reliability.spike_window steps are logged "
    "(tests/train/test_faults.py)",
}


def config_fields(model: type[BaseModel] = RunConfig) -> set[str]:
    """`Section.field` for every field of `model` and of the sections it holds, recursively."""
    found: set[str] = set()
    seen: set[type[BaseModel]] = set()

    def walk(cls: type[BaseModel]) -> None:
        if cls in seen:
            return
        seen.add(cls)
        for name, field in cls.model_fields.items():
            found.add(f"{cls.__name__}.{name}")
            for inner in _model_types(field.annotation):
                walk(inner)

    walk(model)
    return found


def _model_types(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [t for arg in typing.get_args(annotation) for t in _model_types(arg)]


@contextmanager
def reads_recorded(monkeypatch: pytest.MonkeyPatch) -> Iterator[set[str]]:
    """Within the block, every read of a config field is recorded as `Section.field`."""
    reads: set[str] = set()
    original = _Strict.__getattribute__

    def recording(self: object, name: str) -> object:
        cls = type(self)
        if name in cls.model_fields:  # type: ignore[attr-defined]
            reads.add(f"{cls.__name__}.{name}")
        return original(self, name)

    with monkeypatch.context() as patch:
        patch.setattr(_Strict, "__getattribute__", recording)
        yield reads


def every_branch_config(tmp: Path, tokenizer_dir: Path) -> dict:
    corpora = write_corpora(tmp / "data")
    one_step = 256
    methods = {
        "mer": {"every": 1, "eps": 0.5, "anchor_device": "cpu"},
        "l2sp": {"weight": 0.1},
        "ewc": {"weight": 0.1, "from": "general", "batches": 1, "normalize": False},
        "distill": {"alpha": 0.5, "temperature": 2.0, "on": "replay", "every": 1, "teacher_dtype": "float32"},
        "ema": {"decay": 0.9, "every": 1, "device": "cpu"},
        "freeze": ["norms"],
        "lr_multipliers": {"embeddings": 0.5},
    }
    return {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tokenizer_dir),
        "sources": {
            "general": {
                "files": [str(corpora["general"])],
                "text_field": "text",
                "format": "jsonl",
                "heldout": {"documents": 4},
                "on_error": "skip",
                "max_epochs_warning": 1e-3,
                "subset": {"score": "field", "field": "id", "keep": 0.9, "order": "highest"},
            },
            "code": {"files": [str(corpora["code"])], "heldout": {"tokens": 300}, "max_epochs_warning": None},
        },
        "stages": [
            {
                "name": "cosine",
                "tokens": one_step,
                "mix": {"code": 1.0},
                "replay": {"from": "general", "ratio": 0.25, "order": "uniform"},
                "schedule": {"kind": "cosine", "final_lr_ratio": 0.2},
                "methods": methods,
            },
            {
                "name": "wsd",
                "tokens": one_step,
                "mix": {"code": 1.0},
                "replay": {"from": "general", "ratio": 0.25, "accounting": "additive"},
                "schedule": {"kind": "wsd", "decay": 0.5, "decay_shape": "cosine"},
                "mix_schedule": {"kind": "decay", "mix": {"code": 1.0}},
                "reset_optimizer": False,
            },
            {
                "name": "infinite",
                "tokens": 2 * one_step,
                "mix": {"general": 1.0, "code": 1.0},
                "mix_schedule": {
                    "kind": "loss_driven",
                    "every_tokens": one_step,
                    "eta": 0.5,
                    "window": 1,
                    "floor": 0.1,
                    "graph": {"general": {"general": 1.0}, "code": {"code": 1.0, "general": 0.5}},
                },
                "schedule": {
                    "kind": "infinite",
                    "warmup": 0.0,
                    "cooldown": 0.5,
                    "cooldown_shape": "linear",
                    "const_lr": 1e-3,
                    "min_lr": 1e-4,
                    "anneal": 0.5,
                },
            },
        ],
        "train": {
            "seq_len": 32,
            "batch_tokens": one_step,
            "micro_batch": 4,
            "device": "cpu",
            "lr_multipliers": {"lm_head": 2.0},
        },
        "eval": {
            "every_tokens": 10 * one_step,
            "sources": ["general", "code"],
            "mcq": ["bundled:security-mcq"],
            "mcq_limit": 2,
            "max_tokens": 64,
            "batch_size": 8,
            "dense_start": [],
        },
        "output": {"dir": str(tmp / "run"), "checkpoint_every_tokens": one_step, "keep_checkpoints": 1},
        "cache_dir": str(tmp / "cache"),
    }


def transforms_config(tmp: Path, tokenizer_dir: Path) -> dict:
    """One stage on a model that two transforms changed (ADEPT's selected expansion, then LoRA),
    training only what they added with per-unit learning rates, logged to TensorBoard."""
    data = every_branch_config(tmp / "transforms", tokenizer_dir)
    data["model"]["transforms"] = [
        {"kind": "expand_blocks", "select": "least_important", "count": 1, "probe": "general", "probe_tokens": 64},
        {"kind": "lora", "r": 2, "alpha": 4.0, "dropout": 0.0, "target": ["attention"], "dora": False,
         "train_embeddings": False, "train_lm_head": True},
    ]
    stage = data["stages"][0]
    stage["methods"] = {"unit_lr": {"probe": "general", "every_tokens": 256, "batches": 1}, "train_only": ["new"]}
    data["stages"] = [stage]
    data["output"].update(dir=str(tmp / "transforms" / "run"), trackers=["tensorboard"], project="fields")
    return data


def reshape_config(tmp: Path, tokenizer_dir: Path) -> dict:
    """One stage of its own length on a model that every reshaping transform changed: new tokens, a
    new RoPE theta and a llama3 scaling, blocks stacked, MLPs upcycled into experts."""
    data = every_branch_config(tmp / "reshape", tokenizer_dir)
    data["model"]["init"]["tie_word_embeddings"] = False
    data["model"]["transforms"] = [
        {"kind": "extend_vocab", "from": "code", "new_tokens": 8, "init": "mean_noise", "lm_head": "zero",
         "sample_bytes": 100_000, "min_frequency": 2, "noise_scale": 1e-5},
        {"kind": "rope", "theta": 20000.0, "max_position_embeddings": 64},
        {"kind": "rope_scaling", "type": "llama3", "factor": 2.0, "original_max_position_embeddings": 64,
         "low_freq_factor": 1.0, "high_freq_factor": 4.0},
        {"kind": "depth_upscale", "layers": "0,1,1"},
        {"kind": "upcycle_moe", "experts": 2, "top_k": 1, "noise": 0.1, "balance_loss": 0.01},
    ]
    stage = data["stages"][0]
    stage.update(seq_len=64, short_share=0.5, methods={})
    data["stages"] = [stage]
    data["output"].update(dir=str(tmp / "reshape" / "run"))
    return data


def test_every_config_field_is_read(tmp_path: Path, tiny_tokenizer_dir: Path, monkeypatch) -> None:
    config = config_from_dict(every_branch_config(tmp_path, tiny_tokenizer_dir))
    tokenizer = load_tokenizer(str(tiny_tokenizer_dir))
    saved = ModelConfig(path=str(tmp_path / "run" / "final"))
    with reads_recorded(monkeypatch) as reads:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            run_training(config, quiet=True)
        build_model(saved, tokenizer)  # a model directory: model.path and how it loads
    # sources.<name>.max_epochs_warning reaches the loop's sampler: general warns, code (null) never.
    repeated = [str(w.message) for w in caught if issubclass(w.category, RepetitionWarning)]
    assert any("source 'general'" in m and "max_epochs_warning = 0.001" in m for m in repeated), repeated
    assert not any("source 'code'" in m for m in repeated)

    # The model transforms, ADEPT's per-unit LR and a tracker, in a second small run; the reshaping
    # transforms and a stage of its own length in a third.
    with reads_recorded(monkeypatch) as transform_reads:
        run_training(config_from_dict(transforms_config(tmp_path, tiny_tokenizer_dir)), quiet=True)
    reads |= transform_reads
    with reads_recorded(monkeypatch) as reshape_reads:
        run_training(config_from_dict(reshape_config(tmp_path, tiny_tokenizer_dir)), quiet=True)
    reads |= reshape_reads

    unread = sorted(config_fields() - reads - set(EXEMPT))
    assert unread == [], (
        f"config fields no code reads (read them, or add them to EXEMPT with a reason): {unread}"
    )
    assert sorted(reads & set(EXEMPT)) == [], "read after all: remove these from EXEMPT"


def test_the_walker_finds_nested_sections_and_the_recorder_sees_reads(monkeypatch) -> None:
    fields = config_fields()
    assert {
        "RunConfig.cache_dir",
        "ScheduleConfig.anneal",
        "EWCConfig.from_",
        "HeldoutConfig.tokens",
    } <= fields
    config = ModelConfig(init={"architecture": "llama"})
    with reads_recorded(monkeypatch) as reads:
        assert config.init is not None and config.init.architecture == "llama"
    assert reads == {"ModelConfig.init", "InitConfig.architecture"}
