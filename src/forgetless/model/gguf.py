"""Models in GGUF files (the llama.cpp format) in and out of plain Hugging Face directories.

`import_gguf` reads a GGUF file through transformers, which de-quantizes every weight into a dense
tensor and rebuilds the tokenizer the file embeds, and writes a standard safetensors model
directory that `AutoModelForCausalLM.from_pretrained` loads with no GGUF code: every forgetless
command then takes it. The weights carry the quantization error of the file (a Q4 file gives Q4
weights in bfloat16), not the original checkpoint's values.

`write_llama_gguf` goes the other way for small Llama models with a byte-level BPE tokenizer,
unquantized or quantized by the `gguf` package: enough to test the import on a model built from a
config.

Both need the `gguf` package (`pip install 'forgetless[gguf]'`).
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import struct
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetless.errors import UserError

GGUF_MAGIC = b"GGUF"
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}

# Errors transformers and gguf raise for a file they cannot read or de-quantize.
_LOAD_ERRORS = (OSError, ValueError, KeyError, RuntimeError, NotImplementedError, TypeError, IndexError)

# A short text whose tokens check the written directory against the file (logits and token ids).
_PROBE_TEXT = "A buffer overflow lets an attacker overwrite memory. def area(r):\n    return 3.14 * r * r"


@dataclass(frozen=True)
class GgufFacts:
    """What a GGUF file's header says: architecture, name and the ggml type of every tensor."""

    architecture: str
    name: str | None
    tensor_types: dict[str, int]  # ggml type name -> number of tensors of that type
    tensors: int


@dataclass(frozen=True)
class GgufImport:
    """The result of `import_gguf`."""

    out_dir: Path
    facts: GgufFacts
    model_class: str
    model_type: str
    parameters: int
    vocab_size: int
    dtype: str
    load_s: float
    total_s: float
    max_logit_diff: float = 0.0
    versions: dict[str, str] = field(default_factory=dict)


def require_gguf() -> Any:
    """The `gguf` module, or `UserError` saying how to install it."""
    try:
        import gguf
    except ImportError:
        raise UserError(
            "reading or writing GGUF files needs the gguf package: pip install 'forgetless[gguf]'"
        ) from None
    return gguf


# ---------------------------------------------------------------------------------------------
# Import


def import_gguf(
    file: str | Path, out_dir: str | Path, *, dtype: str = "bfloat16", progress: bool = False
) -> GgufImport:
    """De-quantize the GGUF model in `file` and write it as a Hugging Face directory `out_dir`.

    `out_dir` gets safetensors weights in `dtype` (bfloat16 or float32), config.json and the
    tokenizer the file embeds. It is written under a temporary name and renamed into place once
    it loads with plain `AutoModelForCausalLM`/`AutoTokenizer` and gives the same logits and
    token ids as the file. Raises `UserError`, with nothing written, for a missing or non-GGUF
    file, an existing non-empty `out_dir`, a missing `gguf` package, or a file transformers
    cannot de-quantize.
    """
    started = time.perf_counter()
    file, out_dir = Path(file).expanduser(), Path(out_dir).expanduser()
    if dtype not in DTYPES:
        raise UserError(f"--dtype {dtype}: expected one of {', '.join(DTYPES)}")
    check_gguf_file(file)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise UserError(f"{out_dir}: already exists and is not empty; choose another --out")
    require_gguf()
    facts = read_gguf_facts(file)
    _check_architecture(file, facts)
    _check_tensor_types(file, facts)

    import transformers

    from forgetless.model.load import count_parameters, save_model

    with _quiet_loading(not progress):
        load_started = time.perf_counter()
        model, tokenizer = _load_through_transformers(file, facts, DTYPES[dtype])
        dense = _dense_copy(model, DTYPES[dtype])
        load_s = time.perf_counter() - load_started
        del model
        save_model(dense, tokenizer, out_dir)
        try:
            max_diff = _check_written(out_dir, dense, tokenizer, DTYPES[dtype])
        except BaseException:
            shutil.rmtree(out_dir, ignore_errors=True)
            raise
    return GgufImport(
        out_dir=out_dir,
        facts=facts,
        model_class=type(dense).__name__,
        model_type=str(dense.config.model_type),
        parameters=count_parameters(dense),
        vocab_size=int(dense.get_input_embeddings().weight.shape[0]),
        dtype=dtype,
        load_s=load_s,
        total_s=time.perf_counter() - started,
        max_logit_diff=max_diff,
        versions={"transformers": transformers.__version__, "gguf": _gguf_version()},
    )


