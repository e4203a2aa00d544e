"""Logit distillation between models with DIFFERENT tokenizers.

Both losses compare one student row with one teacher row; pairing the rows is
the caller's job (reasonkd.distill.align.aligned_positions gives, for each
student token, the teacher token ending at the same character; gather the
teacher's logits there and mask the student rows that have no partner).

    student_logits: (B, L, Vs)   teacher_logits: (B, L, Vt)   mask: (B, L) bool

cross_vocab_kl -- KL on the shared vocabulary. VocabMap pairs M student ids
with M teacher ids whose token strings are identical (after normalising the
byte-level / sentencepiece space markers). With p = softmax(t / T) and
q = softmax(s / T), both are projected onto M + 1 buckets:

    p~ = [p[teacher_ids_1..M], 1 - sum_m p[teacher_ids_m]]
    q~ = [q[student_ids_1..M], 1 - sum_m q[student_ids_m]]
    loss = KL(p~ || q~) = sum_b p~_b (log p~_b - log q~_b)

the last bucket ("other") holding each side's unmatched mass. Other-buckets
below 1e-6 are floored to 1e-6 (as in the sparse form), so identical models on
identical vocabularies give 0.

uld_loss -- Universal Logit Distillation (Boizard et al. 2024). No token
correspondence needed: sort each distribution's probabilities in descending
order, zero-pad the shorter vocabulary to max(Vs, Vt), and take

    loss = sum_k | p_(k) - q_(k) |      (p_(k): k-th largest teacher prob)

per token, i.e. the closed form of the Wasserstein-1 distance between the two
sorted distributions under their uniform-cost assumption. It is in [0, 2] and
ignores which token carries which mass (only the shape of the distribution).

Both return the mean over unmasked rows; neither multiplies by T^2.
"""

from __future__ import annotations

import torch.nn.functional as F

from reasonkd.distill.losses._common import check_temperature, reduce_rows, token_mask
from reasonkd.distill.losses.logit import forward_kl_rows
from reasonkd.distill.losses.sparse import student_buckets
from reasonkd.errors import ReasonkdError


def _check_pair(student_logits, teacher_logits):
    if student_logits.dim() != 3 or teacher_logits.dim() != 3 or student_logits.shape[:2] != teacher_logits.shape[:2]:
        raise ReasonkdError(f"student_logits {tuple(student_logits.shape)} and teacher_logits "
                            f"{tuple(teacher_logits.shape)} must be (B, L, V*) with the same (B, L) "
                            "(gather the teacher rows at aligned positions first)")


def cross_vocab_kl(student_logits, teacher_logits, vocab_map, mask=None, temperature=1.0, *, labels=None,
                   reduction="mean"):
    """KL(p~ || q~) over the shared-token buckets of `vocab_map` plus one "other" bucket per side.

    student_logits: (B, L, Vs); teacher_logits: (B, L, Vt); vocab_map: align.VocabMap;
    mask (B, L) bool (or labels != -100). Returns the mean over unmasked rows.
    """
    _check_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    s_ids = vocab_map.student_ids.to(student_logits.device)
    t_ids = vocab_map.teacher_ids.to(teacher_logits.device)
    for who, ids, logits in (("student", s_ids, student_logits), ("teacher", t_ids, teacher_logits)):
        if ids.numel() and int(ids.max()) >= logits.shape[-1]:
            raise ReasonkdError(f"vocab_map {who} id {int(ids.max())} >= {who}_logits vocab "
                                f"{logits.shape[-1]}; rebuild the map with the model's vocab size")
    rows = token_mask(student_logits.shape, labels, mask, student_logits.device)
    s_logp = F.log_softmax(student_logits[rows].float() / temperature, dim=-1)
    t_logp = F.log_softmax(teacher_logits[rows].float() / temperature, dim=-1)
    values = forward_kl_rows(student_buckets(s_logp, s_ids), student_buckets(t_logp, t_ids))
    return reduce_rows(values, values.shape[0], reduction, rows)


def uld_loss(student_logits, teacher_logits, mask=None, temperature=1.0, *, labels=None, reduction="mean"):
    """Universal Logit Distillation: sum_k |sort_desc(p)_k - sort_desc(q)_k| per token, mean over rows.

    student_logits: (B, L, Vs); teacher_logits: (B, L, Vt); the shorter side is zero-padded.
    """
    _check_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    rows = token_mask(student_logits.shape, labels, mask, student_logits.device)
    values = uld_rows(student_logits[rows], teacher_logits[rows], temperature)
    return reduce_rows(values, values.shape[0], reduction, rows)


# ---- row forms for the trainer (rows already gathered at aligned positions) ----------------


