"""Vocabulary extension: tokens learned from the new text, with new embedding and head rows.

    {kind: extend_vocab, from: code, new_tokens: 4096, init: subtoken_mean, lm_head: zero}

A tokenizer trained on other text splits the new domain or language into many short pieces (a high
*fertility*: tokens per byte or per word). Swallow, ChipNeMo and Chinese-LLaMA add tokens learned on
the new text and give each a new embedding row; Swallow and ChipNeMo start a row at the mean of the
embeddings of the old pieces the token replaces.

**Learning the tokens** (with the `tokenizers` library, on the source's first training documents up
to `sample_bytes`; held-out documents are never read):

- *BPE* tokenizers (GPT-2, Llama 3, Qwen, Mistral, Llama 2's byte-fallback BPE): BPE continues
  from the old tokenizer's output. Every pre-tokenized word of the sample is tokenized by the old
  tokenizer; each old token id stands for one character, and `tokenizers`' `BpeTrainer` learns
  merges over those characters, so every merge joins two tokens the old tokenizer really puts side
  by side. The merges are appended after the old ones (the lowest priority), each new token gets
  the next free id. BPE applies merges in priority order, so the extended tokenizer first produces
  exactly the old tokens and then joins some of them: for any text, replacing each new id by the
  old ids it joins gives the old tokenizer's ids, and text without the new pieces keeps its ids. A
  learned merge whose result is already an old token (reachable by another path) is skipped, with
  every merge built on it, so no old token appears where the old tokenizer did not put it.
  Special tokens added after the vocabulary (Llama 3, Qwen) keep their ids. With `ignore_merges`
  (Llama 3's tokenizer.json), a word that is a new token is emitted whole: the old merges split that
  word into exactly the old ids the token joins, since BPE splits a run of a word as it splits the
  run alone, so the promise holds.
- *Unigram* tokenizers (SentencePiece unigram: T5, XLM-R, ...): whole pieces. `UnigramTrainer`
  learns a vocabulary on the sample with the old normaliser and pre-tokenizer; the most likely
  pieces the old vocabulary lacks are appended with score 0 (the log-probability Chinese-LLaMA's
  merge of SentencePiece models gives added pieces), so the Viterbi segmentation uses them where
  they occur and is unchanged for text that does not contain them.

**New rows** (literature.md section 11): the embedding (and a separate output head) grow to hold
the new ids (`resize_token_embeddings`; the old rows are copied unchanged, tied weights stay tied).
`init` fills the new input rows: `subtoken_mean` (Swallow, ChipNeMo: the mean of the rows of the
old pieces of each token), `mean_noise` (Hewitt 2021: a draw from N(mu, noise_scale x Sigma) of the
old rows' mean and covariance), `random` (N(0, initializer_range)) or `zero`. `lm_head` fills an
untied head's new rows: `subtoken_mean` or `zero` (ChipNeMo); by default the head follows `init`.
A zero head row gives the new token the logit 0, so old tokens' log-probabilities fall by exactly
log(1 + n_new exp(-logsumexp of the old logits)); hidden states of old-id inputs do not change.

The run then prepares its data with the extended tokenizer (the shards are keyed by it), saves it
in the run directory and in `final/`, and measures fertility and bits per byte before and after
(see `forgetless.train.tokenizer_change`).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from forgetless.config import ExtendVocabConfig
from forgetless.errors import UserError
from forgetless.model.transform_contract import Outcome, TransformContext

_BYTE_FALLBACK = re.compile(r"^<0x[0-9A-Fa-f]{2}>$")
_METASPACE = "\u2581"
# Characters that stand for old token ids while BPE learns merges over them: private-use planes and
# CJK ideographs (none is whitespace, none is touched without a normaliser).
_SYMBOL_RANGES = (
    (0xE000, 0xF900),
    (0xF0000, 0xFFFFE),
    (0x100000, 0x10FFFE),
    (0x4E00, 0xA000),
    (0x3400, 0x4DC0),
    (0x20000, 0x2A6E0),
)


class NotEnoughText(ValueError):
    """The sample does not hold as many new tokens as asked for."""

    def __init__(self, found: int, wanted: int) -> None:
        super().__init__(f"the sample supplies {found} new tokens, {wanted} were asked for")
        self.found = found


class UnsupportedTokenizer(ValueError):
    """A tokenizer model that extension does not handle (WordPiece, WordLevel)."""


@dataclass
class LearnedTokens:
    """New tokens for a tokenizer: their strings (as the tokenizer's model spells them), in the
    order of their new ids, the old ids each stands for, and the BPE merges that make them (empty
    for Unigram pieces)."""

    tokens: list[str]
    pieces: list[list[int]]
    merges: list[tuple[str, str]]

    def to_json(self) -> dict[str, Any]:
        return {"tokens": self.tokens, "pieces": self.pieces, "merges": [list(m) for m in self.merges]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LearnedTokens:
        return cls(data["tokens"], data["pieces"], [(a, b) for a, b in data["merges"]])


# ---------------------------------------------------------------------------------------------
# The transform


def extend_vocab(model: Any, tokenizer: Any, spec: ExtendVocabConfig, context: TransformContext) -> Outcome:
    """Learn `spec.new_tokens` tokens on the source `spec.from_`, extend `tokenizer` (a HF fast
    tokenizer) and the model's embedding and head; return the transform's `Outcome` with the
    extended tokenizer and the new rows of each grown parameter.

    On a resumed run (`context.resolved`) the tokens are learned again from the same text and must
    give the same tokenizer (its fingerprint is in the record). Raises `UserError` naming
    `context.key` when the sample cannot supply the tokens, the tokenizer is not a BPE or Unigram
    fast tokenizer, or `lm_head` is set on a model whose head is its input embedding.
    """
    key = context.key
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"{key}: extend_vocab needs a fast tokenizer (tokenizer.json); got {type(tokenizer).__name__}")
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    tied = head is not None and head.weight is embed.weight
    if tied and spec.lm_head is not None:
        raise UserError(
            f"{key}.lm_head: the model ties its output head to the input embedding, so the head's new rows "
            "are the embedding's (set by init); leave lm_head out"
        )
    source_texts = context.source_texts
    if source_texts is None:
        raise UserError(f"{key}.from: no training text in this context")

    def learn() -> dict[str, Any]:
        texts = source_texts(spec.from_, spec.sample_bytes)
        read = sum(len(t.encode("utf-8")) for t in texts)
        try:
            learned = learn_tokens(backend, texts, spec.new_tokens, min_frequency=spec.min_frequency)
        except NotEnoughText as err:
            return {"error": err.found, "bytes": read}
        except UnsupportedTokenizer as err:
            return {"unsupported": str(err)}
        return {"learned": learned.to_json(), "bytes": read}

    outcome = context.agree(learn())  # rank 0's tokens on every rank
    if "unsupported" in outcome:
        raise UserError(f"{key}: {outcome['unsupported']}")
    if "error" in outcome:
        more = "raise sample_bytes" if outcome["bytes"] >= spec.sample_bytes else "add text to the source"
        raise UserError(
            f"{key}.new_tokens: {spec.new_tokens:,} new tokens, but {outcome['bytes']:,} bytes of training text "
            f"of source {spec.from_!r} supply only {outcome['error']:,} (that occur at least "
            f"min_frequency = {spec.min_frequency} times); lower new_tokens, or {more}"
        )
    learned = LearnedTokens.from_json(outcome["learned"])
    extended_json, first_id = extended_tokenizer_json(backend, learned)
    fingerprint = hashlib.sha256(extended_json.encode("utf-8")).hexdigest()
    if context.resolved is not None and context.resolved.get("tokenizer_sha256") != fingerprint:
        raise UserError(
            f"{key}: the tokens learned again from source {spec.from_!r} differ from the checkpoint's "
            "(its data or the tokenizers library changed); resume with the data the run started with"
        )
    new_tokenizer = with_backend(tokenizer, extended_json)
    new_ids = range(first_id, first_id + len(learned.tokens))
    rows = add_rows(
        model,
        new_ids,
        learned.pieces,
        init=spec.init,
        lm_head=spec.lm_head,
        noise_scale=spec.noise_scale,
    )
    resolved = {
        "tokenizer_sha256": fingerprint,
        "new_ids": [new_ids.start, new_ids.stop],
        "vocab_before": len(tokenizer),
        "vocab_after": len(new_tokenizer),
        "sample_bytes": outcome["bytes"],
        "examples": [new_tokenizer.convert_tokens_to_string([t]) for t in learned.tokens[:12]],
    }
    return Outcome(added=[], resolved=resolved, tokenizer=new_tokenizer, added_rows=rows)


# ---------------------------------------------------------------------------------------------
# Learning tokens


def learn_tokens(backend: Any, texts: Iterable[str], count: int, *, min_frequency: int = 2) -> LearnedTokens:
    """`count` new tokens for `backend` (a `tokenizers.Tokenizer` with a BPE or Unigram model)
    learned on `texts`. Raises `NotEnoughText` when the texts hold fewer, `UnsupportedTokenizer`
    for another model type."""
    kind = json.loads(backend.to_str())["model"]["type"]
    texts = list(texts)
    if kind == "BPE":
        return learn_bpe_merges(backend, texts, count, min_frequency=min_frequency)
    if kind == "Unigram":
        return learn_unigram_pieces(backend, texts, count)
    raise UnsupportedTokenizer(
        f"extend_vocab handles BPE and Unigram tokenizers; this one is {kind} (tokenizer.json model.type)"
    )


def learn_bpe_merges(backend: Any, texts: list[str], count: int, *, min_frequency: int = 2) -> LearnedTokens:
    """Merges that continue BPE from the old tokenizer's output on `texts` (see the module
    docstring), until `count` tokens the old vocabulary lacks are made."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    vocab = backend.get_vocab(with_added_tokens=False)
    spelled = {i: t for t, i in vocab.items()}
    symbols = _SymbolTable()
    words = list(_symbol_words(backend, texts, symbols, spelled))
    ask = count + count // 4 + 16
    while True:
        learner = Tokenizer(models.BPE())
        learner.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.BpeTrainer(
            vocab_size=len(symbols) + ask, min_frequency=min_frequency, show_progress=False, special_tokens=[]
        )
        learner.train_from_iterator(words, trainer=trainer)
        merges = [_pair(m) for m in json.loads(learner.to_str())["model"]["merges"]]
        learned = _keep_new(merges, symbols, spelled, set(vocab), count)
        if len(learned.tokens) == count:
            return learned
        if len(merges) < ask:  # the trainer ran out of pairs that occur min_frequency times
            raise NotEnoughText(len(learned.tokens), count)
        ask *= 2


