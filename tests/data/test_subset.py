"""Source subsets: documents ranked by a score (length, a record field, the base model's loss), a
share of the tokens kept, cached; and the per-document losses the base-model score uses."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_LLAMA, sample_texts, tiny_llama
from forgetless.config import config_from_dict
from forgetless.data import subset as subset_module
from forgetless.data.prepare import prepare_sources
from forgetless.data.subset import apply_subsets, select_documents
from forgetless.errors import UserError
from forgetless.evaluate.document_scores import document_losses


def test_select_documents_ranks_and_keeps_a_share_of_the_tokens() -> None:
    scores = np.array([3.0, 1.0, np.nan, 2.0, 1.0])
    lengths = np.array([10, 10, 10, 10, 60])
    assert select_documents(scores, lengths, 0.2, "lowest").tolist() == [False, True, False, False, True]
    assert select_documents(scores, lengths, 0.1, "lowest").tolist() == [False, True, False, False, False]
    assert select_documents(scores, lengths, 0.1, "highest").tolist() == [True, False, False, False, False]
    assert select_documents(scores, lengths, 1e-9, "highest").sum() == 1  # at least one document
    assert select_documents(scores, lengths, 1.0, "highest").all()  # NaN last, but kept when all are
    assert select_documents(scores, lengths, 0.9, "lowest").tolist() == [True, True, False, True, True]


def corpus(tmp: Path, count: int = 120) -> Path:
    path = tmp / "docs.jsonl"
    with open(path, "w") as fh:
        for i, text in enumerate(sample_texts()[:count]):
            fh.write(json.dumps({"text": text, "quality": (i * 37) % 101 if i % 10 else None}) + "\n")
    return path


def config(tmp: Path, tokenizer_dir: Path, subset: dict, count: int = 120) -> object:
    return config_from_dict(
        {
            "model": {"init": dict(TINY_LLAMA)},
            "tokenizer": str(tokenizer_dir),
            "sources": {
                "docs": {"files": [str(corpus(tmp, count))], "heldout": {"documents": 10}, "subset": subset}
            },
            "stages": [{"name": "s", "tokens": 1024, "mix": {"docs": 1.0}}],
            "train": {"seq_len": 32, "batch_tokens": 256, "micro_batch": 4},
            "cache_dir": str(tmp / "cache"),
        }
    )


def documents(store) -> list[bytes]:
    return [np.asarray(store.document(i)).tobytes() for i in range(store.num_documents)]


def test_a_length_subset_keeps_the_longest_documents_and_is_cached(tmp_path, tiny_tokenizer_dir, tiny_tokenizer, monkeypatch):
    cfg = config(tmp_path, tiny_tokenizer_dir, {"score": "length", "keep": 0.3, "order": "highest"})
    prepared = prepare_sources(cfg, tiny_tokenizer, progress=False)
    full = prepared["docs"].train
    kept = apply_subsets(cfg, prepared)["docs"].train
    lengths = np.diff(full.doc_offsets)
    assert kept.num_tokens >= 0.3 * full.num_tokens
    assert kept.num_tokens - np.diff(kept.doc_offsets).min() < 0.3 * full.num_tokens  # no document more
    assert np.diff(kept.doc_offsets).min() >= np.sort(lengths)[::-1][kept.num_documents - 1]
    assert set(documents(kept)) <= set(documents(full))
    assert kept.sha256 != full.sha256 and prepared["docs"].heldout.num_documents == 10

    def no_writes(*args, **kwargs):
        raise AssertionError("the subset was written again")

    monkeypatch.setattr(subset_module, "_write", no_writes)
    again = apply_subsets(cfg, prepare_sources(cfg, tiny_tokenizer, progress=False))["docs"].train
    assert again.path == kept.path and again.sha256 == kept.sha256


def test_a_field_subset_follows_the_records_and_the_held_out_split(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    cfg = config(tmp_path, tiny_tokenizer_dir, {"score": "field", "field": "quality", "keep": 0.25})
    prepared = prepare_sources(cfg, tiny_tokenizer, progress=False)
    kept = apply_subsets(cfg, prepared)["docs"].train
    # The expected documents: training texts by lowest quality, records without one last.
    texts = sample_texts()[:120]
    held = {np.asarray(prepared["docs"].heldout.document(i)).tobytes() for i in range(10)}
    rows = []
    for i, text in enumerate(texts):
        ids = np.array([*tiny_tokenizer(text, add_special_tokens=False)["input_ids"], tiny_tokenizer.eos_token_id])
        tokens = ids.astype(kept.tokens.dtype).tobytes()
        if tokens not in held:
            rows.append(((i * 37) % 101 if i % 10 else np.nan, tokens, len(ids)))
    mask = select_documents(np.array([r[0] for r in rows]), np.array([r[2] for r in rows]), 0.25, "lowest")
    assert sorted(documents(kept)) == sorted(r[1] for r, m in zip(rows, mask, strict=True) if m)


def test_a_field_subset_of_text_files_and_a_model_score_without_a_model_are_refused(tmp_path, tiny_tokenizer_dir, tiny_tokenizer):
    text = tmp_path / "plain.txt"
    text.write_text(sample_texts()[0])
    cfg = config(tmp_path, tiny_tokenizer_dir, {"score": "field", "field": "quality", "keep": 0.5})
    cfg.sources["docs"].files = [str(text), str(corpus(tmp_path))]
    with pytest.raises(UserError, match=r"subset\.field: .*plain\.txt is a text file"):
        apply_subsets(cfg, prepare_sources(cfg, tiny_tokenizer, progress=False))
    cfg = config(tmp_path, tiny_tokenizer_dir, {"score": "base_loss", "keep": 0.5})
    with pytest.raises(UserError, match=r"subset\.score: base_loss needs the base model"):
        apply_subsets(cfg, prepare_sources(cfg, tiny_tokenizer, progress=False))


def test_document_losses_charge_each_predicted_token_to_its_document(tiny_tokenizer) -> None:
    model = tiny_llama(tiny_tokenizer)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, len(tiny_tokenizer), size=203)
    offsets = np.array([0, 1, 50, 140, 203])  # a one-token first document is never predicted
    scores = document_losses(model, tokens, offsets, seq_len=16, batch_size=3, device="cpu")
    # The same windows, scored one at a time, token by token.
    nll = np.zeros(len(tokens))
    with torch.no_grad():
        for start in range(0, len(tokens) - 1, 16):
            piece = torch.from_numpy(tokens[start : start + 17]).long()[None]
            logp = torch.log_softmax(model(input_ids=piece[:, :-1]).logits.float(), -1)[0]
            nll[start + 1 : start + piece.shape[1]] = -logp.gather(1, piece[0, 1:, None])[:, 0].numpy()
    assert np.isnan(scores[0])
    for d in range(1, 4):
        assert scores[d] == pytest.approx(nll[offsets[d] : offsets[d + 1]].mean(), rel=1e-5)


def test_a_base_loss_subset_is_scored_once_by_the_run(tmp_path, tiny_tokenizer_dir, tiny_tokenizer, monkeypatch):
    from forgetless.train import subsets

    cfg = config(tmp_path, tiny_tokenizer_dir, {"score": "base_loss", "keep": 0.2, "order": "lowest"}, count=40)
    calls = []
    original = subsets._model_scorer

    def counting(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(subsets, "_model_scorer", counting)
    prepared = prepare_sources(cfg, tiny_tokenizer, progress=False)
    kept = subsets.with_subsets(cfg, prepared, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None)
    assert len(calls) == 1 and kept["docs"].train.num_tokens < prepared["docs"].train.num_tokens
    again = subsets.with_subsets(cfg, prepared, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None)
    assert len(calls) == 1 and again["docs"].train.sha256 == kept["docs"].train.sha256
    # The documents kept are those of lowest loss under the base model (init with the run's seed).
    torch.manual_seed(cfg.train.seed)
    from forgetless.model.load import build_model

    model = build_model(cfg.model, tiny_tokenizer)
    full = prepared["docs"].train
    scores = document_losses(model, full.tokens, full.doc_offsets, seq_len=32, batch_size=8, device="cpu")
    mask = select_documents(scores, np.diff(full.doc_offsets), 0.2, "lowest")
    expected = [np.asarray(full.document(int(i))).tobytes() for i in np.flatnonzero(mask)]
    assert documents(kept["docs"].train) == expected


def _as_second_process(monkeypatch, subsets, sent: list) -> tuple[list, object]:
    """Make `subsets.with_subsets` run as the second of two processes whose first one's messages are
    `sent` (in order). Returns the list of the numbers given to each `all_reduce_sum`, and the process's place."""
    from forgetless.distributed import World

    reduced: list = []
    monkeypatch.setattr(subsets, "barrier", lambda world: None)
    monkeypatch.setattr(subsets, "all_reduce_sum", lambda values, world: reduced.append(values) or list(values))
    monkeypatch.setattr(subsets, "broadcast_from_main", lambda value, world: sent.pop(0))
    monkeypatch.setattr(subsets, "_model_scorer", lambda *args: pytest.fail("the second process loaded the model"))
    return reduced, World(rank=1, size=2)


