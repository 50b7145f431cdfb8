"""Vocabulary extension: the tokens learned, the old ids kept, the new rows and what they do to the model."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import sample_texts, tiny_llama
from forgetless.config import ExtendVocabConfig
from forgetless.errors import UserError
from forgetless.evaluate.fertility import fertility
from forgetless.model.transform_contract import TransformContext
from forgetless.model.vocab import (
    NotEnoughText,
    add_rows,
    extend_vocab,
    extended_tokenizer_json,
    learn_tokens,
    with_backend,
)


def code_texts() -> list[str]:
    """Python source of the standard library's json package: the new domain."""
    from pathlib import Path

    return [path.read_text() for path in sorted(Path(json.__file__).parent.glob("*.py"))]


def extended(tokenizer, texts: list[str], count: int):
    learned = learn_tokens(tokenizer.backend_tokenizer, texts, count)
    serialized, first = extended_tokenizer_json(tokenizer.backend_tokenizer, learned)
    return learned, with_backend(tokenizer, serialized), first


@pytest.fixture(scope="module")
def bpe_extension(tiny_tokenizer):
    return extended(tiny_tokenizer, code_texts()[:4], 48)


def assert_extends(tokenizer, learned, new, first: int) -> None:
    """The BPE extension's promises, on the code it was learned on and on English prose: every new id
    stands for the old ids it joins (together, exactly the old tokenization), text without the new
    pieces keeps its ids, decoding gives the old decoding, and the code takes fewer tokens."""
    assert len(set(learned.tokens)) == len(learned.tokens) and not set(learned.tokens) & set(tokenizer.get_vocab())
    pieces = {first + k: ids for k, ids in enumerate(learned.pieces)}
    without_new = 0
    for text in [*code_texts(), *sample_texts()[:40]]:
        old = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = new(text, add_special_tokens=False)["input_ids"]
        assert [i for token in ids for i in pieces.get(token, [token])] == old
        if not any(token >= first for token in ids):
            without_new += 1
            assert ids == old
        assert new.decode(ids) == tokenizer.decode(old)
    assert without_new > 0
    before, after = fertility(tokenizer, code_texts()), fertility(new, code_texts())
    assert after["bytes"] == before["bytes"] and after["words"] == before["words"]
    assert after["tokens_per_byte"] < 0.95 * before["tokens_per_byte"]  # learned on code: fewer tokens there
    assert after["tokens_per_word"] < before["tokens_per_word"]


def test_bpe_extension_gives_the_old_ids_back_and_lowers_fertility(tiny_tokenizer, bpe_extension) -> None:
    learned, new, first = bpe_extension
    assert first == len(tiny_tokenizer) and len(new) == first + 48
    assert_extends(tiny_tokenizer, learned, new, first)


def test_the_extended_tokenizer_saves_and_loads_as_it_is(bpe_extension, tmp_path) -> None:
    from transformers import AutoTokenizer

    _, new, _ = bpe_extension
    new.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = code_texts()[0]
    assert again(text)["input_ids"] == new(text)["input_ids"] and len(again) == len(new)


# Llama 3's split pattern (its tokenizer.json, as transformers' tiktoken converter writes it).
LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"
    r"|\s+(?!\S)|\s+"
)
LLAMA3_SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>"]


def llama3_layout(backend):
    """`backend` (a byte-level BPE `tokenizers.Tokenizer`) laid out as Llama 3's tokenizer.json is:
    `ignore_merges` on, special tokens added after the model's vocabulary (not in it), a template
    that puts <|begin_of_text|> first; wrapped as a transformers fast tokenizer."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend.model.ignore_merges = True
    backend.add_special_tokens(LLAMA3_SPECIALS)
    bos = LLAMA3_SPECIALS[0]
    template = processors.TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B:1", special_tokens=[(bos, backend.token_to_id(bos))]
    )
    backend.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), template])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=LLAMA3_SPECIALS[1])


def tiny_llama3_tokenizer():
    """A 512-token byte-level BPE trained on the prose samples, behind Llama 3's split pattern."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    backend.train_from_iterator(sample_texts(), trainer=trainer)
    return llama3_layout(backend)