def check_gguf_file(file: Path) -> None:
    """Raise `UserError` unless `file` is a readable file that starts with the GGUF magic bytes."""
    if not file.exists():
        raise UserError(f"{file}: GGUF file not found")
    if not file.is_file():
        raise UserError(f"{file}: expected a .gguf file, not a folder")
    try:
        with file.open("rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise UserError(f"{file}: cannot read the file: {err}") from None
    if magic != GGUF_MAGIC:
        raise UserError(f"{file}: not a GGUF file (it does not start with the GGUF magic bytes)")


def read_gguf_facts(file: Path) -> GgufFacts:
    """The architecture, name and tensor types in the header of the GGUF `file`.

    Reads the header directly: `gguf.GGUFReader` materialises every metadata array (a vocabulary
    of 50k-250k strings and as many merges), which takes seconds per read, and transformers
    already reads the file three times. Format: magic, version (2 or 3), tensor and key counts,
    then typed key/value pairs and one info record per tensor (little-endian).
    """
    import mmap

    gguf = require_gguf()
    try:
        with file.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
            header = _HeaderReader(data)
            header.skip(4)
            version = header.unpack("<I")
            if version not in (2, 3):
                raise ValueError(f"GGUF version {version} (this reader knows versions 2 and 3)")
            tensors, keys = header.unpack("<Q"), header.unpack("<Q")
            metadata: dict[str, Any] = {}
            for _ in range(keys):
                key = header.string()
                value_type = header.unpack("<I")
                metadata[key] = header.value(value_type, keep=key in ("general.architecture", "general.name"))
            types: Counter[str] = Counter()
            for _ in range(tensors):
                header.string()
                header.skip(8 * header.unpack("<I"))
                types[gguf.GGMLQuantizationType(header.unpack("<I")).name] += 1
                header.skip(8)
        architecture = metadata.get("general.architecture")
        if not isinstance(architecture, str):
            raise ValueError("no general.architecture in its header")
    except (ValueError, OSError, IndexError, KeyError, struct.error, UnicodeDecodeError) as err:
        raise UserError(
            f"{file}: unreadable GGUF header ({_first_line(err)}); the file may be cut short"
        ) from None
    name = metadata.get("general.name")
    return GgufFacts(
        architecture=architecture,
        name=name if isinstance(name, str) else None,
        tensor_types=dict(types),
        tensors=tensors,
    )


class _HeaderReader:
    """Sequential little-endian reads from the bytes of a GGUF header."""

    # GGUF value type -> struct format of a scalar (8 is a string, 9 an array).
    SCALARS = {
        0: "<B",
        1: "<b",
        2: "<H",
        3: "<h",
        4: "<I",
        5: "<i",
        6: "<f",
        7: "<?",
        10: "<Q",
        11: "<q",
        12: "<d",
    }

    def __init__(self, data: Any) -> None:
        self.data = data
        self.offset = 0

    def skip(self, count: int) -> None:
        self.offset += count
        if self.offset > len(self.data):
            raise ValueError("the header runs past the end of the file")

    def unpack(self, fmt: str) -> Any:
        (value,) = struct.unpack_from(fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return value

    def string(self) -> str:
        length = self.unpack("<Q")
        self.skip(length)
        return bytes(self.data[self.offset - length : self.offset]).decode("utf-8")

    def value(self, value_type: int, *, keep: bool) -> Any:
        """Read one value; arrays and unkept strings are skipped (None)."""
        if value_type in self.SCALARS:
            return self.unpack(self.SCALARS[value_type])
        if value_type == 8:
            if keep:
                return self.string()
            self.skip(self.unpack("<Q"))
            return None
        if value_type == 9:
            element_type, count = self.unpack("<I"), self.unpack("<Q")
            if element_type in self.SCALARS:
                self.skip(count * struct.calcsize(self.SCALARS[element_type]))
            else:
                for _ in range(count):
                    self.value(element_type, keep=False)
            return None
        raise ValueError(f"unknown metadata value type {value_type}")


def supported_architectures() -> set[str] | None:
    """The GGUF architectures this transformers can load (None when it does not say)."""
    found: set[str] = set()
    known = False
    try:
        from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

        found.update(GGUF_SUPPORTED_ARCHITECTURES)
        known = True
    except ImportError:
        pass
    try:  # the loader that keeps or unpacks blocks itself (transformers 5.x)
        from transformers.integrations.gguf.utils import GGUF_ARCHS

        found.update(GGUF_ARCHS)
        known = True
    except ImportError:
        pass
    return found if known else None


def _check_architecture(file: Path, facts: GgufFacts) -> None:
    supported = supported_architectures()
    if supported is None or facts.architecture in supported:
        return
    import transformers

    raise UserError(
        f"{file}: transformers {transformers.__version__} cannot load GGUF architecture "
        f"{facts.architecture!r}; it reads {', '.join(sorted(supported))}"
    )


def _check_tensor_types(file: Path, facts: GgufFacts) -> None:
    """Refuse tensor types that nothing de-quantizes, probing `gguf` with one zero block of each
    (transformers unpacks the common ones itself and falls back to `gguf` for the rest)."""
    gguf = require_gguf()
    from gguf.quants import dequantize

    for name in sorted(facts.tensor_types):
        qtype = gguf.GGMLQuantizationType[name]
        _, block_bytes = gguf.GGML_QUANT_SIZES[qtype]
        try:
            dequantize(np.zeros(block_bytes, dtype=np.uint8), qtype)
        except NotImplementedError:
            import transformers

            raise UserError(
                f"{file}: {facts.tensor_types[name]} tensors are stored as {name}, which transformers "
                f"{transformers.__version__} and gguf {_gguf_version()} cannot de-quantize"
            ) from None


@contextlib.contextmanager
def _quiet_loading(quiet: bool) -> Any:
    """No progress bars from transformers or from the tqdm bars its GGUF reader draws itself."""
    if not quiet:
        yield
        return
    import transformers

    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        if bars:
            transformers.utils.logging.enable_progress_bar()


def _load_through_transformers(
    file: Path, facts: GgufFacts, dtype: torch.dtype
) -> tuple[torch.nn.Module, Any]:
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs: dict[str, Any] = {}
    try:  # ask for dense weights where transformers could keep them packed in GGUF blocks
        from transformers.utils.quantization_config import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=file.name, dequantize=True)
    except ImportError:
        pass
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(file.parent), gguf_file=file.name)
        model = AutoModelForCausalLM.from_pretrained(
            str(file.parent), gguf_file=file.name, dtype=dtype, **kwargs
        )
    except _LOAD_ERRORS as err:
        types = ", ".join(f"{name} x{count}" for name, count in sorted(facts.tensor_types.items()))
        raise UserError(
            f"{file}: transformers {transformers.__version__} cannot de-quantize this file "
            f"(architecture {facts.architecture}, tensors {types}): {_first_line(err)}"
        ) from None
    return model, tokenizer


