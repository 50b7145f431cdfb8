"""Fault injection: non-finite steps, rollbacks, loss spikes, SIGTERM/SIGINT, a full disk, out of memory.

Faults are injected from outside the package: forward hooks on the model the run builds (a NaN
embedding output, scaled logits, an out-of-memory error), signals sent to the process, and writers
that fail the way a full disk makes them fail. Each run is compared with an uninterrupted run of
the same config where the promise is "as if nothing happened".
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import forgetless.train.checkpoint as checkpoint_module
import forgetless.train.run as run_module
from faults_helpers import (
    STEPS,
    TrainingForwards,
    assert_same_weights,
    cli,
    events,
    fault_config,
    final_weights,
    quoted,
    read_lines,
    record,
    with_values,
    write_config,
    write_corpus,
)
from forgetless.config import ModelConfig, load_config
from forgetless.errors import RunFailed, is_disk_full
from forgetless.model.load import build_model, load_tokenizer
from forgetless.train import checkpoint as ckpt
from forgetless.train.run import run_training


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny models run fastest on one thread, and far slower with threads competing for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> Path:
    """One corpus and one token cache for every run of this module."""
    root = tmp_path_factory.mktemp("faults-shared")
    write_corpus(root / "data")
    return root


@pytest.fixture
def make_config(shared: Path, tiny_tokenizer_dir: Path, tmp_path: Path):
    def make(**values) -> Path:
        config = fault_config(
            shared / "data" / "general.jsonl", tiny_tokenizer_dir, tmp_path / "run", shared / "cache"
        )
        return write_config(tmp_path / "config.yaml", with_values(config, **values))

    return make


@pytest.fixture(scope="module")
def reference(shared: Path, tiny_tokenizer_dir: Path, tmp_path_factory) -> Path:
    """The uninterrupted run that every resumed run must match exactly."""
    tmp = tmp_path_factory.mktemp("faults-reference")
    config = fault_config(
        shared / "data" / "general.jsonl", tiny_tokenizer_dir, tmp / "run", shared / "cache"
    )
    return run_training(load_config(write_config(tmp / "config.yaml", config)), quiet=True)


@pytest.fixture
def inject(monkeypatch):
    """Hook a submodule of the model the next runs build; `forwards[i]` counts run i's training forwards."""
    forwards: list[TrainingForwards] = []

    def install(which: str, change) -> list[TrainingForwards]:
        original = run_module.build_model

        def build(*args, **kwargs):
            model = original(*args, **kwargs)
            # the final norm feeds the logits on every loss path (plain or fused)
            module = model.get_input_embeddings() if which == "embeddings" else model.base_model.norm
            forwards.append(
                TrainingForwards(module, lambda count, out: change(len(forwards) - 1, count, out))
            )
            return model

        monkeypatch.setattr(run_module, "build_model", build)
        return forwards

    return install


def nan_at(steps: set[int]):
    """A change that makes a module's output NaN at the given training forwards of the first run."""

    def change(*args):
        run_index, count, output = (0, *args) if len(args) == 2 else args
        return output * float("nan") if run_index == 0 and count in steps else None

    return change


def train_lines(lines: list[dict]) -> list[dict]:
    return [r for r in lines if r["kind"] == "train"]


# ---------------------------------------------------------------------------------------------
# Numerical faults


