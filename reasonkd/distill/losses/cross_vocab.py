"""Rows between models with DIFFERENT tokenizers: shared-token distributions, and ULD.

Rows are paired by the caller (the trainer gathers the teacher row whose token
ends at the same character as the student's: docs/cross_tokenizer.md), so row
n of both tensors describes the continuation of the same text.

    s_b, t_b = shared_logprobs(student_logits, teacher_logits, vocab_map, T)       # then any divergence
    s_b, t_b = shared_topk_logprobs(student_logits, teacher_shared, vocab_map, k=20, T)
    values = uld(student_logits, teacher_logits, T)                                 # (N,)
    values = gold(student_logits, teacher_logits, vocab_map, T)                     # hybrid, (N,)

`vocab_map` (align.VocabMap) pairs M student ids with M teacher ids whose token
strings are identical (byte-level / sentencepiece space markers normalised).

shared_logprobs, other_bucket=True ("buckets"): p = softmax(t / T), q =
softmax(s / T), both projected onto [shared tokens..., other], the last bucket
holding each side's unmatched mass (floored at 1e-6 as in the top-k form).
other_bucket=False ("shared", the default): both conditioned on the shared
tokens, p^_m = p[t_m] / sum p[t_m'], so only the relative preferences among
tokens both models can write are compared (the softmax of the shared logits
alone; teacher_is_shared=True when the teacher rows already hold only those
M logits).

shared_topk_logprobs ("topk"): the teacher conditioned on the shared tokens,
both sides projected onto [the teacher's k most likely shared tokens..., tail],
as with a top-k logit cache; a high temperature then does not ask the student
to copy the teacher's ordering of ~40k unlikely tokens. exact_tail=True
("topk_exact"): the same k tokens picked from the teacher's full softmax, its
tail bucket the exact leftover mass (unshared tokens included), the student's
tail its mass outside those tokens: nothing renormalised over the shared set.

uld: Universal Logit Distillation (Boizard et al. 2024): sort each
distribution's probabilities in descending order, zero-pad the shorter
vocabulary, sum_k |p_(k) - q_(k)| per row, in [0, 2]. No token correspondence.

gold: a hybrid in the manner of GOLD (Patiño et al. 2025): the divergence on
the exactly matched tokens (their mass, unrenormalised, plus one bucket for the
rest of each side) and ULD's sorted-probability L1 on the unmatched rest.
None multiplies by T^2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reasonkd.distill.losses.logit import divergence, logprobs, tempered
from reasonkd.distill.losses.sparse import bucket_logprobs
from reasonkd.errors import ReasonkdError


def _check_ids(vocab_map, student_logits, teacher_logits, teacher_is_shared=False):
    if student_logits.shape[0] != teacher_logits.shape[0]:
        raise ReasonkdError(
            f"student rows {tuple(student_logits.shape)} and teacher rows {tuple(teacher_logits.shape)} "
            "must pair up (gather the teacher rows at aligned positions first)"
        )
    pairs = [("student", vocab_map.student_ids, student_logits)]
    if not teacher_is_shared:
        pairs.append(("teacher", vocab_map.teacher_ids, teacher_logits))
    for who, ids, logits in pairs:
        if ids.numel() and int(ids.max()) >= logits.shape[-1]:
            raise ReasonkdError(
                f"vocab_map {who} id {int(ids.max())} >= {who} vocabulary {logits.shape[-1]}; "
                "rebuild the map with the model's vocab size"
            )


def shared_logprobs(
    student_logits,
    teacher_logits,
    vocab_map,
    temperature: float = 1.0,
    other_bucket: bool = False,
    teacher_is_shared: bool = False,
):
    """(student, teacher) log-probs over the shared tokens: (N, M) conditioned, or (N, M + 1) with buckets.

    student_logits: (N, Vs); teacher_logits: (N, Vt), or (N, M) with teacher_is_shared=True.
    """
    _check_ids(vocab_map, student_logits, teacher_logits, teacher_is_shared)
    s_ids = vocab_map.student_ids.to(student_logits.device)
    t_ids = vocab_map.teacher_ids.to(teacher_logits.device)
    if not other_bucket:
        t_sub = teacher_logits if teacher_is_shared else teacher_logits.index_select(-1, t_ids)
        s_b, t_b = logprobs(student_logits.index_select(-1, s_ids), temperature), logprobs(t_sub, temperature)
    else:
        if teacher_is_shared:
            raise ReasonkdError("other_bucket=True needs the teacher's full logits (teacher_is_shared=False)")
        s_b = bucket_logprobs(logprobs(student_logits, temperature), s_ids)
        t_b = bucket_logprobs(logprobs(teacher_logits, temperature), t_ids)
    return s_b, t_b.to(s_b.device)


def shared_topk_logprobs(
    student_logits, teacher_logits, vocab_map, k: int = 20, temperature: float = 1.0, exact_tail: bool = False
):
    """(student, teacher) (N, k + 1) bucket log-probs over the teacher's k most likely shared tokens.

    exact_tail=False: teacher_logits (N, M) are the logits of vocab_map.teacher_ids only, and the teacher
    is conditioned on the shared tokens. exact_tail=True: teacher_logits (N, Vt) are full; the top-k
    probabilities come from the teacher's FULL softmax and its tail bucket is its exact leftover mass
    1 - sum(top-k), unshared tokens included, nothing renormalised. student_logits: (N, Vs), full softmax.
    """
    _check_ids(vocab_map, student_logits, teacher_logits, teacher_is_shared=not exact_tail)
    if exact_tail:
        t_ids = vocab_map.teacher_ids.to(teacher_logits.device)
        t_logp = logprobs(teacher_logits, temperature).index_select(-1, t_ids)
    else:
        t_logp = logprobs(teacher_logits, temperature)
    top = t_logp.topk(min(k, t_logp.shape[-1]), dim=-1).indices  # (N, k) into the shared set
    s_ids = vocab_map.student_ids.to(student_logits.device)[top.to(student_logits.device)]  # (N, k) student ids
    s_b = bucket_logprobs(logprobs(student_logits, temperature), s_ids)
    return s_b, bucket_logprobs(t_logp, top).to(s_b.device)


def _sorted_l1(q: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """sum_k |sort_desc(p)_k - sort_desc(q)_k| per row, the shorter side zero-padded."""
    q = q.sort(dim=-1, descending=True).values
    p = p.sort(dim=-1, descending=True).values
    width = max(q.shape[-1], p.shape[-1])
    return (F.pad(p, (0, width - p.shape[-1])).to(q.device) - F.pad(q, (0, width - q.shape[-1]))).abs().sum(-1)


def uld(student_logits, teacher_logits, temperature: float = 1.0) -> torch.Tensor:
    """ULD per row: (N, Vs), (N, Vt) -> (N,) in [0, 2] (module doc)."""
    q = F.softmax(tempered(student_logits.float(), temperature), dim=-1)
    return _sorted_l1(q, F.softmax(tempered(teacher_logits.float(), temperature), dim=-1))


def gold(
    student_logits,
    teacher_logits,
    vocab_map,
    temperature: float = 1.0,
    name: str = "forward_kl",
    uld_weight: float = 1.0,
    **options,
) -> torch.Tensor:
    """Hybrid cross-tokenizer loss per row: divergence on matched tokens + uld_weight * ULD on the rest.

    Matched part: `name` between [p[matched]..., p(rest)] and [q[matched]..., q(rest)] (the shared
    tokens' full-softmax probabilities, not renormalised; `shared_logprobs(other_bucket=True)`).
    Unmatched part: the sorted-probability L1 between the probabilities of each side's unmatched
    tokens (not renormalised either, so it is 0 when both sides put the same mass in the same shape
    there). student_logits (N, Vs); teacher_logits (N, Vt) full. -> (N,)
    """
    s_b, t_b = shared_logprobs(student_logits, teacher_logits, vocab_map, temperature, other_bucket=True)
    matched = divergence(name)(s_b, t_b, **options)
    q = logprobs(student_logits, temperature).exp()
    p = logprobs(teacher_logits, temperature).exp()
    q = q.index_fill(-1, vocab_map.student_ids.to(q.device), 0.0)
    p = p.index_fill(-1, vocab_map.teacher_ids.to(p.device), 0.0)
    return matched + uld_weight * _sorted_l1(q, p)