def _keep_new(
    merges: list[tuple[str, str]], symbols: _SymbolTable, spelled: dict[int, str], old: set[str], count: int
) -> LearnedTokens:
    """The learned merges (over symbol strings) as merges of token strings, up to `count` new tokens:
    a merge whose result is an old token is dropped, and so is every merge that builds on it."""
    usable: dict[str, str] = {}  # symbol string -> the token string it spells

    def spelling(symbol: str) -> str | None:
        if len(symbol) == 1:
            return spelled[symbols.ids[symbol]]
        return usable.get(symbol)

    tokens: list[str] = []
    pieces: list[list[int]] = []
    kept: list[tuple[str, str]] = []
    seen_pairs: set[tuple[str, str]] = set()
    new: set[str] = set()
    for a, b in merges:
        left, right = spelling(a), spelling(b)
        if left is None or right is None:
            continue
        joined = left + right
        if joined in old:
            continue
        usable[a + b] = joined
        if (left, right) not in seen_pairs:
            seen_pairs.add((left, right))
            kept.append((left, right))
        if joined not in new:
            new.add(joined)
            tokens.append(joined)
            pieces.append([symbols.ids[c] for c in a + b])
            if len(tokens) == count:
                break
    return LearnedTokens(tokens, pieces, kept)


class _SymbolTable:
    """One character per old token id seen in the sample."""

    def __init__(self) -> None:
        self.chars: dict[int, str] = {}
        self.ids: dict[str, int] = {}
        self._free = (cp for low, high in _SYMBOL_RANGES for cp in range(low, high))

    def __len__(self) -> int:
        return len(self.chars)

    def char(self, token_id: int) -> str:
        found = self.chars.get(token_id)
        if found is None:
            try:
                found = chr(next(self._free))
            except StopIteration:
                raise UnsupportedTokenizer("the sample uses more distinct tokens than extend_vocab can follow") from None
            self.chars[token_id] = found
            self.ids[found] = token_id
        return found


