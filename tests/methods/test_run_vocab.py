"""Runs with a vocabulary extension: the tokenizer a run saves and prepares with, the new rows that
train alone, fertility and bits per byte against the base, and exact resume.

The base is a 2-block untied Llama of hidden size 32 (a Hugging Face directory with the tiny
byte-level BPE); one stage of 8 steps on the tiny corpora (`tiny_runs.tiny_config`), checkpointed
every 4 steps; 48 tokens learned on the code source.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import read_lines, run_interrupted, tiny_config, weights, write_corpora

from forgetless.config import config_from_dict
from forgetless.train.run import run_training

VOCAB = [{"kind": "extend_vocab", "from": "code", "new_tokens": 48, "lm_head": "zero"}]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    from conftest import tiny_llama

    out = tmp_path_factory.mktemp("vocab-base")
    tiny_llama(tiny_tokenizer, tie_word_embeddings=False).save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def config(tmp_path_factory, base_dir):
    corpora = write_corpora(tmp_path_factory.mktemp("vocab-corpora"))

    def make(name: str, transforms: list, methods: dict | None = None) -> dict:
        tmp = tmp_path_factory.getbasetemp() / "vocab-runs" / name
        data = tiny_config(tmp, base_dir, corpora, **({"methods": methods} if methods else {}))
        data["model"] = {"path": str(base_dir), "transforms": transforms}
        data["tokenizer"] = str(base_dir)
        return data

    return make


@pytest.fixture(scope="module")
def new_rows_runs(config) -> tuple[Path, Path]:
    def run(name: str, resume: bool = False) -> Path:
        data = config(name, VOCAB, {"train_only": ["new_rows"]})
        return run_training(config_from_dict(data), resume=resume, quiet=True)

    whole = run("new-rows-whole")
    run_interrupted(6, lambda: run("new-rows-resumed"))
    return whole, run("new-rows-resumed", resume=True)


def test_new_rows_train_alone_and_old_rows_stay_bit_identical(new_rows_runs, base_dir, tiny_tokenizer) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = new_rows_runs[0]
    base, final = weights(base_dir), weights(run_dir / "final")
    rows = len(tiny_tokenizer)
    assert final.keys() == base.keys()
    for name, value in final.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert value.shape[0] == rows + 48
            assert torch.equal(value[:rows], base[name]), name  # the old rows, bit for bit
            assert not torch.equal(value[rows:], value[rows:] * 0 + value[rows:].mean())  # the new ones trained
        else:
            assert torch.equal(value, base[name]), name
    assert final["lm_head.weight"][rows:].abs().sum() > 0  # trained away from the zero start

    model = AutoModelForCausalLM.from_pretrained(run_dir / "final")
    assert model.config.vocab_size == rows + 48
    for folder in (run_dir / "final", run_dir / "tokenizer"):
        tokenizer = AutoTokenizer.from_pretrained(folder)
        assert len(tokenizer) == rows + 48
    stage_start = next(r for r in read_lines(run_dir) if r["kind"] == "stage_start")
    assert stage_start["trainable_parameters"] == 2 * (rows + 48) * 32  # the trainable tensors, whole


def test_the_run_measures_fertility_and_compares_in_bits_per_byte(new_rows_runs, tiny_tokenizer) -> None:
    run_dir = new_rows_runs[0]
    lines = read_lines(run_dir)
    start = next(r for r in lines if r["kind"] == "run_start")
    change = start["tokenizer"]
    assert change["vocab_before"] == len(tiny_tokenizer) and change["vocab_after"] == len(tiny_tokenizer) + 48
    assert change["same_text"] == {"general": True, "code": True}
    code = change["fertility"]["code"]
    assert code["after"]["tokens_per_byte"] < code["before"]["tokens_per_byte"]
    assert code["after"]["bytes"] == code["before"]["bytes"]
    [record] = start["transforms"]
    assert record["resolved"]["new_ids"] == [len(tiny_tokenizer), len(tiny_tokenizer) + 48]

    base_eval = next(r for r in lines if r["kind"] == "eval" and r["point"] == "base")
    for source in ("general", "code"):  # the same documents before and after: the same bytes, fewer tokens
        before, after = change["base"][source], change["evaluated"][source]
        assert after["bytes"] == before["bytes"] > 0 and after["documents"] == before["documents"]
        assert after["tokens"] <= before["tokens"]
    assert change["evaluated"]["code"]["tokens"] < change["base"]["code"]["tokens"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["units"] == "bpb"
    assert any("nats per token of the base and the adapted model are not comparable" in w for w in summary["warnings"])
    code_row = summary["sources"]["code"]
    assert code_row["tokenizer_base_bpb"] == pytest.approx(change["base"]["code"]["bpb"])
    assert code_row["transform_jump_bpb"] == pytest.approx(base_eval["eval/code/bpb"] - change["base"]["code"]["bpb"])
    assert summary["learning"]["code"] == pytest.approx(change["base"]["code"]["bpb"] - code_row["final_bpb"])
    assert summary["learning_bpb"] == summary["learning"]
    assert summary["tokenizer"]["fertility"]["code"]["after"]["tokens_per_byte"] == code["after"]["tokens_per_byte"]

    from forgetless.report.html import render_report
    from forgetless.report.runs import load_runs

    html = render_report(load_runs([run_dir]))
    assert "nats per token before and after are not comparable" in html and "bits/byte" in html
    card = (run_dir / "final" / "README.md").read_text()
    assert "base bits/byte (its own tokenizer)" in card and "not comparable" in card


def test_the_result_lines_are_in_bits_per_byte(new_rows_runs, capsys) -> None:
    from forgetless.cli import _print_run_result

    run_dir = new_rows_runs[0]
    summary = json.loads((run_dir / "summary.json").read_text())
    _print_run_result(run_dir)
    out = capsys.readouterr().out
    delta = summary["sources"]["code"]["delta_bpb_reference"]
    assert f"code: {delta:+.4f} bits/byte vs the base with its own tokenizer" in out


def test_a_vocabulary_run_resumes_exactly(new_rows_runs) -> None:
    whole, resumed = new_rows_runs
    a, b = weights(whole / "final"), weights(resumed / "final")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    start = next(r for r in read_lines(resumed) if r["kind"] == "run_start")
    assert start["tokenizer"]["vocab_after"] == next(
        r for r in read_lines(whole) if r["kind"] == "run_start"
    )["tokenizer"]["vocab_after"]


def test_new_rows_train_in_the_lora_copies_of_the_embedding_and_head(config, base_dir, tiny_tokenizer) -> None:
    """Extension then LoRA that trains the embedding and head (peft trains copies of them): a stage
    of `train_only: [new_rows]` trains the copies' new rows; the adapters and every old row stay the
    base's, so the merged `final/` is the base with trained new rows."""
    pytest.importorskip("peft")
    lora = {"kind": "lora", "r": 4, "alpha": 8, "train_embeddings": True, "train_lm_head": True}
    data = config("lora-new-rows", [*VOCAB, lora], {"train_only": ["new_rows"]})
    run_dir = run_training(config_from_dict(data), quiet=True)
    base, final = weights(base_dir), weights(run_dir / "final")
    rows = len(tiny_tokenizer)
    assert final.keys() == base.keys()
    for name, value in final.items():
        if name in ("model.embed_tokens.weight", "lm_head.weight"):
            assert torch.equal(value[:rows], base[name]), name
            assert value[rows:].abs().sum() > 0 and value[rows:].std(0).sum() > 0, name  # trained
        else:
            assert torch.equal(value, base[name]), name
    from safetensors.torch import load_file

    adapter = load_file(run_dir / "final_adapter" / "adapter_model.safetensors")  # with peft's copies
    embed = next(v for k, v in adapter.items() if "embed_tokens" in k and "lora" not in k)
    assert torch.equal(embed, final["model.embed_tokens.weight"])
    stage_start = next(r for r in read_lines(run_dir) if r["kind"] == "stage_start")
    assert stage_start["trainable_parameters"] == 2 * (rows + 48) * 32
