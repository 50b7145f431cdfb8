"""The `methods:` block of a stage: defaults, validation and the errors users see."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from forgetless.config import config_from_dict, dump_config, load_config
from forgetless.errors import UserError


def _config(methods: dict, replay: dict | None = None) -> dict:
    stage = {"name": "s", "tokens": 100, "mix": {"a": 1.0}, "methods": methods}
    if replay is not None:
        stage["replay"] = replay
    return {
        "model": {"init": {"hidden_size": 32}},
        "sources": {"a": "a.txt", "b": "b.txt"},
        "stages": [stage],
    }


def test_defaults_of_each_method() -> None:
    config = config_from_dict(
        _config(
            {"mer": {}, "l2sp": {"weight": 0.1}, "ewc": {"weight": 1, "from": "b"}, "distill": {}, "ema": {}}
        )
    )
    methods = config.stages[0].methods
    assert (methods.mer.every, methods.mer.eps, methods.mer.anchor_device) == (500, 0.1, "model")
    assert methods.ewc.from_ == ["b"] and methods.ewc.batches == 16 and methods.ewc.normalize
    assert (
        methods.distill.alpha,
        methods.distill.temperature,
        methods.distill.on,
        methods.distill.every,
    ) == (1.0, 2.0, "all", 1)
    assert methods.ema.decay == 0.999
    assert methods.freeze == [] and methods.lr_multipliers is None
    assert config_from_dict(_config({})).stages[0].methods.mer is None


def test_bad_method_settings_name_their_key(tmp_path: Path) -> None:
    cases = [
        ({"mer": {"eps": 1.5}}, None, "stages.0.methods.mer.eps"),
        ({"ewc": {"weight": 1, "from": "c"}}, None, "stages.0.methods.ewc.from.0: unknown source 'c'"),
        ({"distill": {"on": "replay"}}, None, "stages.0.methods.distill.on: replay needs replay"),
        ({"l2sp": {}}, None, "stages.0.methods.l2sp.weight: required key is missing"),
        ({"emma": {}}, None, "stages.0.methods.emma: unknown key (did you mean 'ema'?)"),
    ]
    for methods, replay, message in cases:
        path = tmp_path / "c.yaml"
        path.write_text(yaml.safe_dump(_config(methods, replay)))
        with pytest.raises(
            UserError,
            match=message.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)").replace("?", r"\?"),
        ):
            load_config(path)
    config_from_dict(_config({"distill": {"on": "replay"}}, {"from": "b", "ratio": 0.1}))  # fine with replay


def test_a_bare_on_key_in_yaml_means_on(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = yaml.safe_dump(_config({}, {"from": "b", "ratio": 0.1})).replace(
        "methods: {}", "methods:\n    distill: {on: replay}"
    )
    path.write_text(text)
    config = load_config(path)
    assert config.stages[0].methods.distill.on == "replay"
    again = yaml.safe_load(dump_config(config))  # the resolved config reads back the same
    assert again["stages"][0]["methods"]["distill"]["on"] == "replay"