def test_nonfinite_steps_are_skipped_counted_and_logged_once(
    make_config, monkeypatch, record_property
) -> None:
    seen: list[torch.Tensor] = []  # a weight as each training forward sees it
    original_build = run_module.build_model
    forwards: list[TrainingForwards] = []

    def build(*args, **kwargs):
        model = original_build(*args, **kwargs)
        forwards.append(TrainingForwards(model.get_input_embeddings(), nan_at({3, 5})))
        layer = model.model.layers[0].mlp.down_proj
        layer.register_forward_pre_hook(
            lambda m, a: seen.append(m.weight.detach().clone()) if m.training else None
        )
        return model

    monkeypatch.setattr(run_module, "build_model", build)
    run_dir = run_training(load_config(make_config(**{"reliability.max_bad_steps": 3})), quiet=True)
    assert forwards[0].count == STEPS

    nonfinite = events(run_dir, "nonfinite_step")
    assert [(e["step"], e["nonfinite"], e["action"]) for e in nonfinite] == [
        (3, ["loss", "grad_norm"], "skipped"),
        (5, ["loss", "grad_norm"], "skipped"),
    ]
    train = train_lines(read_lines(run_dir))
    assert [r["skipped_steps"] for r in train] == [1 if r["step"] in (3, 5) else 0 for r in train]
    assert all(r["loss"] is None for r in train if r["step"] in (3, 5))
    assert all(r["loss"] is not None for r in train if r["step"] not in (3, 5))
    run_end = next(r for r in read_lines(run_dir) if r["kind"] == "run_end")
    assert run_end["skipped_steps"] == 2 and run_end["rollbacks"] == 0
    # The update of a skipped step changed nothing: the weights seen by step 4 are those of step 3.
    assert torch.equal(seen[3], seen[2]) and torch.equal(seen[5], seen[4])
    assert not torch.equal(seen[2], seen[1]) and not torch.equal(seen[4], seen[3])
    assert all(torch.isfinite(w).all() for w in final_weights(run_dir).values())
    record(
        record_property,
        "Numerical",
        "NaN loss at steps 3 and 5 (NaN embedding output), max_bad_steps 3",
        f"steps {[e['step'] for e in nonfinite]} skipped, one `nonfinite_step` event each; their train lines "
        f"count skipped_steps=1 and loss null; the weights did not move on those steps; the run finished "
        f"(run_end: skipped_steps={run_end['skipped_steps']}, rollbacks={run_end['rollbacks']})",
    )


def test_a_nonfinite_gradient_alone_skips_the_step(make_config, monkeypatch, record_property) -> None:
    original_build = run_module.build_model
    calls = {"backward": 0}

    def build(*args, **kwargs):
        model = original_build(*args, **kwargs)

        def poison(grad: torch.Tensor) -> torch.Tensor:
            calls["backward"] += 1
            return grad * float("inf") if calls["backward"] == 4 else grad

        model.model.norm.weight.register_hook(poison)
        return model

    monkeypatch.setattr(run_module, "build_model", build)
    run_dir = run_training(load_config(make_config()), quiet=True)
    [event] = events(run_dir, "nonfinite_step")
    assert event["step"] == 4 and event["nonfinite"] == ["grad_norm"] and event["loss"] is not None
    record(
        record_property,
        "Numerical",
        "infinite gradient at step 4, finite loss",
        f"step {event['step']} skipped ({', '.join(event['nonfinite'])} not finite, loss {event['loss']:.3f}); run finished",
    )


def test_a_run_of_nonfinite_steps_rolls_back_with_half_the_learning_rate(
    make_config, inject, record_property
) -> None:
    # max_bad_steps 2: steps 6 and 7 fail, the run goes back to step 4 and replays 5, 6, 7 ... at half the LR.
    inject("embeddings", nan_at({6, 7}))
    run_dir = run_training(load_config(make_config()), quiet=True)
    lines = read_lines(run_dir)

    assert [e["step"] for e in events(run_dir, "nonfinite_step")] == [6, 7]
    [rollback] = events(run_dir, "rollback")
    assert rollback["from_step"] == 7 and rollback["step"] == 4 and rollback["checkpoint"] == "step_4"
    assert rollback["rollback"] == 1 and rollback["lr_scale"] == 0.5
    resume_at = lines.index(rollback) - 1
    assert lines[resume_at] == {"kind": "resume", "step": 4, "tokens": 4 * 256, "reason": "rollback"}

    before = {r["step"]: r["lr"] for r in train_lines(lines[:resume_at])}
    after = {r["step"]: r["lr"] for r in train_lines(lines[resume_at:])}
    assert sorted(after) == list(range(5, STEPS + 1))
    for step in (5, 6):  # the line of step 7 was never written: the rollback came first
        assert after[step] == pytest.approx(before[step] / 2)
    run_end = next(r for r in lines if r["kind"] == "run_end")
    assert run_end["rollbacks"] == 1 and run_end["skipped_steps"] == 2 and run_end["step"] == STEPS
    # The halved LR is part of every later checkpoint, so a resume keeps it.
    for folder in ckpt.list_checkpoints(run_dir):
        assert ckpt.read_trainer_state(folder)["position"]["rollbacks"] == 1
    record(
        record_property,
        "Numerical",
        "NaN loss at steps 6 and 7, max_bad_steps 2, checkpoints every 4 steps",
        f"both skipped; rolled back from step {rollback['from_step']} to {rollback['checkpoint']} and replayed "
        f"steps 5 on with the LR x{rollback['lr_scale']:g} (step 5: {before[5]:.2e} then {after[5]:.2e}); the run "
        f"finished with rollbacks={run_end['rollbacks']}, and later checkpoints keep rollbacks=1 for a resume",
    )