def _dense_copy(model: Any, dtype: torch.dtype) -> Any:
    """The same model as a plain transformers model: no GGUF quantization config, dense `dtype`
    parameters. A weight left packed in GGUF blocks fails here (its shape or dtype differs)."""
    from transformers import AutoModelForCausalLM

    config = type(model.config).from_dict(model.config.to_dict())
    for key in ("quantization_config", "_pre_quantization_dtype"):
        if hasattr(config, key):
            delattr(config, key)
    state = model.state_dict()
    packed = [name for name, value in state.items() if not torch.is_floating_point(value)]
    if packed:
        raise RuntimeError(
            f"transformers left {len(packed)} weights packed (first: {packed[0]}) after de-quantizing"
        )
    with torch.device("meta"):  # no random initialisation: every tensor is taken from `model` below
        dense = AutoModelForCausalLM.from_config(config, dtype=dtype)
    dense.load_state_dict({name: value.to(dtype) for name, value in state.items()}, strict=True, assign=True)
    buffers = dict(model.named_buffers())  # rotary tables and other buffers that are not saved
    for name, _ in list(dense.named_buffers()):
        owner, _, leaf = name.rpartition(".")
        dense.get_submodule(owner).register_buffer(leaf, buffers[name], persistent=name in state)
    if getattr(config, "tie_word_embeddings", False):
        dense.tie_weights()
    left = [name for name, value in [*dense.named_parameters(), *dense.named_buffers()] if value.is_meta]
    if left:
        raise RuntimeError(
            f"{len(left)} tensors of {type(dense).__name__} were not filled (first: {left[0]})"
        )
    dense.generation_config = model.generation_config
    return dense.eval()


