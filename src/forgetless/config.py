"""The run config: typed models of the YAML file, loading, overrides and friendly errors.

A config is read from YAML, `--set a.b=c` overrides are applied, relative paths are resolved against
the config file's folder, and the result is validated into `RunConfig`. Every validation problem
becomes one `UserError` line naming the file, the line and the key path, and what was expected.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from forgetless.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _switch_from_bool(value: Any) -> Any:
    # YAML 1.1 reads an unquoted on/off (and yes/no) as a boolean: take it as the switch it names.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# A setting that is on, off, or decided by forgetless (`auto`); true/false (and YAML's bare on/off) work too.
Switch = Annotated[Literal["auto", "on", "off"], BeforeValidator(_switch_from_bool)]


# ---------------------------------------------------------------------------------------------
# Model and tokenizer


class InitConfig(_Strict):
    """A freshly initialised model: an architecture (a transformers `model_type`) and its sizes."""

    architecture: str = "llama"
    hidden_size: int = Field(256, gt=0)
    num_layers: int = Field(4, gt=0)
    num_heads: int = Field(4, gt=0)
    num_kv_heads: int | None = Field(None, gt=0)
    intermediate_size: int | None = Field(None, gt=0)
    max_position_embeddings: int = Field(2048, gt=0)
    vocab_size: int | None = Field(None, gt=0, description="defaults to the tokenizer's size")
    tie_word_embeddings: bool = True
    extra: dict[str, Any] = Field(default_factory=dict, description="more config fields, as-is")


# Model transforms (forgetless.model.transforms): applied in order after loading, before training.
# A new transform adds its config class here, to `TransformConfig`, and its function to
# `forgetless.model.transforms.TRANSFORMS`.


class ExpandBlocksConfig(_Strict):
    """Block expansion: copies of decoder blocks that start as the identity (LLaMA Pro; ADEPT with
    `select: least_important`). Give exactly one of `every`, `layers` and `select`."""

    kind: Literal["expand_blocks"]
    every: int | None = Field(None, gt=0, description="copy every n-th block (n must divide the block count)")
    layers: list[int] | None = Field(None, description="0-based blocks to copy, each copy right after it")
    select: Literal["least_important"] | None = Field(
        None, description="copy the `count` blocks whose bypass raises the probe loss least"
    )
    count: int | None = Field(None, gt=0, description="select: how many blocks to copy")
    probe: str | None = Field(None, description="select: the source whose loss measures importance")
    probe_tokens: int = Field(16384, gt=0, description="select: training tokens of the probe source used")

    @model_validator(mode="after")
    def _one_choice(self) -> ExpandBlocksConfig:
        given = [k for k in ("every", "layers", "select") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of every, layers and select")
        if self.select is not None and (self.count is None or self.probe is None):
            raise ValueError("select: least_important needs count and probe (a source name)")
        if self.select is None and self.count is not None:
            raise ValueError("count goes with select: least_important")
        if self.layers is not None and (not self.layers or len(set(self.layers)) != len(self.layers)):
            raise ValueError("layers: list distinct block indices")
        return self


class LoraTransformConfig(_Strict):
    """Low-rank adapters through the peft library (optional extra: pip install 'forgetless[lora]')."""

    kind: Literal["lora"]
    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.0, ge=0, lt=1)
    target: list[str] = Field(
        default_factory=lambda: ["attention", "mlp"],
        description="presets (attention, mlp: on an MoE block its experts, not its router) or globs over the "
        "names of the linear layers (or fused expert weights) to adapt",
    )
    dora: bool = False
    train_embeddings: bool = Field(False, description="the input embedding trains fully (peft modules_to_save)")
    train_lm_head: bool = Field(False, description="the output head trains fully (the embedding when tied)")

    @field_validator("target", mode="before")
    @classmethod
    def _one_target_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ExtendVocabConfig(_Strict):
    """Vocabulary extension: tokens learned from a training source, appended to the tokenizer, with
    new embedding and head rows (see forgetless.model.vocab)."""

    kind: Literal["extend_vocab"]
    from_: str = Field(alias="from", description="the source whose training documents the tokens are learned from")
    new_tokens: int = Field(gt=0, description="how many tokens to add")
    init: Literal["subtoken_mean", "mean_noise", "random", "zero"] = Field(
        "subtoken_mean", description="the new input-embedding rows"
    )
    lm_head: Literal["subtoken_mean", "zero"] | None = Field(
        None, description="the new rows of an untied output head; default: as init"
    )
    sample_bytes: int = Field(
        20_000_000,
        gt=0,
        description="the source's first training documents the tokens are learned from (UTF-8 bytes, whole "
        "documents); learned again, the same, on --resume",
    )
    min_frequency: int = Field(2, ge=1, description="a BPE merge must occur this often in the sample")
    noise_scale: float = Field(1e-5, gt=0, description="mean_noise: the factor of the embeddings' covariance")


class RopeConfig(_Strict):
    """A new RoPE base frequency (adjusted base frequency, Xiong et al. 2023: 10,000 -> 500,000),
    written into the model config; the rotary frequencies are recomputed (forgetless.model.rope)."""

    kind: Literal["rope"]
    theta: float = Field(gt=0, description="the new rope_theta")
    max_position_embeddings: int | None = Field(
        None,
        gt=1,
        description="the context length written into the config; default: the longest seq_len of the run "
        "when that is longer than the model's",
    )


class RopeScalingConfig(_Strict):
    """A RoPE scaling of transformers (`rope_parameters` in config.json): positions stretched by `factor`."""

    kind: Literal["rope_scaling"]
    type: Literal["linear", "dynamic", "yarn", "llama3"]
    factor: float = Field(gt=1, description="the stretch: the new context is about factor x the original")
    original_max_position_embeddings: int | None = Field(
        None, gt=1, description="the length the model was trained at; default: its max_position_embeddings"
    )
    low_freq_factor: float = Field(1.0, gt=0, description="llama3 only")
    high_freq_factor: float = Field(4.0, gt=0, description="llama3 only")


class DepthUpscaleConfig(_Strict):
    """A deeper model from copies of the base's decoder blocks in a given order (depth up-scaling,
    SOLAR: 32 blocks -> "0-23,8-31", 48 blocks)."""

    kind: Literal["depth_upscale"]
    layers: str = Field(
        description='0-based blocks of the base in their new order: ranges and single blocks, e.g. "0-23,8-31"'
    )

    @field_validator("layers", mode="before")
    @classmethod
    def _list_as_text(cls, value: Any) -> Any:
        if isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return ",".join(str(v) for v in value)
        return value

    @field_validator("layers")
    @classmethod
    def _ranges(cls, value: str) -> str:
        parse_block_ranges(value)
        return value


def parse_block_ranges(text: str) -> list[int]:
    """`"0-3,2,5-4"` -> `[0, 1, 2, 3, 2, 5, 4]`: ranges inclusive of both ends (a descending range
    runs backwards). Raises ValueError for anything else."""
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        first, dash, last = part.partition("-")
        if not first.strip().isdigit() or (dash and not last.strip().isdigit()):
            raise ValueError(f'expected block indices and ranges such as "0-23,8-31", got {part!r}')
        a, b = int(first), int(last) if dash else int(first)
        out.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return out


class UpcycleMoeConfig(_Strict):
    """Dense-to-MoE upcycling: every gated MLP becomes `experts` copies behind a router, saved as the
    matching transformers MoE family (forgetless.model.moe)."""

    kind: Literal["upcycle_moe"]
    experts: int = Field(8, ge=2, description="experts per MLP, each starting as a copy of it")
    top_k: int = Field(2, ge=1, description="experts each token is sent to")
    noise: float = Field(
        0.0,
        ge=0,
        description="standard deviation of the router's initial weights (0: uniform routing); the function "
        "is unchanged at init either way",
    )
    balance_loss: float = Field(
        0.01, ge=0, description="weight of the router's load-balancing loss in the training loss"
    )

    @model_validator(mode="after")
    def _top_k_fits(self) -> UpcycleMoeConfig:
        if self.top_k > self.experts:
            raise ValueError(f"top_k = {self.top_k} is more than experts = {self.experts}")
        return self


TransformConfig = Annotated[
    ExpandBlocksConfig
    | LoraTransformConfig
    | ExtendVocabConfig
    | RopeConfig
    | RopeScalingConfig
    | DepthUpscaleConfig
    | UpcycleMoeConfig,
    Field(discriminator="kind"),
]


class ModelConfig(_Strict):
    path: str | None = Field(
        None, description="a Hugging Face model dir, a hub id, or demo:base (the quick demo's base, built once)"
    )
    init: InitConfig | None = None
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="the weights' dtype while training; auto: float32 (train.precision sets the compute "
        "dtype); bfloat16 keeps the weights in bfloat16 (half the memory, no float32 copy)",
    )
    allow_pickle: bool = False
    trust_remote_code: bool = False
    transforms: list[TransformConfig] = Field(
        default_factory=list,
        description="applied in order after loading, re-applied on resume (see docs/transforms.md)",
    )

    @model_validator(mode="after")
    def _one_of_path_or_init(self) -> ModelConfig:
        if (self.path is None) == (self.init is None):
            raise ValueError("give exactly one of model.path (an HF model dir) or model.init")
        return self


# ---------------------------------------------------------------------------------------------
# Data sources


class HeldoutConfig(_Strict):
    tokens: int | None = Field(None, gt=0)
    documents: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _one_size(self) -> HeldoutConfig:
        if self.tokens is not None and self.documents is not None:
            raise ValueError("give heldout.tokens or heldout.documents, not both")
        return self


class SubsetConfig(_Strict):
    """A share of a source's training documents, ranked by a score computed once and cached: the base
    model's mean token loss (`base_loss`, needs the model: scored when a run starts), the length in
    tokens, or a number in each record's `field`. Small enough, the subset is read for several epochs
    in one stage (Guo et al. 2024's recipe against the stability gap; see docs/plan.md)."""

    score: Literal["base_loss", "length", "field"]
    keep: float = Field(gt=0, le=1, description="share of the source's training tokens to keep")
    order: Literal["lowest", "highest"] = Field(
        "lowest", description="keep the documents with the lowest or the highest scores"
    )
    field: str | None = Field(None, description="score: field: the record field holding each document's number")

    @model_validator(mode="after")
    def _field_with_field_score(self) -> SubsetConfig:
        if (self.score == "field") != (self.field is not None):
            raise ValueError("give field (a record field name) exactly when score is field")
        return self


class SourceConfig(_Strict):
    """One named data source: files, folders, globs, a saved HF dataset, or `bundled:<name>`."""

    files: list[str]
    text_field: str = "text"
    format: Literal["auto", "txt", "jsonl", "json", "parquet", "csv", "hf_disk", "hf_hub"] = "auto"
    split: str = "train"
    heldout: HeldoutConfig = Field(default_factory=HeldoutConfig)
    on_error: Literal["fail", "skip"] = Field(
        "fail",
        description="a malformed record or text that is not UTF-8: fail names it; skip skips the record "
        "or replaces the bytes, and counts them",
    )
    subsource_field: str | None = Field(
        None,
        description="record field naming each document's sub-source; held-out evaluation samples every "
        "sub-source in proportion (bundled corpora: their `source` field)",
    )
    max_epochs_warning: float | None = Field(
        4.0, gt=0, description="warn when a stage reads this source more times than this"
    )
    subset: SubsetConfig | None = Field(
        None, description="train on a share of the documents, ranked by a score (held-out text unchanged)"
    )

    @field_validator("files", mode="before")
    @classmethod
    def _one_file_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("files")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one file, folder, glob or bundled:<name>")
        return value


# ---------------------------------------------------------------------------------------------
# Stages


class ReplayConfig(_Strict):
    from_: list[str] = Field(alias="from")
    ratio: float = Field(ge=0.0, lt=1.0)
    accounting: Literal["compute_equivalent", "additive"] = "compute_equivalent"
    order: Literal["shuffled", "original", "uniform"] = Field(
        "shuffled",
        description="shuffled: a seeded order of the whole source, new each epoch; original: from its "
        "start; uniform: random draws with replacement",
    )

    @field_validator("from_", mode="before")
    @classmethod
    def _one_source_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ScheduleConfig(_Strict):
    """A learning-rate schedule over one stage. Fractions are of the stage's optimizer steps."""

    kind: Literal["constant", "cosine", "wsd", "infinite"] = "cosine"
    peak_lr: float = Field(3e-4, gt=0)
    warmup: float = Field(0.01, ge=0, le=1)
    final_lr_ratio: float = Field(0.1, ge=0, le=1, description="cosine and wsd: end LR / peak")
    decay: float = Field(0.2, ge=0, le=1, description="wsd: fraction of the stage spent decaying")
    decay_shape: Literal["linear", "cosine", "1-sqrt"] = "linear"
    cooldown: float = Field(0.3, ge=0, le=1, description="infinite: where the cooldown ends")
    cooldown_shape: Literal["cosine", "inv-sqrt", "linear"] = "cosine"
    const_lr: float | None = Field(None, gt=0, description="infinite: default 0.55 x peak_lr")
    min_lr: float | None = Field(None, gt=0, description="infinite: default 0.1 x peak_lr")
    anneal: float = Field(0.2, ge=0, le=1, description="infinite: final fraction annealed")

    @model_validator(mode="after")
    def _phases_fit(self) -> ScheduleConfig:
        if self.kind == "wsd" and self.warmup + self.decay > 1:
            raise ValueError("wsd: warmup + decay must not exceed 1")
        if self.kind == "infinite" and not (self.warmup <= self.cooldown <= 1 - self.anneal + 1e-12):
            raise ValueError("infinite: need warmup <= cooldown <= 1 - anneal")
        return self


# ---------------------------------------------------------------------------------------------
# Forgetting mitigations of a stage (see forgetless.methods and docs/methods.md)


class MerConfig(_Strict):
    """Meta-experience replay as a Reptile meta-update (Abbes et al. 2025)."""

    every: int = Field(500, gt=0, description="optimizer steps between meta-updates")
    eps: float = Field(0.1, gt=0, le=1, description="theta = anchor + eps * (theta - anchor)")
    anchor_device: Literal["model", "cpu"] = "model"


class L2SPConfig(_Strict):
    weight: float = Field(gt=0, description="lambda of lambda/2 * ||theta - theta_stage_start||^2")


class EWCConfig(_Strict):
    weight: float = Field(gt=0, description="lambda of lambda/2 * sum F (theta - theta_stage_start)^2")
    from_: list[str] = Field(alias="from", description="sources whose batches estimate the Fisher")
    batches: int = Field(16, gt=0, description="micro-batches of train.micro_batch sequences")
    normalize: bool = Field(
        True, description="divide the Fisher by its mean (weight then compares with l2sp)"
    )

    @field_validator("from_", mode="before")
    @classmethod
    def _one_source_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class DistillConfig(_Strict):
    """Self-distillation toward the stage-start model: alpha * T^2 * KL(teacher || student)."""

    alpha: float = Field(1.0, gt=0)
    temperature: float = Field(2.0, gt=0)
    on: Literal["all", "replay"] = Field("all", description="the sequences that get the term")
    every: int = Field(1, gt=0, description="apply in every n-th optimizer step only")
    teacher_dtype: Literal["auto", "float32", "bfloat16"] = Field("auto", description="auto: bf16 on GPU")

    @model_validator(mode="before")
    @classmethod
    def _on_is_a_key(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        if isinstance(value, dict) and True in value and "on" not in value:
            value = {("on" if k is True else k): v for k, v in value.items()}
        return value


class EMAConfig(_Strict):
    decay: float = Field(0.999, gt=0, lt=1)
    every: int = Field(1, gt=0, description="optimizer steps between updates")
    device: Literal["model", "cpu"] = "model"


class UnitLRConfig(_Strict):
    """Per-tensor learning rates from importance on a general probe (ADEPT, see forgetless.methods.unit_lr)."""

    probe: str = Field(description="the source whose loss measures importance (general text)")
    every_tokens: int | None = Field(None, gt=0, description="measure again every this many training tokens")
    batches: int = Field(4, gt=0, description="probe micro-batches of train.micro_batch sequences")


class MethodsConfig(_Strict):
    mer: MerConfig | None = None
    l2sp: L2SPConfig | None = None
    ewc: EWCConfig | None = None
    distill: DistillConfig | None = None
    ema: EMAConfig | None = None
    unit_lr: UnitLRConfig | None = None
    freeze: list[str] = Field(default_factory=list, description="parameter presets or globs to freeze")
    train_only: list[str] = Field(
        default_factory=list,
        description="train only these (new: what model.transforms added; new_rows: the embedding and head rows "
        "of new tokens; presets, globs); the rest is frozen",
    )
    lr_multipliers: dict[str, float] | None = Field(
        None, description="pattern -> LR multiplier for this stage (replaces train.lr_multipliers)"
    )


def _check_weights(value: dict[str, float]) -> dict[str, float]:
    if not value:
        raise ValueError("name at least one source with a weight")
    if any(w < 0 for w in value.values()) or sum(value.values()) <= 0:
        raise ValueError("weights must be non-negative and sum to a positive number")
    return value


class LossDrivenMixConfig(_Strict):
    """Every `every_tokens` training tokens, the shares of the stage's mix sources are set by
    multiplicative weights of their held-out loss progress (Skill-It's online rule): a source whose
    loss still falls gains share, one whose loss no longer falls loses it. Replay keeps its share."""

    kind: Literal["loss_driven"]
    every_tokens: int = Field(gt=0, description="training tokens between updates (rounded up to whole steps)")
    eta: float = Field(
        0.2, ge=0, description="step size: shares scale with exp(eta x progress), progress in percent of the loss"
    )
    window: int = Field(3, ge=1, description="progress: the held-out loss's fall over the last `window` updates")
    floor: float = Field(
        0.02, ge=0, lt=1, description="least share of the new tokens a source keeps (at most its share in mix)"
    )
    graph: dict[str, dict[str, float]] | None = Field(
        None,
        description="skills graph: mix source -> {evaluated source: weight}, whose progress moves its share "
        "(default: its own)",
    )


class DecayMixConfig(_Strict):
    """Another mixture for the schedule's decay (wsd) or anneal (infinite) phase: from its first step,
    the stage's new tokens follow `mix` (e.g. more high-quality data); replay keeps its share."""

    kind: Literal["decay"]
    mix: dict[str, float]

    @field_validator("mix")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_weights(value)


MixScheduleConfig = Annotated[LossDrivenMixConfig | DecayMixConfig, Field(discriminator="kind")]


class StageConfig(_Strict):
    name: str
    tokens: int = Field(gt=0, description="new-token budget of the stage")
    mix: dict[str, float]
    mix_schedule: MixScheduleConfig | None = Field(
        None, description="how the mix changes along the stage (default: it does not)"
    )
    replay: ReplayConfig | None = None
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    reset_optimizer: bool = True
    methods: MethodsConfig = Field(default_factory=MethodsConfig)
    seq_len: int | None = Field(
        None,
        gt=1,
        description="this stage's sequence length (default train.seq_len); a micro-batch keeps "
        "train.micro_batch x train.seq_len tokens",
    )
    short_share: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="share of the stage's optimizer steps whose sequences are cut to the previous stage's "
        "length (train.seq_len for the first)",
    )

    @field_validator("mix")
    @classmethod
    def _positive_weights(cls, value: dict[str, float]) -> dict[str, float]:
        return _check_weights(value)


# ---------------------------------------------------------------------------------------------
# Training, evaluation, output


class SelectiveCheckpointing(_Strict):
    """What `train.activation_checkpointing: selective` recomputes in the backward pass: `part` of
    decoder blocks 0, `every`, 2 x `every`, ..."""

    every: int = Field(2, ge=1, description="recompute in every Nth decoder block (1: all of them)")
    part: Literal["block", "mlp", "attention"] = Field(
        "block", description="the whole block, or only its MLP or its attention"
    )


class TrainConfig(_Strict):
    seq_len: int = Field(1024, gt=1)
    batch_tokens: int = Field(262144, gt=0, description="tokens per optimizer step, all ranks")
    micro_batch: int = Field(8, gt=0, description="sequences per forward pass on one rank")
    precision: Literal["auto", "bf16", "fp32"] = "auto"
    compile: bool = Field(False, description="torch.compile each decoder block (and the fused loss)")
    fused_loss: Annotated[
        Literal["auto", "on", "off", "liger", "cce"], BeforeValidator(_switch_from_bool)
    ] = Field(
        "auto",
        description="loss from hidden states without storing logits; auto: on where the model supports it; "
        "true and false mean on and off; liger / cce: Liger-Kernel's or cut-cross-entropy's kernel on CUDA "
        "(their package installed), forgetless's own elsewhere",
    )
    mixed_precision: Literal["autocast", "fsdp"] = Field(
        "autocast",
        description="how bf16 is applied: autocast casts the float32 weights inside each operation; fsdp "
        "computes with bf16 copies of float32 master weights and reduces gradients in float32 "
        "(FSDP2's mixed-precision policy, one process too)",
    )
    activation_checkpointing: bool | Literal["selective"] = Field(
        False,
        description="recompute activations in the backward instead of storing them: true for every "
        "decoder block, selective for the part chosen by selective_checkpointing",
    )
    selective_checkpointing: SelectiveCheckpointing = Field(default_factory=SelectiveCheckpointing)
    optimizer_in_backward: bool = Field(
        False,
        description="apply the AdamW update of each decoder block as soon as its gradients are complete and "
        "free them, so no model-sized gradient is held; needs one micro-batch per step, grad_clip: null "
        "and one process",
    )
    micro_batch_threads: Literal["auto"] | Annotated[int, Field(ge=1)] = Field(
        "auto",
        description="micro-batches run at once, one core each; auto: on a CPU in one process with the fused loss",
    )
    parallel: Literal["fsdp", "ddp"] = Field(
        "fsdp", description="under torchrun: FSDP2 sharding per decoder block, or DDP for small models"
    )
    seed: int = 0
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float | None = Field(1.0, gt=0)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = Field(1e-8, gt=0)
    lr_multipliers: dict[str, float] = Field(
        default_factory=dict, description="parameter-name glob -> LR multiplier (first match wins)"
    )
    log_every_steps: int = Field(10, gt=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @property
    def sequences_per_step(self) -> int:
        return max(1, self.batch_tokens // self.seq_len)


class EvalConfig(_Strict):
    every_tokens: int | None = Field(None, gt=0)
    sources: list[str] | None = Field(None, description="default: every source")
    mcq: list[str] = Field(default_factory=list)
    mcq_limit: int | None = Field(None, gt=0, description="score only the first N items of each set")
    max_tokens: int = Field(65536, gt=0, description="held-out tokens evaluated per source")
    batch_size: Literal["auto"] | Annotated[int, Field(gt=0)] = Field(
        "auto",
        description="held-out windows per forward pass (question sets: four (prompt, choice) pairs per window); "
        "auto: a token budget per pass on a CPU, as many as free memory holds on a GPU",
    )
    budget: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="largest share of the run's wall time spent evaluating: periodic and dense points are "
        "skipped past it, and MCQ sets are sampled between the base and the end (scored whole there)",
    )
    dense_start: list[float] = Field(
        default_factory=lambda: [0.005, 0.01, 0.02, 0.04],
        description="fractions of each stage with an extra evaluation (the stability gap)",
    )


class OutputConfig(_Strict):
    dir: str = "runs/run"
    checkpoint_every_tokens: int | None = Field(None, gt=0)
    keep_checkpoints: int = Field(2, ge=1)
    trackers: list[Literal["tensorboard", "wandb", "mlflow"]] = Field(
        default_factory=list,
        description="experiment trackers that get a copy of metrics.jsonl (each an optional extra)",
    )
    project: str | None = Field(
        None,
        description="W&B project and MLflow experiment (default: WANDB_PROJECT, MLFLOW_EXPERIMENT_NAME or forgetless)",
    )


class ReliabilityConfig(_Strict):
    """What the loop does about numerical faults (see docs/reliability.md)."""

    max_bad_steps: int = Field(
        3, gt=0, description="consecutive steps with a non-finite loss or gradient norm before a rollback"
    )
    max_rollbacks: int = Field(
        2, ge=0, description="rollbacks to the latest checkpoint (each halving the LR) before the run stops"
    )
    spike_factor: float = Field(
        3.0, gt=1, description="a step loss above this multiple of the recent median is logged as a spike"
    )
    spike_window: int = Field(
        50, gt=1, description="steps in the recent-median window (detection starts once it is full)"
    )


class RunConfig(_Strict):
    model: ModelConfig
    tokenizer: str | None = None
    sources: dict[str, SourceConfig]
    stages: list[StageConfig]
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)
    reliability: ReliabilityConfig = Field(default_factory=ReliabilityConfig)
    cache_dir: str | None = None

    @field_validator("sources", mode="before")
    @classmethod
    def _shorthand_sources(cls, value: Any) -> Any:
        # `security: bundled:security` is short for `security: {files: [bundled:security]}`.
        if isinstance(value, dict):
            return {k: {"files": v} if isinstance(v, (str, list)) else v for k, v in value.items()}
        return value

    @field_validator("stages")
    @classmethod
    def _at_least_one_stage(cls, value: list[StageConfig]) -> list[StageConfig]:
        if not value:
            raise ValueError("a run needs at least one stage")
        names = [s.name for s in value]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        return value

    @model_validator(mode="after")
    def _references_exist(self) -> RunConfig:
        known = sorted(self.sources)
        for i, stage in enumerate(self.stages):
            for name in stage.mix:
                _check_source(name, known, f"stages.{i}.mix.{name}")
            if stage.replay is not None:
                for j, name in enumerate(stage.replay.from_):
                    _check_source(name, known, f"stages.{i}.replay.from.{j}")
                    if stage.mix.get(name, 0) > 0:
                        raise _KeyError(
                            f"stages.{i}.replay.from.{j}",
                            f"{name!r} is also trained in stages.{i}.mix; replay draws on sources the "
                            "stage does not train on (remove it from one of the two)",
                        )
            _check_methods(stage, i, known)
            _check_mix_schedule(stage, i, known, self.eval_sources)
        for i, name in enumerate(self.eval.sources or []):
            _check_source(name, known, f"eval.sources.{i}")
        lora_at: int | None = None
        for i, transform in enumerate(self.model.transforms):
            if lora_at is not None and not isinstance(transform, (RopeConfig, RopeScalingConfig)):
                raise _KeyError(
                    f"model.transforms.{i}",
                    f"{transform.kind} after lora (model.transforms.{lora_at}): LoRA wraps the layers it adapts, "
                    "and only rope and rope_scaling may follow it; list lora last",
                )
            if isinstance(transform, LoraTransformConfig):
                lora_at = i
            if isinstance(transform, ExpandBlocksConfig) and transform.probe is not None:
                _check_source(transform.probe, known, f"model.transforms.{i}.probe")
            if isinstance(transform, ExtendVocabConfig):
                _check_source(transform.from_, known, f"model.transforms.{i}.from")
        for i, stage in enumerate(self.stages):
            if "new" in stage.methods.train_only and not self.model.transforms:
                j = stage.methods.train_only.index("new")
                raise _KeyError(
                    f"stages.{i}.methods.train_only.{j}",
                    "new selects what model.transforms added, and the config has no transform; "
                    "add one (e.g. {kind: expand_blocks, every: 4}) or name presets or globs",
                )
            if "new_rows" in stage.methods.train_only and not any(
                isinstance(t, ExtendVocabConfig) for t in self.model.transforms
            ):
                j = stage.methods.train_only.index("new_rows")
                raise _KeyError(
                    f"stages.{i}.methods.train_only.{j}",
                    "new_rows selects the embedding and head rows of new tokens, and no transform adds any; "
                    "add {kind: extend_vocab, from: SOURCE, new_tokens: N} to model.transforms",
                )
        steps = self.train.sequences_per_step
        if steps % self.train.micro_batch:
            raise _KeyError(
                "train.batch_tokens",
                f"batch_tokens / seq_len = {steps} sequences per step is not a multiple of "
                f"micro_batch = {self.train.micro_batch}",
            )
        for i in range(len(self.stages)):
            _check_stage_length(self, i)
        return self

    @property
    def eval_sources(self) -> list[str]:
        return list(self.eval.sources) if self.eval.sources is not None else list(self.sources)

    # A stage may have its own sequence length (a length curriculum): these give each stage's.

    def seq_len_of(self, index: int) -> int:
        """The sequence length of stage `index` (its `seq_len`, else `train.seq_len`)."""
        return self.stages[index].seq_len or self.train.seq_len

    def micro_batch_of(self, index: int) -> int:
        """Sequences per forward pass in stage `index`: `train.micro_batch`, or as many of the stage's
        length as hold the same tokens (at least one)."""
        return max(1, self.train.micro_batch * self.train.seq_len // self.seq_len_of(index))

    def sequences_per_step_of(self, index: int) -> int:
        return max(1, self.train.batch_tokens // self.seq_len_of(index))

    def tokens_per_step_of(self, index: int) -> int:
        return self.sequences_per_step_of(index) * self.seq_len_of(index)

    def short_seq_len_of(self, index: int) -> int | None:
        """The shorter length that `short_share` of stage `index`'s micro-batches are cut into (the
        previous stage's length), or None without `short_share`."""
        if self.stages[index].short_share <= 0:
            return None
        return self.seq_len_of(index - 1) if index > 0 else self.train.seq_len

    @property
    def eval_seq_len(self) -> int:
        """The length of the held-out windows: the longest sequence length of the run."""
        return max([self.train.seq_len, *(self.seq_len_of(i) for i in range(len(self.stages)))])


class _KeyError(ValueError):
    """A cross-field problem that belongs to a specific key path (dotted)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _check_stage_length(config: RunConfig, i: int) -> None:
    stage = config.stages[i]
    if stage.seq_len is not None:
        steps, micro = config.sequences_per_step_of(i), config.micro_batch_of(i)
        if steps % micro:
            raise _KeyError(
                f"stages.{i}.seq_len",
                f"{stage.seq_len} tokens give train.batch_tokens / seq_len = {steps} sequences per step, not a "
                f"multiple of the stage's micro-batch of {micro} sequences (train.micro_batch x train.seq_len "
                "/ seq_len); change train.batch_tokens or train.micro_batch",
            )
    short = config.short_seq_len_of(i)
    if short is not None:
        length = config.seq_len_of(i)
        before = f"stages.{i - 1}.seq_len" if i > 0 else "train.seq_len"
        if short >= length or length % short:
            raise _KeyError(
                f"stages.{i}.short_share",
                f"short sequences have the previous length ({before} = {short}), which must be shorter than "
                f"this stage's {length} and divide it; set stages.{i}.seq_len or drop short_share",
            )


def _check_methods(stage: StageConfig, i: int, known: list[str]) -> None:
    methods = stage.methods
    if methods.ewc is not None:
        for j, name in enumerate(methods.ewc.from_):
            _check_source(name, known, f"stages.{i}.methods.ewc.from.{j}")
    if methods.unit_lr is not None:
        _check_source(methods.unit_lr.probe, known, f"stages.{i}.methods.unit_lr.probe")
    replays = stage.replay is not None and stage.replay.ratio > 0
    if methods.distill is not None and methods.distill.on == "replay" and not replays:
        raise _KeyError(
            f"stages.{i}.methods.distill.on", "replay needs replay in the stage; use all or add replay"
        )


def _check_mix_schedule(stage: StageConfig, i: int, known: list[str], evaluated: list[str]) -> None:
    schedule = stage.mix_schedule
    key = f"stages.{i}.mix_schedule"
    replayed = stage.replay.from_ if stage.replay is not None else []
    if isinstance(schedule, DecayMixConfig):
        kind = stage.schedule.kind
        phase = stage.schedule.decay if kind == "wsd" else stage.schedule.anneal
        if kind not in ("wsd", "infinite") or phase == 0:
            raise _KeyError(
                f"{key}.kind",
                f"decay follows the schedule's decay (wsd) or anneal (infinite) phase, and this stage's "
                f"schedule ({kind}) has none",
            )
        for name in schedule.mix:
            _check_source(name, known, f"{key}.mix.{name}")
            if name in replayed:
                raise _KeyError(f"{key}.mix.{name}", f"{name!r} is replayed in stages.{i}; mix other sources")
    elif isinstance(schedule, LossDrivenMixConfig):
        mixed = [name for name, w in stage.mix.items() if w > 0]
        if len(mixed) < 2:
            raise _KeyError(key, "loss_driven re-weights the stage's mix sources, and it mixes only one")
        if schedule.floor * len(mixed) >= 1:
            raise _KeyError(
                f"{key}.floor", f"{len(mixed)} sources cannot each keep {schedule.floor:g} of the tokens"
            )
        graph = schedule.graph or {name: {name: 1.0} for name in mixed}
        for name, row in graph.items():
            if name not in mixed:
                raise _KeyError(f"{key}.graph.{name}", f"{name!r} is not one of the stage's mix sources {mixed}")
            for column in row:
                _check_source(column, known, f"{key}.graph.{name}.{column}")
        for name in mixed:
            for column in graph.get(name, {}):
                if column not in evaluated:
                    where = f"{key}.graph.{name}.{column}" if schedule.graph else f"stages.{i}.mix.{name}"
                    raise _KeyError(
                        where, f"loss_driven reads {column!r}'s held-out loss; add it to eval.sources"
                    )


def _check_source(name: str, known: list[str], key: str) -> None:
    if name not in known:
        raise _KeyError(key, f"unknown source {name!r}{_did_you_mean(name, known)}; sources: {known}")


def _did_you_mean(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


# ---------------------------------------------------------------------------------------------
# Loading


_PATH_KEYS = ("model.path", "tokenizer", "cache_dir", "output.dir")


def load_config(path: str | os.PathLike[str], overrides: list[str] | None = None) -> RunConfig:
    """Read, override, resolve paths and validate a run config; raise `UserError` on bad input."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: config file not found")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        raise UserError(
            f"{path}:{line}: not UTF-8 text (byte 0x{raw[err.start]:02x}); save the config as UTF-8"
        ) from None
    try:
        loader = _UniqueKeyLoader(text)
        try:
            data = loader.get_single_data()
        finally:
            loader.dispose()
        lines = _key_lines(text)
    except _DuplicateKey as err:
        raise UserError(f"{path}:{err.line}: {err.key}: given twice; keep one") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise UserError(f"{where}: invalid YAML: {getattr(err, 'problem', err)}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: a config must be a YAML mapping of keys to values")
    for item in overrides or []:
        apply_override(data, item)
    _resolve_paths(data, path.parent)
    return validate_config(data, source=str(path), lines=lines)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: str, line: int) -> None:
        super().__init__(f"{key} given twice")
        self.key, self.line = key, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a mapping that gives one key twice (where the last would win)."""

    def construct_document(self, node: yaml.Node) -> Any:
        self.root_node = node
        return super().construct_document(node)


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            dotted = ".".join([*_path_to(loader.root_node, node), str(key)])
            raise _DuplicateKey(dotted, key_node.start_mark.line + 1)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


def _path_to(root: yaml.Node | None, target: yaml.Node) -> list[str]:
    if root is None or root is target:
        return []
    children: list[tuple[str, yaml.Node]] = []
    if isinstance(root, yaml.MappingNode):
        children = [(str(k.value), v) for k, v in root.value]
    elif isinstance(root, yaml.SequenceNode):
        children = [(str(i), v) for i, v in enumerate(root.value)]
    for name, child in children:
        if child is target:
            return [name]
        found = _path_to(child, target)
        if found:
            return [name, *found]
    return []


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def config_from_dict(data: dict[str, Any], base_dir: str | os.PathLike[str] = ".") -> RunConfig:
    """Validate a config given as a dict (relative paths resolve against `base_dir`)."""
    data = yaml.safe_load(yaml.safe_dump(data))  # a deep copy with YAML's types
    _resolve_paths(data, Path(base_dir))
    return validate_config(data, source="<config>", lines={})


def validate_config(data: dict[str, Any], source: str, lines: dict[str, int]) -> RunConfig:
    try:
        return RunConfig.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        ctx_err = (first.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _KeyError):
            key = ctx_err.key
            message = str(ctx_err)
        else:
            message = _describe(first, key)
        line = _line_for(key, lines)
        where = f"{source}:{line}" if line else source
        more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
        raise UserError(f"{where}: {key or '(top level)'}: {message}{more}") from None


def apply_override(data: dict[str, Any], item: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as a YAML scalar/list."""
    key, sep, raw = item.partition("=")
    if not sep or not key:
        raise UserError(f"--set {item!r}: expected key.path=value")
    try:
        value = yaml.safe_load(raw) if raw else ""
    except yaml.YAMLError:
        value = raw
    node: Any = data
    parts = key.split(".")
    for part in parts[:-1]:
        if isinstance(node, list):
            node = node[_list_index(part, node, item)]
        else:
            node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise UserError(f"--set {item!r}: {part!r} is not a mapping")
    if isinstance(node, list):
        node[_list_index(parts[-1], node, item)] = value
    else:
        node[parts[-1]] = value


def _list_index(part: str, node: list[Any], item: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise UserError(f"--set {item!r}: {part!r} is not an index of a list of {len(node)}")
    return int(part)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    def resolve(value: Any) -> Any:
        if not isinstance(value, str) or ":" in value.split("/")[0] or os.path.isabs(value):
            return value  # absolute, or a reference such as bundled:<name> or hf:<id>
        candidate = base / os.path.expanduser(value)
        # A model or tokenizer given as a hub id stays as it is when no such local path exists.
        return str(candidate.resolve()) if candidate.exists() or value.startswith(".") else value

    for dotted in _PATH_KEYS:
        parent, _, leaf = dotted.rpartition(".")
        node = data.get(parent) if parent else data
        if isinstance(node, dict) and node.get(leaf) is not None:  # a resolved config writes null
            if dotted == "output.dir" or dotted == "cache_dir":
                node[leaf] = str((base / os.path.expanduser(node[leaf])).resolve())
            else:
                node[leaf] = resolve(node[leaf])
    sources = data.get("sources")
    if not isinstance(sources, dict):
        return
    for name, source in list(sources.items()):
        if isinstance(source, (str, list)):
            sources[name] = source = {"files": source}
        if not isinstance(source, dict) or "files" not in source:
            continue
        files = source["files"]
        files = [files] if isinstance(files, str) else files
        if isinstance(files, list):
            source["files"] = [_resolve_data_path(f, base) for f in files]


def _resolve_data_path(value: Any, base: Path) -> Any:
    if not isinstance(value, str) or ":" in value.split("/")[0] or os.path.isabs(value):
        return value
    return str(base / os.path.expanduser(value))


def _describe(error: dict[str, Any], key: str) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        leaf = key.rsplit(".", 1)[-1]
        return f"unknown key{_did_you_mean(leaf, _known_keys(key))}"
    if kind == "missing":
        return "required key is missing"
    msg = error["msg"]
    msg = msg.removeprefix("Value error, ")
    return f"{msg} (got {error['input']!r})" if "input" in error and kind != "model_type" else msg


def _known_keys(key: str) -> list[str]:
    model: Any = RunConfig
    for part in key.split(".")[:-1]:
        if part.isdigit():
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        inner = [a for a in getattr(annotation, "__args__", (annotation,)) if hasattr(a, "model_fields")]
        if inner:
            model = inner[-1]
        else:
            return []
    fields = getattr(model, "model_fields", {})
    return [f.alias or name for name, f in fields.items()]


def _key_lines(text: str) -> dict[str, int]:
    """Map dotted key paths (list items by index) to 1-based line numbers in the YAML text."""
    lines: dict[str, int] = {}

    def walk(node: yaml.Node, prefix: str) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                dotted = f"{prefix}.{key_node.value}" if prefix else str(key_node.value)
                lines[dotted] = key_node.start_mark.line + 1
                walk(value_node, dotted)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                dotted = f"{prefix}.{i}" if prefix else str(i)
                lines[dotted] = item.start_mark.line + 1
                walk(item, dotted)

    root = yaml.compose(text)
    if root is not None:
        walk(root, "")
    return lines


def _line_for(key: str, lines: dict[str, int]) -> int | None:
    parts = key.replace("from_", "from").split(".")
    while parts:
        found = lines.get(".".join(parts))
        if found:
            return found
        parts.pop()
    return None


def check_folder(path: str | os.PathLike[str], key: str) -> Path:
    """`path` as a folder the program may create or write in: raise `UserError` naming `key` when it
    is a file, or lies under a file (nothing could be made there). Nothing is created."""
    path = Path(path)
    for candidate in [path, *path.parents]:
        if candidate.exists():
            if not candidate.is_dir():
                where = "is a file" if candidate == path else f"lies under {candidate}, which is a file"
                raise UserError(f"{key}: {path} {where}; give a folder")
            break
    return path


def dump_config(config: RunConfig) -> str:
    """The resolved config as YAML, every default filled in."""
    return yaml.safe_dump(config.model_dump(mode="json", by_alias=True), sort_keys=False)
