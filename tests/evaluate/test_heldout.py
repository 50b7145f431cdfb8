"""Held-out windows and metrics: deterministic layout, exact token coverage, bits per byte."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from forgetless.data.shards import TokenStore
from forgetless.evaluate.heldout import evaluate_heldout, heldout_windows, sample_heldout

EOS_ID = 0


def make_store(tokenizer, texts: list[str]) -> TokenStore:
    """Documents tokenized and concatenated, each followed by EOS, as the data pipeline stores them."""
    tokens, offsets, doc_bytes = [], [0], []
    for text in texts:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [EOS_ID]
        tokens.extend(ids)
        offsets.append(len(tokens))
        doc_bytes.append(len(text.encode("utf-8")))
    return TokenStore.from_arrays(np.array(tokens, dtype=np.uint16), np.array(offsets), np.array(doc_bytes))


def numbered_store(lengths: list[int], subsources: list[str] | None = None) -> TokenStore:
    """Documents of the given token counts (EOS included) with distinct token ids, 3 bytes per token."""
    tokens, offsets = [], [0]
    for length in lengths:
        tokens.extend(range(len(tokens) + 1, len(tokens) + length))
        tokens.append(EOS_ID)
        offsets.append(len(tokens))
    return TokenStore.from_arrays(
        np.array(tokens, dtype=np.uint32), np.array(offsets), np.array(lengths) * 3, subsources
    )


TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Held-out text: naïve café, déjà vu — bytes differ from characters.",
    "def add(a, b):\n    return a + b\n",
    "A third short document about buffers and overflows.",
]


def test_every_token_is_predicted_exactly_once():
    store = numbered_store([5, 9, 4, 7])
    windows, num_bytes = heldout_windows(store, seq_len=4, max_tokens=1000)

    assert windows.shape == (-(-store.num_tokens // 4), 5)
    assert windows.dtype == np.int64
    targets = windows[:, 1:].ravel()
    assert np.array_equal(targets[targets != -100], store.tokens)
    # Consecutive windows overlap by one token: the last token of one is the first input of the next.
    assert np.array_equal(windows[:-1, -1], windows[1:, 0])
    # The stream starts at a document boundary: the first document is predicted from an EOS.
    assert windows[0, 0] == EOS_ID
    # Padding only at the tail of the last window.
    assert (windows[:-1] != -100).all()
    assert num_bytes == store.num_bytes


def predicted(windows: np.ndarray) -> np.ndarray:
    targets = windows[:, 1:].ravel()
    return targets[targets != -100]


def test_an_over_budget_split_gives_whole_short_documents_and_spread_windows_of_long_ones():
    store = numbered_store([5, 9, 4, 40])
    sample = sample_heldout(store, seq_len=8, max_tokens=34)
    # Round 1: 5 + 8 (a window) + 4 + 8 = 25; round 2 brings the 9-token document whole (+1) and
    # the 40-token one to two windows (+8): 34.
    assert sample.tokens == len(predicted(sample.windows)) == 34
    assert sample.documents == 4 and sample.whole_documents == 3 and sample.cut_windows == 2
    long_doc = store.document(3)
    cut = sample.windows[-2:]
    # Two windows of the long document: its start (after an EOS) and its end, spread over its length.
    assert cut[0, 0] == EOS_ID and np.array_equal(cut[0, 1:], long_doc[:8])
    assert np.array_equal(cut[1, 1:], long_doc[-8:]) and cut[1, 0] == long_doc[-9]
    # Whole documents keep their own bytes; windows count their share of their document's bytes.
    assert sample.num_bytes == (5 + 9 + 4) * 3 + 16 * 3


def test_the_budget_is_shared_by_sub_sources_in_proportion_with_every_one_present():
    lengths = [50] * 30 + [10] * 10 + [300]
    store = numbered_store(lengths, ["a"] * 30 + ["b"] * 10 + ["c"])
    sample = sample_heldout(store, seq_len=16, max_tokens=400)
    shares = {name: part["tokens"] for name, part in sample.subsources.items()}
    assert set(shares) == {"a", "b", "c"}
    total = sum(lengths)
    for name, split_tokens in (("a", 1500), ("b", 100), ("c", 300)):
        assert sample.subsources[name]["split_tokens"] == split_tokens
        assert abs(shares[name] - 400 * split_tokens / total) <= 50  # within one step of its share
    assert sample.tokens == sum(shares.values()) <= 400
    assert sample.documents == sum(part["documents"] for part in sample.subsources.values())


def test_the_same_seed_selects_the_same_documents_and_another_seed_others():
    store = numbered_store([7 + i % 13 for i in range(200)])
    first = sample_heldout(store, seq_len=16, max_tokens=500, seed=3)
    again = sample_heldout(store, seq_len=16, max_tokens=500, seed=3)
    other = sample_heldout(store, seq_len=16, max_tokens=500, seed=4)
    assert np.array_equal(first.windows, again.windows) and first.fingerprint() == again.fingerprint()
    assert np.array_equal(first.document_indices, again.document_indices)
    assert first.fingerprint() != other.fingerprint()
    assert not np.array_equal(first.document_indices, other.document_indices)
    # Spread over the whole split, not its first documents.
    assert first.document_indices.max() > 150 and first.document_indices.min() < 50


def test_a_split_within_the_budget_is_evaluated_whole_in_order():
    store = numbered_store([5, 9, 4, 7])
    sample = sample_heldout(store, seq_len=8, max_tokens=25)
    assert np.array_equal(predicted(sample.windows), store.tokens)
    assert sample.sizes() == {"documents": 4, "tokens": 25, "bytes": 75}
    assert sample.too_small("toy") is not None  # 4 documents, 25 tokens: noisy, and said so


def test_cut_windows_count_the_bytes_the_tokenizer_decodes(tiny_tokenizer):
    long_text = " ".join(TEXTS * 8)
    store = make_store(tiny_tokenizer, [long_text, TEXTS[0]])
    backend = tiny_tokenizer.backend_tokenizer

    def count_bytes(ids: np.ndarray) -> int:
        return len(backend.decode(ids.tolist(), skip_special_tokens=True).encode("utf-8"))

    sample = sample_heldout(store, seq_len=16, max_tokens=64, count_bytes=count_bytes)
    assert sample.cut_windows >= 1
    expected = 0
    for row in sample.windows:
        text = row[1:][row[1:] != -100]
        expected += count_bytes(text)
    assert sample.num_bytes == pytest.approx(expected, abs=4)  # EOS decodes to nothing


def test_the_bundled_general_selection_at_the_default_size_covers_every_sub_source():
    from forgetless.config import EvalConfig, TrainConfig
    from forgetless.data import bundled
    from forgetless.model.load import load_tokenizer

    tokenizer = load_tokenizer("bundled")
    documents = list(bundled.iter_documents("general", "heldout"))
    ids = tokenizer([d["text"] for d in documents], add_special_tokens=False)["input_ids"]
    tokens, offsets = [], [0]
    for row in ids:
        tokens += [*row, tokenizer.eos_token_id]
        offsets.append(len(tokens))
    store = TokenStore.from_arrays(
        np.array(tokens, dtype=np.uint16),
        np.array(offsets),
        np.array([len(d["text"].encode()) for d in documents]),
        [d["source"] for d in documents],
    )
    default_tokens, default_seq_len = EvalConfig().max_tokens, TrainConfig().seq_len
    assert store.num_tokens > default_tokens  # a sample, not the whole split
    sample = sample_heldout(store, seq_len=default_seq_len, max_tokens=default_tokens)
    assert set(sample.subsources) == set(bundled.manifest()["corpora"]["general"]["sources"])
    for name, part in sample.subsources.items():
        share = part["split_tokens"] / store.num_tokens
        assert part["documents"] >= 3, name
        assert part["tokens"] / sample.tokens == pytest.approx(share, abs=0.05), name
    assert default_tokens - default_seq_len * 4 <= sample.tokens <= default_tokens
    assert sample.too_small("general") is None


def test_windows_are_deterministic_and_skip_nothing_in_the_middle():
    store = numbered_store([3] * 40)
    first, _ = heldout_windows(store, seq_len=16, max_tokens=100)
    second, _ = heldout_windows(store, seq_len=16, max_tokens=100)
    assert np.array_equal(first, second)
    assert (first[:, 1:] != -100).sum() == 99


def test_an_empty_store_is_refused():
    empty = TokenStore.from_arrays(np.zeros(0, dtype=np.uint16), np.array([0]), np.zeros(0))
    with pytest.raises(ValueError, match="no documents"):
        heldout_windows(empty, seq_len=8, max_tokens=100)


def direct_nll(model, ids: list[int]) -> float:
    """Sum of -log p(ids[t] | ids[:t]) for t >= 1, one forward pass per token, in float64."""
    total = 0.0
    with torch.no_grad():
        for t in range(1, len(ids)):
            logits = model(input_ids=torch.tensor([ids[:t]])).logits[0, -1].double()
            total -= float(torch.log_softmax(logits, dim=-1)[ids[t]])
    return total


def test_bits_per_byte_matches_a_direct_computation(tiny_model, tiny_tokenizer):
    text = TEXTS[1]
    store = make_store(tiny_tokenizer, [text])
    windows, num_bytes = heldout_windows(store, seq_len=8, max_tokens=10_000)
    result = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=3, device="cpu")

    # The text's tokens and closing EOS, each predicted from everything before it, after an EOS.
    ids = [EOS_ID] + tiny_tokenizer(text, add_special_tokens=False)["input_ids"] + [EOS_ID]
    model = tiny_model.eval()
    # The windows restart the context every 8 tokens; score the same contexts directly.
    nll = sum(direct_nll(model, ids[start : start + 9]) for start in range(0, len(ids) - 1, 8))
    num_text_bytes = len(text.encode("utf-8"))
    assert num_text_bytes > len(text)  # the text has multi-byte characters
    assert result["bytes"] == num_text_bytes
    assert result["tokens"] == len(ids) - 1
    assert result["bpb"] == pytest.approx(nll / math.log(2) / num_text_bytes, rel=1e-5)
    assert result["loss"] == pytest.approx(nll / (len(ids) - 1), rel=1e-5)
    assert result["ppl"] == pytest.approx(math.exp(result["loss"]))


def test_one_long_window_matches_a_full_forward_pass(tiny_model, tiny_tokenizer):
    store = make_store(tiny_tokenizer, TEXTS)
    windows, num_bytes = heldout_windows(store, seq_len=512, max_tokens=10_000)
    assert len(windows) == 1
    result = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=1, device="cpu")

    ids = torch.tensor([[EOS_ID, *store.tokens.tolist()]])
    with torch.no_grad():
        logits = tiny_model.eval()(input_ids=ids[:, :-1]).logits
    expected = torch.nn.functional.cross_entropy(logits[0].double(), ids[0, 1:], reduction="sum").item()
    assert result["tokens"] == store.num_tokens
    assert result["bytes"] == sum(len(t.encode()) for t in TEXTS)
    assert result["loss"] * result["tokens"] == pytest.approx(expected, rel=1e-5)


def test_results_do_not_depend_on_batch_size_and_repeat_exactly(tiny_model, tiny_tokenizer):
    store = make_store(tiny_tokenizer, TEXTS * 3)
    windows, num_bytes = heldout_windows(store, seq_len=16, max_tokens=10_000)
    assert len(windows) > 4
    one = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=1, device="cpu")
    five = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=5, device="cpu")
    again = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=5, device="cpu")
    assert five == again
    assert one["loss"] == pytest.approx(five["loss"], abs=1e-6)
    assert one["tokens"] == five["tokens"] == store.num_tokens


def test_training_mode_is_restored_and_no_gradients_are_kept(tiny_model, tiny_tokenizer):
    store = make_store(tiny_tokenizer, TEXTS[:2])
    windows, num_bytes = heldout_windows(store, seq_len=16, max_tokens=10_000)
    tiny_model.train()
    evaluate_heldout(tiny_model, windows, num_bytes, batch_size=2, device="cpu")
    assert tiny_model.training
    assert all(p.grad is None for p in tiny_model.parameters())
    tiny_model.eval()
    evaluate_heldout(tiny_model, windows, num_bytes, batch_size=2, device="cpu")
    assert not tiny_model.training


def test_bf16_autocast_is_close_to_fp32(tiny_model, tiny_tokenizer):
    store = make_store(tiny_tokenizer, TEXTS)
    windows, num_bytes = heldout_windows(store, seq_len=32, max_tokens=10_000)
    fp32 = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=4, device="cpu")
    bf16 = evaluate_heldout(
        tiny_model, windows, num_bytes, batch_size=4, device="cpu", autocast_dtype=torch.bfloat16
    )
    assert bf16["loss"] == pytest.approx(fp32["loss"], rel=2e-2)
    assert bf16["tokens"] == fp32["tokens"]


def test_whole_documents_only_and_a_given_selection():
    """What a tokenizer change evaluates: never a window cut at a token position (other text under
    another tokenizer); and exactly the documents another tokenization's sample chose."""
    lengths = [40, 6, 300, 9, 12, 70, 5, 8]
    store = numbered_store(lengths)
    sample = sample_heldout(store, seq_len=16, max_tokens=60, whole_only=True)
    assert sample.cut_windows == 0 and sample.whole_documents == sample.documents >= 2
    assert sample.tokens == sum(lengths[i] for i in sample.document_indices) <= 60
    assert sample.num_bytes == 3 * sample.tokens
    too_long = sample_heldout(numbered_store([300, 200]), seq_len=16, max_tokens=60, whole_only=True)
    assert too_long.document_indices.tolist() == [1] and too_long.tokens == 200  # the shortest one

    chosen = np.array([2, 5])
    given = sample_heldout(store, seq_len=16, max_tokens=60, documents=chosen)
    assert np.array_equal(given.document_indices, chosen) and given.cut_windows == 0
    assert given.tokens == 370 and given.num_bytes == 3 * 370
    with pytest.raises(ValueError, match="positions"):
        sample_heldout(store, seq_len=16, max_tokens=60, documents=np.array([8]))