def _symbol_words(backend: Any, texts: list[str], symbols: _SymbolTable, spelled: dict[int, str]) -> Iterator[str]:
    """Each text as its pre-tokenized words, each word as one symbol per old token, words separated
    by spaces. Special tokens and byte-fallback tokens end a word (BPE never merges them); so does a
    token that starts with the SentencePiece space mark."""
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(backend.to_str())
    encoder.no_truncation()
    encoder.no_padding()
    breakers = {i for i, t in spelled.items() if _BYTE_FALLBACK.match(t)}
    breakers |= set(backend.get_added_tokens_decoder())
    starts = {i for i, t in spelled.items() if t.startswith(_METASPACE)}
    for first in range(0, len(texts), 64):
        for encoding in encoder.encode_batch(texts[first : first + 64], add_special_tokens=False):
            parts: list[str] = []
            previous = None
            for token_id, word in zip(encoding.ids, encoding.word_ids, strict=True):
                if word is None or token_id in breakers:
                    previous = None
                    parts.append(" ")
                    continue
                if (word != previous or token_id in starts) and parts:
                    parts.append(" ")
                parts.append(symbols.char(token_id))
                previous = word
            yield "".join(parts)


def _pair(merge: Any) -> tuple[str, str]:
    if isinstance(merge, str):
        a, b = merge.split(" ")
        return a, b
    return merge[0], merge[1]


