"""How evaluation runs its forward passes: no gradient state, as many tokens a pass as fit, and the
fused head where the model has a plain one.

- No gradient state: passes run under `torch.inference_mode()` (no autograd graph, no version
  counting). A model sharded by FSDP2 runs under `torch.no_grad()` instead: FSDP2 keeps the whole
  parameters it gathers for a pass, and training must be able to use them afterwards.
- Tokens per pass (`eval.batch_size: auto`, `tokens_per_pass`): on a CPU, `CPU_TOKENS_PER_PASS`
  (larger passes gained nothing there, see docs/evaluation.md); on a GPU, as many as the memory
  free at the time holds by an estimate of a forward pass's activations per token
  (`activation_bytes_per_token`), at most `GPU_MAX_TOKENS_PER_PASS`. Either way a pass that runs
  out of memory is split in half and run again, down to one sequence (`run_in_passes`): the sums
  cover the same tokens in the same order, only the rounding inside a pass may differ.
- Fused head (`fused_head`): for a model whose logits are a plain product of its final hidden
  states with its LM head (`forgetless.model.loss.supports_fused_loss`), the negative
  log-likelihoods come from the hidden states chunk by chunk and the `[B, T, V]` logits are never
  stored (`forgetless.model.loss.causal_lm_token_nll`); float32 softmax either way.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import torch

from forgetless.distributed import is_sharded_model
from forgetless.model.loss import supports_fused_loss

# Tokens a CPU forward pass of evaluation covers (e.g. 8 windows of 256 tokens); each pass runs on
# one core, as many at once as PyTorch has threads (`pass_threads`).
CPU_TOKENS_PER_PASS = 2048
# The most tokens a GPU forward pass of evaluation covers, whatever the free memory.
GPU_MAX_TOKENS_PER_PASS = 1 << 17
# The share of the free GPU memory a pass may fill by the estimate (the rest is the estimate's margin).
GPU_MEMORY_SHARE = 0.5

T = TypeVar("T")


def windows_per_pass(setting: int | str | None) -> int | None:
    """Held-out windows per forward pass for an `eval.batch_size` setting; None for `auto`."""
    return None if setting is None or setting == "auto" else int(setting)


def no_gradient_state(model: torch.nn.Module) -> contextlib.AbstractContextManager[Any]:
    """`torch.inference_mode()`, or `torch.no_grad()` for a model sharded by FSDP2."""
    return torch.no_grad() if is_sharded_model(model) else torch.inference_mode()


def fused_head(model: torch.nn.Module) -> bool:
    """Whether evaluation scores `model` from its hidden states (a plain LM head, not sharded)."""
    return hasattr(model, "base_model") and supports_fused_loss(model) and not is_sharded_model(model)


def tokens_per_pass(
    model: torch.nn.Module,
    device: torch.device | str,
    *,
    fused: bool,
    autocast_dtype: torch.dtype | None = None,
    seq_len: int = 1,
    with_cache: bool = False,
) -> int:
    """The tokens one evaluation forward pass covers when the batch size is automatic (at least
    `seq_len`): see the module docstring. `with_cache`: the pass keeps a key/value cache (multiple
    choice), which the GPU estimate counts."""
    device = torch.device(device)
    if device.type != "cuda":
        return max(seq_len, CPU_TOKENS_PER_PASS)
    free, _ = torch.cuda.mem_get_info(device)
    free += torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)  # PyTorch's own cache
    per_token = activation_bytes_per_token(
        model, fused=fused, autocast_dtype=autocast_dtype, seq_len=seq_len, with_cache=with_cache
    )
    fits = int(GPU_MEMORY_SHARE * free) // max(per_token, 1)
    return max(seq_len, min(GPU_MAX_TOKENS_PER_PASS, fits))


def activation_bytes_per_token(
    model: torch.nn.Module,
    *,
    fused: bool,
    autocast_dtype: torch.dtype | None = None,
    seq_len: int = 1,
    with_cache: bool = False,
) -> int:
    """An upper estimate of the memory a forward pass without gradients holds per token at its peak:
    a decoder block's activations (the residual stream, attention projections, the MLP's hidden
    layer), the logits unless the head is fused, the attention weights of eager attention, and with
    `with_cache` every layer's keys and values (counted at the full hidden size)."""
    config = getattr(model, "config", None)
    config = getattr(config, "text_config", None) or config
    hidden = _first_int(config, ("hidden_size", "n_embd", "d_model"), 1024)
    inner = _first_int(config, ("intermediate_size", "n_inner", "ffn_dim"), 4 * hidden)
    vocab = _first_int(config, ("vocab_size",), 32000)
    heads = _first_int(config, ("num_attention_heads", "n_head"), 1)
    element = 2 if autocast_dtype in (torch.bfloat16, torch.float16) else 4
    # float32 weights under autocast keep some float32 activations (norms): count them at 4 bytes
    per_token = 4 * (8 * hidden + 4 * inner)
    if not fused:
        per_token += element * vocab
    if getattr(config, "_attn_implementation", None) == "eager":
        per_token += 8 * heads * seq_len
    if with_cache:
        layers = _first_int(config, ("num_hidden_layers", "n_layer"), 32)
        per_token += 2 * layers * hidden * element * 2  # keys and values, and the copy per choice
    return per_token


