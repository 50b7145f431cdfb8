"""A loss-driven mixture and a base-loss subset under torchrun (2 processes, gloo, CPU).

One stage mixes two targets, `code` and `prose` (the documents of the general corpus that the base
model finds most familiar: `subset: {score: base_loss}`), by their held-out loss progress, with
replay of `general`. Two processes make the same mixture updates from the same (all-reduced)
held-out losses as one process, select the same documents, score them once into their cache and
reuse it, whether they share the cache or each has its own (as the nodes of a multi-node run may),
and a two-process run resumed from a checkpoint written after an update ends exactly where the
uninterrupted one does.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from forgetless.train import checkpoint as ckpt
from launch import train
from methods.tiny_runs import read_lines, tiny_config, weights, write_corpora

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")

PROBE = Path(__file__).with_name("rank_probe.py")
# Updates every 2 of the 8 steps; a checkpoint every 4 steps, so the one at step 4 follows two
# updates, and the update at step 6 reads the losses of steps 2 and 4 (a window of 2).
SCHEDULE = {"kind": "loss_driven", "every_tokens": 512, "eta": 1.0, "window": 2, "floor": 0.1}


@pytest.fixture(scope="module")
def single(tmp_path_factory, tiny_tokenizer_dir) -> dict[str, Path]:
    """The config and its run on one process, with its own token cache."""
    tmp = tmp_path_factory.mktemp("adaptive-dist")
    corpora = write_corpora(tmp / "corpora")
    data = tiny_config(tmp, tiny_tokenizer_dir, corpora, mix_schedule=SCHEDULE)
    data["sources"]["prose"] = {
        "files": [str(corpora["general"])],
        "heldout": {"documents": 8},
        "subset": {"score": "base_loss", "keep": 0.5, "order": "lowest"},
    }
    data["stages"][0]["mix"] = {"code": 1.0, "prose": 1.0}
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    run = _run(config, tmp / "single", tmp / "cache-one", ranks=1)
    return {"config": config, "run": run, "cache": tmp / "cache-one"}


def _run(
    config: Path,
    out: Path,
    cache: Path,
    *args: str,
    ranks: int,
    parallel: str = "fsdp",
    budget: str = "",
    own_caches: bool = False,
) -> Path:
    """`forgetless train` of `config` into `out` with the token cache `cache`; on several processes,
    each one's sampler state after every mixture update goes to `<out>-ranks/rank<R>.jsonl` and each
    loading of the base model to score a subset to `<out>-ranks/scoring<R>.jsonl`,
    `budget="disagree"` makes their `eval.budget` decisions disagree, and `own_caches` gives each
    process its own token cache, `cache/rank<R>` (see `rank_probe.py`)."""
    settings = ("--out", str(out), "--set", f"cache_dir={cache}", "--set", f"train.parallel={parallel}")
    if ranks == 1:
        train(config, *settings, *args)
        return out
    probe = out.parent / f"{out.name}-ranks"
    probe.mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RANK_PROBE_DIR", str(probe))
        env.setenv("RANK_PROBE_BUDGET", budget)
        env.setenv("RANK_PROBE_CACHE", "own" if own_caches else "")
        train(config, *settings, *args, ranks=ranks, script=PROBE)
    return out


def _rank_states(out: Path, ranks: int = 2) -> list[list[dict]]:
    """Each rank's sampler states after the mixture updates of the last `_run` into `out`."""
    folder = out.parent / f"{out.name}-ranks"
    return [
        [json.loads(line) for line in (folder / f"rank{r}.jsonl").read_text().splitlines()]
        for r in range(ranks)
    ]


def _scorings(out: Path, ranks: int = 2) -> list[int]:
    """How many times each rank loaded the base model to score subsets in the last `_run` into `out`."""
    folder = out.parent / f"{out.name}-ranks"
    return [
        len(path.read_text().splitlines()) if (path := folder / f"scoring{r}.jsonl").is_file() else 0
        for r in range(ranks)
    ]


def _kind(run_dir: Path, kind: str) -> list[dict]:
    return [r for r in read_lines(run_dir) if r["kind"] == kind]


def _after_resume(run_dir: Path, kind: str) -> list[dict]:
    lines = read_lines(run_dir)
    start = max(i for i, r in enumerate(lines) if r["kind"] == "resume")
    return [r for r in lines[start:] if r["kind"] == kind]