def learn_unigram_pieces(backend: Any, texts: list[str], count: int) -> LearnedTokens:
    """The `count` most likely pieces the old vocabulary lacks, from a unigram vocabulary learned on
    `texts` with the old normaliser and pre-tokenizer."""
    from tokenizers import Tokenizer, models, trainers

    old = backend.get_vocab(with_added_tokens=True)
    size = max(2 * count, count + 1000)
    while True:
        learner = Tokenizer(models.Unigram())
        if backend.normalizer is not None:
            learner.normalizer = backend.normalizer
        if backend.pre_tokenizer is not None:
            learner.pre_tokenizer = backend.pre_tokenizer
        trainer = trainers.UnigramTrainer(vocab_size=size, show_progress=False, special_tokens=[])
        learner.train_from_iterator(texts, trainer=trainer)
        learned_vocab = json.loads(learner.to_str())["model"]["vocab"]
        ranked = sorted(((score, piece) for piece, score in learned_vocab), key=lambda item: -item[0])
        tokens = [piece for _, piece in ranked if piece not in old][:count]
        if len(tokens) == count:
            pieces = [[t.id for t in backend.model.tokenize(piece)] for piece in tokens]
            return LearnedTokens(tokens, pieces, [])
        if len(learned_vocab) < size:
            raise NotEnoughText(len(tokens), count)
        size *= 2


# ---------------------------------------------------------------------------------------------
# The extended tokenizer


def extended_tokenizer_json(backend: Any, learned: LearnedTokens) -> tuple[str, int]:
    """The serialized tokenizer with `learned` appended, and the first new id."""
    data = json.loads(backend.to_str())
    model = data["model"]
    added_ids = [t["id"] for t in data.get("added_tokens") or []]
    if model["type"] == "BPE":
        first = 1 + max([*model["vocab"].values(), *added_ids])
        # Llama 3's and Qwen's special tokens are added tokens after the model's vocabulary, not in it.
        # When `tokenizers` loads a file it gives such a token the id that counts the model's entries,
        # which the new tokens would make one of theirs: in the vocabulary at its own id it keeps it.
        taken = set(model["vocab"].values())
        for added in data.get("added_tokens") or []:
            if added["content"] not in model["vocab"] and added["id"] not in taken:
                model["vocab"][added["content"]] = added["id"]
        for offset, token in enumerate(learned.tokens):
            model["vocab"][token] = first + offset
        as_strings = bool(model["merges"]) and isinstance(model["merges"][0], str)
        model["merges"].extend(f"{a} {b}" if as_strings else [a, b] for a, b in learned.merges)
    else:
        first = len(model["vocab"])
        if any(i >= first for i in added_ids):
            raise UserError(
                "extend_vocab: the tokenizer has added tokens after its unigram vocabulary; "
                "new pieces cannot be appended without moving their ids"
            )
        model["vocab"].extend([token, 0.0] for token in learned.tokens)
    return json.dumps(data, ensure_ascii=False), first


