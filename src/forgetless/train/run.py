"""The continual-pretraining run: stages of an explicit training loop, evaluation and checkpoints.

`run_training(config)` takes a model through every stage of the config and leaves a run directory:

    config.yaml      the resolved config
    metrics.jsonl    train, eval and stage lines (see `forgetless.train.metrics_log`)
    checkpoints/     step_N/ folders for exact resume (see `forgetless.train.checkpoint`)
    final/           a standard Hugging Face model directory (safetensors + tokenizer)
    summary.json     the ledger of learning and forgetting, computed from metrics.jsonl

`_run_training` reads as its steps: set up the model (`_set_up_model`), the data (`_set_up_data`)
and the run (`_set_up_run`), then train every stage (`_run_stages`). The loop itself is
`_train_stage`: read it top to bottom to see everything a step does; what follows a step (log,
evaluate, checkpoint, stop) is `_after_step`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
import traceback
from collections.abc import Collection
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgetless.config import DecayMixConfig, RunConfig, StageConfig, check_folder, dump_config
from forgetless.console import resolve_progress
from forgetless.data.prepare import prepare_sources
from forgetless.data.sampler import MixtureSampler
from forgetless.device import autocast, resolve_device
from forgetless.distributed import (
    World,
    as_local,
    barrier,
    broadcast_from_main,
    is_sharded_model,
    reshard,
    save_full_model,
    shard_model,
    teardown,
    unwrap,
)
from forgetless.distributed import setup as setup_world
from forgetless.errors import Preempted, RunFailed, RunStopped, UserError, is_disk_full
from forgetless.evaluate.base_cache import BaseEvalCache, cache_for_run
from forgetless.evaluate.forward import windows_per_pass
from forgetless.evaluate.heldout import (
    document_end_token,
    evaluate_heldout_over_ranks,
    losses_by_position,
    position_bucket_index,
    sample_heldout,
)
from forgetless.evaluate.ledger import write_summary
from forgetless.evaluate.mcq import (
    load_questions,
    mcq_batch_size,
    mcq_record,
    question_set_name,
    score_mcq,
)
from forgetless.methods import build_methods
from forgetless.methods.base import (
    LossTerms,
    Method,
    MethodContext,
    MicroBatch,
    after_optimizer_step,
    before_optimizer_step,
    eval_weights,
    method_states,
    start_or_resume,
    training_loss,
)
from forgetless.methods.router_balance import RouterBalance
from forgetless.model.load import (
    build_model,
    check_finite_weights,
    embedding_rows,
    is_model_dir,
    load_tokenizer,
)
from forgetless.model.loss import EXTERNAL_KERNELS, check_external_kernel
from forgetless.model.moe import RouterStats, has_known_routers
from forgetless.model.positions import check_context_length, check_stage_length
from forgetless.model.rope import ROPE_KINDS
from forgetless.model.transforms import TOKENIZER_TRANSFORMS, Transformed, apply_transforms, count_distinct
from forgetless.train import checkpoint as ckpt
from forgetless.train.eval_budget import EvalCosts, mcq_sample, within_budget
from forgetless.train.health import StepHealth
from forgetless.train.host_memory import freed_memory_kept
from forgetless.train.metrics_log import MetricsLog
from forgetless.train.microbatches import SerialMicroBatches, ThreadedMicroBatches, micro_batch_runner
from forgetless.train.model_card import write_card
from forgetless.train.optimizer_in_backward import OptimizerInBackward
from forgetless.train.parallelize import (
    checkpoint_activations,
    compile_blocks,
    peak_memory_gib,
    supports_fused_loss,
)
from forgetless.train.param_groups import apply_stage, run_parameter_groups, trainable_names
from forgetless.train.preemption import StopRequest
from forgetless.train.progress import ProgressDisplay
from forgetless.train.resume_policy import check_resumed_config, check_resumed_data, data_record
from forgetless.train.run_lock import hold_run_dir
from forgetless.train.schedules import learning_rate, schedule_phases
from forgetless.train.short_sequences import ShortSequences
from forgetless.train.subsets import with_subsets
from forgetless.train.tokenizer_change import (
    BaseTokenizer,
    document_texts,
    eval_samples,
    measure_base,
    pinned_config,
    prepare_with,
    tokenizer_record,
    tokenizer_summary,
)
from forgetless.train.trackers import TrackerSet


@dataclass
class Position:
    """Where the run is. Saved in every checkpoint; everything else is derived from it."""

    step: int = 0  # optimizer steps done in the whole run
    tokens: int = 0  # training tokens consumed in the whole run (all ranks)
    stage_index: int = 0
    stage_step: int = 0  # optimizer steps done in the current stage
    train_s: float = 0.0
    eval_s: float = 0.0
    rollbacks: int = 0  # rollbacks after runs of non-finite steps; each halves the learning rate
    skipped_steps: int = 0  # steps whose update was skipped for a non-finite loss or gradient norm

    @property
    def lr_scale(self) -> float:
        return 0.5**self.rollbacks


@dataclass
class RunData:
    """What a run reads: each source's training tokens, the held-out windows it evaluates (with
    their UTF-8 bytes) and its question sets."""

    train_stores: dict[str, Any]
    eval_sets: dict[str, tuple[np.ndarray, int]]
    mcq_sets: dict[str, list[dict]]
    contents: dict[str, dict[str, str | None]] = field(default_factory=dict)  # resume_policy.data_record
    # after a tokenizer change: per source the evaluated text and whether it is the base's (tokenizer_change)
    same_text: dict[str, dict[str, Any]] = field(default_factory=dict)
    eval_buckets: dict[str, np.ndarray] = field(default_factory=dict)  # heldout.position_bucket_index
    eval_sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # HeldoutSample.sizes per source


@dataclass
class Run:
    """What stays fixed while a run trains."""

    config: RunConfig
    run_dir: Path
    device: torch.device
    autocast_dtype: torch.dtype | None
    model: torch.nn.Module
    tokenizer: Any
    train_stores: dict[str, Any]
    eval_sets: dict[str, tuple[np.ndarray, int]]
    mcq_sets: dict[str, list[dict]]
    log: MetricsLog
    display: ProgressDisplay
    fused_loss: bool = False
    fused_loss_why: str = ""  # why the fused loss is used or not, for run_start
    contents: dict[str, dict[str, str | None]] = field(default_factory=dict)  # RunData.contents
    loss_kernel: str = "forgetless"  # with fused_loss: forgetless's own, liger or cce
    micro_batches: SerialMicroBatches | ThreadedMicroBatches = field(default_factory=SerialMicroBatches)
    stop: StopRequest = field(default_factory=StopRequest)
    optimizer_in_backward: OptimizerInBackward | None = None  # train.optimizer_in_backward
    trainable: frozenset[str] = frozenset()  # parameters that train unless a stage freezes them
    added: frozenset[str] = frozenset()  # parameters model.transforms added (`train_only: [new]`)
    added_rows: dict[str, list[tuple[int, int]]] = field(default_factory=dict)  # new tokens' rows (`new_rows`)
    tokenizer_change: dict[str, Any] | None = None  # run_start's `tokenizer` (forgetless.train.tokenizer_change)
    transforms: list[dict[str, Any]] = field(default_factory=list)  # as applied (forgetless.model.transforms)
    methods: list[Method] = field(default_factory=list)  # the current stage's (forgetless.methods)
    world: World = field(default_factory=World)  # this process's rank among the run's processes
    started: float = field(default_factory=time.monotonic)
    trackers: TrackerSet | None = None  # output.trackers, on the main process (fed by `log`)
    eval_costs: EvalCosts = field(default_factory=EvalCosts)  # for eval.budget
    eval_buckets: dict[str, np.ndarray] = field(default_factory=dict)  # RunData.eval_buckets
    eval_sizes: dict[str, dict[str, int]] = field(default_factory=dict)  # RunData.eval_sizes
    router_stats: RouterStats | None = None  # the routers of an MoE model (forgetless.model.moe)
    base_cache: BaseEvalCache | None = None  # where the base evaluation is cached (main process)

    def tokens_per_step(self, stage_index: int) -> int:
        """Training tokens of one optimizer step of stage `stage_index` (all ranks)."""
        return self.config.tokens_per_step_of(stage_index)


def run_training(
    config: RunConfig, *, resume: bool = False, quiet: bool = False, progress: str = "auto"
) -> Path:
    """Train through every stage of `config`; return the run directory. `progress` is the display
    mode (`forgetless.console`: auto, live, plain, json or quiet); `quiet` means "quiet".

    Holds the run directory's lock throughout (`forgetless.train.run_lock`), so a second process
    writing the same directory is refused. Raises `UserError` for bad input, before anything in the
    run directory changes; `RunFailed` when the run diverges, the disk fills up or the GPU runs out
    of memory; `Preempted` when SIGTERM or SIGINT stopped it after a checkpoint (see
    docs/reliability.md).
    """
    if quiet:
        progress = "quiet"
    try:
        _check_output_dir(Path(config.output.dir))  # before the lock creates the folder
        with (
            hold_run_dir(Path(config.output.dir)),
            _transformers_progress_bars(resolve_progress(progress) == "live"),
        ):
            return _run_training(config, resume=resume, progress=progress)
    except (UserError, RunStopped):
        raise
    except _OUT_OF_MEMORY as err:
        raise RunFailed(_out_of_memory_message(config, err)) from None
    except Exception as err:
        if is_disk_full(err):
            raise RunFailed(_disk_full_message(Path(config.output.dir), err)) from None
        raise


def _run_training(config: RunConfig, *, resume: bool, progress: str) -> Path:
    run_dir = Path(config.output.dir)
    latest = _check_run_dir(run_dir, resume)
    if latest is not None:
        check_resumed_config(run_dir, config)  # before anything is built: a refused key costs nothing
    world, device = setup_world(config.train.device, one_process_group=config.train.mixed_precision == "fsdp")
    finished = False
    try:
        torch.manual_seed(config.train.seed)
        autocast_dtype = resolve_device(device.type, config.train.precision)[1]
        model, tokenizer, transformed, base = _set_up_model(
            config, world, device, autocast_dtype, latest, progress=progress
        )
        data = _set_up_data(
            config,
            tokenizer,
            world,
            progress=progress,
            model=unwrap(model),
            base=base,
            device=device,
            autocast_dtype=autocast_dtype,
        )
        if latest is not None:
            check_resumed_data(run_dir, data.contents)
        _check_before_writing(
            config, data.train_stores, unwrap(model), latest, transformed.added, set(transformed.added_rows)
        )
        run = _set_up_run(config, world, device, autocast_dtype, model, tokenizer, data, transformed, progress=progress)
        if base is not None and latest is None:
            run.tokenizer_change = tokenizer_record(base, tokenizer, data.same_text)
            run.display.message(tokenizer_summary(run.tokenizer_change))
        if world.is_main and resume and latest is None and (run_dir / "metrics.jsonl").stat().st_size > 0:
            run.log.write({"kind": "resume", "step": 0, "tokens": 0})  # no checkpoint: start over
        try:
            with run.stop.installed():
                _run_stages(run, latest)
        finally:
            run.micro_batches.close()
            run.log.close()
            run.display.close()
            if run.trackers is not None:
                run.trackers.close()
        finished = True
    finally:
        teardown(world, wait=finished)  # a failed run destroys its process group too
    return run_dir


def _set_up_model(
    config: RunConfig,
    world: World,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    latest: Path | None,
    *,
    progress: str,
) -> tuple[torch.nn.Module, Any, Transformed, BaseTokenizer | None]:
    """The model on `device` after `model.transforms` (as the checkpoint `latest` recorded them,
    when resuming), with activation checkpointing, compiled blocks and sharding as `train` asks;
    its tokenizer; what the transforms did; and, when they replace the tokenizer, the base's data
    and held-out results with its own tokenizer (see `forgetless.train.tokenizer_change`)."""
    train = config.train
    if train.sequences_per_step % (train.micro_batch * world.size):
        raise UserError(
            f"train.batch_tokens: {train.sequences_per_step} sequences per step do not split into micro-batches "
            f"of {train.micro_batch} on {world.size} processes"
        )
    for index in range(len(config.stages)):
        steps, micro = config.sequences_per_step_of(index), config.micro_batch_of(index)
        if steps % (micro * world.size):
            raise UserError(
                f"stages.{index}.seq_len: {steps} sequences per step do not split into micro-batches of {micro} "
                f"on {world.size} processes"
            )
    _check_speed_settings(config, world, bf16=autocast_dtype is not None)
    tokenizer = load_tokenizer(
        config.tokenizer or config.model.path, trust_remote_code=config.model.trust_remote_code
    )
    model = build_model(config.model, tokenizer).to(device)
    check_finite_weights(model, config.model.path or "model.init")
    base = None
    if any(spec.kind in TOKENIZER_TRANSFORMS for spec in config.model.transforms):
        base = measure_base(
            config,
            model,
            tokenizer,
            world,
            sources=_sources_needed(config),
            evaluate=latest is None,
            device=device,
            autocast_dtype=autocast_dtype,
            progress=progress,
        )
    transformed = _transform_model(config, model, tokenizer, world, latest, quiet=progress == "quiet", base=base)
    model, tokenizer = transformed.model, transformed.tokenizer
    check_context_length(model, train.seq_len, "train.seq_len")
    rope_changed = any(spec.kind in ROPE_KINDS for spec in config.model.transforms)
    for index, stage in enumerate(config.stages):
        if stage.seq_len is not None:
            check_stage_length(model, stage.seq_len, f"stages.{index}.seq_len", rope_changed=rope_changed)
    selective = train.selective_checkpointing
    checkpoint_activations(model, train.activation_checkpointing, selective.every, selective.part)
    if train.compile:
        compile_blocks(model)
    model = shard_model(
        model,
        world,
        mode=train.parallel,
        device=device,
        bf16=autocast_dtype is not None,
        freezes=any(stage.methods.freeze or stage.methods.train_only for stage in config.stages),
        mixed_precision=train.mixed_precision,
    )
    return model, tokenizer, transformed, base


def _set_up_data(
    config: RunConfig,
    tokenizer: Any,
    world: World,
    *,
    progress: str,
    model: torch.nn.Module,
    base: BaseTokenizer | None = None,
    device: torch.device | None = None,
    autocast_dtype: torch.dtype | None = None,
) -> RunData:
    """Every source the run reads, tokenized into the cache (by the first process; the others then
    find it there), with the held-out windows and question sets it evaluates. After a tokenizer
    change (`base`), the held-out split is the base tokenizer's and the windows cover the documents
    the base was evaluated on (`forgetless.train.tokenizer_change`). A source's `subset` is applied
    (`forgetless.train.subsets`), by the first process, the others then finding it in their cache or
    receiving the first one's scores."""
    prepared = prepare_with(
        config if base is None else pinned_config(config, base),
        tokenizer,
        _sources_needed(config),
        world,
        progress=progress,
        model_rows=embedding_rows(model),
    )
    if any(config.sources[name].subset is not None for name in prepared):
        display = ProgressDisplay(progress=progress if world.is_main else "quiet")
        prepared = with_subsets(
            config,
            prepared,
            tokenizer,
            device=device or torch.device("cpu"),
            autocast_dtype=autocast_dtype,
            world=world,
            note=display.message,
        )
        display.close()
    for name in config.eval_sources:
        if prepared[name].heldout.num_documents == 0:
            raise UserError(
                f"sources.{name}: no held-out documents to evaluate (a source of one document has none); "
                f"add documents or leave {name} out of eval.sources"
            )
    same_text: dict[str, dict[str, Any]] = {}
    if base is None:
        samples = {
            name: sample_heldout(
                prepared[name].heldout, seq_len=config.eval_seq_len, max_tokens=config.eval.max_tokens
            )
            for name in config.eval_sources
        }
    else:
        samples, same_text = eval_samples(config, base, prepared)
    eval_sets = {name: (sample.windows, sample.num_bytes) for name, sample in samples.items()}
    mcq_sets = {
        question_set_name(ref): load_questions(ref)[: config.eval.mcq_limit] for ref in config.eval.mcq
    }
    contents = data_record({name: (p.train, p.heldout) for name, p in prepared.items()})
    buckets = {
        name: position_bucket_index(windows, document_end_token(prepared[name].heldout))
        for name, (windows, _) in eval_sets.items()
    }
    return RunData(
        {name: p.train for name, p in prepared.items()},
        eval_sets,
        mcq_sets,
        contents,
        same_text=same_text,
        eval_buckets=buckets,
        eval_sizes={name: sample.sizes() for name, sample in samples.items()},
    )


