"""Rows against a sparse (top-k) teacher, as stored by a logit cache: K + 1 bucket distributions.

    s_b, t_b = topk_logprobs(student_logits, topk_ids, topk_logprobs, temperature=1.0)
    loss_rows = forward_kl(s_b, t_b)          # any divergence of losses.logit, (N,)

Teacher per row: `topk_ids` (N, K) long and `topk_logprobs` (N, K), the log-probs
at temperature 1 of the teacher's FULL softmax (so they sum to <= 1). The
student has full `student_logits` (N, V). Ids within a row must be distinct.

Both distributions are projected onto K + 1 buckets, the teacher's top-k ids
plus one tail bucket holding the rest of the mass:

    teacher:  p_i (i in top-k),  tail = 1 - sum_i p_i        (the teacher's exact leftover mass)
    student:  q_i = softmax(s / T)[id_i],  tail = 1 - sum_i q_i   (log-softmax over the FULL vocabulary)

Nothing is renormalised over the top-k: a student that puts mass outside the
teacher's top-k pays for it in the tail bucket. Tails below BUCKET_FLOOR (1e-6,
fp32 round-off when the top-k covers everything) are set to the floor on both
sides, so with K = V the result equals the full-vocabulary divergence.

Temperature. The student is exact at any T. At T = 1 (the default) so is the
teacher. At T != 1 the teacher is re-tempered from the stored log-probs,
p_i^T = p_i^(1/T) / Z, tail^T = tail^(1/T) / Z, i.e. the tail is treated as ONE
token: for T > 1 this underestimates the tempered tail mass, for T < 1 it
overestimates it (exact for K = V). Teacher inputs are constants (detached).
"""

from __future__ import annotations

import torch

from reasonkd.distill.losses._common import BUCKET_FLOOR
from reasonkd.distill.losses.logit import logprobs, tempered
from reasonkd.errors import ReasonkdError


def bucket_logprobs(logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Full log-probs (N, V) -> (N, K + 1) bucket log-probs [ids..., tail].

    `ids` (N, K) per-row ids, or (K,) shared by all rows.
    """
    top = logp.index_select(-1, ids) if ids.dim() == 1 else logp.gather(-1, ids)
    tail = (1.0 - top.exp().sum(-1, keepdim=True)).clamp_min(BUCKET_FLOOR).log()
    return torch.cat([top, tail], dim=-1)


def teacher_buckets(topk_logprobs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Stored top-k log-probs at T = 1 (N, K) -> (N, K + 1) bucket log-probs at T (module doc)."""
    lp = topk_logprobs.detach().float()
    tail = (1.0 - lp.double().exp().sum(-1, keepdim=True)).float()
    tail = torch.where(tail > BUCKET_FLOOR, tail, torch.zeros_like(tail))
    logw = tempered(torch.cat([lp, tail.log()], dim=-1), temperature)  # log 0 = -inf: an empty bucket
    logp = logw - torch.logsumexp(logw, dim=-1, keepdim=True)
    other = logp[..., -1:].exp().clamp_min(BUCKET_FLOOR).log()
    return torch.cat([logp[..., :-1], other], dim=-1)


def check_topk(student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor) -> None:
    """Shapes (N, V), (N, K), (N, K) and ids within the student's vocabulary."""
    if student_logits.dim() != 2 or topk_ids.dim() != 2 or topk_ids.shape[0] != student_logits.shape[0]:
        raise ReasonkdError(
            f"student_logits must be (N, V) and topk_ids (N, K), got {tuple(student_logits.shape)} "
            f"and {tuple(topk_ids.shape)}"
        )
    if tuple(topk_logprobs.shape) != tuple(topk_ids.shape):
        raise ReasonkdError(f"topk_logprobs {tuple(topk_logprobs.shape)} must match topk_ids {tuple(topk_ids.shape)}")
    vocab = student_logits.shape[-1]
    if topk_ids.numel() and (int(topk_ids.min()) < 0 or int(topk_ids.max()) >= vocab):
        raise ReasonkdError(
            f"topk_ids out of range for the student vocabulary ({vocab}): min {int(topk_ids.min())}, "
            f"max {int(topk_ids.max())}; teacher and student must share the tokenizer for top-k "
            "targets (else use the cross-vocabulary forms)"
        )


def topk_logprobs(
    student_logits: torch.Tensor, topk_ids: torch.Tensor, topk_logprobs: torch.Tensor, temperature: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(student, teacher) (N, K + 1) bucket log-probs for any row divergence (module doc)."""
    check_topk(student_logits, topk_ids, topk_logprobs)
    ids = topk_ids.long()
    return bucket_logprobs(logprobs(student_logits, temperature), ids), teacher_buckets(topk_logprobs, temperature)
