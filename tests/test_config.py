"""Config loading details that YAML makes easy to get wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from faults_helpers import record
from forgetless.config import dump_config, load_config

MINIMAL = """
model: {init: {architecture: llama}}
sources: {general: bundled:general}
stages: [{name: s, tokens: 1000, mix: {general: 1.0}}]
"""


@pytest.mark.parametrize(
    "written,expected",
    [("off", "off"), ("on", "on"), ("'off'", "off"), ("false", "off"), ("true", "on"), ("auto", "auto")],
)
def test_a_switch_takes_yaml_on_off_and_booleans(written: str, expected: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + f"train: {{fused_loss: {written}}}\n")
    config = load_config(path)
    assert config.train.fused_loss == expected
    # The resolved config says it in words, and reads back the same.
    again = tmp_path / "again.yaml"
    again.write_text(dump_config(config))
    assert yaml.safe_load(again.read_text())["train"]["fused_loss"] == expected
    assert load_config(again).train.fused_loss == expected


def test_a_switch_takes_off_from_the_command_line(tmp_path: Path, record_property) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + "train: {fused_loss: off}\n")
    assert load_config(path, ["train.fused_loss=on"]).train.fused_loss == "on"
    assert load_config(path, ["train.fused_loss=off"]).train.fused_loss == "off"
    record(
        record_property,
        "Files",
        "`train.fused_loss: off` unquoted in YAML (read by YAML 1.1 as the boolean false), and `--set train.fused_loss=off`",
        "both read as `off` (true/false and bare on/off name the switch's values); config.yaml writes `'off'`",
    )


def test_a_switch_refuses_other_values_naming_the_key(tmp_path: Path) -> None:
    from forgetless.errors import UserError

    path = tmp_path / "config.yaml"
    path.write_text(MINIMAL + "train: {fused_loss: maybe}\n")
    with pytest.raises(
        UserError, match=r"config\.yaml:5: train\.fused_loss: Input should be 'auto', 'on', 'off', 'liger' or 'cce'"
    ):
        load_config(path)