def _set_up_run(
    config: RunConfig,
    world: World,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    model: torch.nn.Module,
    tokenizer: Any,
    data: RunData,
    transformed: Transformed,
    *,
    progress: str,
) -> Run:
    """The run, with its run directory, config.yaml and metrics log: the first writes of a run."""
    sharded = is_sharded_model(model)
    loss_kernel, fused_loss_why = _use_fused_loss(config.train.fused_loss, unwrap(model), world, device, sharded=sharded)
    fused_loss = loss_kernel is not None
    micro_batches = _micro_batch_runner(config, model, device, world, fused_loss, sharded=sharded)
    run_dir = Path(config.output.dir)
    trackers = TrackerSet(config, run_dir) if world.is_main and config.output.trackers else None
    cache = None
    if world.is_main:
        cache = cache_for_run(
            config,
            tokenizer=tokenizer,
            eval_sets=data.eval_sets,
            heldout_hashes={name: splits.get("heldout") for name, splits in data.contents.items()},
            mcq_sets=data.mcq_sets,
            mcq_scoring=_MCQ_SCORING,
            device_type=device.type,
            bf16=autocast_dtype is not None,
        )
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(dump_config(config), encoding="utf-8")
        if any(spec.kind in TOKENIZER_TRANSFORMS for spec in config.model.transforms):
            tokenizer.save_pretrained(run_dir / "tokenizer")  # the extended tokenizer, beside final/'s
    return Run(
        config=config,
        run_dir=run_dir,
        device=device,
        autocast_dtype=autocast_dtype,
        model=model,
        tokenizer=tokenizer,
        train_stores=data.train_stores,
        eval_sets=data.eval_sets,
        mcq_sets=data.mcq_sets,
        log=MetricsLog(
            run_dir / "metrics.jsonl", enabled=world.is_main, sinks=[trackers] if trackers else []
        ),
        display=ProgressDisplay(progress=progress if world.is_main else "quiet"),
        fused_loss=fused_loss,
        fused_loss_why=fused_loss_why,
        contents=data.contents,
        eval_buckets=data.eval_buckets,
        eval_sizes=data.eval_sizes,
        loss_kernel=loss_kernel or "forgetless",
        micro_batches=micro_batches,
        optimizer_in_backward=OptimizerInBackward(model) if config.train.optimizer_in_backward else None,
        trainable=trainable_names(unwrap(model)),
        added=transformed.added,
        added_rows=transformed.added_rows,
        transforms=transformed.records(),
        world=world,
        trackers=trackers,
        router_stats=RouterStats(unwrap(model)) if has_known_routers(unwrap(model)) else None,
        base_cache=cache,
    )


