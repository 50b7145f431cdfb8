"""The build: held-out splits, the tokenizer, the corpus and question files, the manifest."""

from __future__ import annotations

import gzip
import io
import json
import shutil
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

from tools.build_bundle.attack import attack_documents
from tools.build_bundle.austen import austen_documents
from tools.build_bundle.card import data_card, licenses_text
from tools.build_bundle.common import (
    EOS,
    HELDOUT_BYTE_FRACTION,
    HELDOUT_MIN_DOCUMENTS,
    VOCAB_SIZE,
    BuildError,
    Document,
    rank,
    sha256_bytes,
    slug,
    words,
)
from tools.build_bundle.cpython import code_documents
from tools.build_bundle.cwe import cwe_category_documents, cwe_entries
from tools.build_bundle.kjv import kjv_documents
from tools.build_bundle.pins import verify_inputs
from tools.build_bundle.questions import general_questions, security_questions
from tools.build_bundle.sources import (
    CORPUS_DESCRIPTIONS,
    CORPUS_SOURCES,
    MCQ_SOURCES,
    MINIMUM_WORDS,
    QUESTION_SET_DESCRIPTIONS,
    SOURCES,
)
from tools.build_bundle.wikipedia import wikipedia_documents, wikipedia_pages
from tools.build_bundle.wordnet import wordnet_documents, wordnet_synsets


def heldout_split(corpus: str, docs: list[Document]) -> tuple[list[Document], list[Document]]:
    """Held-out = whole groups (a document, or all parts of one file or article) taken in the order of
    sha256(corpus, group) until both HELDOUT_MIN_DOCUMENTS documents and HELDOUT_BYTE_FRACTION of the
    corpus bytes are held out. Deterministic, and no document is in both splits."""
    groups: dict[str, list[Document]] = defaultdict(list)
    for doc in docs:
        groups[doc.group or doc.id].append(doc)
    total_bytes = sum(len(d.text.encode()) for d in docs)
    heldout_groups, n_docs, n_bytes = set(), 0, 0
    for group in sorted(groups, key=lambda g: rank("heldout", corpus, g)):
        if n_docs >= HELDOUT_MIN_DOCUMENTS and n_bytes >= HELDOUT_BYTE_FRACTION * total_bytes:
            break
        heldout_groups.add(group)
        n_docs += len(groups[group])
        n_bytes += sum(len(d.text.encode()) for d in groups[group])
    train = [d for d in docs if (d.group or d.id) not in heldout_groups]
    heldout = [d for d in docs if (d.group or d.id) in heldout_groups]
    return train, heldout


def train_tokenizer(texts: list[str], out_dir: Path):
    """Byte-level BPE (vocab 8192, one special token used as eos/bos/pad), no normalizer and no prefix space,
    so decode(encode(text)) == text exactly. Returns the `tokenizers.Tokenizer`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        eos_token=EOS,
        bos_token=EOS,
        pad_token=EOS,
        clean_up_tokenization_spaces=False,
    )
    if out_dir.exists():
        shutil.rmtree(out_dir)
    fast.save_pretrained(str(out_dir))
    # name the class every transformers version knows (5.x writes its own backend class name)
    config_path = out_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return tokenizer


def write_jsonl_gz(path: Path, records: Iterable[dict]) -> None:
    """gzip with mtime 0, no file name and compresslevel 9: the same records give the same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for record in records:
            gz.write((json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8"))
    path.write_bytes(buffer.getvalue())


def write_jsonl(path: Path, records: Iterable[dict]) -> None:
    path.write_bytes("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8"))


def split_facts(docs: list[Document], tokenizer, path: Path) -> dict:
    texts = [d.text for d in docs]
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch(texts))
    return {
        "file": f"{path.parent.name}/{path.name}",
        "documents": len(docs),
        "words": sum(words(t) for t in texts),
        "tokens": tokens,
        "bytes": sum(len(t.encode("utf-8")) for t in texts),
        "file_bytes": path.stat().st_size,
        "sha256": sha256_bytes(path.read_bytes()),
    }


