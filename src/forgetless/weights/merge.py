"""Weight-space merging: interpolation, checkpoint averaging and instruction residuals.

Pure functions on tensors by name, and the file-level operations the CLI calls:

- `interpolate(base, adapted, alpha)`: `(1 - alpha) * base + alpha * adapted`, tensor by tensor
  (alpha 0 gives `base` and alpha 1 gives `adapted`, exactly) - `forgetless merge`;
- `average(states)`: the mean of several sets of weights (`forgetless average` over the last
  checkpoints of a stage is `forgetless.weights.average`);
- `instruction_residual(base, instruct, onto)`: `onto + (instruct - base)` (Jindal et al. 2024,
  "Balancing Continuous Pre-Training and Instruction Fine-Tuning", arXiv 2410.10739), computed in float64 so that `base + (instruct - base)` gives back `instruct`
  exactly; vocabulary rows that one model has and another lacks count as zero rows -
  `forgetless residual`.

Only floating-point tensors are combined; integer buffers are taken from the model being written.
Models are loaded in float32 and written in the dtype of the model whose architecture the result
has (the adapted model, or the new base), as standard Hugging Face directories.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgetless.errors import UserError

# ---------------------------------------------------------------------------------------------
# Tensors by name


def model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters and persistent buffers of `model` by name (tied parameters once), detached."""
    out = {name: p.detach() for name, p in model.named_parameters()}
    persistent = set(model.state_dict())
    out.update({name: b.detach() for name, b in model.named_buffers() if name in persistent})
    return out


