"""Runs with model transforms: what trains, what `final/` holds, the record, exact resume, bad input.

The base is a 4-block Llama of hidden size 32 saved as a Hugging Face directory; every run is one
stage of 8 steps on the tiny corpora (`tiny_runs.tiny_config`), checkpointed every 4 steps.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tiny_runs import read_lines, run_interrupted, tiny_config, weights, write_corpora

from forgetless.config import config_from_dict
from forgetless.errors import UserError
from forgetless.train.run import run_training

LLAMA_PRO = [{"kind": "expand_blocks", "layers": [1, 3]}]
ADEPT = [
    {
        "kind": "expand_blocks",
        "select": "least_important",
        "count": 2,
        "probe": "general",
        "probe_tokens": 256,
    }
]
LORA = [{"kind": "lora", "r": 4, "alpha": 8, "train_lm_head": True}]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory, tiny_tokenizer) -> Path:
    from conftest import tiny_llama

    out = tmp_path_factory.mktemp("base")
    model = tiny_llama(tiny_tokenizer, num_hidden_layers=4, tie_word_embeddings=False)
    model.save_pretrained(out)
    tiny_tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, Path]:
    return write_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="module")
def runner(tmp_path_factory, base_dir, tiny_tokenizer_dir, corpora):
    def config(name: str, transforms: list, methods: dict | None = None, **train) -> dict:
        tmp = tmp_path_factory.getbasetemp() / "transform-runs" / name
        data = tiny_config(tmp, tiny_tokenizer_dir, corpora, **({"methods": methods} if methods else {}))
        data["model"] = {"path": str(base_dir), "transforms": transforms}
        data["tokenizer"] = str(base_dir)
        data["train"].update(train)
        return data

    def run(name: str, transforms: list, methods: dict | None = None, *, resume: bool = False, **train) -> Path:
        data = config(name, transforms, methods, **train)
        return run_training(config_from_dict(data), resume=resume, quiet=True)

    run.config = config
    return run


def whole_and_resumed(runner, name: str, transforms: list, methods: dict | None = None) -> tuple[Path, Path]:
    whole = runner(f"{name}-whole", transforms, methods)
    run_interrupted(6, lambda: runner(f"{name}-resumed", transforms, methods))
    return whole, runner(f"{name}-resumed", transforms, methods, resume=True)


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


@pytest.fixture(scope="module")
def llama_pro(runner) -> tuple[Path, Path]:
    return whole_and_resumed(runner, "llama-pro", LLAMA_PRO, {"train_only": ["new"]})


def test_llama_pro_trains_only_the_new_blocks(llama_pro, base_dir) -> None:
    from transformers import AutoModelForCausalLM

    run_dir = llama_pro[0]
    base = weights(base_dir)
    final = weights(run_dir / "final")
    assert AutoModelForCausalLM.from_pretrained(run_dir / "final").config.num_hidden_layers == 6
    origin = {0: 0, 1: 1, 2: 1, 3: 2, 4: 3, 5: 3}  # new index -> original block; 2 and 5 are copies
    for name, value in final.items():
        if not name.startswith("model.layers."):
            assert torch.equal(value, base[name]), name
            continue
        index = int(name.split(".")[2])
        source = base[name.replace(f"layers.{index}.", f"layers.{origin[index]}.", 1)]
        if index in (2, 5):  # trained from the original (output projections from zero)
            assert not torch.equal(value, source) and value.abs().sum() > 0, name
        else:
            assert torch.equal(value, source), name  # bit-identical to the base

    start = next(r for r in read_lines(run_dir) if r["kind"] == "run_start")
    [record] = start["transforms"]
    assert record["kind"] == "expand_blocks" and record["resolved"]["layers"] == [1, 3]
    per_block = sum(v.numel() for k, v in base.items() if k.startswith("model.layers.0."))
    stage_start = next(r for r in read_lines(run_dir) if r["kind"] == "stage_start")
    assert record["added_parameters"] == stage_start["trainable_parameters"] == 2 * per_block
    assert start["parameters"] == sum(v.numel() for v in base.values()) + 2 * per_block
    config = (run_dir / "config.yaml").read_text()
    assert "kind: expand_blocks" in config and "train_only:\n    - new" in config


def test_llama_pro_resumes_exactly_and_final_evaluates_as_the_run_did(llama_pro, runner) -> None:
    whole, resumed = llama_pro
    assert_same_weights(whole / "final", resumed / "final")
    from forgetless.evaluate.model_eval import EvalOptions, evaluate_model

    summary = json.loads((whole / "summary.json").read_text())
    config = config_from_dict(runner.config("llama-pro-eval", LLAMA_PRO, {"train_only": ["new"]}))
    result = evaluate_model(whole / "final", EvalOptions(progress=False), config=config)
    for source in ("general", "code"):
        assert result["heldout"][source]["loss"] == pytest.approx(
            summary["sources"][source]["final_loss"], abs=1e-4
        )


def test_adept_selects_blocks_logs_unit_lrs_and_resumes_exactly(runner) -> None:
    methods = {"train_only": ["new"], "unit_lr": {"probe": "general", "every_tokens": 1024, "batches": 2}}
    whole, resumed = whole_and_resumed(runner, "adept", ADEPT, methods)
    assert_same_weights(whole / "final", resumed / "final")
    lines = read_lines(whole)
    [record] = next(r for r in lines if r["kind"] == "run_start")["transforms"]
    assert len(record["resolved"]["layers"]) == 2 and len(record["resolved"]["importance"]) == 4
    measured = [r for r in lines if r["kind"] == "unit_lr"]
    assert [r["stage_step"] for r in measured] == [0, 4]  # at the start, then every 1024 tokens
    multipliers = measured[-1]["multipliers"]
    assert all(name.startswith("model.layers.") for name in multipliers)  # the new blocks only
    assert min(multipliers.values()) == pytest.approx(0.0) and max(multipliers.values()) == pytest.approx(2.0)
    # The resumed run measured nothing again before its checkpoint's step, and the same after it.
    again = [r for r in read_lines(resumed) if r["kind"] == "unit_lr"]
    assert again[-1]["multipliers"] == multipliers


@pytest.fixture(scope="module")
def lora_runs(runner) -> tuple[Path, Path]:
    return whole_and_resumed(runner, "lora", LORA, {"ema": {"decay": 0.8}, "l2sp": {"weight": 0.5}})


def test_lora_final_is_merged_and_the_adapter_loads_onto_the_base(lora_runs, base_dir) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir = lora_runs[0]
    merged = AutoModelForCausalLM.from_pretrained(run_dir / "final").eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    adapted = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(base_dir), run_dir / "final_adapter"
    )
    ids = torch.randint(0, merged.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            adapted.eval()(input_ids=ids).logits, merged(input_ids=ids).logits, rtol=0, atol=1e-4
        )
    base = weights(base_dir)
    final = weights(run_dir / "final")
    assert not torch.equal(final["lm_head.weight"], base["lm_head.weight"])  # the head trained fully
    assert torch.equal(final["model.embed_tokens.weight"], base["model.embed_tokens.weight"])
    assert torch.equal(
        final["model.layers.0.input_layernorm.weight"], base["model.layers.0.input_layernorm.weight"]
    )
    assert (run_dir / "final_ema" / "model.safetensors").is_file()
    assert (run_dir / "final_ema_adapter" / "adapter_config.json").is_file()
    start = next(r for r in read_lines(run_dir) if r["kind"] == "run_start")
    stage_start = next(r for r in read_lines(run_dir) if r["kind"] == "stage_start")
    assert stage_start["trainable_parameters"] == start["transforms"][0]["added_parameters"]


def test_lora_resumes_exactly(lora_runs) -> None:
    whole, resumed = lora_runs
    for folder in ("final", "final_ema"):
        assert_same_weights(whole / folder, resumed / folder)
    adapter = "final_adapter/adapter_model.safetensors"
    a, b = weights_file(whole / adapter), weights_file(resumed / adapter)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def weights_file(path: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(path)


def test_fused_loss_reads_the_trainable_head_of_a_lora_model(tiny_tokenizer) -> None:
    from conftest import tiny_llama
    from forgetless.config import LoraTransformConfig
    from forgetless.model.loss import causal_lm_loss
    from forgetless.model.transforms import apply_transforms
    from forgetless.train.parallelize import supports_fused_loss

    for tied, flags in ((False, {"train_lm_head": True}), (True, {"train_embeddings": True})):
        model = tiny_llama(tiny_tokenizer, tie_word_embeddings=tied)
        apply_transforms(model, None, [LoraTransformConfig(kind="lora", r=4, **flags)])
        with torch.no_grad():
            model.get_output_embeddings().weight.mul_(1.5)  # the trainable copy, not the original
        assert supports_fused_loss(model)
        ids = torch.randint(0, len(tiny_tokenizer), (2, 17), generator=torch.Generator().manual_seed(0))
        losses, grads = [], []
        for fused in (False, True):
            model.zero_grad(set_to_none=True)
            loss = causal_lm_loss(model, ids[:, :-1], ids[:, 1:], fused=fused)
            loss.backward()
            losses.append(loss.detach())
            grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        torch.testing.assert_close(losses[1], losses[0], rtol=1e-5, atol=1e-6)
        assert grads[0].keys() == grads[1].keys()
        for name in grads[0]:
            torch.testing.assert_close(grads[1][name], grads[0][name], rtol=1e-4, atol=1e-6, msg=name)


def test_bad_transform_input_fails_before_anything_is_written(runner) -> None:
    def fails(name: str, transforms: list, methods: dict | None, match: str) -> None:
        with pytest.raises(UserError, match=match):
            run_training(config_from_dict(runner.config(name, transforms, methods)), quiet=True)
        assert not (Path(runner.config(name, transforms)["output"]["dir"]) / "metrics.jsonl").exists()

    fails(
        "every",
        [{"kind": "expand_blocks", "every": 3}],
        None,
        r"model\.transforms\.0\.every: 3 does not divide",
    )
    fails(
        "target", [{"kind": "lora", "target": ["*.wq"]}], None, r"model\.transforms\.0\.target\.0: '\*\.wq'"
    )
    with pytest.raises(
        UserError, match=r"stages\.0\.methods\.train_only\.0: new selects what model\.transforms added"
    ):
        config_from_dict(runner.config("no-transform", [], {"train_only": ["new"]}))


def test_the_comparison_names_the_transforms_and_what_trained(llama_pro, lora_runs) -> None:
    from forgetless.report.compare import comparison
    from forgetless.report.runs import load_runs

    columns, rows = comparison(load_runs([llama_pro[0], lora_runs[0]], names=["pro", "lora"]))
    headers = [c.header for c in columns]
    by_run = {row[0]: dict(zip(headers, row, strict=True)) for row in rows}
    assert by_run["pro"]["transforms"] == "expand_blocks" and by_run["lora"]["transforms"] == "lora"
    starts = [next(r for r in read_lines(d) if r["kind"] == "stage_start") for d in (llama_pro[0], lora_runs[0])]
    assert [by_run["pro"]["trainable"], by_run["lora"]["trainable"]] == [s["trainable_parameters"] for s in starts]


# Every expert chosen (top_k = experts): no routing decision for rounding to flip between the runs.
UPCYCLE_ALL = [{"kind": "upcycle_moe", "experts": 2, "top_k": 2, "noise": 0.02}]
UPCYCLE_LORA = UPCYCLE_ALL + [{"kind": "lora", "r": 4, "alpha": 8}]  # adapters on the fused experts


@pytest.mark.slow
@pytest.mark.parametrize(
    "transforms", [LORA, LLAMA_PRO, UPCYCLE_ALL, UPCYCLE_LORA], ids=["lora", "llama-pro", "moe", "moe-lora"]
)
def test_compiled_blocks_train_the_transformed_model_as_eager_does(runner, transforms) -> None:
    methods = {"train_only": ["new"]} if transforms is LLAMA_PRO else None
    kind = "-".join(t["kind"] for t in transforms)
    eager = runner(f"{kind}-eager", transforms, methods, compile=False)
    compiled = runner(f"{kind}-compiled", transforms, methods, compile=True)
    a, b = weights(eager / "final"), weights(compiled / "final")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3, msg=key)
    if transforms[0] is UPCYCLE_ALL[0]:  # the routers' hooks run inside the compiled blocks
        for line in (r for r in read_lines(compiled) if r["kind"] == "train"):
            assert line["loss/router_balance"] > 0 and sum(map(sum, line["expert_tokens"])) == 4 * 2 * 2 * 256


def test_depth_upscaling_trains_the_copies_resumes_exactly_and_final_loads(runner, base_dir) -> None:
    from transformers import AutoModelForCausalLM

    whole, resumed = whole_and_resumed(
        runner, "depth", [{"kind": "depth_upscale", "layers": "0-2,1-3"}], {"train_only": ["new"]}
    )
    assert_same_weights(whole / "final", resumed / "final")
    assert AutoModelForCausalLM.from_pretrained(whole / "final").config.num_hidden_layers == 6
    base, final = weights(base_dir), weights(whole / "final")
    origin = {0: 0, 1: 1, 2: 2, 3: 1, 4: 2, 5: 3}  # blocks 3 and 4 are the new copies of 1 and 2
    for name, value in final.items():
        if name.startswith("model.layers."):
            index = int(name.split(".")[2])
            source = base[name.replace(f"layers.{index}.", f"layers.{origin[index]}.", 1)]
            assert torch.equal(value, source) != (index in (3, 4)), name  # only the copies trained
    [record] = next(r for r in read_lines(whole) if r["kind"] == "run_start")["transforms"]
    assert record["resolved"]["layers"] == [0, 1, 2, 1, 2, 3]


def test_an_upcycled_moe_trains_with_the_balance_loss_resumes_exactly_and_loads_as_mixtral(runner) -> None:
    from transformers import AutoModelForCausalLM, MixtralForCausalLM

    upcycle = [{"kind": "upcycle_moe", "experts": 4, "top_k": 2, "noise": 0.02}]
    whole, resumed = whole_and_resumed(runner, "moe", upcycle)
    assert_same_weights(whole / "final", resumed / "final")
    loaded = AutoModelForCausalLM.from_pretrained(whole / "final")
    assert isinstance(loaded, MixtralForCausalLM)
    assert loaded.config.num_local_experts == 4 and loaded.config.num_experts_per_tok == 2
    lines = read_lines(whole)
    start = next(r for r in lines if r["kind"] == "run_start")
    evals = [r for r in lines if r["kind"] == "eval"]
    summary = json.loads((whole / "summary.json").read_text())
    assert start["transforms"][0]["kind"] == "upcycle_moe"
    trains = [r for r in lines if r["kind"] == "train"]
    tokens_per_window = 2 * 256  # log_every_steps 2, 256 tokens a step, each routed to 2 experts of 4 layers
    for record in trains:
        assert record["loss/router_balance"] > 0
        counts = record["expert_tokens"]
        assert len(counts) == 4 and all(len(row) == 4 for row in counts)
        assert all(sum(row) == 2 * tokens_per_window for row in counts)
    # The function was unchanged at init: the base evaluation is the dense base's.
    dense = runner("moe-dense-base", [])
    dense_base = next(r for r in read_lines(dense) if r["kind"] == "eval")
    assert evals[0]["eval/general/loss"] == pytest.approx(dense_base["eval/general/loss"], abs=1e-5)
    assert summary["sources"]["code"]["delta"] < 0


def test_lora_on_an_upcycled_moe_adapts_the_experts_resumes_exactly_and_final_loads(runner, base_dir) -> None:
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, MixtralForCausalLM

    from forgetless.config import UpcycleMoeConfig
    from forgetless.model.transforms import apply_transforms

    upcycle = {"kind": "upcycle_moe", "experts": 4, "top_k": 2, "noise": 0.02}
    whole, resumed = whole_and_resumed(runner, "moe-lora", [upcycle, {"kind": "lora", "r": 4, "alpha": 8}])
    assert_same_weights(whole / "final", resumed / "final")
    adapter = "final_adapter/adapter_model.safetensors"
    a, b = weights_file(whole / adapter), weights_file(resumed / adapter)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(".experts." in name for name in a) and not any(".mlp.gate." in name for name in a)
    assert all(r["loss/router_balance"] > 0 for r in read_lines(whole) if r["kind"] == "train")

    merged = AutoModelForCausalLM.from_pretrained(whole / "final").eval()
    assert isinstance(merged, MixtralForCausalLM)
    spec = UpcycleMoeConfig(**upcycle)
    upcycled = apply_transforms(AutoModelForCausalLM.from_pretrained(base_dir), None, [spec]).model
    for block, upcycled_block in zip(merged.model.layers, upcycled.model.layers, strict=True):
        assert not torch.equal(block.mlp.experts.down_proj, upcycled_block.mlp.experts.down_proj)
        assert torch.equal(block.mlp.gate.weight, upcycled_block.mlp.gate.weight)  # the router as it was
    adapted = PeftModel.from_pretrained(upcycled, whole / "final_adapter").eval()
    ids = torch.randint(0, merged.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(
            adapted(input_ids=ids).logits, merged(input_ids=ids).logits, rtol=0, atol=1e-4
        )