def assert_llama3_extension(tokenizer, count: int, tmp_path) -> None:
    """Extend a Llama-3-layout `tokenizer` by `count` tokens learned on code and check what the
    extension promises there, through a save and an `AutoTokenizer` load."""
    from transformers import AutoTokenizer

    learned, new, first = extended(tokenizer, code_texts()[:4], count)
    assert first == len(tokenizer) and len(new) == first + count
    assert_extends(tokenizer, learned, new, first)
    # The special tokens after the old vocabulary keep their ids (the new ones come after them).
    specials = tokenizer.convert_tokens_to_ids(LLAMA3_SPECIALS)
    assert max(specials) < first and new.convert_tokens_to_ids(LLAMA3_SPECIALS) == specials
    # ignore_merges emits a word found whole in the vocabulary as one token: a new token met as a
    # whole word must stand for the old ids that the old merges split that word into.
    backend = tokenizer.backend_tokenizer
    for token, pieces in zip(learned.tokens, learned.pieces, strict=True):
        assert [t.id for t in backend.model.tokenize(token)] == pieces, token
    words = {word for text in code_texts()[:4] for word, _ in backend.pre_tokenizer.pre_tokenize_str(text)}
    assert words & set(learned.tokens)  # the whole-word path is taken
    new.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer.json").read_text())
    assert saved["model"]["ignore_merges"] is True
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert len(again) == len(new) and again.convert_tokens_to_ids(LLAMA3_SPECIALS) == specials
    for text in [code_texts()[0], sample_texts()[0] + LLAMA3_SPECIALS[1]]:
        ids = again(text)["input_ids"]
        assert ids == new(text)["input_ids"] and ids[0] == specials[0]
        assert again.decode(ids, skip_special_tokens=True) == text.removesuffix(LLAMA3_SPECIALS[1])
    assert any(i >= first for i in again(code_texts()[0])["input_ids"])


def test_bpe_extension_of_a_llama3_style_tokenizer(tmp_path) -> None:
    assert_llama3_extension(tiny_llama3_tokenizer(), 48, tmp_path)


