"""Linear + cross-entropy that never materialises the full logits.

The LM head of a model with vocabulary V turns hidden states [N, H] into logits [N, V]; for a batch
of 16 x 2048 tokens and V = 32000 that is a billion values, stored once in the compute dtype, again
in float32 for the softmax, and again for its gradient. `linear_cross_entropy` instead walks over
the tokens in chunks: for each chunk it computes the logits, the loss and, in the same pass, the
gradients with respect to the hidden states and the head's weight, then drops the logits. The
backward pass only scales the stored gradients. Peak extra memory is one chunk of logits.

The result equals `F.cross_entropy(hidden @ weight.T, targets)` (mean over targets that are not
-100) up to the rounding of the compute dtype.

`linear_token_nll` is the forward-only counterpart for evaluation: the negative log-likelihood of
every token, chunk by chunk, with no gradient state.
"""

from __future__ import annotations

import torch

IGNORE_INDEX = -100


def _chunk_loss_and_grad(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed NLL of one chunk and d(summed NLL)/d(logits), in the compute dtype."""
    logits = (hidden @ weight.t()).float()
    valid = targets != IGNORE_INDEX
    safe = torch.where(valid, targets, 0)
    rows = torch.arange(logits.shape[0], device=logits.device)
    target_logit = logits[rows, safe]
    # softmax - one-hot, written over the logits: one chunk-sized buffer and five passes over it
    top = logits.amax(dim=-1, keepdim=True)
    grad = logits.sub_(top).exp_()
    sum_exp = grad.sum(dim=-1)
    lse = sum_exp.log() + top.squeeze(1)
    loss = torch.where(valid, lse - target_logit, 0.0).sum()
    grad.mul_((valid / sum_exp).unsqueeze(1))  # normalise, and zero the ignored rows
    grad[rows, safe] -= valid.to(grad.dtype)
    return loss, grad.to(hidden.dtype)


def _chunk_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    logits = (hidden @ weight.t()).float()
    valid = targets != IGNORE_INDEX
    safe = torch.where(valid, targets, 0)
    nll = torch.logsumexp(logits, dim=-1) - logits.gather(1, safe.unsqueeze(1)).squeeze(1)
    return torch.where(valid, nll, 0.0).sum()


_compiled: dict[str, object] = {}


def _kernels(compiled: bool) -> tuple:
    if not compiled:
        return _chunk_loss_and_grad, _chunk_loss
    if not _compiled:
        _compiled["grad"] = torch.compile(_chunk_loss_and_grad, dynamic=False)
        _compiled["loss"] = torch.compile(_chunk_loss, dynamic=False)
    return _compiled["grad"], _compiled["loss"]


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden, weight, targets, chunk_size, compute_dtype, compiled):  # type: ignore[override]
        with_grad, loss_only = _kernels(compiled)
        count = (targets != IGNORE_INDEX).sum().clamp(min=1).to(torch.float32)
        w = weight.to(compute_dtype)
        needs_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        grad_hidden = torch.empty_like(hidden) if needs_grad else None
        grad_weight = (
            torch.empty(weight.shape, dtype=torch.float32, device=weight.device) if needs_grad else None
        )
        if grad_weight is not None and hidden.shape[0] == 0:
            grad_weight.zero_()  # no chunk to write it
        for start in range(0, hidden.shape[0], chunk_size):
            h = hidden[start : start + chunk_size].to(compute_dtype)
            t = targets[start : start + chunk_size]
            if not needs_grad:
                total += loss_only(h, w, t)
                continue
            loss, grad_logits = with_grad(h, w, t)
            total += loss
            if h.dtype == grad_hidden.dtype:
                torch.mm(grad_logits, w, out=grad_hidden[start : start + chunk_size])
            else:  # float32 hidden states (autocast) with a bf16 product: the chunk is converted
                grad_hidden[start : start + chunk_size] = grad_logits @ w
            if h.dtype != grad_weight.dtype:  # a bf16 product, accumulated in float32
                part = (grad_logits.t() @ h).float()
                if start == 0:
                    grad_weight.copy_(part)
                else:
                    grad_weight.add_(part)
            elif start == 0:
                torch.mm(grad_logits.t(), h, out=grad_weight)  # the first chunk writes: no zero fill
            else:
                grad_weight.addmm_(grad_logits.t(), h)  # accumulate in the product: no [V, H] temporary
        if needs_grad:
            ctx.save_for_backward(grad_hidden, grad_weight, count)
            ctx.weight_dtype = weight.dtype
        return total / count

    @staticmethod
    def backward(ctx, grad_output):  # type: ignore[override]
        grad_hidden, grad_weight, count = ctx.saved_tensors
        scale = grad_output / count
        # The stored gradients are used once: scale them in place rather than into new [N, H] and
        # [V, H] tensors.
        grad_weight = grad_weight.mul_(scale).to(ctx.weight_dtype)
        return grad_hidden.mul_(scale.to(grad_hidden.dtype)), grad_weight, None, None, None, None


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_size: int = 4096,
    compute_dtype: torch.dtype | None = None,
    compiled: bool = False,
) -> torch.Tensor:
    """Mean next-token cross-entropy (nats) of logits `hidden @ weight.T`, without storing them.

    hidden: [N, H] final hidden states; weight: [V, H] the LM head; targets: [N] token ids, -100 to
    ignore. `compute_dtype` is the dtype of the matrix products (default: hidden's); the softmax is
    always float32. `compiled` fuses each chunk's softmax and gradient with torch.compile.
    """
    compute_dtype = compute_dtype or hidden.dtype
    return _LinearCrossEntropy.apply(hidden, weight, targets, chunk_size, compute_dtype, compiled)


def linear_token_nll(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    *,
    chunk_size: int = 4096,
    compute_dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """-log p(target) of every row of logits `hidden @ weight.T`, float32 `[N]`, 0 where the target
    is -100; forward only (call it without gradients), never storing more than one chunk of logits.

    hidden: [N, H]; weight: [V, H]; targets: [N]. The products run in `compute_dtype` (default:
    hidden's); the softmax always in float32, as `log(sum(exp(logits - max))) - (logit - max)`
    over each chunk's float32 logits, in place.
    """
    compute_dtype = compute_dtype or hidden.dtype
    w = weight.to(compute_dtype)
    out = torch.empty(hidden.shape[0], dtype=torch.float32, device=hidden.device)
    for start in range(0, hidden.shape[0], chunk_size):
        logits = (hidden[start : start + chunk_size].to(compute_dtype) @ w.t()).float()
        t = targets[start : start + chunk_size]
        valid = t != IGNORE_INDEX
        logits.sub_(logits.amax(dim=-1, keepdim=True))
        target_logit = logits.gather(1, torch.where(valid, t, 0).unsqueeze(1)).squeeze(1)
        nll = logits.exp_().sum(dim=-1).log_().sub_(target_logit)
        out[start : start + chunk_size] = torch.where(valid, nll, 0.0)
    return out
