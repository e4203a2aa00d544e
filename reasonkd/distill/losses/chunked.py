"""Chunked divergences: the same maths as the dense forms, a chunk of tokens at a time.

Why: with V ~ 150k, fp32 copies of both models' logits for every token (plus
softmax intermediates saved for backward) are the memory peak of logit KD.
Here the unmasked token rows are processed `chunk_size` at a time: only one
chunk is cast to fp32 at once, and under autograd each chunk runs inside
`torch.utils.checkpoint` (non-reentrant) so its fp32 intermediates are freed
after the forward and recomputed chunk by chunk in backward. The saved state is
just the inputs you already hold (bf16 logits, or hidden states + lm_head).

    chunked_divergence(name, student_logits, teacher_logits, labels, chunk_size=1024)
    chunked_divergence_from_hidden(name, student_hidden, lm_head_weight, teacher_logits, labels)
    chunked_distillation_loss(student_logits, teacher_logits, labels, temperature=3.0, alpha=0.7)

`_from_hidden` never forms the student's (B, L, V) logits at all: it projects
`student_hidden[rows] @ lm_head_weight.T` per chunk (torchtune's chunked-CE idea).
Per-row values are summed and divided by the row count, so the result equals
the unchunked loss up to float summation order (~1e-7).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint as _checkpoint

from reasonkd.distill.losses._common import (check_logits_pair, check_temperature, reduce_rows,
                                             token_mask)
from reasonkd.distill.losses.logit import check_alpha_labels, combine_kd_terms, row_divergence
from reasonkd.errors import ReasonkdError


def _row_index(shape, labels, mask, device):
    rows = token_mask(shape, labels, mask, device)
    return rows, rows.flatten().nonzero().squeeze(1)


def _run_chunks(chunk_fn, idx: torch.Tensor, chunk_size: int, use_ckpt: bool, *tensors) -> torch.Tensor:
    """Concatenate chunk_fn(idx_chunk, *tensors) -> (c, k) over chunks of the row index."""
    if chunk_size < 1:
        raise ReasonkdError(f"chunk_size must be >= 1, got {chunk_size}")
    outs = []
    for start in range(0, idx.numel(), chunk_size):
        ci = idx[start:start + chunk_size]
        if use_ckpt:
            outs.append(_checkpoint(chunk_fn, ci, *tensors, use_reentrant=False))
        else:
            outs.append(chunk_fn(ci, *tensors))
    if not outs:  # no unmasked rows: an empty result still attached to the graph
        return tensors[0].reshape(-1)[:0].float().reshape(0, 1)
    return torch.cat(outs)


def _want_ckpt(checkpoint, *tensors) -> bool:
    if checkpoint is not None:
        return bool(checkpoint)
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def _project(hidden_flat, weight, bias, ci):
    logits = hidden_flat.index_select(0, ci) @ weight.t()
    return logits if bias is None else logits + bias


def chunked_divergence(name, student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None,
                       reduction="mean", chunk_size=1024, checkpoint=None, **kw):
    """Divergence `name` computed over chunks of `chunk_size` unmasked token rows.

    student_logits, teacher_logits: (B, L, V), any float dtype. checkpoint: None = auto (on when
    a gradient is needed). Equals get_divergence(name)(...) within float round-off.
    """
    row_fn = row_divergence(name)
    check_logits_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    rows, idx = _row_index(student_logits.shape, labels, mask, student_logits.device)
    vocab = student_logits.shape[-1]

    def chunk_fn(ci, s_flat, t_flat):
        s_logp = F.log_softmax(s_flat.index_select(0, ci).float() / temperature, dim=-1)
        t_logp = F.log_softmax(t_flat.index_select(0, ci).float() / temperature, dim=-1)
        return row_fn(s_logp, t_logp, **kw).unsqueeze(-1)

    values = _run_chunks(chunk_fn, idx, chunk_size, _want_ckpt(checkpoint, student_logits, teacher_logits),
                         student_logits.reshape(-1, vocab), teacher_logits.reshape(-1, vocab))[:, 0]
    return reduce_rows(values, values.shape[0], reduction, rows)


def chunked_divergence_from_hidden(name, student_hidden, lm_head_weight, teacher_logits=None, labels=None, *,
                                   teacher_hidden=None, teacher_lm_head_weight=None, lm_head_bias=None,
                                   temperature=1.0, mask=None, reduction="mean", chunk_size=1024,
                                   checkpoint=None, **kw):
    """Divergence `name` with the student's logits projected chunk by chunk from hidden states.

    student_hidden: (B, L, H); lm_head_weight: (V, H) (optionally lm_head_bias: (V,)).
    Teacher: teacher_logits (B, L, V), or teacher_hidden (B, L, Ht) with teacher_lm_head_weight
    (V, Ht), also projected per chunk. Student logits = student_hidden @ lm_head_weight.T.
    """
    row_fn = row_divergence(name)
    check_temperature(temperature)
    if student_hidden.dim() != 3 or lm_head_weight.dim() != 2 or lm_head_weight.shape[1] != student_hidden.shape[-1]:
        raise ReasonkdError(f"student_hidden (B, L, H) {tuple(student_hidden.shape)} and lm_head_weight "
                            f"(V, H) {tuple(lm_head_weight.shape)} do not fit")
    vocab = lm_head_weight.shape[0]
    b_l = tuple(student_hidden.shape[:2])
    if teacher_logits is not None:
        if tuple(teacher_logits.shape) != b_l + (vocab,):
            raise ReasonkdError(f"teacher_logits {tuple(teacher_logits.shape)} must be (B, L, V) = "
                                f"{b_l + (vocab,)}")
        teacher_src, t_weight = teacher_logits.reshape(-1, vocab), None
    elif teacher_hidden is not None and teacher_lm_head_weight is not None:
        if tuple(teacher_hidden.shape[:2]) != b_l or teacher_lm_head_weight.shape[0] != vocab:
            raise ReasonkdError(f"teacher_hidden {tuple(teacher_hidden.shape)} / teacher_lm_head_weight "
                                f"{tuple(teacher_lm_head_weight.shape)} do not fit (B, L) = {b_l}, V = {vocab}")
        teacher_src, t_weight = teacher_hidden.reshape(-1, teacher_hidden.shape[-1]), teacher_lm_head_weight
    else:
        raise ReasonkdError("give teacher_logits, or teacher_hidden with teacher_lm_head_weight")
    rows, idx = _row_index(student_hidden.shape, labels, mask, student_hidden.device)

    def chunk_fn(ci, s_hidden, weight, bias, t_src, t_w):
        s_logits = _project(s_hidden, weight, bias, ci).float()
        t_logits = (t_src.index_select(0, ci) if t_w is None else _project(t_src, t_w, None, ci)).float()
        s_logp = F.log_softmax(s_logits / temperature, dim=-1)
        t_logp = F.log_softmax(t_logits / temperature, dim=-1)
        return row_fn(s_logp, t_logp, **kw).unsqueeze(-1)

    use_ckpt = _want_ckpt(checkpoint, student_hidden, lm_head_weight, lm_head_bias)
    values = _run_chunks(chunk_fn, idx, chunk_size, use_ckpt, student_hidden.reshape(-1, student_hidden.shape[-1]),
                         lm_head_weight, lm_head_bias, teacher_src, t_weight)[:, 0]
    return reduce_rows(values, values.shape[0], reduction, rows)


def chunked_distillation_loss_terms(student_logits, teacher_logits, labels, temperature=3.0, alpha=0.7,
                                    mask=None, reduction="batchmean", chunk_size=1024, checkpoint=None) -> dict:
    """`distillation_loss_terms` (the article's loss), computed chunk by chunk."""
    check_logits_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    alpha = check_alpha_labels(alpha, labels)
    rows, idx = _row_index(student_logits.shape, labels, mask, student_logits.device)
    vocab = student_logits.shape[-1]
    flat_labels = (labels.reshape(-1).to(student_logits.device) if labels is not None
                   else torch.full((rows.numel(),), -100, dtype=torch.long, device=student_logits.device))

    def chunk_fn(ci, s_flat, t_flat):
        s = s_flat.index_select(0, ci).float()
        t = t_flat.index_select(0, ci).float()
        kl = F.kl_div(F.log_softmax(s / temperature, dim=-1), F.softmax(t / temperature, dim=-1),
                      reduction="none").sum(-1)
        ce = F.cross_entropy(s, flat_labels.index_select(0, ci), ignore_index=-100, reduction="none")
        return torch.stack([kl, ce], dim=-1)

    values = _run_chunks(chunk_fn, idx, chunk_size, _want_ckpt(checkpoint, student_logits, teacher_logits),
                         student_logits.reshape(-1, vocab), teacher_logits.reshape(-1, vocab))
    if values.shape[-1] == 1:  # empty
        values = values.expand(0, 2)
    n_ce = (flat_labels.index_select(0, idx) != -100).sum()
    return combine_kd_terms(values[:, 0], values[:, 1], n_ce, rows, temperature, alpha, reduction)


def chunked_distillation_loss(student_logits, teacher_logits, labels, temperature=3.0, alpha=0.7, mask=None,
                              reduction="batchmean", chunk_size=1024, checkpoint=None) -> torch.Tensor:
    """The article's loss, chunked (scalar); see `distillation_loss_terms` for the maths."""
    return chunked_distillation_loss_terms(student_logits, teacher_logits, labels, temperature, alpha, mask,
                                           reduction, chunk_size, checkpoint)["total"]
