"""The bad-input catalogue: every malformed config, data file, tokenizer, model or checkpoint gives
exit code 2 and one line naming what is wrong, and leaves an earlier run directory as it was.

Each case starts from a valid config whose output directory holds a finished run (a copy per case),
breaks one thing, and runs `forgetless train CONFIG --resume` (or `prepare`) in this process.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from faults_helpers import cli, fault_config, quoted, record, snapshot, write_config, write_corpus
from forgetless.config import load_config
from forgetless.model.load import build_model, save_model
from forgetless.train import checkpoint as ckpt
from forgetless.train.run import run_training


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far slower with threads competing for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@dataclass
class Setup:
    """What a case may break: the config (as a dict, or as raw YAML text), files under `tmp`, the
    arguments, and the copy of the earlier run."""

    tmp: Path
    config: dict[str, Any]
    run_dir: Path
    model_dir: Path
    config_text: str | bytes | None = None

    def file(self, name: str, data: bytes | str) -> str:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return str(path)

    def source(self, *files: str, **settings: Any) -> None:
        heldout = self.config["sources"]["general"].get("heldout")  # a resume must keep the split
        self.config["sources"]["general"] = {"files": list(files), "heldout": heldout, **settings}

    def model_copy(self, name: str = "model") -> Path:
        return Path(shutil.copytree(self.model_dir, self.tmp / name))


@dataclass
class Case:
    edit: Callable[[Setup], list[str] | None]  # breaks the setup; may return extra arguments
    expect: str  # a regular expression the one stderr line must match
    command: str = "train"
    resume: bool = True  # --resume the earlier run (else: train into it, which must be refused)
    fresh: bool = False  # train into a new --out instead: for input a resume refuses by its keys first


def _set(path: str, value: Any) -> Callable[[Setup], None]:
    def edit(s: Setup) -> None:
        node: Any = s.config
        *parents, leaf = path.split(".")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(leaf) if isinstance(node, list) else leaf] = value

    return edit


def _yaml(text: str | bytes) -> Callable[[Setup], None]:
    def edit(s: Setup) -> None:
        s.config_text = text

    return edit


def _args(*args: str) -> Callable[[Setup], list[str]]:
    return lambda s: list(args)


def _model_dir(change: Callable[[Path], None]) -> Callable[[Setup], None]:
    def edit(s: Setup) -> None:
        folder = s.model_copy()
        change(folder)
        s.config["model"] = {"path": str(folder)}

    return edit


def _pickled(folder: Path) -> None:
    from safetensors.torch import load_file

    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()


def _custom_code(folder: Path) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(
        model_type="forgetless_test_custom", auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"}
    )
    (folder / "config.json").write_text(json.dumps(config))


def _small_vocab_model(s: Setup) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=100, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    folder = s.tmp / "small-vocab"
    LlamaForCausalLM(config).save_pretrained(folder)
    s.config["model"] = {"path": str(folder)}


def _data(name: str, data: bytes | str, **settings: Any) -> Callable[[Setup], None]:
    return lambda s: s.source(s.file(name, data), **settings)


def _reordered_documents(s: Setup) -> None:
    """The same documents in the opposite order, in a file of the same name: the same token count."""
    general = s.config["sources"]["general"]
    lines = Path(general["files"][0]).read_text(encoding="utf-8").splitlines(keepends=True)
    s.source(s.file("data/general.jsonl", "".join(reversed(lines))))


def _replay_from_another_source(s: Setup) -> None:
    """Stage 0 also replays a second source (a copy of general under another name)."""
    s.config["sources"]["extra"] = dict(s.config["sources"]["general"])
    s.config["stages"][0]["replay"] = {"from": "extra", "ratio": 0.25}


def _without_run_config(edit: Callable[[Setup], Any], metrics: bool = False) -> Callable[[Setup], Any]:
    """`edit`, in a run directory that lost its config.yaml (and metrics.jsonl): an older run, or a
    copied checkpoint; the checkpoint's own checks must still refuse."""

    def without(s: Setup) -> Any:
        (s.run_dir / "config.yaml").unlink()
        if metrics:
            (s.run_dir / "metrics.jsonl").write_text("")
        return edit(s)

    return without