def _run_stages(run: Run, latest: Path | None) -> None:
    config = run.config
    position = Position()
    optimizer = _new_optimizer(run)
    trainer_state: dict[str, Any] = {}
    if latest is not None:
        trainer_state = ckpt.load_checkpoint(latest, model=run.model, optimizer=optimizer, world=run.world)
        position = Position(**trainer_state["position"])
        run.log.write({"kind": "resume", "step": position.step, "tokens": position.tokens})
        run.display.message(f"resumed from {latest} (step {position.step:,}, {position.tokens:,} tokens)")
    else:
        run.log.write(_run_start_record(run))
        _evaluate_base(run, position)

    while position.stage_index < len(config.stages):
        stage = config.stages[position.stage_index]
        sampler = MixtureSampler.for_stage(
            config, position.stage_index, run.train_stores, rank=run.world.rank, world_size=run.world.size
        )
        if position.stage_step > 0:
            sampler.load_state_dict(trainer_state["sampler"])
        elif position.stage_index > 0 and stage.reset_optimizer:
            optimizer = _new_optimizer(run)
        _schedule_decay_mix(run, position.stage_index, sampler)
        run.methods = _begin_stage(run, optimizer, sampler, position, trainer_state.get("methods"))
        try:
            _train_stage(run, stage, position, optimizer, sampler)
        except _Diverged as diverged:
            optimizer, position, trainer_state = _roll_back(run, position, diverged)
            continue
        position.stage_index += 1
        position.stage_step = 0
        saved = None
        if config.output.checkpoint_every_tokens is not None:
            saved = _save(run, position, optimizer, sampler=None)
        if run.stop.requested and position.stage_index < len(config.stages):
            _stop_for_signal(run, position, saved or _save(run, position, optimizer, sampler=None))

    wall_s = position.train_s + position.eval_s
    run.log.write(
        {
            "kind": "run_end",
            "step": position.step,
            "tokens": position.tokens,
            "wall_s": wall_s,
            "train_s": position.train_s,
            "eval_s": position.eval_s,
            "tokens_per_s": position.tokens / max(position.train_s, 1e-9),
            "skipped_steps": position.skipped_steps,
            "rollbacks": position.rollbacks,
            "evals_skipped": len(run.eval_costs.skipped),  # by eval.budget, in this process
        }
    )
    _save_final(run)
    run.log.close()
    if run.world.is_main:
        summary = write_summary(run.run_dir)
        write_card(run.run_dir)
        if run.trackers is not None:
            run.trackers.finish(summary)


def _begin_stage(
    run: Run,
    optimizer: torch.optim.Optimizer,
    sampler: MixtureSampler,
    position: Position,
    states: dict[str, Any] | None,
) -> list[Method]:
    """Set up the stage at `position`: its LR multipliers and frozen parameters, then its methods,
    started fresh (at the stage's first step) or restored from the latest checkpoint and `states`."""
    index = position.stage_index
    stage = run.config.stages[index]
    # Stages and methods see the model's own parameter names (not a DDP wrapper's); under FSDP2 the
    # model is its own wrapper, and the parameters to follow are the sharded ones (see `snapshot`).
    model = unwrap(run.model)
    reshard(model)
    apply_stage(
        model,
        optimizer,
        stage_index=index,
        freeze=stage.methods.freeze,
        trainable=run.trainable,
        key=f"stages.{index}.methods.freeze",
        train_only=stage.methods.train_only,
        added=run.added,
        added_rows=set(run.added_rows),
    )
    context = _method_context(run, index, _stage_steps(run, sampler, index), optimizer, position)
    methods = build_methods(stage, model, context)
    if run.router_stats is not None:  # an MoE model: its routers' balance loss in every stage
        methods.append(RouterBalance(run.router_stats, getattr(model.config, "router_aux_loss_coef", 0.0)))
    if position.stage_step == 0:
        start_or_resume(methods, None, None)
    else:
        latest = ckpt.latest_checkpoint(run.run_dir)
        assert latest is not None  # the run resumed (or rolled back) from it
        start_or_resume(methods, states, ckpt.read_extra_tensors(latest), checkpoint=str(latest))
    return methods


