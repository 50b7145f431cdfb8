"""Dense-to-MoE upcycling: every gated MLP becomes experts that start as copies of it.

Komatsuzaki et al. 2023 (sparse upcycling, ICLR 2023, arXiv:2212.05055) and AquilaMoE
(arXiv:2408.06567, "scale-out") turn a trained dense model into a mixture of experts and continue
pretraining it: each MLP is copied into E experts, a router sends every token to k of them, and the
model grows in parameters while a token's compute grows only by k MLPs.

    {kind: upcycle_moe, experts: 8, top_k: 2, noise: 0.0, balance_loss: 0.01}

The result is the matching transformers MoE family, so `final/` loads with
`AutoModelForCausalLM.from_pretrained` and no forgetless code: Llama and Mistral become Mixtral,
Qwen2 becomes Qwen2-MoE, Qwen3 becomes Qwen3-MoE. Attention, norms, embeddings and head are the
dense model's. Every expert's `gate_up_proj` is the MLP's gate and up projections stacked, its
`down_proj` the MLP's down projection.

The function is unchanged at init. All three families' routers take the softmax over the experts,
keep the top k and divide those k weights by their sum (Mixtral always; Qwen2-MoE and Qwen3-MoE with
`norm_topk_prob: true`, which the upcycled config sets), so the k weights sum to 1 whatever the
router's logits; with identical experts the layer outputs exactly the dense MLP's output. The
router starts at zero (every expert equally likely; ties go to the first k) or, with `noise: s`,
at normal(0, s) weights, which routes tokens to different experts from the first step, so they
receive different gradients and grow apart, still computing the dense function at init. Qwen2-MoE
adds a shared expert behind a sigmoid gate: it starts as a copy of the MLP with its down projection
zeroed, so it adds nothing until it trains. The transform checks the logits on a short random
input and refuses, as bad input, a model whose upcycled copy does not compute what it did.

Training adds the routers' load-balancing loss (Switch Transformer, Fedus et al., arXiv:2101.03961: E x sum over
experts of the share of routed tokens times the mean router probability, over every MoE layer, as
transformers computes it for these families) times `balance_loss`, logged as `loss/router_balance`,
and the train lines carry `expert_tokens`: the tokens each expert of each layer received in the log
window (`RouterStats`). `balance_loss` is saved as the config's `router_aux_loss_coef`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from forgetless.config import UpcycleMoeConfig
from forgetless.errors import UserError
from forgetless.model.blocks import find_decoder_blocks
from forgetless.model.rope import rebuild_rotary_embeddings
from forgetless.model.transform_contract import Outcome, TransformContext


@dataclass(frozen=True)
class MoeFamily:
    model_type: str  # the transformers MoE family
    experts_key: str  # its config key for the number of experts
    extra: dict[str, Any]  # config values the upcycled model needs besides the dense model's


FAMILIES: dict[str, MoeFamily] = {
    "llama": MoeFamily("mixtral", "num_local_experts", {"sliding_window": None}),
    "mistral": MoeFamily("mixtral", "num_local_experts", {}),
    "qwen2": MoeFamily("qwen2_moe", "num_experts", {"qkv_bias": True}),
    "qwen3": MoeFamily("qwen3_moe", "num_experts", {}),
}

# Keys of the dense config that describe the dense MLP or its architecture, not the upcycled model.
_DENSE_ONLY = {"model_type", "architectures", "transformers_version", "mlp_bias", "pretraining_tp"}


def upcycle_moe(
    model: nn.Module, tokenizer: Any, spec: UpcycleMoeConfig, context: TransformContext
) -> Outcome:
    """`model` as the MoE family that matches it, every gated MLP turned into `spec.experts` copies
    behind a router (a replacement model; see the module docstring). Returns the names of the
    routers' and experts' parameters as added. Raises `UserError` naming `context.key` for a model
    without gated MLPs, a family without a matching MoE family, or an upcycled copy that does not
    compute what the dense model does."""
    key = context.key
    dense_type = str(getattr(model.config, "model_type", type(model).__name__))
    found = find_decoder_blocks(model)
    mlps = [getattr(block, "mlp", None) for block in found[1]] if found else []
    if not mlps or not all(_is_gated_mlp(mlp) for mlp in mlps):
        raise UserError(
            f"{key}: model type {dense_type!r} has no gated MLP (gate_proj, up_proj, down_proj) in its decoder "
            "blocks to upcycle into experts"
        )
    family = FAMILIES.get(dense_type)
    if family is None:
        raise UserError(
            f"{key}: no transformers MoE family matches model type {dense_type!r}; upcycling knows "
            + ", ".join(f"{dense} -> {moe.model_type}" for dense, moe in FAMILIES.items())
        )
    if getattr(model.config, "mlp_bias", False):
        raise UserError(f"{key}: model type {dense_type!r} with mlp_bias: the MoE experts have no biases")
    moe = _empty_moe_model(model, family, spec)
    _copy_weights(model, moe, family, spec, key)
    rebuild_rotary_embeddings(moe, key)
    moe.train(model.training)
    config: Any = model.config
    vocab = int(config.vocab_size)
    probe = torch.randint(0, vocab, (2, 16), generator=torch.Generator().manual_seed(0))
    probe = probe.to(next(model.parameters()).device)
    before, after = _logits(model, probe), _logits(moe, probe)
    if not torch.allclose(before, after, rtol=1e-5, atol=1e-5 * float(before.abs().max().clamp(min=1.0))):
        raise UserError(
            f"{key}: the upcycled {family.model_type} model does not compute what the dense {dense_type} model "
            f"does (largest logit difference {float((before - after).abs().max()):.3g}); this model's "
            "configuration is not one upcycling supports"
        )
    dense = {name for name, _ in model.named_parameters() if ".mlp." not in name}
    added = [name for name, _ in moe.named_parameters() if name not in dense]
    return Outcome(added=added, model=moe)


def _is_gated_mlp(module: Any) -> bool:
    return all(
        isinstance(getattr(module, name, None), nn.Linear) for name in ("gate_proj", "up_proj", "down_proj")
    )


def _empty_moe_model(model: Any, family: MoeFamily, spec: UpcycleMoeConfig) -> Any:
    """The MoE family's model for the dense config, its tensors allocated but not initialised."""
    from transformers import AutoConfig, AutoModelForCausalLM

    dense = model.config
    values = {k: v for k, v in dense.to_dict().items() if k not in _DENSE_ONLY}
    mlp_size = int(dense.intermediate_size)
    values.update(family.extra)
    values.update(
        {
            family.experts_key: spec.experts,
            "num_experts_per_tok": spec.top_k,
            "moe_intermediate_size": mlp_size,
            "shared_expert_intermediate_size": mlp_size,
            "norm_topk_prob": True,
            "decoder_sparse_step": 1,
            "mlp_only_layers": [],
            "router_aux_loss_coef": spec.balance_loss,
            "router_jitter_noise": 0.0,
            "output_router_logits": False,
        }
    )
    config = AutoConfig.for_model(family.model_type, **values)
    dtype = next(model.parameters()).dtype
    device = next(model.parameters()).device
    with torch.device("meta"):
        moe = AutoModelForCausalLM.from_config(config, dtype=dtype)
    moe.to_empty(device=device)
    moe.tie_weights()  # to_empty gives each module its own tensor: tie the head to the embedding again
    if getattr(model, "generation_config", None) is not None:
        moe.generation_config = model.generation_config
    return moe