def _nan_weights(s: Setup) -> None:
    from safetensors.torch import load_file, save_file

    folder = s.model_copy()
    weights = load_file(folder / "model.safetensors")
    name = next(k for k in weights if k.endswith("mlp.down_proj.weight"))
    weights[name][0, 0] = float("nan")
    save_file(weights, folder / "model.safetensors", metadata={"format": "pt"})
    s.config["model"] = {"path": str(folder)}


def _tiny_source(evaluated: bool) -> Callable[[Setup], None]:
    def edit(s: Setup) -> None:
        s.config["sources"]["tiny"] = {"files": [s.file("tiny.txt", "hi there")]}  # one document
        s.config["stages"][1]["mix"] = {"tiny": 1.0}
        if not evaluated:
            s.config["eval"]["sources"] = ["general"]

    return edit


def _twice(s: Setup) -> None:
    s.config_text = yaml.safe_dump(s.config, sort_keys=False) + "train: {seed: 1}\n"


def _a_file(name: str, *under: str) -> Callable[[Setup], list[str]]:
    return lambda s: ["--out", str(Path(s.file(name, "not a folder"), *under))]


def _without(tensor: str) -> Callable[[Path], None]:
    def change(folder: Path) -> None:
        from safetensors.torch import load_file, save_file

        tensors = load_file(folder / "model.safetensors")
        del tensors[tensor]
        save_file(tensors, folder / "model.safetensors", metadata={"format": "pt"})

    return change


def _gpt2_of(positions: int) -> Callable[[Setup], None]:
    def edit(s: Setup) -> None:
        s.config["model"]["init"] = {
            "architecture": "gpt2",
            "hidden_size": 32,
            "num_layers": 1,
            "num_heads": 2,
            "max_position_embeddings": positions,
        }

    return edit


def _corrupt_checkpoint_state(s: Setup) -> None:
    (ckpt.latest_checkpoint(s.run_dir) / "trainer.json").write_text('{"position": {"step": ')


def _missing_config(s: Setup) -> list[str]:
    s.config_text = None
    return ["--missing-config"]


def _long_stage_without_rope(s: Setup) -> None:
    s.config["model"]["init"]["max_position_embeddings"] = 32
    s.config["stages"][1].update(seq_len=64)


def _phi3_with_yarn(s: Setup) -> None:
    s.config["model"] = {
        "init": {**s.config["model"]["init"], "architecture": "phi3"},
        "transforms": [{"kind": "rope_scaling", "type": "yarn", "factor": 2}],
    }


def _gpt2_upcycled(s: Setup) -> None:
    s.config["model"] = {
        "init": {**s.config["model"]["init"], "architecture": "gpt2"},
        "transforms": [{"kind": "upcycle_moe", "experts": 4, "top_k": 2}],
    }


def _jsonl(*records: Any) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