def _method_context(
    run: Run, stage_index: int, total_steps: int, optimizer: torch.optim.Optimizer, position: Position
) -> MethodContext:
    """What the methods of stage `stage_index` may know of the run (see `MethodContext`); a line a
    method logs is stamped with the run's step and tokens when it is written."""
    config = run.config
    return MethodContext(
        stage=config.stages[stage_index],
        stage_index=stage_index,
        total_steps=total_steps,
        last_stage=stage_index == len(config.stages) - 1,
        run_dir=run.run_dir,
        device=run.device,
        autocast_dtype=run.autocast_dtype,
        tokenizer=run.tokenizer,
        train_stores=run.train_stores,
        seq_len=config.seq_len_of(stage_index),
        micro_batch=config.micro_batch_of(stage_index),
        seed=config.train.seed,
        world=run.world,
        sequences_per_step=config.sequences_per_step_of(stage_index),
        optimizer=optimizer,
        added_rows=run.added_rows,
        log=lambda record: run.log.write({**record, "step": position.step, "tokens": position.tokens}),
    )


def _stage_steps(run: Run, sampler: MixtureSampler, stage_index: int) -> int:
    """Optimizer steps of stage `stage_index`, which `sampler` serves (at least one)."""
    return max(1, math.ceil(sampler.total_sequences / run.config.sequences_per_step_of(stage_index)))


@dataclass
class _StageLoop:
    """What the loop of one stage keeps from step to step, besides the run's `Position`."""

    stage: StageConfig
    total_steps: int
    eval_steps: dict[int, str]  # stage steps after which to evaluate, with the kind of point
    checkpoint_every: int | None  # optimizer steps between checkpoints
    health: StepHealth
    terms: LossTerms  # the methods' terms, logged as loss/<name>
    mix_every: int | None = None  # optimizer steps between updates of a loss-driven mixture
    window_tokens: int = 0  # training tokens and seconds since the last train line
    window_s: float = 0.0
    tick: float = field(default_factory=time.perf_counter)  # since when training time counts


