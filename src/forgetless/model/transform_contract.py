"""What a model transform receives besides the model and its spec, and what it returns.

See `forgetless.model.transforms` for the step that applies transforms and how to add one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass
class TransformContext:
    """What a transform may use besides the model and its spec."""

    key: str  # the config key of the transform, e.g. "model.transforms.0", for error messages
    resolved: dict[str, Any] | None = None  # the choices of the first application (a resumed run)
    # `probe_batches(source, tokens)`: int64 `[B, T + 1]` training windows of a source, or None
    probe_batches: Callable[[str, int], list[torch.Tensor]] | None = None
    # `source_texts(source, max_bytes)`: the first training documents of a source as text (whole
    # documents, at least one, about `max_bytes` UTF-8 bytes), or None; never held-out documents
    source_texts: Callable[[str, int], list[str]] | None = None
    agree: Callable[[Any], Any] = field(default=lambda value: value)  # rank 0's value on every rank
    seq_len: int | None = None  # the longest sequence length the run trains at (None: unknown)


@dataclass
class Outcome:
    """What a transform returns."""

    added: list[str]  # names of the parameters it added (as in `model.named_parameters()` after it)
    resolved: dict[str, Any] = field(default_factory=dict)  # choices to repeat it exactly (JSON values)
    model: nn.Module | None = None  # a replacement for the model (None: changed in place)
    tokenizer: Any = None  # a replacement for the tokenizer (None: unchanged)
    # rows it added to existing parameters (new tokens' embedding and head rows): name -> (start, stop)
    added_rows: dict[str, tuple[int, int]] = field(default_factory=dict)
    # parameters it froze and trains through a copy instead (peft's `modules_to_save`): the
    # original's name -> the copy's; the copy takes over the rows and the "added" of the original
    trained_copies: dict[str, str] = field(default_factory=dict)