def build(root: Path, stdlib: Path, out: Path, card: Path) -> dict:
    verify_inputs(root)
    print("reading sources ...", flush=True)
    synsets = wordnet_synsets(root)
    wordnet_docs, synset_doc = wordnet_documents(synsets)
    pages = wikipedia_pages(root)
    wikipedia_docs = wikipedia_documents(pages)
    used_pages = [p for p in pages if f"wikipedia/{slug(p.title)}" in {d.group for d in wikipedia_docs}]
    general = austen_documents(root) + kjv_documents(root) + wikipedia_docs + wordnet_docs
    cwe = cwe_entries(root)
    attack_docs, techniques = attack_documents(root)
    security = [e.document for e in cwe] + cwe_category_documents(root) + attack_docs
    code = code_documents(stdlib)
    corpora = {"general": general, "security": security, "code": code}
    for name, docs in corpora.items():
        ids = [d.id for d in docs]
        if len(set(ids)) != len(ids):
            raise BuildError(
                f"{name}: duplicate document ids {[i for i, n in Counter(ids).items() if n > 1][:5]}"
            )
        total = sum(words(d.text) for d in docs)
        if total < MINIMUM_WORDS[name]:
            raise BuildError(f"{name}: {total:,} words, below the promised {MINIMUM_WORDS[name]:,}")

    splits = {name: heldout_split(name, docs) for name, docs in corpora.items()}

    for sub in ("corpora", "mcq"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    print("training the tokenizer ...", flush=True)
    tokenizer = train_tokenizer([d.text for d in splits["general"][0]], out / "tokenizer")

    manifest: dict = {"format": 1, "corpora": {}, "question_sets": {}}
    for name, (train, heldout) in splits.items():
        facts = {"description": CORPUS_DESCRIPTIONS[name], "sources": CORPUS_SOURCES[name], "splits": {}}
        for split, docs in (("train", train), ("heldout", heldout)):
            path = out / "corpora" / f"{name}.{split}.jsonl.gz"
            write_jsonl_gz(path, (d.record() for d in docs))
            facts["splits"][split] = split_facts(docs, tokenizer, path)
        by_source: dict[str, dict[str, int]] = {}
        for doc in train + heldout:
            entry = by_source.setdefault(doc.source, {"documents": 0, "words": 0})
            entry["documents"] += 1
            entry["words"] += words(doc.text)
        facts["by_source"] = by_source
        _check_heldout(name, facts["splits"])
        manifest["corpora"][name] = facts

    train_ids = {d.id for docs in (splits["security"][0], splits["general"][0]) for d in docs}
    question_sets = {
        "security-mcq": security_questions(cwe, techniques, train_ids),
        "general-mcq": general_questions(synsets, synset_doc, train_ids),
    }
    for name, items in question_sets.items():
        if len(items) < 1000:
            raise BuildError(f"{name}: {len(items)} items, below the promised 1,000")
        path = out / "mcq" / f"{name}.jsonl"
        write_jsonl(path, items)
        manifest["question_sets"][name] = {
            "description": QUESTION_SET_DESCRIPTIONS[name],
            "file": f"mcq/{path.name}",
            "items": len(items),
            "choices": 4,
            "chance": 0.25,
            "by_source": dict(sorted(Counter(i["source"] for i in items).items())),
            "answer_positions": [sum(1 for i in items if i["answer"] == k) for k in range(4)],
            "sources": MCQ_SOURCES[name],
            "bytes": path.stat().st_size,
            "sha256": sha256_bytes(path.read_bytes()),
        }

    manifest["tokenizer"] = {
        "dir": "tokenizer",
        "kind": "byte-level BPE",
        "vocab_size": tokenizer.get_vocab_size(),
        "special_tokens": [EOS],
        "eos_token": EOS,
        "bos_token": EOS,
        "pad_token": EOS,
        "trained_on": "general/train",
        "files": {p.name: sha256_bytes(p.read_bytes()) for p in sorted((out / "tokenizer").iterdir())},
    }
    manifest["heldout_rule"] = (
        f"whole groups (a document, or all parts of one stdlib file or Wikipedia article) in the order of "
        f"sha256('heldout', corpus, group) until at least {HELDOUT_MIN_DOCUMENTS} documents and "
        f"{HELDOUT_BYTE_FRACTION:.0%} of the corpus bytes are held out"
    )
    manifest["sources"] = SOURCES
    manifest["built_with"] = built_with()
    manifest["licenses_file"] = "LICENSES.md"
    (out / "LICENSES.md").write_text(licenses_text(root, stdlib, used_pages), encoding="utf-8")
    manifest["total_bytes"] = _bundle_bytes(out)
    (out / "manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    card.parent.mkdir(parents=True, exist_ok=True)
    card.write_text(data_card(manifest), encoding="utf-8")
    return manifest


def built_with() -> dict[str, str]:
    """The versions the output bytes depend on besides the pinned inputs."""
    import tokenizers
    import transformers

    return {
        "python": sys.version.split()[0],
        "tokenizers": tokenizers.__version__,
        "transformers": transformers.__version__,
        "zlib": zlib.ZLIB_RUNTIME_VERSION,
    }


def _check_heldout(name: str, split_facts_: dict) -> None:
    train, heldout = split_facts_["train"], split_facts_["heldout"]
    share = heldout["tokens"] / (train["tokens"] + heldout["tokens"])
    if heldout["documents"] < 50 or share < 0.02:
        raise BuildError(f"{name}: held-out has {heldout['documents']} documents and {share:.2%} of tokens")


def _bundle_bytes(out: Path) -> int:
    """Bytes of every data file the build writes (manifest.json not counted: it holds this number)."""
    files = [p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json"]
    return sum(p.stat().st_size for p in files if "__pycache__" not in p.parts and p.suffix != ".py")
