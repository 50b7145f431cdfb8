"""The device a command runs on and the precision it computes in.

Training, evaluation and the weight-space commands all resolve `device` and `precision` settings
(`auto`, `cpu`, `cuda`; `auto`, `bf16`, `fp32`) the same way, here.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

from forgetless.errors import UserError


def resolve_device(device: str, precision: str) -> tuple[torch.device, torch.dtype | None]:
    """The device and the autocast dtype (None: plain float32). `auto` picks CUDA when present,
    and bf16 on CUDA, fp32 elsewhere. Raises `UserError` naming `train.device` when CUDA is asked
    for and absent."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("train.device: cuda was requested but no CUDA device is available")
    dev = torch.device(device)
    if precision == "auto":
        precision = "bf16" if dev.type == "cuda" else "fp32"
    return dev, (torch.bfloat16 if precision == "bf16" else None)


def autocast(device: torch.device | str, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[Any]:
    """`torch.autocast` to `dtype` on `device`'s type, or nothing when `dtype` is None."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=dtype)
