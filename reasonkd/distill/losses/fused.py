"""Row losses whose gradient is computed in the forward pass: no autograd graph over the (N, V) rows.

    rows = fused_ce(student_logits, targets)                               # (N,), = ce(..., "none")
    rows = fused_forward_kl(student_logits, teacher_logits, T)             # (N,), = forward_kl of logprobs
    rows = fused_topk_forward_kl(student_logits, topk_ids, topk_logprobs, T)   # (N,), top-k + tail bucket

Each returns exactly the values of the autograd form (the same functions compute them, under no_grad), and
attaches d rows_i / d student_logits_i, written out below, as the backward. Autograd over
log_softmax(logits / T) at V ~ 150k keeps or recomputes fp32 (N, V) intermediates and runs four (N, V)
passes in backward (log-softmax backward, the gather's scatter into zeros, the cast back) plus a
full-size slice gradient per chunk; here the forward runs once, `chunk` rows at a time, into one fp32
(N, V) gradient buffer, and the backward is one (N, V) multiply (autograd casts it to the logits' dtype). The
gradient equals autograd's up to fp32 rounding (tests/distill/test_losses_fused.py, float64 references).
The same idea as Liger-Kernel's fused linear losses, written in plain PyTorch (Liger's kernels are
Triton, GPU only).

With z = s / T, q = softmax(z) over the full vocabulary and the loss L of a row:

    CE (T = 1):        dL/ds = q - onehot(y)
    forward KL, full:  dL/dz = q * sum(p') - p',  p' = p where log q > LOG_FLOOR (the autograd form's clamp)
    forward KL, top-k: buckets b = [ids..., tail], P_b the teacher's bucket probabilities (0 where the
                       student's bucket log-prob is clamped), S = sum_K q, tail = 1 - S, c = P_tail / tail
                       (0 when the tail is floored at BUCKET_FLOOR, where autograd's clamp passes no gradient):
                       dL/dz_u = q_u * (sum_K P - c * S) + [u in K] * (c * q_u - P_u)
    and dL/ds = dL/dz / T.
"""

from __future__ import annotations

import torch

from reasonkd.distill.losses._common import BUCKET_FLOOR
from reasonkd.distill.losses.logit import LOG_FLOOR, forward_kl, logprobs
from reasonkd.distill.losses.sparse import bucket_logprobs, check_topk, teacher_buckets


class _RowsWithGrad(torch.autograd.Function):
    """rows (N,) as a function of logits (N, V) whose Jacobian is row-diagonal: grad (N, V) = d rows_i / d s_i."""

    @staticmethod
    def forward(ctx, logits, rows, grad):
        ctx.save_for_backward(grad)
        return rows

    @staticmethod
    def backward(ctx, grad_rows):
        (grad,) = ctx.saved_tensors  # fp32; autograd casts it to the logits' dtype
        return grad * grad_rows.float()[:, None], None, None


def _fused(rows_and_grad, chunk: int, logits: torch.Tensor, *per_row: torch.Tensor) -> torch.Tensor:
    """rows_and_grad(s, *per_row, out) -> rows, writing d rows / d s into out, run `chunk` rows at a time
    (chunk <= 0: all at once) into ONE fp32 (N, V) gradient buffer, attached once: no per-chunk autograd
    graph (each would add a full-size slice gradient in backward). fp32 because elementwise maths that
    writes bf16 costs an extra cast pass on CPU (measured)."""
    n = logits.shape[0]
    size = chunk if 0 < chunk < n else max(n, 1)
    grad = torch.empty(logits.shape, dtype=torch.float32, device=logits.device)
    with torch.no_grad():
        rows = (
            torch.cat(
                [
                    rows_and_grad(logits[a : a + size], *(t[a : a + size] for t in per_row), grad[a : a + size])
                    for a in range(0, n, size)
                ]
            )
            if n
            else logits.new_zeros(0, dtype=torch.float32)
        )
    if not (torch.is_grad_enabled() and logits.requires_grad):
        return rows
    return _RowsWithGrad.apply(logits, rows, grad)


def _ce(student_logits, targets, out):
    logp = logprobs(student_logits, 1.0)
    idx = targets.long().unsqueeze(-1)
    at_target = logp.gather(-1, idx)
    torch.exp(logp, out=out)  # q
    out.scatter_(-1, idx, (at_target.exp() - 1.0).to(out.dtype))  # q_y - 1
    return -at_target.squeeze(-1)


def _full_kl(temperature):
    def rows_and_grad(student_logits, teacher_logits, out):
        s_logp, t_logp = logprobs(student_logits, temperature), logprobs(teacher_logits, temperature)
        rows = forward_kl(s_logp, t_logp)
        p = t_logp.exp_().masked_fill_(s_logp < LOG_FLOOR, 0.0)
        scale = p.sum(-1, keepdim=True)
        if temperature != 1.0:
            p.div_(temperature)
            scale = scale / temperature
        torch.sub(s_logp.exp_().mul_(scale), p, out=out)  # (q * sum p - p) / T
        return rows

    return rows_and_grad


def _topk_kl(temperature):
    def rows_and_grad(student_logits, ids, topk_logprobs, out):
        s_logp = logprobs(student_logits, temperature)
        s_b, t_b = bucket_logprobs(s_logp, ids), teacher_buckets(topk_logprobs, temperature)
        rows = forward_kl(s_b, t_b)
        big_p = t_b.exp().masked_fill_(s_b < LOG_FLOOR, 0.0)  # (n, K + 1)
        p_top, p_tail = big_p[:, :-1], big_p[:, -1]
        q_top = s_b[:, :-1].exp()  # = q at the ids
        total = q_top.sum(-1)
        tail = (1.0 - total).clamp_min(BUCKET_FLOOR)
        c = torch.where(1.0 - total >= BUCKET_FLOOR, p_tail / tail, torch.zeros_like(tail))
        a = ((p_top.sum(-1) - c * total) / temperature)[:, None]
        torch.mul(s_logp.exp_(), a, out=out)  # q_u * A for every u ...
        at_ids = q_top * a + (c[:, None] * q_top - p_top) / temperature  # ... and its full value at the ids
        out.scatter_(-1, ids, at_ids.to(out.dtype))
        return rows

    return rows_and_grad


def fused_ce(student_logits: torch.Tensor, targets: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """Token cross-entropy at T = 1 per row: logits (N, V), targets (N,) all valid ids -> (N,) fp32."""
    return _fused(_ce, chunk, student_logits, targets)


def fused_forward_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 1.0, chunk: int = 0
) -> torch.Tensor:
    """KL(p || q) per row over one vocabulary at temperature T: (N, V), (N, V) -> (N,)."""
    return _fused(_full_kl(temperature), chunk, student_logits, teacher_logits)


def fused_topk_forward_kl(
    student_logits: torch.Tensor,
    topk_ids: torch.Tensor,
    topk_logprobs: torch.Tensor,
    temperature: float = 1.0,
    chunk: int = 0,
) -> torch.Tensor:
    """KL over the teacher's top-k + tail buckets per row (losses.sparse): (N, V), (N, K), (N, K) -> (N,)."""
    check_topk(student_logits, topk_ids, topk_logprobs)
    return _fused(_topk_kl(temperature), chunk, student_logits, topk_ids.long(), topk_logprobs)


def fused_ok(targets: torch.Tensor) -> bool:
    """The fused CE needs every target to be a real token id (rows are gathered trace positions)."""
    return not bool((targets < 0).any())


__all__ = ["fused_ce", "fused_forward_kl", "fused_topk_forward_kl", "fused_ok"]