def test_divergence_after_the_last_rollback_stops_with_one_clear_line(
    make_config, inject, capsys, record_property
) -> None:
    # Every training forward from the 6th on is NaN: one rollback (max_rollbacks 1), then the run stops.
    inject("embeddings", lambda run, count, out: out * float("nan") if count >= 6 else None)
    config = make_config()
    code, _, err = cli(["train", str(config), "--quiet"], capsys)
    assert code == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith(
        "error: training diverged: 2 steps in a row with a non-finite loss or gradient norm"
    )
    assert "after 1 rollback(s)" in last and "0.5x" in last and "step_4 is intact" in last
    assert "Traceback" not in err
    run_dir = config.parent / "run"
    assert [e["event"] for e in read_lines(run_dir) if e["kind"] == "event"][-1] == "diverged"
    assert not (run_dir / "final").exists()
    assert ckpt.latest_checkpoint(run_dir).name == "step_4"
    record(
        record_property,
        "Numerical",
        "NaN loss at every step from step 6 on, max_rollbacks 1",
        f"one rollback, then exit {code}: {quoted(last)}",
    )


def test_without_a_checkpoint_a_divergence_stops_at_once(make_config, inject, record_property) -> None:
    inject("embeddings", nan_at({2, 3}))
    config = load_config(make_config(**{"output.checkpoint_every_tokens": None}))
    with pytest.raises(
        RunFailed, match="no checkpoint to roll back to .*output.checkpoint_every_tokens"
    ) as err:
        run_training(config, quiet=True)
    record(
        record_property,
        "Numerical",
        "NaN loss at steps 2 and 3, no checkpoints",
        f"RunFailed (exit 1): {quoted(str(err.value))}",
    )


def test_a_loss_spike_is_an_event(make_config, inject, record_property) -> None:
    inject("final_norm", lambda run, count, out: out * 50.0 if count == 9 else None)
    run_dir = run_training(
        load_config(make_config(**{"reliability.spike_window": 4, "reliability.spike_factor": 3.0})),
        quiet=True,
    )
    spikes = events(run_dir, "loss_spike")
    assert spikes and spikes[0]["step"] == 9
    assert spikes[0]["loss"] > 3.0 * spikes[0]["median"] and spikes[0]["window"] == 4
    assert events(run_dir, "nonfinite_step") == []
    record(
        record_property,
        "Numerical",
        "final hidden states (so logits) x50 at step 9, spike_window 4, spike_factor 3",
        f"`loss_spike` event at step {spikes[0]['step']}: loss {spikes[0]['loss']:.1f} = "
        f"{spikes[0]['ratio']:.1f}x the median {spikes[0]['median']:.2f} of the last 4 steps; training went on",
    )


# ---------------------------------------------------------------------------------------------
# Preemption