def _first_int(config: Any, names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return default


def pass_threads(model: torch.nn.Module, device: torch.device | str) -> int:
    """Forward passes run at once: on a CPU one per PyTorch thread, each pass on one core, for a
    model that is neither compiled nor sharded, in a single process (a DDP model's forward may talk
    to the other processes, in order), and no more than a quarter of the available memory holds by
    the activation estimate; else one pass at a time over all threads."""
    if torch.device(device).type != "cpu" or is_sharded_model(model) or _several_processes():
        return 1
    if any(getattr(m, "_compiled_call_impl", None) is not None for m in model.modules()):
        return 1
    threads = max(1, torch.get_num_threads())
    available = _available_memory()
    if available is not None:
        per_pass = CPU_TOKENS_PER_PASS * activation_bytes_per_token(model, fused=fused_head(model))
        threads = min(threads, max(1, available // 4 // per_pass))
    return threads


def _several_processes() -> bool:
    distributed = torch.distributed
    return distributed.is_available() and distributed.is_initialized() and distributed.get_world_size() > 1


def _available_memory() -> int | None:
    """Bytes of memory available to new allocations (Linux: MemAvailable, else the free pages), or
    None where the system does not say."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def run_in_passes(
    count: int,
    per_pass: int,
    run: Callable[[int, int], T],
    *,
    threads: int = 1,
    on_split: Callable[[int], None] | None = None,
) -> Iterator[T]:
    """`run(first, stop)` over `[0, count)` in consecutive slices of at most `per_pass` items; the
    results come back in slice order.

    With `threads` > 1 that many slices run at once on a thread pool, PyTorch's intra-op threads
    set to one meanwhile, so each slice runs on one core. Otherwise one slice at a time; a slice
    that runs out of memory is split in half and run again (down to one item, whose failure is
    raised), later slices keeping the smaller size, and `on_split(new_size)` hears of it.
    """
    if per_pass < 1:
        raise ValueError(f"per_pass must be positive, got {per_pass}")
    if threads > 1 and count > per_pass:
        slices = [(first, min(count, first + per_pass)) for first in range(0, count, per_pass)]
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="forgetless-eval") as pool:
                yield from pool.map(lambda bounds: run(*bounds), slices)
        finally:
            torch.set_num_threads(before)
        return
    first = 0
    while first < count:
        stop = min(count, first + per_pass)
        try:
            result = run(first, stop)
        except torch.OutOfMemoryError:
            if stop - first == 1:
                raise
            split = True
        else:
            split = False
        if split:  # outside the handler: the failed pass's tensors are free by now
            per_pass = (stop - first) // 2
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            if on_split is not None:
                on_split(per_pass)
            continue
        yield result
        first = stop
