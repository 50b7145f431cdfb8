"""Models and tokenizers in and out: Hugging Face directories, checked before transformers sees them.

Loading checks a model directory first so that bad input fails with one line naming the path and
what to do: no config.json, no weights, weights in pickle format (refused unless `allow_pickle`,
since unpickling runs code), a truncated safetensors file, custom model code (refused unless
`trust_remote_code`). Saving writes a standard directory (safetensors + tokenizer) that
`AutoModelForCausalLM.from_pretrained` loads with no forgetless code, replacing any earlier one in
one rename.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from forgetless.config import ModelConfig
from forgetless.durable import fsync_dir, fsync_tree
from forgetless.errors import UserError
from forgetless.model.init import init_model

SAFETENSORS = "model.safetensors"
SAFETENSORS_INDEX = "model.safetensors.index.json"
PICKLE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")

# `name` or `org/name` as on the Hugging Face Hub: used only when no local path of that name exists.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")

# Errors transformers raises for a bad model or tokenizer directory (not for bugs in this package).
_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError)


# ---------------------------------------------------------------------------------------------
# Tokenizer


def load_tokenizer(
    path: str | os.PathLike[str] | None, *, trust_remote_code: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer in a local directory, `bundled` (the one shipped with forgetless), or a hub id.

    A hub id is tried only when no local path of that name exists (and needs network access).
    Raises `UserError` naming the path for a missing directory or one without tokenizer files.
    """
    if path is None:
        raise UserError(
            "tokenizer: a fresh model (model.init) needs a tokenizer: set `tokenizer:` to a "
            "tokenizer directory or to `bundled`"
        )
    if str(path) == "bundled":
        from forgetless.data.bundled import tokenizer_dir  # written alongside; imported when used

        path = tokenizer_dir()
    local = Path(path).expanduser()
    if local.exists():
        if not local.is_dir():
            raise UserError(f"{local}: a tokenizer must be a directory (with tokenizer.json), not a file")
        if not any((local / name).is_file() for name in TOKENIZER_FILES):
            raise UserError(
                f"{local}: no tokenizer files (looked for {', '.join(TOKENIZER_FILES)}); "
                "point `tokenizer:` at a Hugging Face tokenizer directory"
            )
        source = str(local)
    elif _looks_like_hub_id(str(path)):
        source = str(path)
    else:
        raise UserError(f"{path}: tokenizer directory not found")
    try:
        return AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
    except _LOAD_ERRORS as err:
        raise UserError(f"{path}: could not load the tokenizer: {_first_line(err)}") from None


# ---------------------------------------------------------------------------------------------
# Model


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
_SAFETENSORS_DTYPES = {
    "F32": torch.float32,
    "BF16": torch.bfloat16,
    "F16": torch.float16,
    "F64": torch.float64,
}


def build_model(
    config: ModelConfig, tokenizer: PreTrainedTokenizerBase, *, dtype: torch.dtype | None = None
) -> PreTrainedModel:
    """The model of `config`: loaded from `config.path`, or freshly initialised from `config.init`.

    The model is in training mode, on CPU, with parameters of `dtype` (default: `config.dtype`,
    where auto means float32). Raises `UserError` for a bad model directory (see the module
    docstring) or when the tokenizer has more tokens than the model's input embedding has rows.
    """
    if dtype is None:
        dtype = DTYPES.get(config.dtype, torch.float32)
    if config.init is not None:
        model = init_model(config.init, tokenizer, dtype=dtype)
    else:
        assert config.path is not None  # ModelConfig guarantees one of path and init
        model = _load_pretrained(config, dtype)
    check_vocabulary(model, tokenizer)
    # Packed pretraining predicts and reads every token, including the one a config may name as
    # padding (often eos): an embedding `padding_idx` would freeze that row at its value forever.
    embeddings = model.get_input_embeddings()
    if isinstance(embeddings, torch.nn.Embedding):
        embeddings.padding_idx = None
    model.train()
    return model


def embedding_rows(model: Any) -> int:
    """The rows of `model`'s input embedding: the token ids it can read."""
    return int(model.get_input_embeddings().weight.shape[0])


def check_vocabulary(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Raise `UserError` if some token id of `tokenizer` has no row in the model's input embedding."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise UserError(
            f"tokenizer {tokenizer.name_or_path} has {len(tokenizer)} tokens but the model's embedding "
            f"has {rows} rows; use the model's own tokenizer or extend the model's vocabulary"
        )


def final_dtype(model: ModelConfig, output_dtype: str) -> torch.dtype:
    """The dtype in which a run saves `final/`: `output_dtype` unless auto, then `model.dtype` unless
    auto, then the dtype the base model's weights are stored in (float32 for a fresh model)."""
    if output_dtype != "auto":
        return DTYPES[output_dtype]
    if model.dtype != "auto":
        return DTYPES[model.dtype]
    if model.path is None:
        return torch.float32
    return stored_dtype(model.path) or torch.float32