def _train_stage(
    run: Run,
    stage: StageConfig,
    position: Position,
    optimizer: torch.optim.Optimizer,
    sampler: MixtureSampler,
) -> None:
    """The training loop of one stage: explicit, with no host sync per step except at log intervals."""
    config, model = run.config, run.model
    train = config.train
    index = position.stage_index
    micro_batch = config.micro_batch_of(index)
    accumulation = config.sequences_per_step_of(index) // (micro_batch * run.world.size)
    total_steps = _stage_steps(run, sampler, index)
    tokens_per_step = run.tokens_per_step(index)
    short = ShortSequences.of(config, index)
    if position.stage_step == 0:
        trainable = sum(p.numel() for p in unwrap(model).parameters() if p.requires_grad)
        run.log.write({**_stage_record("stage_start", stage, position), "trainable_parameters": trainable})
    run.display.start_stage(
        stage.name,
        position.stage_index,
        len(config.stages),
        total_steps * tokens_per_step,
        position.stage_step * tokens_per_step,
    )
    model.train()
    loop = _StageLoop(
        stage=stage,
        total_steps=total_steps,
        eval_steps=_eval_steps(run, index, total_steps),
        checkpoint_every=_checkpoint_every_steps(run, index),
        health=StepHealth(config.reliability, run.log, stage.name, run.display),
        terms=LossTerms([m.name for m in run.methods], run.device),
        mix_every=_mix_every_steps(run, index),
    )
    if loop.mix_every is not None and position.stage_step == 0:
        _adapt_mix(run, position, stage, sampler)  # the losses the progress is measured from

    def work(micro_step: MicroBatch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        with autocast(run.device, run.autocast_dtype):
            return training_loss(
                run.methods,
                model,
                micro_step,
                fused=run.fused_loss,
                compute_dtype=run.autocast_dtype,
                compiled=train.compile,
                kernel=run.loss_kernel,
            )

    while position.stage_step < total_steps:
        lr = learning_rate(stage.schedule, position.stage_step, total_steps) * position.lr_scale
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_multiplier"]

        loss_sum = torch.zeros((), device=run.device)
        batches = []  # drawn in order here, whichever way they then run
        for _ in range(accumulation):
            batch = _to_device(sampler.next_batch(micro_batch), run.device)
            replay = sampler.last_plan.replay if sampler.last_plan is not None else None
            batches.append(short.cut(MicroBatch(batch[:, :-1], batch[:, 1:], replay, step=position.stage_step)))
        in_backward = run.optimizer_in_backward  # when set, the backward itself updates the weights
        if in_backward is not None:
            in_backward.begin(optimizer)
        for loss, extra in run.micro_batches.run(work, batches, 1.0 / accumulation):
            loss_sum += loss
            loop.terms.add(extra, 1.0 / accumulation)
        loop.terms.add(before_optimizer_step(run.methods))  # penalties on the weights: their gradients
        loop.terms.end_step()
        if in_backward is not None:
            grad_norm = in_backward.finish()
        else:
            grad_norm = as_local(_clip_gradients(model, train.grad_clip))
        if run.world.distributed:  # the global mean loss: every rank then takes the same skip decision
            torch.distributed.all_reduce(loss_sum)
            loss_sum /= run.world.size
        if in_backward is None and loop.health.guard_step(optimizer, loss_sum, grad_norm):
            optimizer.step()  # a non-finite step changes nothing
        optimizer.zero_grad(set_to_none=True)

        position.step += 1
        position.stage_step += 1
        position.tokens += tokens_per_step
        after_optimizer_step(run.methods, position.stage_step)
        loop.health.record(position.step, loss_sum / accumulation, grad_norm)
        _after_step(run, loop, position, optimizer, sampler, lr=lr, grad_norm=grad_norm)


def _after_step(
    run: Run,
    loop: _StageLoop,
    position: Position,
    optimizer: torch.optim.Optimizer,
    sampler: MixtureSampler,
    *,
    lr: float,
    grad_norm: torch.Tensor,
) -> None:
    """What follows an optimizer step: a train line at log intervals, an evaluation at the stage's
    evaluation points, a checkpoint every `output.checkpoint_every_tokens`, and the stop a signal
    asked for (after a checkpoint). Evaluations and checkpoints do not count as training time."""
    last = position.stage_step == loop.total_steps
    log_now = position.step % run.config.train.log_every_steps == 0 or last
    if log_now:  # the one host sync per log interval; the clock is read after it
        _drain(run, loop.health, position)
    now = time.perf_counter()
    position.train_s += now - loop.tick
    loop.window_s += now - loop.tick
    loop.window_tokens += run.tokens_per_step(position.stage_index)
    if log_now:
        _log_train(run, loop, position, lr, grad_norm)

    if loop.mix_every is not None and not last and position.stage_step % loop.mix_every == 0:
        _adapt_mix(run, position, loop.stage, sampler)
    if position.stage_step in loop.eval_steps and (last or _eval_fits_budget(run, loop, position)):
        _evaluate(
            run,
            position,
            point="stage_end" if last else loop.eval_steps[position.stage_step],
            stage=loop.stage,
            stage_tokens=position.stage_step * run.tokens_per_step(position.stage_index),
            with_mcq=last,
        )
        run.model.train()
    saved = None
    if last:
        epochs = {name: counts["epochs"] for name, counts in sampler.counters().items()}
        run.log.write({**_stage_record("stage_end", loop.stage, position), "epochs": epochs})
    elif loop.checkpoint_every and position.step % loop.checkpoint_every == 0:
        _drain(run, loop.health, position)
        if loop.health.consecutive_bad == 0:  # no checkpoint in the middle of a run of non-finite steps
            saved = _save(run, position, optimizer, sampler)
    if run.stop.requested and not last:
        _stop_for_signal(run, position, saved or _save(run, position, optimizer, sampler))
    loop.tick = time.perf_counter()


def _eval_fits_budget(run: Run, loop: _StageLoop, position: Position) -> bool:
    """Whether an optional evaluation point runs under `eval.budget` (see `train.eval_budget`).
    Every process takes the first one's decision: the evaluation is collective, and each process's
    clocks (its training, evaluation and mixture-update times) differ a little."""
    stages = run.config.stages
    later = range(position.stage_index + 1, len(stages))
    local = within_budget(
        run.config.eval.budget,
        run.eval_costs,
        eval_s=position.eval_s,
        train_s=position.train_s,
        steps_done=position.step,
        steps_left=loop.total_steps
        - position.stage_step
        + sum(math.ceil(stages[i].tokens / run.tokens_per_step(i)) for i in later),
        stage_ends_left=1 + len(later),
    )
    fits = bool(broadcast_from_main(local, run.world)) if run.config.eval.budget is not None else local
    if not fits:
        run.eval_costs.skipped.append(position.step)
    return fits


def _log_train(run: Run, loop: _StageLoop, position: Position, lr: float, grad_norm: torch.Tensor) -> None:
    """The train line of the log window that ends now, and the progress display."""
    mean_loss, skipped = loop.health.take_window()
    record = {
        "kind": "train",
        "step": position.step,
        "tokens": position.tokens,
        "stage": loop.stage.name,
        "stage_index": position.stage_index,
        "lr": lr,
        "loss": mean_loss,
        "grad_norm": float(grad_norm),
        "tokens_per_s": loop.window_tokens / max(loop.window_s, 1e-9),
        "elapsed_s": position.train_s + position.eval_s,
        "skipped_steps": skipped,
    }
    if (peak := peak_memory_gib(run.device)) is not None:
        record["peak_mem_gib"] = peak
    record.update(loop.terms.means(run.world))
    for method in run.methods:
        record.update(method.log_fields(run.world))
    run.log.write(record)
    run.display.update(
        position.stage_step * run.tokens_per_step(position.stage_index),
        loss=mean_loss,
        tokens_per_s=record["tokens_per_s"],
        lr=lr,
        step=position.step,
    )
    loop.window_tokens, loop.window_s = 0, 0.0


# How the run scores its question sets (score_mcq's defaults), part of the base-evaluation cache key.
_MCQ_SCORING = {"template": "{question}\nAnswer:", "few_shot": 0, "outcomes": True}


def _evaluate_base(run: Run, position: Position) -> None:
    """The evaluation before training: read from the base-evaluation cache when a run evaluated
    the same base model the same way (`forgetless.evaluate.base_cache`), else measured and stored
    there. A reused one says so in its eval line (`base_cache`) and on the display."""
    stage = run.config.stages[0]
    start = time.perf_counter()
    cached = run.base_cache.read() if run.base_cache is not None else None
    cached = broadcast_from_main(cached, run.world)  # every process takes the same path
    if cached is None:
        record = _evaluate(run, position, point="base", stage=stage, stage_tokens=0, with_mcq=True)
        if run.base_cache is not None:
            run.base_cache.write(
                record,
                eval_s=record["eval_s"],
                heldout_s=run.eval_costs.heldout_s or 0.0,
                run_dir=run.run_dir,
            )
        return
    elapsed = time.perf_counter() - start
    # eval.budget plans with the cost of an evaluation: the one measured when the entry was made.
    run.eval_costs.heldout_s, run.eval_costs.full_s = cached.heldout_s, cached.eval_s
    position.eval_s += elapsed
    record = {
        "kind": "eval",
        "step": position.step,
        "tokens": position.tokens,
        "stage": stage.name,
        "stage_index": position.stage_index,
        "stage_tokens": 0,
        "point": "base",
        **cached.record,
        "eval_s": elapsed,
        "base_cache": {"entry": str(cached.path), "computed_by": cached.run_dir, "eval_s": cached.eval_s},
    }
    run.log.write(record)
    run.display.message(
        f"base evaluation: reused the one computed by {cached.run_dir} in {cached.eval_s:.1f} s ({cached.path})"
    )
    run.display.set_eval(record)


def _evaluate(
    run: Run, position: Position, *, point: str, stage: StageConfig, stage_tokens: int, with_mcq: bool
) -> dict[str, Any]:
    start = time.perf_counter()
    record: dict[str, Any] = {
        "kind": "eval",
        "step": position.step,
        "tokens": position.tokens,
        "stage": stage.name,
        "stage_index": position.stage_index,
        "stage_tokens": stage_tokens,
        "point": point,
    }
    heldout_start = time.perf_counter()
    for name, (windows, num_bytes) in run.eval_sets.items():
        result = _evaluate_heldout_share(run, windows, num_bytes, run.eval_buckets.get(name))
        record[f"eval/{name}/loss"] = result["loss"]
        record[f"eval/{name}/bpb"] = result["bpb"]
        record[f"eval/{name}/ppl"] = result["ppl"]
        for field_name, value in run.eval_sizes.get(name, {}).items():  # documents, tokens, bytes
            record[f"eval/{name}/{field_name}"] = value
        if "bucket_nll" in result:  # the loss by position in the document
            by_position = losses_by_position(result["bucket_nll"], result["bucket_tokens"], windows.shape[1] - 1)
            record[f"eval/{name}/loss_by_position"] = by_position["loss"]
            record[f"eval/{name}/tokens_by_position"] = by_position["tokens"]
    run.eval_costs.heldout_s = time.perf_counter() - heldout_start
    reshard(run.model)  # weights swapped in below are then gathered afresh by the next forward
    for suffix, weights in eval_weights(run.methods):  # e.g. the EMA of the weights, as loss@ema
        with weights:
            for name, (windows, num_bytes) in run.eval_sets.items():
                result = _evaluate_heldout_share(run, windows, num_bytes)
                record[f"eval/{name}/loss{suffix}"] = result["loss"]
                record[f"eval/{name}/bpb{suffix}"] = result["bpb"]
            reshard(run.model)
    if with_mcq:
        # with eval.budget, the stage ends between the base and the last one score a sample
        whole = (
            point == "base"
            or run.config.eval.budget is None
            or (point == "stage_end" and position.stage_index == len(run.config.stages) - 1)
        )
        for name, items in run.mcq_sets.items():
            result = score_mcq(
                run.model,
                run.tokenizer,
                items if whole else mcq_sample(items, run.config.train.seed),
                batch_size=mcq_batch_size(run.config.eval.batch_size),
                device=run.device,
                autocast_dtype=run.autocast_dtype,
                with_outcomes=whole,
            )
            record.update(mcq_record(name, result))
    elapsed = time.perf_counter() - start
    if with_mcq:
        run.eval_costs.full_s = elapsed
    reshard(run.model)  # free the gathered root parameters until training gathers them
    position.eval_s += elapsed
    record["eval_s"] = elapsed
    run.log.write(record)
    run.display.set_eval(record)
    return record


def _mix_every_steps(run: Run, stage_index: int) -> int | None:
    schedule = run.config.stages[stage_index].mix_schedule
    if schedule is None or schedule.kind != "loss_driven":
        return None
    return max(1, math.ceil(schedule.every_tokens / run.tokens_per_step(stage_index)))


def _adapt_mix(run: Run, position: Position, stage: StageConfig, sampler: MixtureSampler) -> None:
    """One observation of the stage's loss-driven mixture: evaluate the held-out losses it reads,
    set the shares they give from the sampler's position on, and log a `mix` line."""
    assert sampler.adaptive is not None
    start = time.perf_counter()
    losses = {
        name: _evaluate_heldout_share(run, *run.eval_sets[name])["loss"] for name in sampler.adaptive.columns
    }
    reshard(run.model)
    run.model.train()
    update = sampler.adaptive.observe(losses)
    changed = sampler.set_mix(update.weights)
    elapsed = time.perf_counter() - start
    position.eval_s += elapsed
    run.log.write(
        {
            "kind": "mix",
            "step": position.step,
            "tokens": position.tokens,
            "stage": stage.name,
            "stage_index": position.stage_index,
            "stage_tokens": position.stage_step * run.tokens_per_step(position.stage_index),
            **update.record(),
            "changed": changed,
            "eval_s": elapsed,
        }
    )


def _schedule_decay_mix(run: Run, stage_index: int, sampler: MixtureSampler) -> None:
    """`mix_schedule: {kind: decay}`: the stage's mix from the first step of its decay or anneal phase."""
    stage = run.config.stages[stage_index]
    schedule = stage.mix_schedule
    if not isinstance(schedule, DecayMixConfig):
        return
    phases = schedule_phases(stage.schedule, _stage_steps(run, sampler, stage_index))
    decay = next((phase for phase in phases if phase.name in ("decay", "anneal") and len(phase)), None)
    if decay is not None:
        sampler.set_mix(schedule.mix, start=decay.start * run.config.sequences_per_step_of(stage_index))


def _evaluate_heldout_share(
    run: Run, windows: np.ndarray, num_bytes: int, buckets: np.ndarray | None = None
) -> dict[str, Any]:
    """Held-out metrics with the windows split over ranks and the sums reduced (with `buckets`, the
    position bucket of every target, the sums by bucket too)."""
    return evaluate_heldout_over_ranks(
        run.model,
        windows,
        num_bytes,
        run.world,
        batch_size=windows_per_pass(run.config.eval.batch_size),
        device=run.device,
        autocast_dtype=run.autocast_dtype,
        buckets=buckets,
    )


def _save_final(run: Run) -> None:
    """`final/`: one standard HF directory, gathered from every rank when the model is sharded (a
    LoRA run's adapters merged in, and the adapter itself in `final_adapter/`)."""
    save_full_model(run.model, run.tokenizer, run.run_dir / "final", run.world)


def _save(
    run: Run, position: Position, optimizer: torch.optim.Optimizer, sampler: MixtureSampler | None
) -> Path:
    state = {
        "position": asdict(position),
        "sampler": sampler.state_dict() if sampler is not None else None,
        "transforms": run.transforms,  # re-applied as they are on --resume, before the weights load
    }
    # A finished stage's methods are done with: the next stage starts its own.
    state["methods"], tensors = method_states(run.methods if sampler is not None else [])
    run.log.sync()
    return ckpt.save_checkpoint(
        run.run_dir,
        position.step,
        model=run.model,
        optimizer=optimizer,
        trainer_state=state,
        keep=run.config.output.keep_checkpoints,
        extra_tensors=tensors,
        world=run.world,
    )


# ---------------------------------------------------------------------------------------------
# Faults: non-finite steps and rollbacks, preemption, a full disk, out of memory
# (what each does, and the tests that show it: docs/reliability.md)

_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)