def test_position_buckets_double_from_an_eighth_of_the_window_up_to_1k():
    from forgetless.evaluate.heldout import position_buckets

    assert position_buckets(1024) == [(0, 128), (128, 256), (256, 512), (512, 1024)]
    assert position_buckets(32768) == [
        (0, 1024), (1024, 2048), (2048, 4096), (4096, 8192), (8192, 16384), (16384, 32768)
    ]
    assert position_buckets(1000) == [(0, 125), (125, 250), (250, 500), (500, 1000)]
    assert position_buckets(4) == [(0, 1), (1, 2), (2, 4)]


def test_document_positions_count_the_tokens_of_the_same_document_before_each_target():
    from forgetless.evaluate.heldout import document_positions, position_bucket_index

    # Whole documents of 5, 9, 4 and 7 tokens (EOS included) in windows of 8: the stream starts
    # with an EOS, so a target's position is its offset in its document (capped by the window).
    store = numbered_store([5, 9, 4, 7])
    windows, _ = heldout_windows(store, seq_len=8, max_tokens=1000)
    positions = document_positions(windows, EOS_ID)
    offsets = np.concatenate([np.arange(n) for n in (5, 9, 4, 7)])  # each token's offset in its document
    window_start = np.repeat(np.arange(len(windows)) * 8, 8)[: len(offsets)]  # stream index of x[1]
    # The model sees at most the window: x[0] plus the targets before this one.
    stream_index = np.arange(len(offsets))
    expected = np.minimum(offsets, stream_index - window_start + 1)
    got = positions.ravel()[: len(offsets)]
    assert np.array_equal(got, expected)
    assert (positions.ravel()[len(offsets) :] == -1).all()  # padding
    buckets = position_bucket_index(windows, EOS_ID)  # buckets 0-1, 1-2, 2-4, 4-8
    assert np.array_equal(buckets.ravel()[: len(offsets)], np.searchsorted([1, 2, 4], expected, side="right"))
    # A window cut from inside a long document: every target has its whole window before it.
    cut = np.array([[7, 8, 9, 10, 11]])
    assert document_positions(cut, EOS_ID).tolist() == [[1, 2, 3, 4]]


def test_losses_by_position_add_up_to_the_loss(tiny_model, tiny_tokenizer):
    from forgetless.evaluate.heldout import losses_by_position, position_bucket_index

    store = make_store(tiny_tokenizer, TEXTS * 3)
    windows, num_bytes = heldout_windows(store, seq_len=32, max_tokens=10_000)
    buckets = position_bucket_index(windows, EOS_ID)
    plain = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=3, device="cpu")
    result = evaluate_heldout(tiny_model, windows, num_bytes, batch_size=3, device="cpu", buckets=buckets)
    assert result["loss"] == plain["loss"]  # the buckets change nothing else
    by_position = losses_by_position(result["bucket_nll"], result["bucket_tokens"], 32)
    assert list(by_position["loss"]) == ["0-4", "4-8", "8-16", "16-32"]
    assert sum(by_position["tokens"].values()) == result["tokens"]
    mean = sum(by_position["loss"][k] * by_position["tokens"][k] for k in by_position["loss"]) / result["tokens"]
    assert mean == pytest.approx(result["loss"], rel=1e-9)