@torch.no_grad()
def _copy_weights(model: Any, moe: Any, family: MoeFamily, spec: UpcycleMoeConfig, key: str) -> None:
    """Every tensor of `moe` from `model`: the same tensor outside the MLPs, copies of the MLP as
    experts, the router at zero or normal(0, noise) (seeded per layer)."""
    source = dict(model.named_parameters())
    assigned: set[str] = set()
    moe_blocks = find_decoder_blocks(moe)
    dense_blocks = find_decoder_blocks(model)
    assert moe_blocks is not None and dense_blocks is not None
    path = moe_blocks[0]
    pairs: list[tuple[Any, Any]] = list(zip(moe_blocks[1], dense_blocks[1], strict=True))
    for index, (block, dense_block) in enumerate(pairs):
        mlp, dense_mlp = block.mlp, dense_block.mlp
        gate_up = torch.cat([dense_mlp.gate_proj.weight, dense_mlp.up_proj.weight], dim=0)
        mlp.experts.gate_up_proj.copy_(gate_up.unsqueeze(0).expand_as(mlp.experts.gate_up_proj))
        mlp.experts.down_proj.copy_(dense_mlp.down_proj.weight.unsqueeze(0).expand_as(mlp.experts.down_proj))
        router = mlp.gate.weight
        router.zero_()
        if spec.noise > 0:
            generator = torch.Generator().manual_seed(index)
            router.copy_(torch.randn(router.shape, generator=generator) * spec.noise)
        prefix = f"{path}.{index}.mlp."
        assigned |= {f"{prefix}experts.gate_up_proj", f"{prefix}experts.down_proj", f"{prefix}gate.weight"}
        shared = getattr(mlp, "shared_expert", None)
        if shared is not None:  # Qwen2-MoE: a copy that adds nothing at init
            for name in ("gate_proj", "up_proj"):
                getattr(shared, name).weight.copy_(getattr(dense_mlp, name).weight)
            shared.down_proj.weight.zero_()
            mlp.shared_expert_gate.weight.zero_()
            assigned |= {f"{prefix}shared_expert.{n}.weight" for n in ("gate_proj", "up_proj", "down_proj")}
            assigned.add(f"{prefix}shared_expert_gate.weight")
    for name, param in moe.named_parameters():
        if name in assigned:
            continue
        if name not in source or source[name].shape != param.shape:
            raise UserError(
                f"{key}: the {family.model_type} model has the parameter {name} "
                f"{list(param.shape)}, which the dense model lacks or shapes otherwise; its configuration "
                "is not one upcycling supports"
            )
        param.copy_(source[name])
    dense_buffers = dict(model.named_buffers())
    for name, buffer in moe.named_buffers():  # the dense model's buffers, by name
        if name in dense_buffers and dense_buffers[name].shape == buffer.shape:
            buffer.copy_(dense_buffers[name])


