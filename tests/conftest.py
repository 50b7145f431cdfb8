"""Shared fixtures: tiny tokenizers and models built from configs, never downloaded."""

from __future__ import annotations

from pathlib import Path

import pytest

EOS = "<|endoftext|>"

# The model of most tests' run configs (`model: {init: ...}`): a 2-layer Llama of hidden size 32.
TINY_LLAMA = {
    "architecture": "llama",
    "hidden_size": 32,
    "num_layers": 2,
    "num_heads": 2,
    "intermediate_size": 64,
}


def sample_texts() -> list[str]:
    """Deterministic English-ish documents from the Python docs shipped with CPython."""
    from pydoc_data.topics import topics

    return [topics[key] for key in sorted(topics)]


def build_tokenizer(out_dir: Path, vocab_size: int = 512) -> Path:
    """Train a small byte-level BPE and save it as a Hugging Face tokenizer directory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(sample_texts(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS, pad_token=EOS)
    fast.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tokenizer(tmp_path_factory.mktemp("tokenizer"))


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir: Path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


def tiny_llama(tokenizer, **overrides):
    """A randomly initialised (seed 0) two-layer Llama of hidden size 32 over `tokenizer`;
    `overrides` go to its `LlamaConfig`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    options = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64}
    return LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **{**options, **overrides}))


@pytest.fixture(scope="module")
def tiny_model(tiny_tokenizer):
    """A randomly initialised two-layer Llama over the tiny tokenizer (one per test module)."""
    return tiny_llama(tiny_tokenizer)


def write_corpora(root: Path) -> dict[str, Path]:
    """Two small sources for run tests: English prose (`sample_texts`, as JSONL) and Python code
    (the modules of the standard library's json package, a text file each)."""
    import json

    root.mkdir(parents=True, exist_ok=True)
    general = root / "general.jsonl"
    with open(general, "w") as fh:
        for i, text in enumerate(sample_texts()):
            fh.write(json.dumps({"id": i, "text": text}) + "\n")
    code = root / "code"
    code.mkdir(exist_ok=True)
    for path in sorted(Path(json.__file__).parent.glob("*.py")):
        (code / f"{path.stem}.txt").write_text(path.read_text())
    return {"general": general, "code": code}