def test_sigterm_checkpoints_exits_and_resumes_as_if_never_stopped(
    make_config, inject, capsys, reference, record_property
) -> None:
    inject(
        "embeddings",
        lambda run, count, out: os.kill(os.getpid(), signal.SIGTERM) if run == 0 and count == 6 else None,
    )
    handler_before = signal.getsignal(signal.SIGTERM)
    config = make_config()
    run_dir = config.parent / "run"
    code, _, err = cli(["train", str(config), "--quiet"], capsys)
    message = err.strip()
    assert code == 128 + signal.SIGTERM
    assert err.strip().splitlines() == [
        f"stopped by SIGTERM at step 6 (1,536 tokens) after writing {run_dir / 'checkpoints' / 'step_6'}; "
        f"resume with: forgetless train {config} --resume"
    ]
    assert signal.getsignal(signal.SIGTERM) is handler_before
    assert ckpt.latest_checkpoint(run_dir).name == "step_6"  # not a periodic checkpoint step
    [event] = events(run_dir, "preempted")
    assert event["signal"] == "SIGTERM" and event["step"] == 6
    assert not (run_dir / "final").exists()

    code, _, err = cli(["train", str(config), "--quiet", "--resume"], capsys)
    assert code == 0, err
    assert_same_weights(final_weights(run_dir), final_weights(reference))
    record(
        record_property,
        "Process",
        "SIGTERM during step 6 (between checkpoints)",
        f"checkpoint step_6 written at the step boundary, exit 143: {quoted(message)}; `--resume` ended with weights "
        "identical to an uninterrupted run",
    )


def test_sigint_from_outside_stops_a_training_process_at_a_checkpoint(
    make_config, tmp_path, record_property
) -> None:
    # A long stage, so that the run is still training when the signal arrives.
    config = make_config(**{"stages.0.tokens": 2000 * 256, "train.log_every_steps": 1})
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, "-c", "from forgetless.cli import main; main()", "train", str(config), "--quiet"],
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    metrics = run_dir / "metrics.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if metrics.exists() and '"kind":"train"' in metrics.read_text():
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGINT, err.decode()
    message = err.decode().strip().splitlines()[-1]
    [event] = events(run_dir, "preempted")
    assert event["signal"] == "SIGINT"
    assert message.startswith(f"stopped by SIGINT at step {event['step']} ")
    assert message.endswith(f"resume with: forgetless train {config} --resume")
    latest = ckpt.latest_checkpoint(run_dir)
    assert ckpt.read_trainer_state(latest)["position"]["step"] == event["step"] < 2000
    record(
        record_property,
        "Process",
        "SIGINT sent from another process to a training process",
        f"checkpoint at the next step boundary, exit {proc.returncode}: {quoted(message)}",
    )


# ---------------------------------------------------------------------------------------------
# A full disk