def stored_dtype(path: str | os.PathLike[str]) -> torch.dtype | None:
    """The floating-point dtype that holds most of a model's stored weights: read from the headers
    of a local directory's safetensors files, else from its config (`dtype` or `torch_dtype`, also
    for a hub id in the local cache); None when neither says."""
    local = Path(path).expanduser()
    counts: dict[torch.dtype, int] = {}
    for file in sorted(local.glob("*.safetensors")) if local.is_dir() else []:
        try:
            with file.open("rb") as fh:
                header = json.loads(fh.read(int.from_bytes(fh.read(8), "little")))
        except (OSError, ValueError):
            continue
        for key, entry in header.items():
            dtype = _SAFETENSORS_DTYPES.get(entry.get("dtype")) if key != "__metadata__" else None
            if dtype is not None:
                count = 1
                for size in entry.get("shape", []):
                    count *= int(size)
                counts[dtype] = counts.get(dtype, 0) + count
    if counts:
        return max(counts, key=lambda d: counts[d])
    try:
        from transformers import AutoConfig

        declared = getattr(AutoConfig.from_pretrained(str(path)), "dtype", None)
    except _LOAD_ERRORS:
        return None
    if isinstance(declared, str):
        declared = DTYPES.get(declared)
    return declared if isinstance(declared, torch.dtype) else None


def _load_pretrained(config: ModelConfig, dtype: torch.dtype) -> PreTrainedModel:
    path = str(config.path)
    local = Path(path).expanduser()
    if local.exists():
        use_safetensors = _check_model_dir(local, config)
        source = str(local)
    elif _looks_like_hub_id(path):
        use_safetensors = not config.allow_pickle
        source = path
    else:
        raise UserError(f"{path}: model directory not found")
    try:
        model, info = AutoModelForCausalLM.from_pretrained(
            source,
            dtype=dtype,
            trust_remote_code=config.trust_remote_code,
            use_safetensors=use_safetensors,
            output_loading_info=True,
        )
    except _LOAD_ERRORS as err:
        raise UserError(f"{path}: could not load the model: {_first_line(err)}") from None
    missing = sorted(info.get("missing_keys") or [])
    if missing:  # transformers would start them at random: a partly random model, never wanted here
        raise UserError(
            f"{path}: the weights lack {len(missing)} tensor(s) of the model its config.json describes "
            f"(first: {missing[0]}); save or copy the model again"
        )
    return model


def is_model_dir(folder: Path) -> bool:
    """Whether `folder` is a Hugging Face model directory: a config.json beside weights."""
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file() for name in (SAFETENSORS, SAFETENSORS_INDEX, PICKLE, PICKLE_INDEX)
    )


def _check_model_dir(folder: Path, config: ModelConfig) -> bool:
    """Check a local model directory before loading; return whether its weights are safetensors."""
    if not folder.is_dir():
        raise UserError(f"{folder}: a model must be a Hugging Face model directory, not a file")
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise UserError(f"{folder}: no config.json; not a Hugging Face model directory")
    try:
        model_config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{config_file}: unreadable config: {_first_line(err)}") from None
    if not isinstance(model_config, dict):
        raise UserError(f"{config_file}: a model config must be a JSON object")
    native = model_config.get("model_type") in CONFIG_MAPPING_NAMES
    if "auto_map" in model_config and not native and not config.trust_remote_code:
        raise UserError(
            f"{folder}: the model needs its own Python code (auto_map in config.json); "
            "pass --trust-remote-code (model.trust_remote_code: true) if you trust it"
        )

    if (folder / SAFETENSORS).is_file():
        check_safetensors_file(folder / SAFETENSORS)
        return True
    if (folder / SAFETENSORS_INDEX).is_file():
        for shard in _index_shards(folder / SAFETENSORS_INDEX):
            check_safetensors_file(folder / shard)
        return True
    if (folder / PICKLE).is_file() or (folder / PICKLE_INDEX).is_file():
        if not config.allow_pickle:
            raise UserError(
                f"{folder}: weights are in pickle format ({PICKLE}); pass --allow-pickle to load them"
            )
        return False
    raise UserError(f"{folder}: no model weights (looked for {SAFETENSORS}, {SAFETENSORS_INDEX}, {PICKLE})")


def check_safetensors_file(file: Path) -> None:
    """Raise `UserError` if `file` is missing, or its header or tensor data are cut short.

    Reads only the header: a safetensors file is an 8-byte little-endian header length, a JSON
    header with each tensor's byte range in the data section, then the data.
    """
    if not file.is_file():
        raise UserError(f"{file}: weight file not found")
    size = file.stat().st_size
    try:
        with file.open("rb") as fh:
            prefix = fh.read(8)
            header_len = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
            if not 0 < header_len <= size - 8:
                raise ValueError("header cut short")
            header = json.loads(fh.read(header_len))
        data_end = max(
            (int(entry["data_offsets"][1]) for key, entry in header.items() if key != "__metadata__"),
            default=0,
        )
    except (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError) as err:
        raise UserError(
            f"{file}: corrupt safetensors file ({_first_line(err)}); save or copy it again"
        ) from None
    expected = 8 + header_len + data_end
    if size < expected:
        raise UserError(
            f"{file}: truncated safetensors file ({size} bytes, its header needs {expected}); "
            "save or copy it again"
        )


