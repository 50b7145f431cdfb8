"""One process per run directory: a second writer is refused while the first runs and allowed after
it ends; what a killed process left behind is cleared by the next one."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

from faults_helpers import (
    cli,
    fault_config,
    quoted,
    read_lines,
    record,
    snapshot,
    start_slowed,
    wait_until,
    write_config,
    write_corpus,
)
from forgetless.errors import UserError
from forgetless.file_lock import LOCK_FILE, FolderLock, LockHeld
from forgetless.train.run import run_training  # noqa: F401 - imported now, not while the first run goes
from forgetless.train.run_lock import clear_leftovers, hold_run_dir


def test_a_folder_lock_is_exclusive_and_names_its_holder(tmp_path: Path) -> None:
    first = FolderLock(tmp_path).acquire()
    with pytest.raises(LockHeld) as held:
        FolderLock(tmp_path).acquire()  # a second open file: refused like another process would be
    assert held.value.holder.split("@")[0] == str(os.getpid())
    assert held.value.who == f"process {os.getpid()}"
    first.release()
    assert (tmp_path / LOCK_FILE).read_text() == ""  # no stale pid once released
    FolderLock(tmp_path).acquire().release()


def test_a_waiting_lock_gets_it_when_the_holder_lets_go(tmp_path: Path) -> None:
    first = FolderLock(tmp_path).acquire()
    waited: list[str] = []
    second = FolderLock(tmp_path)
    thread = threading.Thread(
        target=lambda: second.acquire(wait=True, on_wait=lambda h: waited.append(h.who))
    )
    thread.start()
    thread.join(0.3)
    assert thread.is_alive() and waited == [f"process {os.getpid()}"]
    first.release(remove=True)  # even a removed lock file hands over cleanly
    thread.join(10)
    assert second.held and (tmp_path / LOCK_FILE).read_text().startswith(f"{os.getpid()}@")
    second.release()


def test_a_new_run_dir_refused_before_anything_was_written_is_removed(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="bad"), hold_run_dir(tmp_path / "new" / "run"):
        raise UserError("bad")
    assert not (tmp_path / "new" / "run").exists()


def test_leftovers_of_a_killed_writer_are_cleared_and_moved_copies_put_back(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for folder in (
        ".final.tmp-1-ab",
        "checkpoints/.tmp-step_8",
        "checkpoints/.old-step_4",
        "checkpoints/step_8",
    ):
        (run / folder).mkdir(parents=True)
    (run / ".final.old-1-cd").mkdir()
    (run / ".final.old-1-cd" / "model.safetensors").write_text("weights")
    (run / ".summary.json.x1y2.tmp").write_text("{")
    cleared = clear_leftovers(run)
    assert sorted(cleared) == sorted(
        [
            ".final.tmp-1-ab",
            ".final.old-1-cd",
            ".summary.json.x1y2.tmp",
            "checkpoints/.tmp-step_8",
            "checkpoints/.old-step_4",
        ]
    )
    # final/ was moved aside and its replacement never landed: it is back; so is step_4
    assert (run / "final" / "model.safetensors").read_text() == "weights"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step_4", "step_8"]
    assert sorted(p.name for p in run.iterdir()) == ["checkpoints", "final"]


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and far slower with threads competing for shared cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_second_writer_is_refused_while_the_first_runs_and_allowed_after(
    tiny_tokenizer_dir, tmp_path, capsys, record_property, one_thread
) -> None:
    corpus = write_corpus(tmp_path / "data")
    config = write_config(
        tmp_path / "config.yaml",
        fault_config(corpus, tiny_tokenizer_dir, tmp_path / "run", tmp_path / "cache"),
    )
    run_dir = tmp_path / "run"
    first = start_slowed(["train", str(config), "--quiet"], tmp_path / "marker", at="forward", delay=0.3)
    metrics = run_dir / "metrics.jsonl"
    wait_until(lambda: metrics.exists() and '"kind":"train"' in metrics.read_text(), first)

    before = snapshot(run_dir)
    refused = []
    for extra in ([], ["--resume"]):  # a second run into the same --out, or a resume while it runs
        code, out, err = cli(["train", str(config), "--quiet", *extra], capsys)
        assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
        refused.append(err.strip())
    assert (
        refused[0]
        == refused[1]
        == (
            f"error: {run_dir}: in use by process {first.pid}, a forgetless run writing this folder; "
            "wait for it to end or write elsewhere with --out"
        )
    )
    assert first.poll() is None  # the first run goes on
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 128 + signal.SIGTERM, err
    changed = {name for name, data in snapshot(run_dir).items() if before.get(name) != data}
    assert "config.yaml" not in changed  # the refused runs wrote nothing; the first kept writing

    code, _, err = cli(["train", str(config), "--quiet", "--resume"], capsys)
    assert code == 0, err
    assert (run_dir / "final" / "model.safetensors").is_file()
    assert [r["kind"] for r in read_lines(run_dir)].count("run_end") == 1
    record(
        record_property,
        "Process",
        "a second `train` into the run directory of a running one, with and without `--resume`",
        f"both refused, exit 2: {quoted(refused[0])}; after the first ended (SIGTERM, exit 143) "
        "`--resume` took the directory over and finished",
    )