def _failing_nth_call(n: int, error: BaseException, original):
    calls = {"n": 0}

    def call(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise error
        return original(*args, **kwargs)

    return call


@pytest.mark.parametrize(
    "writer,error",
    [
        # torch.save of the second checkpoint's optimizer state: an OSError, as Python's writes raise it
        ("torch.save", OSError(errno.ENOSPC, "No space left on device")),
        # the weights of the second checkpoint: safetensors words it in its own error type
        (
            "save_model",
            Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
        ),
    ],
)
def test_disk_full_during_a_checkpoint_keeps_the_previous_one(
    writer, error, make_config, monkeypatch, capsys, reference, tiny_tokenizer, record_property
) -> None:
    if writer == "torch.save":
        monkeypatch.setattr(checkpoint_module.torch, "save", _failing_nth_call(3, error, torch.save))
    else:
        monkeypatch.setattr(
            checkpoint_module, "save_model", _failing_nth_call(2, error, checkpoint_module.save_model)
        )
    config = make_config()
    run_dir = config.parent / "run"
    code, _, err = cli(["train", str(config), "--quiet"], capsys)
    message = err.strip()
    assert code == 1
    previous = run_dir / "checkpoints" / "step_4"
    assert err.strip().splitlines() == [
        f"error: no space left on device while writing {run_dir / 'checkpoints' / '.tmp-step_8'}; "
        f"the latest checkpoint {previous} is intact; free some space, then run again with --resume"
    ]
    assert [p.name for p in (run_dir / "checkpoints").iterdir()] == ["step_4"]  # no temporary folder left
    model = build_model(load_config(config).model, tiny_tokenizer)
    state = ckpt.load_checkpoint(previous, model=model, optimizer=None)
    assert state["position"]["step"] == 4

    monkeypatch.undo()
    code, _, err = cli(["train", str(config), "--quiet", "--resume"], capsys)
    assert code == 0, err
    assert_same_weights(final_weights(run_dir), final_weights(reference))
    record(
        record_property,
        "Disk",
        f"disk full in {writer} while writing the second checkpoint ({type(error).__name__})",
        f"exit 1: {quoted(message)}; the temporary folder was removed, step_4 loads; `--resume` ended with weights "
        "identical to an uninterrupted run",
    )


def test_disk_full_while_writing_metrics_leaves_no_torn_line(
    make_config, monkeypatch, capsys, reference, record_property
) -> None:
    original_write = os.write

    def write(fd: int, data) -> int:
        if bytes(data).startswith(b'{"kind":"train","step":6,'):
            original_write(fd, bytes(data)[:20])  # part of the line lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return original_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    config = make_config()
    run_dir = config.parent / "run"
    code, _, err = cli(["train", str(config), "--quiet"], capsys)
    monkeypatch.undo()
    assert code == 1
    assert err.strip().splitlines() == [
        f"error: no space left on device while writing {run_dir / 'metrics.jsonl'}; the latest checkpoint "
        f"{run_dir / 'checkpoints' / 'step_4'} is intact; free some space, then run again with --resume"
    ]
    text = (run_dir / "metrics.jsonl").read_text()
    assert text.endswith("\n")
    assert train_lines(read_lines(run_dir))[-1]["step"] == 5  # every line whole

    message = err.strip()
    code, _, err = cli(["train", str(config), "--quiet", "--resume"], capsys)
    assert code == 0, err
    assert_same_weights(final_weights(run_dir), final_weights(reference))
    record(
        record_property,
        "Disk",
        "disk full while appending the train line of step 6 to metrics.jsonl (part of it written)",
        f"exit 1: {quoted(message)}; metrics.jsonl cut back to its last whole line; `--resume` ended with weights "
        "identical to an uninterrupted run",
    )


def test_disk_full_is_recognised_in_every_form_the_writers_use() -> None:
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    assert is_disk_full(
        Exception("Error while serializing: I/O error: No space left on device (os error 28)")
    )
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")
        except OSError as inner:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"
            ) from inner
    except RuntimeError as outer:
        assert is_disk_full(outer)
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert not is_disk_full(RuntimeError("unexpected pos 576 vs 534"))


def test_a_bare_torch_save_failure_on_a_nearly_full_disk_counts_as_full(
    tmp_path, tiny_tokenizer, monkeypatch
) -> None:
    model = build_model(
        ModelConfig(init={"hidden_size": 32, "num_layers": 1, "num_heads": 2}), tiny_tokenizer
    )
    optimizer = torch.optim.AdamW(model.parameters())
    cryptic = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    monkeypatch.setattr(checkpoint_module.torch, "save", _failing_nth_call(1, cryptic, torch.save))
    usage = checkpoint_module.shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda p: usage._replace(free=4096))
    with pytest.raises(OSError) as err:
        ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=optimizer, trainer_state={}, keep=2)
    assert err.value.errno == errno.ENOSPC and err.value.filename.endswith(".tmp-step_1")
    assert list((tmp_path / "checkpoints").iterdir()) == []
    # With space left, the same failure is not blamed on the disk.
    monkeypatch.setattr(checkpoint_module.torch, "save", _failing_nth_call(1, cryptic, torch.save))
    monkeypatch.setattr(checkpoint_module.shutil, "disk_usage", lambda p: usage._replace(free=1 << 40))
    with pytest.raises(RuntimeError, match="unexpected pos"):
        ckpt.save_checkpoint(tmp_path, 1, model=model, optimizer=optimizer, trainer_state={}, keep=2)
    assert list((tmp_path / "checkpoints").iterdir()) == []