def _index_shards(index_file: Path) -> list[str]:
    try:
        weight_map = json.loads(index_file.read_text(encoding="utf-8"))["weight_map"]
        return sorted(set(weight_map.values()))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as err:
        raise UserError(f"{index_file}: unreadable weight index: {_first_line(err)}") from None


# ---------------------------------------------------------------------------------------------
# Saving


def save_model(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase | None,
    out_dir: Path,
    *,
    dtype: torch.dtype | None = None,
) -> None:
    """Write `model` (safetensors, config, generation config) and `tokenizer` as a HF directory.

    With `dtype`, floating-point weights are written in that dtype (and config.json says so); the
    model in memory is left as it is. The directory is written under a temporary name next to
    `out_dir`, then renamed into place; an existing `out_dir` is replaced only once the new one is
    complete, so a crash leaves either the old or the new directory (plus, at worst, a leftover
    hidden `.<name>.tmp-*` or `.<name>.old-*` folder), never a mix.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = _sibling(out_dir, "tmp")
    tmp.mkdir()
    try:
        if dtype is None or dtype == model.dtype:
            model.save_pretrained(tmp)
        else:
            model.save_pretrained(tmp, state_dict=_cast_state(model, dtype))
            _set_config_dtype(tmp / "config.json", dtype)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        if not (tmp / SAFETENSORS).is_file() and not (tmp / SAFETENSORS_INDEX).is_file():
            raise RuntimeError(f"save_pretrained wrote no safetensors weights in {tmp}")
        fsync_tree(tmp)  # complete files on disk before the rename publishes them
        old = None
        if out_dir.exists():
            old = _sibling(out_dir, "old")
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _cast_state(model: PreTrainedModel, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The model's state with floating-point tensors in `dtype`; tensors that share storage (tied
    embeddings) still share it, so they are saved once."""
    cast: dict[tuple[int, torch.Size, torch.dtype], torch.Tensor] = {}
    state = {}
    for name, tensor in model.state_dict().items():
        if not tensor.is_floating_point():
            state[name] = tensor
            continue
        key = (tensor.data_ptr(), tensor.shape, tensor.dtype)
        if key not in cast:
            cast[key] = tensor.detach().to(dtype)
        state[name] = cast[key]
    return state


def _set_config_dtype(config_file: Path, dtype: torch.dtype) -> None:
    data = json.loads(config_file.read_text(encoding="utf-8"))
    name = str(dtype).removeprefix("torch.")
    data["dtype" if "dtype" in data or "torch_dtype" not in data else "torch_dtype"] = name
    config_file.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def check_finite_weights(model: torch.nn.Module, where: str) -> None:
    """Raise `UserError` when a parameter of `model` holds NaN or infinite values: every training
    step from such weights is non-finite, and nothing a run does can recover from that. (Buffers are
    left alone: some models keep masks of -inf there.)"""
    bad = [
        (name, int((~torch.isfinite(tensor)).sum()))
        for name, tensor in model.named_parameters()
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())
    ]
    if bad:
        name, count = bad[0]
        more = f" and {len(bad) - 1} more tensors" if len(bad) > 1 else ""
        raise UserError(
            f"{where}: the model's weights hold {count:,} NaN or infinite values in {name}{more}; training "
            "cannot start from them: use intact weights"
        )


def _sibling(path: Path, tag: str) -> Path:
    """A fresh hidden name in the folder of `path`, on the same file system (so renames are atomic)."""
    return path.parent / f".{path.name}.{tag}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


# ---------------------------------------------------------------------------------------------
# Size


def count_parameters(model: torch.nn.Module, *, non_embedding: bool = False) -> int:
    """The number of distinct parameters (tied weights counted once).

    With `non_embedding`, leaves out every embedding table (token and learned position
    embeddings) and the output head when it is a separate matrix: the "non-embedding parameters"
    that scaling laws count.
    """
    params = {id(p): p for p in model.parameters()}
    if non_embedding:
        for module in model.modules():
            if isinstance(module, torch.nn.Embedding):
                params.pop(id(module.weight), None)
        get_output = getattr(model, "get_output_embeddings", None)
        head = get_output() if callable(get_output) else None
        if head is not None:
            params.pop(id(head.weight), None)
    return sum(p.numel() for p in params.values())


def _looks_like_hub_id(path: str) -> bool:
    return bool(_HUB_ID.match(path)) and not path.startswith(".")


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