def test_bpe_extension_of_a_real_tiktoken_vocabulary(tmp_path) -> None:
    """Mistral's tekken vocabulary (130k byte-level BPE ranks, shipped with `mistral-common`)
    converted as transformers converts Llama 3's tiktoken file; skipped without the package."""
    import base64
    import importlib.util
    from pathlib import Path

    from tokenizers import Tokenizer

    spec = importlib.util.find_spec("mistral_common")  # the file only: the package is not imported
    folders = list(spec.submodule_search_locations or []) if spec is not None else []
    found = [Path(folder) / "data" / "tekken_240911.json" for folder in folders]
    found = [path for path in found if path.is_file()]
    if not found:
        pytest.skip("needs mistral-common (pip install mistral-common), which ships the tekken vocabulary")
    from transformers.convert_slow_tokenizer import TikTokenConverter

    data = json.loads(found[0].read_text())
    count = data["config"]["default_vocab_size"] - data["config"]["default_num_special_tokens"]
    ranks = {base64.b64decode(entry["token_bytes"]): entry["rank"] for entry in data["vocab"][:count]}

    class TekkenRanks(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(tiktoken_url: str) -> dict[bytes, int]:
            return ranks

    converted = TekkenRanks(vocab_file=str(found[0]), pattern=data["config"]["pattern"]).converted()
    backend = Tokenizer.from_str(converted.to_str())
    assert json.loads(backend.to_str())["model"]["ignore_merges"] is True
    assert_llama3_extension(llama3_layout(backend), 64, tmp_path)


def test_unigram_extension_adds_whole_pieces(tmp_path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.Unigram())
    backend.normalizer = normalizers.NFKC()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=200, special_tokens=["</s>", "<unk>"], unk_token="<unk>", show_progress=False
    )
    backend.train_from_iterator(sample_texts()[:20], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")
    learned, new, first = extended(tokenizer, code_texts()[:2], 24)
    assert first == len(tokenizer) and len(new) == first + 24 and learned.merges == []
    new_pieces = set(learned.tokens)
    for text in sample_texts()[20:40]:
        pieces = backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))
        if not any(piece in word for word, _ in pieces for piece in new_pieces):
            assert new(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert fertility(new, code_texts())["tokens_per_byte"] < fertility(tokenizer, code_texts())["tokens_per_byte"]
    piece = learned.tokens[0]
    assert [t.id for t in backend.model.tokenize(piece)] == learned.pieces[0]


def test_a_source_too_small_for_the_tokens_is_refused(tiny_tokenizer) -> None:
    with pytest.raises(NotEnoughText):
        learn_tokens(tiny_tokenizer.backend_tokenizer, ["def f(x):\n    return x\n"], 500)
    model = tiny_llama(tiny_tokenizer)
    spec = ExtendVocabConfig(kind="extend_vocab", **{"from": "code"}, new_tokens=500)
    context = TransformContext(key="model.transforms.0", source_texts=lambda source, limit: ["x = 1\n" * 3])
    expect = r"model\.transforms\.0\.new_tokens: 500 new tokens, but \d+ bytes of training text of source 'code' "
    with pytest.raises(UserError, match=expect + r"supply only \d+ .*add text to the source"):
        extend_vocab(model, tiny_tokenizer, spec, context)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_new_rows_leave_old_rows_and_hidden_states_of_old_ids_unchanged(tiny_tokenizer, tied) -> None:
    model = tiny_llama(tiny_tokenizer, tie_word_embeddings=tied).eval()
    rows = len(tiny_tokenizer)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    ids = torch.randint(0, rows, (2, 24), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        hidden = model.model(input_ids=ids).last_hidden_state
    pieces = [[3, 4], [5, 6, 7], [8]]
    grown = add_rows(model, range(rows, rows + 3), pieces, init="subtoken_mean", lm_head=None)
    embed = model.get_input_embeddings().weight
    assert embed.shape[0] == rows + 3 and model.config.vocab_size == rows + 3
    assert (model.get_output_embeddings().weight is embed) == tied
    assert set(grown) == ({"model.embed_tokens.weight"} if tied else {"model.embed_tokens.weight", "lm_head.weight"})
    for name, old in before.items():
        now = dict(model.named_parameters())[name]
        if name in grown:
            assert torch.equal(now[:rows], old) and grown[name] == (rows, rows + 3)
            for k, p in enumerate(pieces):
                torch.testing.assert_close(now[rows + k], old[p].mean(0))
        else:
            assert torch.equal(now, old), name
    with torch.no_grad():
        assert torch.equal(model.model(input_ids=ids).last_hidden_state, hidden)


def test_a_zero_head_lowers_old_log_probabilities_by_the_formula(tiny_tokenizer) -> None:
    model = tiny_llama(tiny_tokenizer, tie_word_embeddings=False).eval()
    rows, added = len(tiny_tokenizer), 40
    ids = torch.randint(0, rows, (2, 24), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(input_ids=ids).logits.double()
        add_rows(model, range(rows, rows + added), [[1, 2]] * added, init="subtoken_mean", lm_head="zero")
        after = model(input_ids=ids).logits.double()
    assert torch.equal(after[..., rows:], torch.zeros_like(after[..., rows:]))
    old_lse = torch.logsumexp(logits, -1, keepdim=True)
    change = after.log_softmax(-1)[..., :rows] - logits.log_softmax(-1)
    expected = -torch.log1p(added * torch.exp(0.0 - old_lse))  # log p falls by log(1 + n exp(0 - lse))
    torch.testing.assert_close(change, expected.expand_as(change), rtol=0, atol=1e-5)
    assert float(expected.abs().max()) > 1e-3  # the change is large enough to tell


def test_the_other_initialisers(tiny_tokenizer) -> None:
    rows = len(tiny_tokenizer)
    for init in ("mean_noise", "random", "zero"):
        model = tiny_llama(tiny_tokenizer, tie_word_embeddings=False)
        old = model.get_input_embeddings().weight.detach().clone()
        add_rows(model, range(rows, rows + 200), [[1]] * 200, init=init, lm_head="zero", noise_scale=1e-2)
        new = model.get_input_embeddings().weight[rows:].detach()
        assert torch.equal(model.get_output_embeddings().weight[rows:], torch.zeros(200, new.shape[1]))
        if init == "zero":
            assert torch.equal(new, torch.zeros_like(new))
        elif init == "random":
            assert new.std().item() == pytest.approx(model.config.initializer_range, rel=0.1)
        else:  # a draw around the old rows' mean with 1e-2 of their covariance: std about 0.1 x theirs
            assert (new.mean(0) - old.mean(0)).abs().max() < 0.1 * old.std()
            assert new.std(0).mean().item() == pytest.approx(0.1 * old.std(0).mean().item(), rel=0.25)


def test_a_tied_head_takes_no_lm_head_setting(tiny_tokenizer) -> None:
    model = tiny_llama(tiny_tokenizer, tie_word_embeddings=True)
    spec = ExtendVocabConfig(kind="extend_vocab", **{"from": "code"}, new_tokens=8, lm_head="zero")
    context = TransformContext(key="model.transforms.0", source_texts=lambda source, limit: code_texts())
    with pytest.raises(UserError, match=r"model\.transforms\.0\.lm_head: the model ties its output head"):
        extend_vocab(model, tiny_tokenizer, spec, context)


def test_new_rows_keep_old_rows_fixed_after_a_stage_that_moved_them(tiny_tokenizer) -> None:
    """The gradient mask, and the moments an earlier stage left: AdamW would move the old rows on
    them alone, so the stage zeroes them first."""
    from pathlib import Path

    from forgetless.config import StageConfig
    from forgetless.methods.base import MethodContext
    from forgetless.methods.new_rows import NewRowsOnly

    model = tiny_llama(tiny_tokenizer, tie_word_embeddings=True)
    rows = len(tiny_tokenizer)
    add_rows(model, range(rows, rows + 8), [[5, 6]] * 8, init="subtoken_mean", lm_head=None)
    embed = model.get_input_embeddings().weight
    optimizer = torch.optim.AdamW([embed], lr=1e-2, weight_decay=0.0)
    ids = torch.randint(0, rows + 8, (2, 16), generator=torch.Generator().manual_seed(3))

    def step(mask: NewRowsOnly | None) -> None:
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        if mask is not None:
            mask.before_optimizer_step()
        optimizer.step()

    for _ in range(3):  # an earlier stage trains the whole embedding
        step(None)
    before = embed.detach().clone()
    context = MethodContext(
        stage=StageConfig(name="s", tokens=1, mix={"a": 1.0}),
        stage_index=1,
        total_steps=3,
        last_stage=True,
        run_dir=Path("."),
        device=torch.device("cpu"),
        autocast_dtype=None,
        tokenizer=None,
        train_stores={},
        seq_len=16,
        micro_batch=2,
        seed=0,
        optimizer=optimizer,
        added_rows={"model.embed_tokens.weight": [(rows, rows + 8)]},
    )
    for p in model.parameters():
        p.requires_grad_(p is embed)
    mask = NewRowsOnly(None, model, context)
    mask.start()
    for _ in range(3):
        step(mask)
    assert torch.equal(embed[:rows], before[:rows])  # bit for bit
    assert not torch.equal(embed[rows:], before[rows:])


def test_new_rows_in_every_family_keep_old_logits_and_save_as_a_plain_model(tmp_path) -> None:
    """Over the families of tests/model/families.py (tied and untied heads, a head bias in phi): the
    logits of old tokens for old-id inputs are the base's, and final/ reloads with the new size."""
    from families import FAMILIES, VOCAB, tiny_family
    from transformers import AutoModelForCausalLM

    ids = torch.randint(3, VOCAB, (2, 12), generator=torch.Generator().manual_seed(5))
    for family in sorted(FAMILIES):
        model = tiny_family(family)
        with torch.no_grad():
            before = model(input_ids=ids, use_cache=False).logits
        add_rows(model, range(VOCAB, VOCAB + 5), [[3, 4]] * 5, init="mean_noise", lm_head=None, noise_scale=1e-2)
        with torch.no_grad():
            after = model(input_ids=ids, use_cache=False).logits
        assert after.shape[-1] == VOCAB + 5 and model.config.vocab_size == VOCAB + 5, family
        torch.testing.assert_close(after[..., :VOCAB], before, rtol=0, atol=1e-5, msg=family)
        if family not in ("gpt2", "llama", "phi"):  # a tied head, an untied one, a head with a bias
            continue
        model.save_pretrained(tmp_path / family)
        reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / family).eval()
        with torch.no_grad():
            again = reloaded(input_ids=ids, use_cache=False).logits
        torch.testing.assert_close(again, after, rtol=0, atol=1e-5, msg=family)


def test_a_resume_learns_the_same_tokens_or_refuses(tiny_tokenizer) -> None:
    spec = ExtendVocabConfig(kind="extend_vocab", **{"from": "code"}, new_tokens=16)
    first = extend_vocab(
        tiny_llama(tiny_tokenizer),
        tiny_tokenizer,
        spec,
        TransformContext(key="model.transforms.0", source_texts=lambda source, limit: code_texts()[:3]),
    )
    model = tiny_llama(tiny_tokenizer)
    again = extend_vocab(
        model,
        tiny_tokenizer,
        spec,
        TransformContext(
            key="model.transforms.0", resolved=first.resolved, source_texts=lambda source, limit: code_texts()[:3]
        ),
    )
    assert again.resolved == first.resolved and len(again.tokenizer) == len(tiny_tokenizer) + 16
    assert model.get_input_embeddings().weight.shape[0] == len(tiny_tokenizer) + 16  # grown once
    other = TransformContext(
        key="model.transforms.0", resolved=first.resolved, source_texts=lambda source, limit: code_texts()[3:6]
    )
    with pytest.raises(UserError, match=r"model\.transforms\.0: the tokens learned again from source 'code' differ"):
        extend_vocab(tiny_llama(tiny_tokenizer), tiny_tokenizer, spec, other)


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
def test_lora_after_an_extension_trains_the_new_rows_in_its_copies_or_is_refused(tiny_tokenizer, tied) -> None:
    """peft freezes the embedding (and head) it trains and trains a copy: the new rows are the copy's.
    LoRA that freezes a tensor with new rows is refused: they would never train."""
    pytest.importorskip("peft")
    from forgetless.config import LoraTransformConfig
    from forgetless.model.transforms import apply_transforms

    rows = len(tiny_tokenizer)
    extension = ExtendVocabConfig(kind="extend_vocab", **{"from": "code"}, new_tokens=8, init="subtoken_mean")
    texts = lambda source, limit: code_texts()  # noqa: E731

    def compose(**lora):
        specs = [extension, LoraTransformConfig(kind="lora", r=4, **lora)]
        return apply_transforms(tiny_llama(tiny_tokenizer, tie_word_embeddings=tied), tiny_tokenizer, specs, source_texts=texts)

    done = compose(train_embeddings=True, train_lm_head=True)
    params = dict(done.model.named_parameters())
    copies = ["model.embed_tokens.modules_to_save.default.weight"]
    if not tied:
        copies.append("lm_head.modules_to_save.default.weight")
    assert sorted(done.added_rows) == sorted(copies)
    for name in copies:
        assert done.added_rows[name] == [(rows, rows + 8)] and params[name].requires_grad
        original = params[name.replace("modules_to_save.default", "original_module")]
        assert torch.equal(params[name], original)  # the copy starts as the extended tensor, new rows included
    done.model(input_ids=torch.tensor([[rows, rows + 7, 3]]), labels=torch.tensor([[rows, rows + 7, 3]])).loss.backward()
    assert params[copies[0]].grad[rows].abs().sum() > 0  # the forward pass reads the copy's new rows

    refused = {"train_embeddings": r"model\.transforms\.1: lora freezes model\.embed_tokens\.weight, which holds new"}
    if not tied:
        refused["train_lm_head"] = r"model\.transforms\.1: lora freezes lm_head\.weight, which holds new tokens' rows"
    for missing, message in refused.items():
        flags = {"train_embeddings": True, "train_lm_head": True, missing: False}
        if tied:
            flags = {"train_embeddings": False, "train_lm_head": False}
        with pytest.raises(UserError, match=message):
            compose(**flags)
