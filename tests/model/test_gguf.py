"""`forgetless import-gguf`: a GGUF file becomes a plain HF directory that gives the same model.

The GGUF files are written here from a tiny random Llama and its tokenizer with the `gguf`
package's writer (`write_llama_gguf`), so the source model is known exactly.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from conftest import sample_texts, tiny_llama
from faults_helpers import cli
from forgetless.model.gguf import write_llama_gguf


@pytest.fixture(scope="module")
def source(tiny_tokenizer):
    """The model every GGUF file here is written from: two layers, hidden 32, 2 heads."""
    return tiny_llama(tiny_tokenizer, num_key_value_heads=1).eval()


@pytest.fixture(scope="module")
def gguf_files(tmp_path_factory, source, tiny_tokenizer) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("gguf")
    return {
        kind: write_llama_gguf(source, tiny_tokenizer, root / f"tiny-{kind}.gguf", tensor_type=kind)
        for kind in ("F32", "Q8_0")
    }


def probe_ids(tokenizer) -> torch.Tensor:
    text = sample_texts()[3][:400]
    return torch.tensor([tokenizer(text)["input_ids"]])


def import_ok(args: list[str], capsys) -> str:
    code, out, err = cli(["import-gguf", *args, "--quiet"], capsys)
    assert code == 0, err
    return out


def test_an_unquantized_file_gives_the_source_model_back(
    gguf_files, source, tiny_tokenizer, tmp_path, capsys
):
    out_dir = tmp_path / "model"
    out = import_ok([str(gguf_files["F32"]), "--out", str(out_dir), "--dtype", "float32"], capsys)
    assert re.search(r"imported tiny-F32\.gguf \(llama; tensors F32 x\d+\) as LlamaForCausalLM", out), out

    model = AutoModelForCausalLM.from_pretrained(out_dir).eval()  # plain transformers, no gguf
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    for text in sample_texts()[:5]:
        assert tokenizer(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]
    ids = probe_ids(tiny_tokenizer)
    with torch.no_grad():
        torch.testing.assert_close(model(ids).logits, source(ids).logits, atol=1e-5, rtol=1e-5)
    config = json.loads((out_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["num_key_value_heads"] == 1
    assert (out_dir / "model.safetensors").is_file()


def test_a_quantized_file_is_dequantized_into_bfloat16(gguf_files, source, tiny_tokenizer, tmp_path, capsys):
    out_dir = tmp_path / "model"
    import_ok([str(gguf_files["Q8_0"]), "--out", str(out_dir)], capsys)

    model = AutoModelForCausalLM.from_pretrained(out_dir).eval()
    assert model.dtype == torch.bfloat16
    # The matrices carry Q8_0's rounding (one scale per 32 weights): close to the source, not equal.
    weight = model.model.layers[0].mlp.down_proj.weight.float()
    expected = source.model.layers[0].mlp.down_proj.weight
    error = (weight - expected).abs().max().item()
    assert 0 < error < 0.02 * expected.abs().max().item()
    ids = probe_ids(tiny_tokenizer)
    with torch.no_grad():
        got, want = model.float()(ids).logits, source(ids).logits
    assert (got - want).abs().max().item() < 0.05 * want.abs().max().item()


# ---------------------------------------------------------------------------------------------
# Bad input: one line, exit code 2, nothing written


def _unknown_architecture(tmp: Path, files: dict[str, Path]) -> str:
    writer = gguf.GGUFWriter(str(tmp / "odd.gguf"), "forgetless-unknown")
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return str(tmp / "odd.gguf")


def _not_dequantizable(tmp: Path, files: dict[str, Path], source, tokenizer, monkeypatch) -> str:
    # Q8_K is ggml's type for intermediate products: a valid type id that nothing de-quantizes.
    # The gguf package cannot write it either, so its blocks are written as zero bytes.
    def zero_blocks(array: np.ndarray, qtype) -> np.ndarray:
        block, size = gguf.GGML_QUANT_SIZES[qtype]
        return np.zeros((array.shape[0], array.shape[1] // block * size), dtype=np.uint8)

    monkeypatch.setattr(gguf.quants, "quantize", zero_blocks)
    wide = tiny_llama(tokenizer, hidden_size=256, intermediate_size=256)
    return str(write_llama_gguf(wide, tokenizer, tmp / "q8k.gguf", tensor_type="Q8_K"))


BAD = {
    "missing file": (lambda tmp, files: str(tmp / "nope.gguf"), r"nope\.gguf: GGUF file not found"),
    "a folder": (lambda tmp, files: str(tmp), r": expected a \.gguf file, not a folder"),
    "not a GGUF file": (
        lambda tmp, files: (
            (tmp / "model.bin").write_bytes(b"PK\x03\x04 zip, not gguf") and str(tmp / "model.bin")
        ),
        r"model\.bin: not a GGUF file \(it does not start with the GGUF magic bytes\)",
    ),
    "cut short": (
        lambda tmp, files: (
            (tmp / "cut.gguf").write_bytes(files["F32"].read_bytes()[:200]) and str(tmp / "cut.gguf")
        ),
        r"cut\.gguf: unreadable GGUF header \(.*\); the file may be cut short",
    ),
    "unknown architecture": (
        _unknown_architecture,
        r"odd\.gguf: transformers \S+ cannot load GGUF architecture 'forgetless-unknown'; it reads .*llama",
    ),
    "tensor type nothing de-quantizes": (
        _not_dequantizable,
        r"q8k\.gguf: 16 tensors are stored as Q8_K, which transformers \S+ and gguf \S+ cannot de-quantize",
    ),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_input_exits_2_with_one_line(
    name, gguf_files, source, tiny_tokenizer, tmp_path, capsys, monkeypatch
):
    make, expect = BAD[name]
    if make is _not_dequantizable:
        path = make(tmp_path, gguf_files, source, tiny_tokenizer, monkeypatch)
    else:
        path = make(tmp_path, gguf_files)
    out_dir = tmp_path / "out"
    code, out, err = cli(["import-gguf", path, "--out", str(out_dir), "--quiet"], capsys)
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and out == "", err
    assert re.search(expect, lines[0]), lines[0]
    assert not out_dir.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]  # no temporary leftovers


def test_an_existing_output_dir_is_never_overwritten(gguf_files, tmp_path, capsys):
    out_dir = tmp_path / "model"
    out_dir.mkdir()
    (out_dir / "keep.txt").write_text("earlier work")
    code, _, err = cli(["import-gguf", str(gguf_files["F32"]), "--out", str(out_dir), "--quiet"], capsys)
    assert code == 2 and re.search(r"model: already exists and is not empty; choose another --out", err), err
    assert [p.name for p in out_dir.iterdir()] == ["keep.txt"]


def test_a_bad_dtype_and_a_missing_gguf_package_exit_2(gguf_files, tmp_path, capsys, monkeypatch):
    args = ["import-gguf", str(gguf_files["F32"]), "--out", str(tmp_path / "m"), "--quiet"]
    code, _, err = cli([*args, "--dtype", "float16"], capsys)
    assert code == 2 and "--dtype float16: expected one of bfloat16, float32" in err, err
    monkeypatch.setitem(sys.modules, "gguf", None)  # as if the gguf extra were not installed
    code, _, err = cli(args, capsys)
    assert code == 2 and "needs the gguf package: pip install 'forgetless[gguf]'" in err, err
    assert not (tmp_path / "m").exists()