CASES: dict[str, Case] = {
    # The config file
    "wrong type": Case(_set("train.micro_batch", "four"), r"config\.yaml:\d+: train\.micro_batch: .*integer"),
    "unknown key, with a suggestion": Case(
        _set("train.seq_lenn", 32), r"train\.seq_lenn: unknown key \(did you mean 'seq_len'\?\)"
    ),
    "unknown section, with a suggestion": Case(
        _set("reliabilty", {}), r"reliabilty: unknown key \(did you mean 'reliability'\?\)"
    ),
    "zero token budget": Case(_set("stages.0.tokens", 0), r"stages\.0\.tokens: .*greater than 0"),
    "negative token budget": Case(_set("stages.0.tokens", -256), r"stages\.0\.tokens: .*greater than 0"),
    "mix weights summing to zero": Case(
        _set("stages.0.mix", {"general": 0.0}), r"stages\.0\.mix: .*sum to a positive number"
    ),
    "negative mix weight": Case(
        _set("stages.0.mix", {"general": -1.0}), r"stages\.0\.mix: weights must be non-negative"
    ),
    "mix of an unknown source": Case(
        _set("stages.0.mix", {"genral": 1.0}),
        r"stages\.0\.mix\.genral: unknown source 'genral' \(did you mean 'general'\?\)",
    ),
    "replay from an unknown source": Case(
        _set("stages.1.replay", {"from": "generl", "ratio": 0.1}),
        r"stages\.1\.replay\.from\.0: unknown source 'generl' \(did you mean 'general'\?\)",
    ),
    "replay ratio of 1": Case(
        _set("stages.1.replay", {"from": "general", "ratio": 1.0}), r"stages\.1\.replay\.ratio: .*less than 1"
    ),
    "batch not divisible into micro-batches": Case(
        _set("train.micro_batch", 3), r"train\.batch_tokens: .*not a multiple of micro_batch = 3"
    ),
    "both model.path and model.init": Case(
        _set("model.path", "/nonexistent"), r"model: .*exactly one of model\.path .* or model\.init"
    ),
    "zero reliability.max_bad_steps": Case(
        _set("reliability.max_bad_steps", 0), r"reliability\.max_bad_steps: .*greater than 0"
    ),
    "duplicate stage names": Case(_set("stages.1.name", "first"), r"stages: .*stage names must be unique"),
    "invalid YAML": Case(_yaml("stages: [\n  {name: a\n"), r"config\.yaml:\d+: invalid YAML"),
    "config that is not a mapping": Case(
        _yaml("- a\n- b\n"), r"config\.yaml: a config must be a YAML mapping"
    ),
    "malformed --set": Case(_args("--set", "train.seed"), r"--set 'train\.seed': expected key\.path=value"),
    "missing config file": Case(_missing_config, r"missing\.yaml: config file not found"),
    "config that is not UTF-8": Case(
        _yaml("model: {init: {}}\n# caf\u00e9 in Latin-1\n".encode("latin-1")),
        r"config\.yaml:2: not UTF-8 text \(byte 0xe9\); save the config as UTF-8",
    ),
    "a key given twice": Case(_twice, r"config\.yaml:\d+: train: given twice; keep one"),
    "replay from the stage's own target": Case(
        _set("stages.1.replay", {"from": "general", "ratio": 0.1}),
        r"stages\.1\.replay\.from\.0: 'general' is also trained in stages\.1\.mix",
        fresh=True,
    ),
    "a stage shorter than one optimizer step": Case(
        _set("stages.1.tokens", 100),
        r"stages\.1\.tokens: stage 'second' is 4 sequences of 32 tokens, less than one optimizer step of 8",
        fresh=True,
    ),
    "seq_len beyond learned positions": Case(
        _gpt2_of(16),
        r"train\.seq_len: 32 tokens, but the model's learned position embeddings end at "
        r"max_position_embeddings = 16",
        fresh=True,
    ),
    "more new tokens than the source supplies": Case(
        _set("model.transforms", [{"kind": "extend_vocab", "from": "general", "new_tokens": 100_000}]),
        r"model\.transforms\.0\.new_tokens: 100,000 new tokens, but [\d,]+ bytes of training text of "
        r"source 'general' supply only [\d,]+ .*; lower new_tokens",
        fresh=True,
    ),
    "new_rows without a vocabulary extension": Case(
        _set("stages.0.methods", {"train_only": ["new_rows"]}),
        r"stages\.0\.methods\.train_only\.0: new_rows selects the embedding and head rows of new tokens, "
        r"and no transform adds any",
        fresh=True,
    ),
    "a stage longer than the model's positions without a RoPE change": Case(
        _long_stage_without_rope,
        r"stages\.1\.seq_len: 64 tokens, beyond the model's max_position_embeddings = 32; change its RoPE first",
        fresh=True,
    ),
    "a RoPE scaling the model family does not support": Case(
        _phi3_with_yarn,
        r"model\.transforms\.0\.type: model type 'phi3' does not support the RoPE scaling yarn",
        fresh=True,
    ),
    "upcycling a model without a gated MLP": Case(
        _gpt2_upcycled,
        r"model\.transforms\.0: model type 'gpt2' has no gated MLP \(gate_proj, up_proj, down_proj\)",
        fresh=True,
    ),
    "a reshaping transform after lora": Case(
        _set("model.transforms", [{"kind": "lora", "r": 2}, {"kind": "depth_upscale", "layers": "0,1,1"}]),
        r"model\.transforms\.1: depth_upscale after lora \(model\.transforms\.0\): .*; list lora last",
        fresh=True,
    ),
    "lora that freezes new tokens' rows": Case(
        _set(
            "model.transforms",
            [{"kind": "extend_vocab", "from": "general", "new_tokens": 8}, {"kind": "lora", "r": 2}],
        ),
        r"model\.transforms\.1: lora freezes model\.embed_tokens\.weight, which holds new tokens' rows",
        fresh=True,
    ),
    # The output and cache folders
    "--out that is a file": Case(_a_file("out-file"), r"output\.dir: .*out-file is a file; give a folder"),
    "--out under a file": Case(
        _a_file("out-file", "run"), r"output\.dir: .*out-file/run lies under .*out-file, which is a file"
    ),
    "--out inside a model directory": Case(
        lambda s: ["--out", str(s.run_dir / "final" / "again")],
        r"output\.dir: .*final/again is inside .*run/final, which is a model directory",
    ),
    "cache_dir that is a file": Case(
        lambda s: s.config.update(cache_dir=s.file("cache-file", "not a folder")),
        r"cache_dir: .*cache-file is a file; give a folder",
        fresh=True,
    ),
    # Tokenizer and model directories
    "missing tokenizer directory": Case(
        lambda s: s.config.update(tokenizer=str(s.tmp / "nope")), r"nope: tokenizer directory not found"
    ),
    "tokenizer directory without tokenizer files": Case(
        lambda s: s.config.update(tokenizer=str(s.model_copy("no-tokenizer"))),
        r"no-tokenizer: no tokenizer files",
    ),
    "tokenizer larger than the model's vocabulary": Case(
        _small_vocab_model, r"has 512 tokens but the model's embedding has 100 rows", fresh=True
    ),
    "tokenizer larger than model.init.vocab_size": Case(
        _set("model.init.vocab_size", 100),
        r"tokenizer .*tokenizer0 has 512 tokens but the model's embedding has 100",
        fresh=True,
    ),
    "missing model directory": Case(
        lambda s: s.config.update(model={"path": str(s.tmp / "no-model")}),
        r"no-model: model directory not found",
        fresh=True,
    ),
    "weights that lack a tensor of the model": Case(
        _model_dir(_without("model.norm.weight")),
        r"model: the weights lack 1 tensor\(s\) of the model its config\.json describes \(first: model\.norm\.weight\)",
        fresh=True,
    ),
    "missing model weights": Case(
        _model_dir(lambda d: (d / "model.safetensors").unlink()),
        r"model: no model weights \(looked for",
        fresh=True,
    ),
    "truncated safetensors": Case(
        _model_dir(
            lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:-64])
        ),
        r"model\.safetensors: truncated safetensors file",
        fresh=True,
    ),
    "pickle weights without --allow-pickle": Case(
        _model_dir(_pickled),
        r"model: weights are in pickle format \(pytorch_model\.bin\); pass --allow-pickle",
        fresh=True,
    ),
    "model code without --trust-remote-code": Case(
        _model_dir(_custom_code),
        r"model: the model needs its own Python code .* pass --trust-remote-code",
        fresh=True,
    ),
    "unreadable model config.json": Case(
        _model_dir(lambda d: (d / "config.json").write_text("{not json")),
        r"config\.json: unreadable config",
        fresh=True,
    ),
    # Data files
    "missing data file": Case(
        lambda s: s.source(str(s.tmp / "nope.jsonl")),
        r"sources\.general\.files\.0: .*nope\.jsonl: no such file",
    ),
    "empty data file": Case(
        _data("empty.jsonl", ""), r"sources\.general\.files: no documents in .*empty\.jsonl"
    ),
    "binary data file read as text": Case(
        _data("image.txt", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))),
        r"image\.txt: a binary file \(NUL bytes\), not text; remove it from sources\.general\.files",
    ),
    "text that is not UTF-8": Case(
        _data("latin1.txt", "caf\u00e9 au lait\n".encode("latin-1") * 40),
        r"latin1\.txt:1: not UTF-8 text \(byte 0xe9\); convert the file to UTF-8, or set "
        r"sources\.general\.on_error: skip",
        fresh=True,
    ),
    "binary data file read as JSON lines": Case(
        _data("weights.jsonl", bytes(range(256)) * 4), r"weights\.jsonl:1: invalid JSON"
    ),
    "data file that is not gzip under a .gz name": Case(
        _data("plain.jsonl.gz", _jsonl({"text": "a"})), r"plain\.jsonl\.gz(:1)?: cannot read \(gzip\)"
    ),
    "records without the text field": Case(
        _data("fields.jsonl", _jsonl({"body": "a"})), r"fields\.jsonl:1: no field 'text' in the record"
    ),
    "held-out larger than its source": Case(
        _set("sources.general.heldout", {"documents": 100_000}),
        r"sources\.general\.heldout\.documents: 100,000 held-out documents, but the source has only",
        fresh=True,
    ),
    "a stage whose source is shorter than one sequence": Case(
        _tiny_source(evaluated=False),
        r"sources\.tiny: \d+ training tokens, fewer than one sequence of seq_len \+ 1 = 33",
        fresh=True,
    ),
    "evaluating a source without held-out documents": Case(
        _tiny_source(evaluated=True), r"sources\.tiny: no held-out documents to evaluate", fresh=True
    ),
    "bad data through prepare": Case(
        _data("empty.jsonl", "\n\n"),
        r"sources\.general\.files: no documents in .*empty\.jsonl",
        command="prepare",
    ),
    "a subset scored by the base model through prepare": Case(
        _set("sources.general.subset", {"score": "base_loss", "keep": 0.2}),
        r"sources\.general\.subset\.score: base_loss scores documents with the base model, which "
        r"`forgetless prepare` does not load",
        command="prepare",
    ),
    "a loss-driven mixture of one source": Case(
        _set("stages.0.mix_schedule", {"kind": "loss_driven", "every_tokens": 512}),
        r"stages\.0\.mix_schedule: loss_driven re-weights the stage's mix sources, and it mixes only one",
        fresh=True,
    ),
    # The run directory and its checkpoints
    "existing run without --resume": Case(
        lambda s: None, r"run: already holds a run; pass --resume to continue it", resume=False
    ),
    "resume with another model size": Case(
        _args("--set", "model.init.hidden_size=64"),
        r"^error: model\.init\.hidden_size: 32 when the run started, 64 now; it must stay as it was on --resume",
    ),
    "resume with another model size, the run's config.yaml gone": Case(
        _without_run_config(_args("--set", "model.init.hidden_size=64")),
        r"step_8: the checkpoint does not fit the model of the config \(.* has shape \[\d+, 32\], the model \[\d+, 64\]\)",
    ),
    "resume with another stage budget": Case(
        _args("--set", "stages.0.tokens=4096"),
        r"stages\.0\.tokens: 3072 when the run started, 4096 now; it must stay as it was on --resume",
    ),
    "resume with other stage data, the run's config.yaml gone": Case(
        _without_run_config(_replay_from_another_source),
        r"stages: the data of stage 'first' changed since the checkpoint",
    ),
    "resume with another train.batch_tokens": Case(
        _args("--set", "train.batch_tokens=512"),
        r"train\.batch_tokens: 256 when the run started, 512 now; it must stay as it was on --resume \(the batch",
    ),
    "resume with another train.weight_decay": Case(
        _args("--set", "train.weight_decay=0.0"),
        r"train\.weight_decay: 0\.1 when the run started, 0\.0 now; it must stay as it was on --resume",
    ),
    "resume with a source's documents reordered (same token count)": Case(
        _reordered_documents, r"sources\.general: its prepared training tokens changed since the run started"
    ),
    "resume with reordered documents, the run's config.yaml and metrics gone": Case(
        _without_run_config(_reordered_documents, metrics=True),
        r"sources\.general: its prepared tokens changed since the checkpoint",
    ),
    "a base model with NaN weights": Case(
        _nan_weights,
        r"model: the model's weights hold 1 NaN or infinite values in .*; training cannot start",
        fresh=True,
    ),
    "corrupt checkpoint state": Case(
        _corrupt_checkpoint_state, r"step_8/trainer\.json: unreadable checkpoint state \(JSONDecodeError"
    ),
}


