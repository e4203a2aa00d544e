"""Divergences against a sparse (top-k) teacher, as stored by a logit cache.

Teacher per token row: `teacher_topk_ids` (B, L, K) long and
`teacher_topk_logprobs` (B, L, K) float, the log-probs at temperature 1 taken
from the teacher's FULL softmax (so they sum to <= 1). The student has full
`student_logits` (B, L, V). Ids within a row must be distinct.

Both distributions are projected onto K + 1 buckets, the top-k ids plus one
"other" bucket holding the missing mass:

    teacher:  p_i (i in top-k),  r = 1 - sum_i p_i
    student:  q_i = softmax(s / T)[id_i],  q_other = 1 - sum_i q_i

and any divergence of `reasonkd.distill.losses.logit` is applied to the
(K + 1)-bucket distributions. Remainders below BUCKET_FLOOR (1e-6, fp32
round-off when the top-k covers everything) are set to the floor on both
sides, so with K = V the result equals the dense loss.

Temperature. The student is exact (full softmax at T, then bucketed). The
teacher is re-tempered from the stored log-probs:

    p_i^T = p_i^(1/T) / Z,   r^T = r^(1/T) / Z,   Z = sum_i p_i^(1/T) + r^(1/T)

i.e. the tail is treated as ONE token of mass r. This is exact for K = V or a
one-token tail; for T > 1 it underestimates the tempered tail mass (the true
value sum_{j not in top-k} p_j^(1/T) >= r^(1/T)), for T < 1 it overestimates it.
Teacher inputs are treated as constants (no gradient is meant to flow to them).

Usage:
    loss = sparse_divergence("forward_kl", student_logits, ids, logprobs, labels, temperature=2.0)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reasonkd.distill.losses._common import BUCKET_FLOOR, check_temperature, reduce_rows, token_mask
from reasonkd.distill.losses.logit import (ce_rows_of, check_alpha_labels, combine_kd_terms,
                                           forward_kl_rows, row_divergence)
from reasonkd.errors import ReasonkdError


def student_buckets(student_logp: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Student log-probs (N, V) -> (N, K + 1) bucket log-probs [ids..., other].

    `ids` (N, K) per-row ids, or (K,) shared by all rows.
    """
    top = student_logp.index_select(-1, ids) if ids.dim() == 1 else student_logp.gather(-1, ids)
    other = (1.0 - top.exp().sum(-1, keepdim=True)).clamp_min(BUCKET_FLOOR).log()
    return torch.cat([top, other], dim=-1)


def teacher_buckets(topk_logprobs: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Stored top-k log-probs at T = 1 (N, K) -> re-tempered (N, K + 1) bucket log-probs."""
    lp = topk_logprobs.float()
    remainder = (1.0 - lp.double().exp().sum(-1, keepdim=True)).float()
    remainder = torch.where(remainder > BUCKET_FLOOR, remainder, torch.zeros_like(remainder))
    logw = torch.cat([lp, remainder.log()], dim=-1) / temperature  # log 0 = -inf: an empty bucket
    logp = logw - torch.logsumexp(logw, dim=-1, keepdim=True)
    other = logp[..., -1:].exp().clamp_min(BUCKET_FLOOR).log()
    return torch.cat([logp[..., :-1], other], dim=-1)


def _check_sparse(student_logits, ids, logprobs):
    if student_logits.dim() != 3:
        raise ReasonkdError(f"student_logits must be (B, L, V), got {tuple(student_logits.shape)}")
    if ids.dim() != 3 or tuple(ids.shape[:2]) != tuple(student_logits.shape[:2]):
        raise ReasonkdError(f"teacher_topk_ids must be (B, L, K) with (B, L) = "
                            f"{tuple(student_logits.shape[:2])}, got {tuple(ids.shape)}")
    if tuple(logprobs.shape) != tuple(ids.shape):
        raise ReasonkdError(f"teacher_topk_logprobs {tuple(logprobs.shape)} must match teacher_topk_ids "
                            f"{tuple(ids.shape)}")
    if ids.dtype not in (torch.int64, torch.int32):
        raise ReasonkdError(f"teacher_topk_ids must be integer ids, got dtype {ids.dtype}")
    vocab = student_logits.shape[-1]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= vocab):
        raise ReasonkdError(f"teacher_topk_ids out of range for the student vocabulary ({vocab}): "
                            f"min {int(ids.min())}, max {int(ids.max())}; teacher and student must share "
                            "the tokenizer for sparse KD (else use cross_vocab_kl)")


def _bucket_rows(student_logits, teacher_topk_ids, teacher_topk_logprobs, labels, temperature, mask):
    _check_sparse(student_logits, teacher_topk_ids, teacher_topk_logprobs)
    check_temperature(temperature)
    rows = token_mask(student_logits.shape, labels, mask, student_logits.device)
    s_rows = student_logits[rows].float()
    s_b = student_buckets(F.log_softmax(s_rows / temperature, dim=-1), teacher_topk_ids[rows].long())
    t_b = teacher_buckets(teacher_topk_logprobs[rows].detach(), temperature)
    return rows, s_rows, s_b, t_b


def sparse_divergence(name, student_logits, teacher_topk_ids, teacher_topk_logprobs, labels=None, *,
                      temperature=1.0, mask=None, reduction="mean", **kw):
    """Divergence `name` (see DIVERGENCES) between the student and a top-k teacher, per-token mean.

    student_logits: (B, L, V); teacher_topk_ids: (B, L, K) long; teacher_topk_logprobs: (B, L, K)
    (T = 1 log-probs of the full teacher softmax). Extra keywords (beta=, skew=) go to the divergence.
    """
    row_fn = row_divergence(name)
    rows, _, s_b, t_b = _bucket_rows(student_logits, teacher_topk_ids, teacher_topk_logprobs, labels,
                                     temperature, mask)
    values = row_fn(s_b, t_b, **kw)
    return reduce_rows(values, values.shape[0], reduction, rows)


def sparse_distillation_loss_terms(student_logits, teacher_topk_ids, teacher_topk_logprobs, labels,
                                   temperature=3.0, alpha=0.7, mask=None, reduction="batchmean") -> dict:
    """The article's loss with a top-k teacher: dict(kl=..., ce=..., total=...).

    total = alpha * T^2 * KL_buckets(p^T || q^T) + (1 - alpha) * CE(s, labels), with the K + 1
    bucket KL described in the module docstring and masking as in `distillation_loss_terms`.
    """
    alpha = check_alpha_labels(alpha, labels)
    rows, s_rows, s_b, t_b = _bucket_rows(student_logits, teacher_topk_ids, teacher_topk_logprobs,
                                          labels, temperature, mask)
    kl = forward_kl_rows(s_b, t_b)
    ce, n_ce = ce_rows_of(s_rows, labels, rows)
    return combine_kd_terms(kl, ce, n_ce, rows, temperature, alpha, reduction)


def sparse_distillation_loss(student_logits, teacher_topk_ids, teacher_topk_logprobs, labels,
                             temperature=3.0, alpha=0.7, mask=None, reduction="batchmean") -> torch.Tensor:
    """The article's loss with a top-k teacher (scalar); see `sparse_distillation_loss_terms`."""
    return sparse_distillation_loss_terms(student_logits, teacher_topk_ids, teacher_topk_logprobs, labels,
                                          temperature, alpha, mask, reduction)["total"]