class _Diverged(Exception):
    """`reliability.max_bad_steps` non-finite steps in a row: roll back (raised inside a stage)."""

    def __init__(self, stage: str, streak: int) -> None:
        super().__init__(f"{streak} non-finite steps in a row in stage {stage}")
        self.stage = stage
        self.streak = streak


def _drain(run: Run, health: StepHealth, position: Position) -> None:
    """Read the steps recorded since the last drain; raise `_Diverged` after too many bad ones in a row."""
    position.skipped_steps += health.drain()
    if health.consecutive_bad >= run.config.reliability.max_bad_steps:
        raise _Diverged(health.stage, health.consecutive_bad)


def _roll_back(
    run: Run, position: Position, diverged: _Diverged
) -> tuple[torch.optim.Optimizer, Position, dict[str, Any]]:
    """Restore the latest checkpoint (model, optimizer, sampler, RNG) with half the learning rate.

    The data after the checkpoint is read again. Raises `RunFailed` when `reliability.max_rollbacks`
    are used up or there is no checkpoint to go back to.
    """
    latest = ckpt.latest_checkpoint(run.run_dir)
    if latest is None or position.rollbacks >= run.config.reliability.max_rollbacks:
        run.log.write(
            {
                "kind": "event",
                "event": "diverged",
                "step": position.step,
                "tokens": position.tokens,
                "stage": diverged.stage,
                "rollbacks": position.rollbacks,
            }
        )
        every = _checkpoint_every_steps(run, position.stage_index)
        if latest is None and every is None:
            why = "and there is no checkpoint to roll back to (set output.checkpoint_every_tokens)"
        elif latest is None:
            why = (
                f"and no checkpoint was written before the streak began (one comes every {every:,} steps), "
                "so there is none to roll back to"
            )
        else:
            why = (
                f"after {position.rollbacks} rollback(s) that brought the learning rate down to "
                f"{position.lr_scale:g}x; the latest checkpoint {latest} is intact"
            )
        raise RunFailed(
            f"training diverged: {diverged.streak} steps in a row with a non-finite loss or gradient norm up to "
            f"step {position.step:,} (stage {diverged.stage}) {why}; lower the stage's schedule.peak_lr, "
            "check its data, or raise reliability.max_rollbacks"
        )
    optimizer = _new_optimizer(run)
    trainer_state = ckpt.load_checkpoint(latest, model=run.model, optimizer=optimizer, world=run.world)
    restored = Position(**trainer_state["position"])
    restored.rollbacks = position.rollbacks + 1
    restored.skipped_steps = position.skipped_steps
    restored.train_s, restored.eval_s = position.train_s, position.eval_s  # time really spent
    run.log.write({"kind": "resume", "step": restored.step, "tokens": restored.tokens, "reason": "rollback"})
    run.log.write(
        {
            "kind": "event",
            "event": "rollback",
            "step": restored.step,
            "tokens": restored.tokens,
            "from_step": position.step,
            "stage": diverged.stage,
            "rollback": restored.rollbacks,
            "lr_scale": restored.lr_scale,
            "checkpoint": latest.name,
        }
    )
    run.display.message(
        f"{diverged}: rolled back from step {position.step:,} to {latest.name} with the learning rate at "
        f"{restored.lr_scale:g}x (rollback {restored.rollbacks} of {run.config.reliability.max_rollbacks})"
    )
    return optimizer, restored, trainer_state


def _stop_for_signal(run: Run, position: Position, checkpoint: Path) -> None:
    """After the checkpoint a SIGTERM/SIGINT asked for: log it and raise `Preempted`."""
    signum = run.stop.signum
    assert signum is not None
    name = signal.Signals(signum).name
    run.log.write(
        {
            "kind": "event",
            "event": "preempted",
            "signal": name,
            "step": position.step,
            "tokens": position.tokens,
            "checkpoint": checkpoint.name,
        }
    )
    raise Preempted(
        f"stopped by {name} at step {position.step:,} ({position.tokens:,} tokens) after writing {checkpoint}",
        signum,
    )