@pytest.fixture(scope="module")
def shared(tmp_path_factory, tiny_tokenizer_dir, tiny_tokenizer) -> dict[str, Path]:
    """The corpus and token cache every case shares, a run to copy (its latest checkpoint in the middle
    of stage `first`), and a model directory."""
    root = tmp_path_factory.mktemp("bad-input")
    corpus = write_corpus(root / "data")
    config = fault_config(corpus, tiny_tokenizer_dir, root / "earlier", root / "cache")
    config["output"].update(checkpoint_every_tokens=8 * 256, keep_checkpoints=4)
    run_dir = run_training(load_config(write_config(root / "config.yaml", config)), quiet=True)
    for folder in ckpt.list_checkpoints(run_dir)[1:]:  # as if stopped after step 8, in stage `first`
        shutil.rmtree(folder)
    assert ckpt.latest_checkpoint(run_dir).name == "step_8"
    model = build_model(load_config(root / "config.yaml").model, tiny_tokenizer)
    save_model(model, None, root / "model")
    return {"root": root, "corpus": corpus, "run": run_dir, "model": root / "model"}


def test_the_catalogue_has_twenty_distinct_cases() -> None:
    assert len(CASES) >= 20
    assert len({case.expect for case in CASES.values()}) >= 20


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line(
    name: str, shared, tiny_tokenizer_dir, tmp_path, capsys, record_property
) -> None:
    case = CASES[name]
    run_dir = Path(shutil.copytree(shared["run"], tmp_path / "run"))
    config = fault_config(shared["corpus"], tiny_tokenizer_dir, run_dir, shared["root"] / "cache")
    config["output"]["checkpoint_every_tokens"] = 8 * 256
    setup = Setup(tmp_path, config, run_dir, shared["model"])
    extra = case.edit(setup) or []
    config_path = tmp_path / "config.yaml"
    if isinstance(setup.config_text, bytes):
        config_path.write_bytes(setup.config_text)
    elif setup.config_text is not None:
        config_path.write_text(setup.config_text)
    else:
        write_config(config_path, setup.config)
    if extra == ["--missing-config"]:
        config_path, extra = tmp_path / "missing.yaml", []
    before = snapshot(run_dir)

    args = [case.command, str(config_path), "--quiet", *extra]
    if case.fresh:
        args += ["--out", str(tmp_path / "fresh")]
    elif case.command == "train" and case.resume:
        args.append("--resume")
    code, out, err = cli(args, capsys)

    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert re.search(case.expect, lines[0]), lines[0]
    assert "Traceback" not in err and out == ""
    assert snapshot(run_dir) == before  # the earlier run is untouched
    assert not (tmp_path / "fresh").exists()  # and a new run directory was not even left empty
    record(record_property, "Bad input", name, f"exit {code}: {quoted(lines[0])}")