def test_a_process_with_a_cache_of_its_own_takes_the_first_process_scores(
    tmp_path, tiny_tokenizer_dir, tiny_tokenizer, monkeypatch
):
    """Each node of a multi-node run may have its own token cache: a process whose cache lacks the
    base-model scores gets the first process's, and writes the same files into its cache; one whose
    tokens or selection differ from the first process's stops with one line naming the source."""
    from forgetless.train import subsets

    spec = {"score": "base_loss", "keep": 0.3, "order": "lowest"}
    (tmp_path / "first").mkdir()
    first = config(tmp_path / "first", tiny_tokenizer_dir, spec, count=30)
    full = prepare_sources(first, tiny_tokenizer, progress=False)
    kept = subsets.with_subsets(first, full, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None)
    scores = np.load(next((tmp_path / "first" / "cache" / "scores").iterdir()))

    def cache_files(cache: Path) -> dict[str, bytes]:
        found = [*(cache / "scores").iterdir(), *(cache / "subsets").rglob("*")]
        return {str(p.relative_to(cache)): p.read_bytes() for p in found if p.is_file()}

    (tmp_path / "second").mkdir()
    second = config(tmp_path / "second", tiny_tokenizer_dir, spec, count=30)
    own = prepare_sources(second, tiny_tokenizer, progress=False)
    selection = {"docs": kept["docs"].train.sha256}
    with monkeypatch.context() as patch:
        reduced, world = _as_second_process(patch, subsets, [(full["docs"].train.sha256, scores), selection])
        out = subsets.with_subsets(
            second, own, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None, world=world
        )
    assert reduced == [[1.0]]  # it asked for the scores of `docs`
    assert out["docs"].train.sha256 == kept["docs"].train.sha256
    assert cache_files(tmp_path / "second" / "cache") == cache_files(tmp_path / "first" / "cache")
    with monkeypatch.context() as patch:  # a second run: found in its cache, nothing asked for
        reduced, world = _as_second_process(patch, subsets, [selection])
        subsets.with_subsets(second, own, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None, world=world)
    assert reduced == [[0.0]]

    (tmp_path / "third").mkdir()
    third = config(tmp_path / "third", tiny_tokenizer_dir, spec, count=29)  # other documents
    other = prepare_sources(third, tiny_tokenizer, progress=False)
    with monkeypatch.context() as patch, pytest.raises(UserError, match=r"^sources\.docs: this process's training tokens"):
        _, world = _as_second_process(patch, subsets, [(full["docs"].train.sha256, scores), selection])
        subsets.with_subsets(third, other, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None, world=world)
    with monkeypatch.context() as patch, pytest.raises(UserError, match=r"^sources\.docs\.subset: this process selected"):
        _, world = _as_second_process(patch, subsets, [{"docs": "0" * 64}])
        subsets.with_subsets(second, own, tiny_tokenizer, device=torch.device("cpu"), autocast_dtype=None, world=world)


def test_a_small_subset_is_read_for_several_epochs_and_warned_about(tmp_path, tiny_tokenizer_dir):
    import warnings

    from transformers import AutoTokenizer

    from forgetless.data.sampler import RepetitionWarning
    from forgetless.train.run import run_training

    cfg = config(tmp_path, tiny_tokenizer_dir, {"score": "length", "keep": 0.5})
    total = prepare_sources(cfg, AutoTokenizer.from_pretrained(tiny_tokenizer_dir), progress=False)["docs"].train
    data = cfg.model_dump(by_alias=True)
    data["sources"]["docs"]["subset"]["keep"] = 300 / total.num_tokens  # a stage of 1024 tokens: 3 epochs
    data["sources"]["docs"]["max_epochs_warning"] = 2.0
    data["eval"] = {"max_tokens": 256, "dense_start": []}
    data["output"] = {"dir": str(tmp_path / "run")}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run_dir = run_training(config_from_dict(data), quiet=True)
    messages = [str(w.message) for w in caught if issubclass(w.category, RepetitionWarning)]
    assert any("source 'docs'" in m and "max_epochs_warning = 2" in m for m in messages), messages
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    end = next(line for line in lines if line["kind"] == "stage_end")
    assert end["epochs"]["docs"] > 2.0