def _check_before_writing(
    config: RunConfig,
    stores: dict[str, Any],
    model: torch.nn.Module,
    latest: Path | None,
    added: frozenset[str] = frozenset(),
    added_rows: Collection[str] = frozenset(),
) -> None:
    """Raise `UserError` for input that would fail later (a stage that cannot be sampled, a
    checkpoint that does not fit the config, LR multipliers or freeze patterns that select nothing)
    before anything in the run directory changes."""
    run_parameter_groups(model, config, added=added, added_rows=added_rows)  # LR multipliers, freezing
    train = config.train
    for index, stage in enumerate(config.stages):
        sequences = MixtureSampler.for_stage(config, index, stores, warn=False).total_sequences
        if sequences < config.sequences_per_step_of(index):
            raise UserError(
                f"stages.{index}.tokens: stage {stage.name!r} is {sequences} sequences of {config.seq_len_of(index)} "
                f"tokens, less than one optimizer step of {config.sequences_per_step_of(index)} (train.batch_tokens = "
                f"{train.batch_tokens:,}); raise its tokens or lower train.batch_tokens"
            )
    if latest is None:
        return
    ckpt.check_model_matches(latest, model)
    try:
        state = ckpt.read_trainer_state(latest)
        position = Position(**state["position"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{latest / 'trainer.json'}: unreadable checkpoint state ({type(err).__name__}: {err}); "
            "delete this checkpoint folder to resume from the one before"
        ) from None
    if position.stage_index > len(config.stages):
        raise UserError(
            f"stages: the checkpoint {latest} is in stage {position.stage_index + 1} but the config has "
            f"{len(config.stages)}; resume with the config the run was started with"
        )
    if position.stage_step > 0 and position.stage_index < len(config.stages):
        sampler = MixtureSampler.for_stage(config, position.stage_index, stores, warn=False)
        sampler.load_state_dict(state["sampler"])


def _out_of_memory_message(config: RunConfig, err: BaseException) -> str:
    train = config.train
    frames = {frame.name for frame in traceback.extract_tb(err.__traceback__)}
    if "_evaluate" in frames:
        return (
            f"out of GPU memory while evaluating with eval.batch_size={config.eval.batch_size} and "
            f"train.seq_len={train.seq_len}, even one sequence per forward pass; lower train.seq_len"
        )
    advice = "lower train.micro_batch (batch_tokens stays as it is: more micro-batches are accumulated)"
    if not train.activation_checkpointing:
        advice += " or set train.activation_checkpointing: true"
    return (
        f"out of GPU memory while training with train.micro_batch={train.micro_batch}, "
        f"train.seq_len={train.seq_len}, precision={train.precision}, "
        f"activation_checkpointing={str(train.activation_checkpointing).lower()}; {advice}"
    )


@contextlib.contextmanager
def _transformers_progress_bars(enabled: bool) -> Any:
    """Weight-loading and saving bars only on a live display: quiet means quiet (an error is the only
    line), and a log gets no bars drawn with carriage returns."""
    from transformers.utils import logging as transformers_logging

    was_enabled = transformers_logging.is_progress_bar_enabled()
    if was_enabled and not enabled:
        transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled and not enabled:
            transformers_logging.enable_progress_bar()


def _disk_full_message(run_dir: Path, err: BaseException) -> str:
    path = getattr(err, "filename", None) or run_dir
    latest = ckpt.latest_checkpoint(run_dir)
    kept = (
        f"the latest checkpoint {latest} is intact" if latest is not None else "no checkpoint was written yet"
    )
    return (
        f"no space left on device while writing {path}; {kept}; free some space, then run again with --resume"
    )


# ---------------------------------------------------------------------------------------------
# Pieces of the loop


def _to_device(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    tensor = torch.from_numpy(batch)
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _use_fused_loss(
    setting: str, model: torch.nn.Module, world: World, device: torch.device, *, sharded: bool
) -> tuple[str | None, str]:
    """The fused loss's kernel for `train.fused_loss` ("forgetless", "liger", "cce"), or None for the
    plain loss, and why, for run_start. Under FSDP2 it runs as a forward method of the sharded model
    (`shard_model`)."""
    if setting == "off":
        return None, "train.fused_loss is off"
    if world.distributed and not sharded:  # DDP: only the wrapper's own forward syncs gradients
        if setting != "auto":
            raise UserError(
                f"train.fused_loss: {setting} is not supported with train.parallel: ddp; use auto or off"
            )
        return None, "train.parallel: ddp: only the wrapper's own forward synchronizes gradients"
    model_type = model.config.model_type
    if not supports_fused_loss(model):
        if setting != "auto":
            raise UserError(
                f"train.fused_loss: {setting} is not supported for model type {model_type!r} "
                "(its logits are not a plain product with the LM head); use auto or off"
            )
        return None, f"model type {model_type!r}: its logits are not a plain product with the LM head"
    why = f"train.fused_loss is {setting} and model type {model_type!r} supports it"
    if setting in EXTERNAL_KERNELS:
        if device.type == "cuda":
            check_external_kernel(setting)
            return setting, why
        return "forgetless", why + f" ({setting}'s kernel is CUDA-only: forgetless's own runs here)"
    return "forgetless", why

def _check_speed_settings(config: RunConfig, world: World, *, bf16: bool) -> None:
    """Raise `UserError` for speed settings that do not fit the rest of the config."""
    train = config.train
    if train.mixed_precision == "fsdp":
        if not bf16:
            raise UserError(
                "train.mixed_precision: fsdp computes in bf16, but train.precision is fp32 here "
                "(auto is fp32 on a CPU); set train.precision: bf16 or train.mixed_precision: autocast"
            )
        if world.distributed and train.parallel == "ddp":
            raise UserError("train.mixed_precision: fsdp needs train.parallel: fsdp under torchrun")
    if not train.optimizer_in_backward:
        return
    why = None
    if train.grad_clip is not None:
        why = "gradients cannot be clipped (the norm is known only after the updates); set train.grad_clip: null"
    elif world.distributed or train.mixed_precision == "fsdp":
        why = "it runs on one process with train.mixed_precision: autocast"
    elif train.sequences_per_step != train.micro_batch:
        why = (
            f"gradients cannot accumulate over micro-batches; set train.batch_tokens to one micro-batch "
            f"({train.micro_batch * train.seq_len} tokens)"
        )
    else:
        for index, stage in enumerate(config.stages):
            for name in ("l2sp", "ewc"):
                if getattr(stage.methods, name) is not None:
                    why = f"stages.{index}.methods.{name} adds its gradient after the backward"
            if "new_rows" in stage.methods.train_only:
                why = f"stages.{index}.methods.train_only: new_rows masks the gradient after the backward"
    if why is not None:
        raise UserError(f"train.optimizer_in_backward: {why}")


def _micro_batch_runner(
    config: RunConfig,
    model: torch.nn.Module,
    device: torch.device,
    world: World,
    fused_loss: bool,
    *,
    sharded: bool = False,
) -> SerialMicroBatches | ThreadedMicroBatches:
    train = config.train
    setting = train.micro_batch_threads
    if setting != "auto" and setting > 1 and (device.type != "cpu" or world.distributed or sharded):
        raise UserError(
            "train.micro_batch_threads: several threads run micro-batches on a CPU in one process only; "
            "use auto or 1"
        )
    return micro_batch_runner(
        setting,
        model,
        device=device,
        distributed=world.distributed or sharded,
        compiled=train.compile,
        fused_loss=fused_loss,
        accumulation=max(
            config.sequences_per_step_of(i) // (config.micro_batch_of(i) * world.size)
            for i in range(len(config.stages))
        ),
    )


def _new_optimizer(run: Run) -> torch.optim.Optimizer:
    train = run.config.train
    groups = run_parameter_groups(unwrap(run.model), run.config, run.trainable, run.added, set(run.added_rows))
    for group in groups:
        group.pop("names", None)
    kwargs: dict[str, Any] = {"lr": 0.0, "betas": tuple(train.betas), "eps": train.eps}
    if is_sharded_model(run.model) and run.device.type != "cuda":
        return torch.optim.AdamW(groups, **kwargs)  # sharded parameters on CPU: the foreach kernels
    try:
        return torch.optim.AdamW(groups, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.AdamW(groups, **kwargs)


def _clip_gradients(model: torch.nn.Module, max_norm: float | None) -> torch.Tensor:
    params = [p for p in model.parameters() if p.grad is not None]
    if max_norm is None:
        return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    return torch.nn.utils.clip_grad_norm_(params, max_norm)


def _eval_steps(run: Run, stage_index: int, total_steps: int) -> dict[int, str]:
    """Stage steps (1-based counts of steps done) after which to evaluate, with the kind of point."""
    per_step = run.tokens_per_step(stage_index)
    steps: dict[int, str] = {}
    every = run.config.eval.every_tokens
    if every:
        for k in range(1, total_steps * per_step // every + 1):
            steps[max(1, math.ceil(k * every / per_step))] = "periodic"
    for fraction in run.config.eval.dense_start:
        steps.setdefault(max(1, math.ceil(fraction * total_steps)), "dense")
    steps[total_steps] = "stage_end"
    return {s: kind for s, kind in steps.items() if 1 <= s <= total_steps}


def _checkpoint_every_steps(run: Run, stage_index: int) -> int | None:
    every = run.config.output.checkpoint_every_tokens
    return None if every is None else max(1, every // run.tokens_per_step(stage_index))


def _sources_needed(config: RunConfig) -> list[str]:
    needed = set(config.eval_sources)
    for stage in config.stages:
        needed.update(stage.mix)
        if stage.replay is not None:
            needed.update(stage.replay.from_)
        if isinstance(stage.mix_schedule, DecayMixConfig):
            needed.update(stage.mix_schedule.mix)
        if stage.methods.ewc is not None:
            needed.update(stage.methods.ewc.from_)
        if stage.methods.unit_lr is not None:
            needed.add(stage.methods.unit_lr.probe)
    return sorted(needed)


def _transform_model(
    config: RunConfig,
    model: torch.nn.Module,
    tokenizer: Any,
    world: World,
    latest: Path | None,
    *,
    quiet: bool,
    base: BaseTokenizer | None = None,
) -> Transformed:
    """`model.transforms` applied to the loaded model (see `forgetless.model.transforms`); on a
    resume, with the choices the checkpoint recorded, so the model is built exactly as before. A
    transform that learns from text reads the sources as the base tokenizer prepared them (`base`)."""
    recorded = None
    if latest is not None:
        try:
            recorded = ckpt.read_trainer_state(latest).get("transforms", [])
        except (OSError, ValueError):
            recorded = None  # an unreadable checkpoint is reported by _check_before_writing
    return apply_transforms(
        model,
        tokenizer,
        config.model.transforms,
        recorded=recorded,
        probe_batches=lambda source, tokens: _probe_batches(config, tokenizer, world, source, tokens, quiet=quiet),
        source_texts=None
        if base is None
        else lambda source, max_bytes: document_texts(base.tokenizer, base.prepared[source].train, max_bytes),
        agree=lambda value: broadcast_from_main(value, world),
        seq_len=config.eval_seq_len,
    )


def _probe_batches(
    config: RunConfig, tokenizer: Any, world: World, source: str, tokens: int, *, quiet: bool
) -> list[torch.Tensor]:
    """At least `tokens` training tokens of `source` as int64 `[micro_batch, seq_len + 1]` windows
    in a seeded order of their own (the data a transform probes the model with)."""
    if not world.is_main:
        barrier(world)
    prepared = prepare_sources(config, tokenizer, sources=[source], progress=not quiet and world.is_main)
    if world.is_main:
        barrier(world)
    train = config.train
    probe = StageConfig(name=f"probe/{source}", tokens=tokens, mix={source: 1.0})
    sampler = MixtureSampler(
        probe, {source: prepared[source].train}, seq_len=train.seq_len, seed=train.seed, max_epochs_warning=None
    )
    count = max(1, math.ceil(tokens / (train.micro_batch * train.seq_len)))
    return [torch.from_numpy(sampler.next_batch(train.micro_batch)) for _ in range(count)]



def _run_start_record(run: Run) -> dict[str, Any]:
    config = run.config
    stages: list[dict[str, Any]] = []
    for stage in config.stages:
        replay = stage.replay
        stages.append(
            {
                "name": stage.name,
                "tokens": stage.tokens,
                "targets": sorted(_trained_sources(stage)),
                "replay": list(replay.from_) if replay else [],
                "replay_ratio": replay.ratio if replay else 0.0,
                "seq_len": config.seq_len_of(len(stages)),
            }
        )
    model = unwrap(run.model)
    return {
        "kind": "run_start",
        "time": time.time(),
        "transforms": run.transforms,
        **({"tokenizer": run.tokenizer_change} if run.tokenizer_change is not None else {}),
        "parameters": count_distinct(model),
        "stages": stages,
        "sources": list(run.eval_sets),
        "mcq": list(run.mcq_sets),
        "eval_budget": config.eval.budget,
        "source_tokens": {name: store.num_tokens for name, store in run.train_stores.items()},
        "tokens_per_step": run.tokens_per_step(0),
        "host_memory_reuse": freed_memory_kept(),  # see forgetless.train.host_memory
        "fused_loss": run.fused_loss,
        "fused_loss_why": run.fused_loss_why,
        "data": run.contents,  # what a resume must find unchanged (forgetless.train.resume_policy)
    }


def _trained_sources(stage: StageConfig) -> set[str]:
    """The sources a stage trains on: its mix, and a decay phase's mix."""
    trained = set(stage.mix)
    if isinstance(stage.mix_schedule, DecayMixConfig):
        trained.update(stage.mix_schedule.mix)
    return trained


def _stage_record(kind: str, stage: StageConfig, position: Position) -> dict[str, Any]:
    return {
        "kind": kind,
        "stage": stage.name,
        "stage_index": position.stage_index,
        "step": position.step,
        "tokens": position.tokens,
    }


def _check_output_dir(run_dir: Path) -> None:
    """Refuse a run directory that is a file or lies under one, or lies inside a model directory."""
    check_folder(run_dir, "output.dir")
    for folder in [run_dir, *run_dir.parents]:
        if is_model_dir(folder):
            inside = "is" if folder == run_dir else f"is inside {folder}, which is"
            raise UserError(f"output.dir: {run_dir} {inside} a model directory; write the run elsewhere")


def _check_run_dir(run_dir: Path, resume: bool) -> Path | None:
    """Refuse to overwrite an earlier run; with --resume, return its latest checkpoint (or None)."""
    has_run = (run_dir / "metrics.jsonl").exists()
    if not resume:
        if has_run:
            raise UserError(
                f"{run_dir}: already holds a run; pass --resume to continue it or --out to write elsewhere"
            )
        return None
    latest = ckpt.latest_checkpoint(run_dir)
    if latest is None and has_run:
        return None  # nothing to resume from: start again; the ledger supersedes the old lines
    return latest