@torch.no_grad()
def load_tensors(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy `tensors` into the parameters and persistent buffers of `model`, by name (all of them)."""
    own = model_tensors(model)
    if own.keys() != tensors.keys():
        missing = sorted(own.keys() - tensors.keys()) or sorted(tensors.keys() - own.keys())
        raise UserError(f"the weights do not fit the model: {missing[0]} is in one but not the other")
    for name, target in own.items():
        target.copy_(tensors[name])


def _check_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], what: str) -> None:
    if a.keys() != b.keys():
        name = sorted(a.keys() ^ b.keys())[0]
        raise UserError(f"{what}: not the same architecture ({name} is in one model but not the other)")
    for name in a:
        if a[name].shape != b[name].shape:
            raise UserError(
                f"{what}: not the same architecture ({name} has shape {list(a[name].shape)} in one model "
                f"and {list(b[name].shape)} in the other)"
            )


def interpolate(
    base: dict[str, torch.Tensor], adapted: dict[str, torch.Tensor], alpha: float
) -> dict[str, torch.Tensor]:
    """`(1 - alpha) * base + alpha * adapted` for each floating tensor (others from `adapted`).

    alpha = 0 returns `base`'s values and alpha = 1 `adapted`'s, bit for bit (`torch.lerp`).
    """
    _check_same(base, adapted, "merge")
    out = {}
    for name, b in base.items():
        a = adapted[name]
        out[name] = torch.lerp(b.to(a.dtype), a, float(alpha)) if a.is_floating_point() else a.clone()
    return out


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of `states` (summed in float64), in the first state's dtypes."""
    if not states:
        raise ValueError("average needs at least one set of weights")
    first = states[0]
    for other in states[1:]:
        _check_same(first, other, "average")
    return {name: mean_tensor([state[name] for state in states]) for name in first}


def mean_tensor(tensors: list[torch.Tensor]) -> torch.Tensor:
    """The element-wise mean of `tensors` (summed in float64), in the first one's dtype; a copy of
    the first when it is not floating-point (a step counter, an index buffer)."""
    first = tensors[0]
    if not first.is_floating_point():
        return first.clone()
    total = torch.zeros(first.shape, dtype=torch.float64)
    for tensor in tensors:
        total += tensor.double()
    return (total / len(tensors)).to(first.dtype)


def instruction_residual(
    base: dict[str, torch.Tensor],
    instruct: dict[str, torch.Tensor],
    onto: dict[str, torch.Tensor],
    vocab_names: set[str] | frozenset[str] = frozenset(),
) -> dict[str, torch.Tensor]:
    """`onto + (instruct - base)` for each floating tensor, computed in float64, in `onto`'s dtypes.

    Tensors named in `vocab_names` (embedding tables, output head) may have different numbers of
    rows (tokens): each is padded with zero rows to the largest, so tokens the instruct model added
    carry their instruct rows, and tokens only the new base has keep its rows. Raises `UserError`
    when other shapes differ, or when both the instruct model and the new base added tokens (their
    ids would collide).
    """
    if not (base.keys() == instruct.keys() == onto.keys()):
        name = sorted(
            (base.keys() | instruct.keys() | onto.keys()) - (base.keys() & instruct.keys() & onto.keys())
        )[0]
        raise UserError(f"residual: not the same architecture ({name} is missing from one of the models)")
    out = {}
    for name, o in onto.items():
        b, i = base[name], instruct[name]
        if not o.is_floating_point():
            out[name] = o.clone()
            continue
        if not (b.shape == i.shape == o.shape):
            if name not in vocab_names or not (b.shape[1:] == i.shape[1:] == o.shape[1:]):
                raise UserError(
                    f"residual: {name} has shapes {list(b.shape)} (base), {list(i.shape)} (instruct) and "
                    f"{list(o.shape)} (new base); the models must share an architecture"
                )
            if len(b) > min(len(i), len(o)):
                raise UserError(
                    f"residual: {name}: the old base has more rows than the instruct model or the new base"
                )
            if len(i) > len(b) and len(o) > len(b):
                raise UserError(
                    f"residual: {name}: both the instruct model ({len(i)} rows) and the new base ({len(o)}) "
                    f"added tokens after the old base's {len(b)}; their ids collide"
                )
        rows = max(len(b), len(i), len(o)) if b.ndim else 0
        result = _pad(o, rows).double() + (_pad(i, rows).double() - _pad(b, rows).double())
        out[name] = result.to(o.dtype)
    return out


def _pad(tensor: torch.Tensor, rows: int) -> torch.Tensor:
    if tensor.ndim == 0 or len(tensor) == rows:
        return tensor
    extra = torch.zeros((rows - len(tensor), *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device)
    return torch.cat([tensor, extra])


# ---------------------------------------------------------------------------------------------
# Model directories


def load_model_dir(path: Path, *, what: str) -> tuple[nn.Module, Any]:
    """The model (float32, CPU, eval mode) and tokenizer of an HF model directory, or of a run's
    checkpoint folder (either layout; the run's tokenizer)."""
    from forgetless.config import ModelConfig
    from forgetless.model.checkpoint import is_checkpoint, load_checkpoint_model
    from forgetless.model.load import build_model, load_tokenizer

    path = Path(path)
    if is_checkpoint(path):
        return load_checkpoint_model(path)
    if not (path / "config.json").is_file():
        raise UserError(
            f"{what} {path}: not a Hugging Face model directory (no config.json) nor a run's checkpoint"
        )
    tokenizer = load_tokenizer(str(path))
    model = build_model(ModelConfig(path=str(path)), tokenizer, dtype=torch.float32)
    model.eval()
    return model, tokenizer


def stored_dtype(path: Path) -> torch.dtype:
    """The dtype of the first floating-point tensor in a model directory's safetensors weights."""
    names = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64}
    files = sorted(Path(path).glob("*.safetensors"))
    for file in files:
        with open(file, "rb") as fh:
            header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        for key, entry in header.items():
            if key != "__metadata__" and entry["dtype"] in names:
                return names[entry["dtype"]]
    return torch.float32


def save_as(model: nn.Module, tokenizer: Any, out_dir: Path, dtype: torch.dtype) -> Path:
    from forgetless.model.load import save_model

    model.to(dtype)
    save_model(model, tokenizer, Path(out_dir))
    return Path(out_dir)


def merge_dirs(base_dir: Path, adapted_dir: Path, alpha: float, out_dir: Path) -> Path:
    """Write `(1 - alpha) * base + alpha * adapted` as an HF directory (the adapted model's config,
    tokenizer and dtype)."""
    base, _ = load_model_dir(base_dir, what="BASE")
    adapted, tokenizer = load_model_dir(adapted_dir, what="CPT")
    load_tensors(adapted, interpolate(model_tensors(base), model_tensors(adapted), alpha))
    return save_as(adapted, tokenizer, out_dir, stored_dtype(adapted_dir))


def residual_dirs(base_dir: Path, instruct_dir: Path, onto_dir: Path, out_dir: Path) -> Path:
    """Write `onto + (instruct - base)` as an HF directory with the new base's architecture, as
    many vocabulary rows as the larger of the instruct model and the new base, and that model's
    tokenizer (the instruct model's when they have the same size: it carries the chat template)."""
    base, _ = load_model_dir(base_dir, what="--base")
    instruct, instruct_tokenizer = load_model_dir(instruct_dir, what="--instruct")
    onto, onto_tokenizer = load_model_dir(onto_dir, what="--onto")
    rows = {name: _vocab_rows(m) for name, m in (("base", base), ("instruct", instruct), ("onto", onto))}
    result = instruction_residual(
        model_tensors(base), model_tensors(instruct), model_tensors(onto), _vocab_names(onto)
    )
    if rows["instruct"] > rows["onto"]:
        onto.resize_token_embeddings(rows["instruct"], mean_resizing=False)
    load_tensors(onto, result)
    tokenizer = instruct_tokenizer if rows["instruct"] >= rows["onto"] else onto_tokenizer
    try:
        from transformers import GenerationConfig

        onto.generation_config = GenerationConfig.from_pretrained(instruct_dir)
    except (OSError, ValueError):
        pass  # no generation config to carry over
    return save_as(onto, tokenizer, out_dir, stored_dtype(onto_dir))


def _vocab_rows(model: nn.Module) -> int:
    return int(model.get_input_embeddings().weight.shape[0])


def _vocab_names(model: nn.Module) -> set[str]:
    """Names (as in `model_tensors`) of the tensors with a row per token: embedding and head."""
    ids = {id(model.get_input_embeddings().weight)}
    head = model.get_output_embeddings()
    if head is not None:
        ids.update(id(p) for p in head.parameters())
    return {name for name, p in model.named_parameters() if id(p) in ids}