def _cache_files(cache: Path) -> dict[str, tuple[int, int]]:
    """The scores and subsets in a token cache: path -> (inode, modification time)."""
    found = [*(cache / "scores").iterdir(), *(cache / "subsets").rglob("*")]
    return {str(p.relative_to(cache)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in found if p.is_file()}


def _subset_contents(cache: Path) -> dict[str, bytes]:
    """The bytes of every score file and every file of every subset, by path in the cache."""
    return {name: (cache / name).read_bytes() for name in _cache_files(cache)}


def _sampler_state(checkpoint: Path) -> dict:
    return json.loads((checkpoint / "trainer.json").read_text())["sampler"]


def _assert_follows(single: Path, two: Path) -> None:
    """`two` (2 processes) made the updates of `single` from the same losses, every process the
    same ones, and trained like it."""
    ours, theirs = _kind(single, "mix"), _kind(two, "mix")
    assert [r["update"] for r in theirs] == [r["update"] for r in ours] == [0, 1, 2, 3]
    assert any(r["changed"] for r in ours) and len({round(r["weights"]["code"], 6) for r in ours}) > 1
    for a, b in zip(ours, theirs, strict=True):
        assert (a["step"], a["changed"]) == (b["step"], b["changed"])
        for field in ("loss", "progress", "weights"):
            assert b[field].keys() == a[field].keys()
            for name in a[field]:
                assert b[field][name] == pytest.approx(a[field][name], rel=1e-6, abs=1e-6), (field, name)
    first, second = _rank_states(two)
    assert [s["step"] for s in first] == [0, 2, 4, 6]
    assert second == first  # the segments and the controller's history, bit for bit on both
    for state, record in zip(first, theirs, strict=True):
        assert state["sampler"]["adaptive"]["history"][-1] == list(record["loss"].values())
    train_single, train_two = _kind(single, "train"), _kind(two, "train")
    assert [r["step"] for r in train_two] == [r["step"] for r in train_single] == [2, 4, 6, 8]
    for a, b in zip(train_single, train_two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], abs=1e-4)
    assert _kind(two, "stage_end")[0]["epochs"] == _kind(single, "stage_end")[0]["epochs"]
    a, b = weights(single / "final"), weights(two / "final")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], atol=1e-4, rtol=1e-3, msg=key)


def test_two_fsdp_processes_with_caches_of_their_own_mix_and_subset_like_one_and_resume_exactly(
    single, tmp_path
) -> None:
    """Each process has a token cache of its own, as each node of a multi-node run may: the first
    process scores the documents, the other receives its scores, and both caches then hold the
    same files; a rerun reads each process's cache."""
    cache = tmp_path / "cache"
    two = _run(single["config"], tmp_path / "two", cache, ranks=2, own_caches=True)
    _assert_follows(single["run"], two)

    # The subset: the same documents selected on both processes (they trained like one process on
    # them), scored once in the run, by the first process, and the same files in both caches.
    assert _scorings(two) == [1, 0]
    caches = [cache / "rank0", cache / "rank1"]
    scored = [_cache_files(own) for own in caches]
    for files in scored:
        assert len([name for name in files if name.startswith("scores/")]) == 1
        assert not [name for name in files if ".tmp" in name or "/." in name]
    assert _subset_contents(caches[0]) == _subset_contents(caches[1]) == _subset_contents(single["cache"])

    # Resumed on 2 processes from the checkpoint of step 4, written after the updates at steps 2
    # and 4: the update at step 6 again, and the same weights and mixture state at the end; the
    # subset read from each process's cache, nothing scored again.
    resumed = Path(shutil.copytree(two, tmp_path / "resumed"))
    shutil.rmtree(resumed / "final")
    for folder in ckpt.list_checkpoints(resumed):
        if folder.name != "step_4":
            shutil.rmtree(folder)
    assert _sampler_state(resumed / "checkpoints" / "step_4")["adaptive"]["updates"] == 2
    _run(single["config"], resumed, cache, "--resume", ranks=2, own_caches=True)
    assert _scorings(resumed) == [0, 0]
    assert [_cache_files(own) for own in caches] == scored  # nothing scored or written again
    assert [states[-1:] for states in _rank_states(two)] == _rank_states(resumed)
    end = ckpt.latest_checkpoint(two)
    assert end is not None and end.name == "step_8"
    assert _sampler_state(resumed / "checkpoints" / end.name) == _sampler_state(end)
    strip = [{k: v for k, v in r.items() if k != "eval_s"} for r in _after_resume(resumed, "mix")]
    assert strip == [{k: v for k, v in r.items() if k != "eval_s"} for r in _kind(two, "mix")[-1:]]
    a, b = weights(two / "final"), weights(resumed / "final")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_two_ddp_processes_mix_like_one_and_evaluate_at_the_same_points(single, tmp_path) -> None:
    """Under `eval.budget` too, whose decisions each process takes from its own clocks (the time of
    the mixture's evaluations among them): the processes evaluate where the first one decides to."""
    out, cache = tmp_path / "two", tmp_path / "cache"
    two = _run(
        single["config"], out, cache, "--set", "eval.budget=0.5", ranks=2, parallel="ddp", budget="disagree"
    )
    _assert_follows(single["run"], two)
    # One cache for both processes: the first scores the documents and writes the subset, the
    # other finds them there.
    assert _scorings(two) == [1, 0]
    assert len([name for name in _cache_files(cache) if name.startswith("scores/")]) == 1
    assert _subset_contents(cache) == _subset_contents(single["cache"])
    evals, evals_single = _kind(two, "eval"), _kind(single["run"], "eval")
    assert [r["point"] for r in evals] == [r["point"] for r in evals_single] == ["base", "dense", "stage_end"]
    for a, b in zip(evals_single, evals, strict=True):
        for name in ("general", "code", "prose"):
            assert b[f"eval/{name}/loss"] == pytest.approx(a[f"eval/{name}/loss"], abs=1e-4), name