def _check_written(out_dir: Path, dense: torch.nn.Module, tokenizer: Any, dtype: torch.dtype) -> float:
    """Reload `out_dir` with plain transformers; check its weights, logits and token ids against
    what was written. Returns the largest absolute logit difference on the probe text."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=dtype).eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    ids = tokenizer(_PROBE_TEXT)["input_ids"]
    if list(reloaded_tokenizer(_PROBE_TEXT)["input_ids"]) != list(ids):
        raise RuntimeError(f"{out_dir}: the saved tokenizer encodes text differently from the GGUF file's")
    written = dense.state_dict()
    for name, value in reloaded.state_dict().items():
        if name not in written or not torch.equal(written[name], value):
            raise RuntimeError(f"{out_dir}: weight {name} differs after saving")
    inputs = torch.tensor([ids])
    with torch.no_grad():
        diff = (dense(inputs).logits.float() - reloaded(inputs).logits.float()).abs().max().item()
    if not diff <= 1e-3:
        raise RuntimeError(f"{out_dir}: logits differ by {diff} after saving")
    return float(diff)


def _gguf_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gguf")
    except PackageNotFoundError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# Export of small Llama models (what the import is tested on)


def write_llama_gguf(model: Any, tokenizer: Any, path: str | Path, *, tensor_type: str = "F32") -> Path:
    """Write a `LlamaForCausalLM` and its byte-level BPE fast tokenizer as a GGUF file.

    Metadata and tensor names follow llama.cpp's Llama layout: q and k projections have the rows
    of each head's rotary halves interleaved, as llama.cpp expects and transformers undoes on
    load. `tensor_type` is F32, F16, or a ggml type the `gguf` package quantizes to (Q8_0, Q4_0,
    ...), used for the matrices, whose row length must then be a multiple of the type's block;
    norms stay F32. Raises `UserError` for another model or tokenizer kind or an unknown type.
    """
    gguf = require_gguf()
    from gguf.quants import quantize

    qtype = getattr(gguf.GGMLQuantizationType, tensor_type, None)
    if qtype is None:
        raise UserError(f"tensor_type {tensor_type}: not a ggml type")
    config = model.config
    if config.model_type != "llama":
        raise UserError(f"write_llama_gguf: a Llama model is needed, got model_type {config.model_type!r}")
    tokenizer_json = json.loads(tokenizer.backend_tokenizer.to_str())
    if tokenizer_json.get("model", {}).get("type") != "BPE":
        raise UserError("write_llama_gguf: a byte-level BPE fast tokenizer is needed")

    path = Path(path)
    writer = gguf.GGUFWriter(str(path), "llama")
    heads, kv_heads = config.num_attention_heads, config.num_key_value_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    rope = getattr(config, "rope_parameters", None) or {}
    writer.add_name(str(getattr(config, "name_or_path", "") or "llama"))
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(float(rope.get("rope_theta", getattr(config, "rope_theta", 10000.0))))
    writer.add_rope_dimension_count(head_dim)
    writer.add_vocab_size(config.vocab_size)
    file_type = {"F32": "ALL_F32"}.get(tensor_type, f"MOSTLY_{tensor_type}")
    if hasattr(gguf.LlamaFileType, file_type):
        writer.add_file_type(getattr(gguf.LlamaFileType, file_type))
    _add_byte_level_tokenizer(writer, tokenizer, tokenizer_json, config.vocab_size)

    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and config.tie_word_embeddings:
            continue
        stem, suffix = name.rsplit(".", 1)
        gguf_name = names.get_name(stem)
        if gguf_name is None:
            raise UserError(f"write_llama_gguf: no GGUF name for weight {name}")
        array = tensor.detach().float().cpu().numpy()
        if name.endswith("q_proj.weight"):
            array = _interleave_rotary_halves(array, heads)
        elif name.endswith("k_proj.weight"):
            array = _interleave_rotary_halves(array, kv_heads)
        array = np.ascontiguousarray(array)
        if tensor_type == "F16" and array.ndim == 2:
            writer.add_tensor(f"{gguf_name}.{suffix}", array.astype(np.float16))
        elif tensor_type != "F32" and array.ndim == 2:
            writer.add_tensor(f"{gguf_name}.{suffix}", quantize(array, qtype), raw_dtype=qtype)
        else:
            writer.add_tensor(f"{gguf_name}.{suffix}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def _interleave_rotary_halves(weight: np.ndarray, heads: int) -> np.ndarray:
    """Reorder each head's output rows from [first half | second half] of the rotary pairs to
    interleaved pairs, the layout llama.cpp uses for Llama q and k projections."""
    rows = weight.shape[0]
    return (
        weight.reshape(heads, 2, rows // heads // 2, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)
    )


def _add_byte_level_tokenizer(writer: Any, tokenizer: Any, tokenizer_json: dict, vocab_size: int) -> None:
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size:
        raise UserError(
            f"write_llama_gguf: the tokenizer has {len(vocab)} tokens, the model {vocab_size} rows"
        )
    tokens = [f"[PAD{i}]" for i in range(vocab_size)]  # rows without a token, as llama.cpp names them
    for token, index in vocab.items():
        tokens[index] = token
    special = set(tokenizer.all_special_ids)
    merges = [m if isinstance(m, str) else " ".join(m) for m in tokenizer_json["model"].get("merges", [])]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    # llama.cpp token types: 1 normal, 3 control, 5 unused.
    writer.add_token_types([3 if i in special else 1 if i < len(vocab) else 5 for i in range(vocab_size)])
    writer.add_token_merges(merges)
    if tokenizer.bos_token_id is not None:
        writer.add_bos_token_id(tokenizer.bos_token_id)
    if tokenizer.eos_token_id is not None:
        writer.add_eos_token_id(tokenizer.eos_token_id)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