def test_a_command_line_usage_error_exits_2_with_the_usage(capsys) -> None:
    from forgetless.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["train", "config.yaml", "--no-such-option"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "No such option: --no-such-option" in err and "Usage:" in err


def test_a_change_the_rules_allow_resumes(
    shared, tiny_tokenizer_dir, tmp_path, capsys, record_property
) -> None:
    import yaml

    run_dir = Path(shutil.copytree(shared["run"], tmp_path / "run"))
    config = fault_config(shared["corpus"], tiny_tokenizer_dir, run_dir, shared["root"] / "cache")
    config["output"]["checkpoint_every_tokens"] = 8 * 256
    path = write_config(tmp_path / "config.yaml", config)
    changes = ["stages.0.schedule.peak_lr=0.001", "train.fused_loss=off", "eval.batch_size=4"]
    code, _, err = cli(
        ["train", str(path), "--quiet", "--resume", *[a for c in changes for a in ("--set", c)]], capsys
    )
    assert code == 0, err
    resolved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert resolved["stages"][0]["schedule"]["peak_lr"] == 0.001 and resolved["train"]["fused_loss"] == "off"
    assert (run_dir / "final" / "model.safetensors").is_file()
    record(
        record_property,
        "Files",
        "resume with a learning rate, `train.fused_loss` and `eval.batch_size` changed (changes the rules allow)",
        "resumed from step_8 and finished (exit 0); config.yaml holds the new values",
    )