def cross_vocab_rows(name: str, student_rows, teacher_rows, vocab_map, temperature: float = 1.0,
                     other_bucket: bool = True, teacher_is_shared: bool = False, **options):
    """Per-row divergence `name` between the shared tokens of two vocabularies -> (N,).

    student_rows: (N, Vs) logits; teacher_rows: (N, Vt) logits, row n of each at the same aligned
    position. other_bucket=True: both softmax(x / T) are projected onto [shared tokens of vocab_map...,
    other] as in cross_vocab_kl. other_bucket=False ("shared"): both are conditioned on the shared
    tokens, p^_m = p[t_m] / sum_m' p[t_m'] (same for q), so only the relative preferences among
    tokens both models can write are compared; a teacher's mass on tokens the student does not have
    then sets no floor the student can never reach (with every student token shared, the student's
    "other" bucket is empty and KL(p~ || q~) >= p_other * log(p_other / 1e-6)).
    Then any divergence of losses.ROW_DIVERGENCES (forward_kl, reverse_kl, generalized_jsd, ...).
    Conditioning on the shared tokens is the softmax of the shared logits alone, so that mode never
    normalises a full vocabulary; teacher_is_shared=True says teacher_rows are already (N, M), the
    logits of vocab_map.teacher_ids only (the trainer projects just those rows of the teacher's lm_head).
    """
    from reasonkd.distill.losses.logit import row_divergence

    check_temperature(temperature)
    s_ids = vocab_map.student_ids.to(student_rows.device)
    t_ids = vocab_map.teacher_ids.to(teacher_rows.device)
    if not other_bucket:
        t_sub = teacher_rows if teacher_is_shared else teacher_rows.index_select(-1, t_ids)
        s_b = F.log_softmax(student_rows.index_select(-1, s_ids).float() / temperature, dim=-1)
        t_b = F.log_softmax(t_sub.float() / temperature, dim=-1)
    else:
        if teacher_is_shared:
            raise ReasonkdError("other_bucket=True needs the teacher's full logits (teacher_is_shared=False)")
        s_b = student_buckets(F.log_softmax(student_rows.float() / temperature, dim=-1), s_ids)
        t_b = student_buckets(F.log_softmax(teacher_rows.float() / temperature, dim=-1), t_ids)
    return row_divergence(name)(s_b, t_b.to(s_b.device), **options)


def uld_rows(student_rows, teacher_rows, temperature: float = 1.0):
    """ULD per row (see uld_loss): sum_k |sort_desc(p)_k - sort_desc(q)_k| for (N, Vs), (N, Vt) -> (N,)."""
    check_temperature(temperature)
    q = F.softmax(student_rows.float() / temperature, dim=-1).sort(dim=-1, descending=True).values
    p = F.softmax(teacher_rows.float() / temperature, dim=-1).sort(dim=-1, descending=True).values
    width = max(q.shape[-1], p.shape[-1])
    return (F.pad(p, (0, width - p.shape[-1])).to(q.device) - F.pad(q, (0, width - q.shape[-1]))).abs().sum(-1)


def cross_vocab_topk_rows(name: str, student_rows, teacher_shared_rows, vocab_map, k: int = 20,
                          temperature: float = 1.0, **options):
    """Per-row divergence over the teacher's top-k SHARED tokens plus one "other" bucket -> (N,).

    teacher_shared_rows: (N, M) teacher logits of vocab_map.teacher_ids only; student_rows: (N, Vs).
    p = softmax(teacher_shared / T) (the teacher conditioned on the shared tokens), q = softmax(s / T);
    both are projected onto [the k most likely shared tokens of the teacher's row..., other] (the
    student at the matching student ids), then the named divergence. As with a top-k logit cache,
    the tail enters only as one bucket, so a high temperature does not ask the student to copy the
    teacher's ordering of ~40k unlikely tokens (which, at T = 5, wrecked greedy generation here:
    docs/cross_tokenizer.md).
    """
    from reasonkd.distill.losses.logit import row_divergence

    check_temperature(temperature)
    t_logp = F.log_softmax(teacher_shared_rows.float() / temperature, dim=-1)
    top = t_logp.topk(min(k, t_logp.shape[-1]), dim=-1).indices                  # (N, k) into the shared set
    s_ids = vocab_map.student_ids.to(student_rows.device)[top.to(student_rows.device)]   # (N, k) student ids
    s_b = student_buckets(F.log_softmax(student_rows.float() / temperature, dim=-1), s_ids)
    t_b = student_buckets(t_logp, top)
    return row_divergence(name)(s_b, t_b.to(s_b.device), **options)