def with_backend(tokenizer: Any, serialized: str) -> Any:
    """A copy of the HF fast `tokenizer` whose Rust tokenizer is `serialized` (its class, special
    tokens and settings kept), as `save_pretrained` then `from_pretrained` would give it."""
    import tempfile
    from pathlib import Path

    from transformers import AutoTokenizer

    with tempfile.TemporaryDirectory(prefix="forgetless-vocab-") as folder:
        tokenizer.save_pretrained(folder)
        for stale in ("vocab.json", "merges.txt", "tokenizer.model", "vocab.txt"):
            (Path(folder) / stale).unlink(missing_ok=True)
        (Path(folder) / "tokenizer.json").write_text(serialized, encoding="utf-8")
        return AutoTokenizer.from_pretrained(folder)


# ---------------------------------------------------------------------------------------------
# The new rows


@torch.no_grad()
def add_rows(
    model: Any,
    new_ids: range,
    pieces: list[list[int]],
    *,
    init: str,
    lm_head: str | None,
    noise_scale: float = 1e-5,
) -> dict[str, tuple[int, int]]:
    """Grow the input embedding (and a separate output head) of `model` to hold `new_ids` and fill
    their rows; return the name of each grown parameter with the rows `(start, stop)` filled.
    `pieces[k]` are the old ids of new token k. Rows of other ids keep their values bit for bit."""
    embed = model.get_input_embeddings()
    rows = max(embed.weight.shape[0], new_ids.stop)
    if rows > embed.weight.shape[0]:
        model.resize_token_embeddings(rows, mean_resizing=False)
    embed = model.get_input_embeddings()
    head = model.get_output_embeddings()
    generator = torch.Generator().manual_seed(0)
    std = float(getattr(model.config, "initializer_range", 0.02) or 0.02)
    old_rows = new_ids.start
    _fill(embed.weight, new_ids, pieces, init, old_rows, noise_scale, std, generator)
    grown = [embed.weight]
    if head is not None and head.weight is not embed.weight:
        _fill(head.weight, new_ids, pieces, lm_head or init, old_rows, noise_scale, std, generator)
        bias = getattr(head, "bias", None)
        if isinstance(bias, torch.Tensor) and bias.shape[0] == rows:
            means = [bias[p].float().mean() if (lm_head or init) == "subtoken_mean" else 0.0 for p in pieces]
            bias[new_ids.start : new_ids.stop] = torch.tensor(means, dtype=bias.dtype, device=bias.device)
        grown.append(head.weight)
    names = {id(p): name for name, p in model.named_parameters()}
    return {names[id(p)]: (new_ids.start, new_ids.stop) for p in grown}


def _fill(
    weight: torch.Tensor,
    new_ids: range,
    pieces: list[list[int]],
    how: str,
    old_rows: int,
    noise_scale: float,
    std: float,
    generator: torch.Generator,
) -> None:
    count, width = len(new_ids), weight.shape[1]
    if how == "subtoken_mean":
        values = torch.stack([weight[p].float().mean(0) for p in pieces])
    elif how == "mean_noise":
        old = weight[:old_rows].double()
        mean = old.mean(0)
        centred = old - mean
        covariance = centred.T @ centred / max(old_rows - 1, 1)
        jitter = 1e-10 * float(covariance.diagonal().mean().clamp(min=1e-30))
        factor = torch.linalg.cholesky(covariance + jitter * torch.eye(width, dtype=torch.float64))
        noise = torch.randn(count, width, generator=generator, dtype=torch.float64)
        values = (mean + (noise_scale**0.5) * noise.to(mean.device) @ factor.T).float()
    elif how == "random":
        values = torch.randn(count, width, generator=generator) * std
    elif how == "zero":
        values = torch.zeros(count, width)
    else:
        raise ValueError(f"unknown initialiser {how!r}")
    weight[new_ids.start : new_ids.stop] = values.to(device=weight.device, dtype=weight.dtype)