@torch.no_grad()
def _logits(model: nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        return model(input_ids=tokens, use_cache=False).logits.float()
    finally:
        model.train(was_training)


# ---------------------------------------------------------------------------------------------
# Training an upcycled model: the routers' balance loss and per-expert token counts


class RouterStats:
    """Watches the routers of an MoE model (transformers' Mixtral, Qwen2-MoE, Qwen3-MoE layout:
    `mlp.gate` returns router logits, weights and chosen experts) while it trains.

    `balance_loss()` is the load-balancing loss of the model's last forward pass on this thread
    (transformers' `load_balancing_loss_func` of the family); `counts` `[layers, experts]` sums the
    tokens routed to each expert (each token counts once per expert of its top k) since `take_counts`.
    Only forward passes with gradients are watched (training; evaluation is not counted). A forward
    pass starts at the input embedding, where the previous pass's router logits are dropped, so the
    recomputation of activation checkpointing never mixes into the next micro-batch's loss.
    """

    def __init__(self, model: Any) -> None:
        config = model.config
        self.num_experts = int(getattr(config, "num_local_experts", None) or config.num_experts)
        self.top_k = int(config.num_experts_per_tok)
        family = importlib.import_module(
            f"transformers.models.{config.model_type}.modeling_{config.model_type}"
        )
        self._loss_fn: Callable[..., Any] = family.load_balancing_loss_func
        self._local = threading.local()
        self._lock = threading.Lock()
        routers = router_modules(model)
        device = next(model.parameters()).device
        self.counts = torch.zeros(len(routers), self.num_experts, dtype=torch.float64, device=device)
        self._hooks = [model.get_input_embeddings().register_forward_pre_hook(self._new_pass)]
        for layer, router in enumerate(routers):
            self._hooks.append(router.register_forward_hook(self._recorder(layer)))

    def _captured(self) -> list[torch.Tensor]:
        if not hasattr(self._local, "logits"):
            self._local.logits = []
        return self._local.logits

    def _new_pass(self, module: nn.Module, args: Any) -> None:
        self._captured().clear()

    def _recorder(self, layer: int) -> Callable[..., None]:
        def record(module: nn.Module, args: Any, output: Any) -> None:
            if not torch.is_grad_enabled():
                return
            logits, _, chosen = output
            self._captured().append(logits)
            counted = torch.bincount(chosen.detach().flatten(), minlength=self.num_experts)
            with self._lock:
                self.counts[layer] += counted.to(self.counts.dtype)

        return record

    def balance_loss(self) -> torch.Tensor | None:
        """The load-balancing loss of this thread's last forward pass, or None when it routed nothing."""
        logits = self._captured()
        if not logits:
            return None
        loss = self._loss_fn(tuple(logits), self.num_experts, self.top_k)
        logits.clear()
        return loss

    def take_counts(self) -> list[list[int]]:
        """Tokens per expert per layer since the last call; starts a new window."""
        with self._lock:
            counts = self.counts.clone()
            self.counts.zero_()
        return [[int(v) for v in row] for row in counts.tolist()]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks = []


def router_modules(model: nn.Module) -> list[nn.Module]:
    """The routers of an MoE model's decoder blocks (`mlp.gate` beside `mlp.experts`), in block order."""
    found = find_decoder_blocks(model)
    if found is None:
        return []
    blocks: list[Any] = list(found[1])
    return [
        block.mlp.gate
        for block in blocks
        if hasattr(getattr(block, "mlp", None), "experts") and hasattr(block.mlp, "gate")
    ]


def has_known_routers(model: nn.Module) -> bool:
    """Whether `model` is an MoE model whose routers `RouterStats` can watch (Mixtral, Qwen2-MoE, Qwen3-MoE)."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    known = {family.model_type for family in FAMILIES.values()}
    return model_type in known and bool(router_modules(model))
