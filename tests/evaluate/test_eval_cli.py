"""`forgetless eval`: any HF model dir on sources and question sets, and a run's final losses again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from conftest import TINY_LLAMA, sample_texts, tiny_llama
from forgetless.cli import main

QUESTIONS = [
    {
        "question": f"What comes after {n}?",
        "choices": [str(n + 1), str(n + 2), str(n - 1), "zero"],
        "answer": 0,
    }
    for n in range(1, 9)
]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    """A tiny Llama saved as a standard HF directory, with its tokenizer."""
    folder = tmp_path_factory.mktemp("model")
    tiny_llama(tiny_tokenizer).save_pretrained(folder)
    tiny_tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("corpus")
    return write_jsonl(folder / "docs.jsonl", [{"text": t} for t in sample_texts()[:12]])


def run_eval(args: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(["eval", *args])
        code = 0
    except SystemExit as exit_:
        code = int(exit_.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_source_file_is_evaluated_on_all_its_documents(
    tmp_path, model_dir, corpus, tiny_tokenizer, capsys, monkeypatch
):
    monkeypatch.setenv("FORGETLESS_CACHE", str(tmp_path / "cache"))
    questions = write_jsonl(tmp_path / "numbers.jsonl", QUESTIONS)
    out = tmp_path / "results" / "eval.json"
    code, stdout, stderr = run_eval(
        [
            str(model_dir),
            "--source",
            f"prose={corpus}",
            "--mcq",
            str(questions),
            "--seq-len",
            "64",
            "--json",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, stderr
    assert "prose" in stdout and "numbers" in stdout and "bits/byte" in stdout

    results = json.loads(out.read_text())
    texts = sample_texts()[:12]
    prose = results["heldout"]["prose"]
    # Every document, whichever split the data pipeline put it in: its tokens and its closing EOS.
    expected_tokens = sum(len(tiny_tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)
    assert prose["tokens"] == expected_tokens
    assert prose["bytes"] == sum(len(t.encode("utf-8")) for t in texts)
    assert prose["bpb"] == pytest.approx(
        prose["loss"] * prose["tokens"] / 0.6931471805599453 / prose["bytes"]
    )
    assert results["mcq"]["numbers"]["n"] == len(QUESTIONS)
    assert results["seq_len"] == 64 and results["precision"] == "fp32"
    assert results["lm_eval"] == {}


def test_max_tokens_limits_a_source_at_a_document_boundary(tmp_path, model_dir, corpus, capsys, monkeypatch):
    monkeypatch.setenv("FORGETLESS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "eval.json"
    code, _, stderr = run_eval(
        [
            str(model_dir),
            "--source",
            f"prose={corpus}",
            "--max-tokens",
            "3000",
            "--seq-len",
            "64",
            "--json",
            str(out),
            "--quiet",
        ],
        capsys,
    )
    assert code == 0, stderr
    prose = json.loads(out.read_text())["heldout"]["prose"]
    assert 0 < prose["tokens"] <= 3000


def write_run_config(tmp_path: Path, tokenizer_dir: Path, corpus: Path, questions: Path) -> Path:
    code = tmp_path / "code.jsonl"
    import json as json_module

    stdlib = Path(json_module.__file__).parent
    write_jsonl(code, [{"text": p.read_text()} for p in sorted(stdlib.glob("*.py"))])
    config = {
        "model": {"init": dict(TINY_LLAMA)},
        "tokenizer": str(tokenizer_dir),
        "sources": {
            "general": {"files": [str(corpus)], "heldout": {"documents": 3}},
            "code": {"files": [str(code)], "heldout": {"documents": 1}},
        },
        "stages": [
            {
                "name": "code",
                "tokens": 1024,
                "mix": {"code": 1.0},
                "schedule": {"kind": "constant", "peak_lr": 3e-3, "warmup": 0.0},
            },
        ],
        "train": {
            "seq_len": 32,
            "batch_tokens": 256,
            "micro_batch": 4,
            "log_every_steps": 1,
            "device": "cpu",
        },
        "eval": {"max_tokens": 700, "batch_size": 4, "dense_start": [], "mcq": [str(questions)]},
        "output": {"dir": str(tmp_path / "run")},
        "cache_dir": str(tmp_path / "cache"),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def test_the_final_model_of_a_run_gives_back_the_runs_final_losses(
    tmp_path, tiny_tokenizer_dir, corpus, capsys
):
    from forgetless.config import load_config
    from forgetless.train.run import run_training

    questions = write_jsonl(tmp_path / "numbers.jsonl", QUESTIONS)
    config_path = write_run_config(tmp_path, tiny_tokenizer_dir, corpus, questions)
    run_dir = run_training(load_config(config_path), quiet=True)
    capsys.readouterr()
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    final = [r for r in records if r.get("kind") == "eval"][-1]

    out = tmp_path / "eval.json"
    code, stdout, stderr = run_eval(
        [str(run_dir / "final"), "--config", str(config_path), "--json", str(out), "--quiet"], capsys
    )
    assert code == 0, stderr
    results = json.loads(out.read_text())
    assert set(results["heldout"]) == {"general", "code"}
    for source in ("general", "code"):
        assert results["heldout"][source]["loss"] == pytest.approx(final[f"eval/{source}/loss"], abs=1e-4)
        assert results["heldout"][source]["bpb"] == pytest.approx(final[f"eval/{source}/bpb"], abs=1e-4)
    assert results["mcq"]["numbers"]["acc"] == pytest.approx(final["mcq/numbers/acc"])


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["{missing}"], "nothing to evaluate"),
        (["{missing}", "--source", "prose="], "expected NAME=PATH"),
        (["{nowhere}", "--mcq", "{questions}"], "model directory not found"),
        (["{model}", "--mcq", "{bad}"], "bad.jsonl:2: "),
        (["{model}", "--mcq", "{questions}", "--device", "tpu"], "--device tpu"),
        (["{model}", "--set", "train.seed=1", "--mcq", "{questions}"], "--set needs --config"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(tmp_path, model_dir, capsys, args, complaint):
    questions = write_jsonl(tmp_path / "numbers.jsonl", QUESTIONS)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(QUESTIONS[0]) + '\n{"question": "q", "choices": ["a", "b"]}\n')
    names = {
        "missing": model_dir,
        "nowhere": tmp_path / "nowhere",
        "model": model_dir,
        "questions": questions,
        "bad": bad,
    }
    code, _, stderr = run_eval([a.format(**names) for a in args], capsys)
    assert code == 2
    assert complaint in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "Traceback" not in stderr


def test_lm_eval_results_join_the_same_json(tmp_path, model_dir, capsys):
    pytest.importorskip(
        "lm_eval", reason="lm-evaluation-harness is not installed (pip install 'forgetless[eval]')"
    )
    data = write_jsonl(tmp_path / "numbers.jsonl", QUESTIONS)
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "numbers.yaml").write_text(
        "task: numbers_mcq\ndataset_path: json\n"
        f"dataset_kwargs:\n  data_files:\n    test: {data.resolve()}\n"
        "test_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "{{question}}\\nAnswer:"\ndoc_to_choice: choices\ndoc_to_target: answer\n'
        "metric_list:\n  - metric: acc\n  - metric: acc_norm\n"
    )
    out = tmp_path / "eval.json"
    code, stdout, stderr = run_eval(
        [
            str(model_dir),
            "--mcq",
            str(data),
            "--lm-eval",
            "numbers_mcq",
            "--lm-eval-include",
            str(tasks),
            "--json",
            str(out),
        ],
        capsys,
    )
    assert code == 0, stderr
    results = json.loads(out.read_text())
    assert results["lm_eval"]["numbers_mcq"]["acc"] == pytest.approx(results["mcq"]["numbers"]["acc"])
    assert "numbers_mcq" in stdout
