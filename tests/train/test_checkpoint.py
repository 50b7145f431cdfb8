"""Checkpoint files: safetensors weights, and every file on disk before the rename that publishes it."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from conftest import tiny_llama
from forgetless.model.load import save_model
from forgetless.train import checkpoint as ckpt


def _record_fsyncs_and_renames(monkeypatch) -> list[tuple[str, str]]:
    """Calls of os.fsync (with the path of the descriptor) and of renames, in order."""
    calls: list[tuple[str, str]] = []
    fsync, rename, replace = os.fsync, os.rename, os.replace

    def record_fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        fsync(fd)

    def record_rename(src, dst, *args, **kwargs) -> None:
        calls.append(("rename", str(src)))
        rename(src, dst, *args, **kwargs)

    def record_replace(src, dst, *args, **kwargs) -> None:
        calls.append(("rename", str(src)))
        replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "fsync", record_fsync)
    monkeypatch.setattr(os, "rename", record_rename)
    monkeypatch.setattr(os, "replace", record_replace)
    return calls


def _published_after_fsync(calls: list[tuple[str, str]], tmp: str) -> list[str]:
    """The files under `tmp` that were fsynced before the rename of `tmp`."""
    renamed = calls.index(("rename", tmp))
    return [path for kind, path in calls[:renamed] if kind == "fsync" and path.startswith(tmp + os.sep)]


def test_a_checkpoint_is_safetensors_and_fsynced_before_its_rename(
    tmp_path: Path, tiny_tokenizer, monkeypatch
) -> None:
    model = tiny_llama(tiny_tokenizer)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros((1, 4), dtype=torch.long)).logits.sum().backward()
    optimizer.step()
    calls = _record_fsyncs_and_renames(monkeypatch)
    folder = ckpt.save_checkpoint(
        tmp_path,
        3,
        model=model,
        optimizer=optimizer,
        trainer_state={"position": {"step": 3}},
        keep=2,
        extra_tensors={"ema": {"w": torch.ones(2)}},
    )
    files = sorted(str(p) for p in folder.rglob("*") if p.is_file())
    assert {Path(f).name for f in files} == {
        "model.safetensors",
        "optimizer.pt",
        "rng.pt",
        "trainer.json",
        "ema.safetensors",
    }
    tmp = str(tmp_path / "checkpoints" / ".tmp-step_3")
    synced = {path.replace(tmp, str(folder)) for path in _published_after_fsync(calls, tmp)}
    assert set(files) <= synced
    weights = ckpt.checkpoint_weights(folder)
    assert torch.equal(weights["model.norm.weight"], model.model.norm.weight.detach())


def test_a_model_directory_is_fsynced_before_its_rename(tmp_path: Path, tiny_tokenizer, monkeypatch) -> None:
    calls = _record_fsyncs_and_renames(monkeypatch)
    save_model(tiny_llama(tiny_tokenizer), tiny_tokenizer, tmp_path / "final")
    [tmp] = [path for kind, path in calls if kind == "rename"]
    synced = {Path(path).name for path in _published_after_fsync(calls, tmp)}
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= synced
    assert (tmp_path / "final" / "model.safetensors").is_file()