# ---------------------------------------------------------------------------------------------
# Out of memory


@pytest.mark.parametrize(
    "in_training,expected",
    [
        (
            True,
            "error: out of GPU memory while training with train.micro_batch=8, train.seq_len=32, "
            "precision=auto, activation_checkpointing=false; lower train.micro_batch (batch_tokens stays as "
            "it is: more micro-batches are accumulated) or set train.activation_checkpointing: true",
        ),
        (
            False,
            "error: out of GPU memory while evaluating with eval.batch_size=8 and train.seq_len=32, "
            "even one sequence per forward pass; lower train.seq_len",
        ),
    ],
)
def test_out_of_memory_names_the_settings_and_what_to_lower(
    in_training, expected, make_config, monkeypatch, capsys, record_property
) -> None:
    original_build = run_module.build_model
    oom = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    def build(*args, **kwargs):
        model = original_build(*args, **kwargs)

        def hook(module, args, output):
            if module.training == in_training:  # the first forward of that kind (the base eval comes first)
                raise oom

        model.get_input_embeddings().register_forward_hook(hook)
        return model

    monkeypatch.setattr(run_module, "build_model", build)
    config = make_config()
    code, _, err = cli(["train", str(config), "--quiet"], capsys)
    assert code == 1
    assert err.strip().splitlines() == [expected]
    where = "a training step" if in_training else "evaluation"
    record(
        record_property, "Memory", f"torch.OutOfMemoryError in {where}", f"exit {code}: {quoted(err.strip())}"
    )


# ---------------------------------------------------------------------------------------------
# Safety


def test_pickle_weights_are_refused_without_the_flag(
    make_config, tmp_path, tiny_tokenizer, capsys, record_property
) -> None:
    model = build_model(
        ModelConfig(init={"hidden_size": 32, "num_layers": 1, "num_heads": 2}), tiny_tokenizer
    )
    folder = tmp_path / "pickled"
    folder.mkdir()
    model.config.save_pretrained(folder)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    config = make_config(model={"path": str(folder)})
    code, _, err = cli(["train", str(config), "--quiet"], capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: {folder}: weights are in pickle format (pytorch_model.bin); pass --allow-pickle to load them"
    ]
    assert not (tmp_path / "run").exists()
    record(
        record_property,
        "Safety",
        "a model directory with pickle weights (pytorch_model.bin)",
        f"exit 2: {quoted(err.strip())}",
    )


def test_checkpoint_state_loads_without_pickle(reference: Path, record_property) -> None:
    latest = ckpt.latest_checkpoint(reference)
    for name in ("optimizer.pt", "rng.pt"):
        torch.load(latest / name, weights_only=True)  # tensors and plain containers only
    json.loads((latest / "trainer.json").read_text())
    record(
        record_property,
        "Safety",
        "loading a checkpoint's optimizer, RNG and trainer state",
        "optimizer.pt and rng.pt load with torch.load(weights_only=True); trainer.json is JSON",
    )


def test_no_shell_and_no_eval_in_the_package(record_property) -> None:
    root = Path(run_module.__file__).resolve().parents[1]
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "shell=True" not in text, path
        assert "eval(" not in text.replace(".eval(", "").replace("_eval(", ""), path
        assert "exec(" not in text.replace("_exec(", ""), path
        assert "yaml.load(" not in text and "pickle.load" not in text, path
    tokenizer = load_tokenizer  # trust_remote_code defaults to off
    assert tokenizer.__kwdefaults__["trust_remote_code"] is False
    assert ModelConfig(init={}).trust_remote_code is False and ModelConfig(init={}).allow_pickle is False
    record(
        record_property,
        "Safety",
        "code paths that could run untrusted input",
        "no shell=True, eval, exec, yaml.load or pickle.load in the package; trust_remote_code and allow_pickle "
        "default to off",
    )
