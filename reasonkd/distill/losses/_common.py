"""Shared plumbing for the loss functions: token masks, shape checks, reductions.

Nothing here is a loss; it keeps the loss modules down to their maths.
Convention used everywhere: a *token row* is one (batch, position) pair; losses
select the unmasked rows, compute one value per row in fp32 and reduce.
"""

from __future__ import annotations

import torch

from reasonkd.errors import ReasonkdError

IGNORE_INDEX = -100

# Probability floor for the "other" bucket of sparse / cross-vocabulary
# distributions. Remainders below it are fp32 round-off of "the top-k already
# covers everything" (sum of K fp32 probabilities is only accurate to ~1e-7 *
# entropy), so they are set to exactly this floor on both sides and contribute
# 0 to every divergence. Keeping it > 0 also keeps logs finite.
BUCKET_FLOOR = 1e-6


def token_mask(shape: torch.Size | tuple, labels: torch.Tensor | None, mask: torch.Tensor | None,
               device: torch.device) -> torch.Tensor:
    """The (B, L) bool mask of token rows to use.

    `mask` (B, L) bool overrides `labels`; otherwise rows with labels != -100;
    with neither, every row counts.
    """
    b_l = tuple(shape[:2])
    if mask is not None:
        if tuple(mask.shape) != b_l:
            raise ReasonkdError(f"mask has shape {tuple(mask.shape)}, expected (B, L) = {b_l}")
        return mask.to(device=device, dtype=torch.bool)
    if labels is not None:
        if tuple(labels.shape) != b_l:
            raise ReasonkdError(f"labels has shape {tuple(labels.shape)}, expected (B, L) = {b_l}")
        return (labels != IGNORE_INDEX).to(device)
    return torch.ones(b_l, dtype=torch.bool, device=device)


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ReasonkdError(f"temperature must be > 0, got {temperature}")


def check_logits_pair(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> None:
    """Student and teacher logits must both be (B, L, V) with the same shape."""
    if student_logits.dim() != 3:
        raise ReasonkdError(f"student_logits must be (B, L, V), got shape {tuple(student_logits.shape)}")
    if tuple(student_logits.shape) != tuple(teacher_logits.shape):
        hint = ""
        if student_logits.shape[:2] == teacher_logits.shape[:2]:
            hint = (" (vocab sizes differ: same tokenizer with padded embeddings -> "
                    "reasonkd.distill.align.truncate_to_common_vocab; different tokenizers -> "
                    "cross_vocab_kl or uld_loss)")
        raise ReasonkdError(f"student_logits {tuple(student_logits.shape)} and teacher_logits "
                            f"{tuple(teacher_logits.shape)} must have the same shape{hint}")


def reduce_rows(values: torch.Tensor, n_rows: int | torch.Tensor, reduction: str,
                row_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Reduce per-row values (N,) of the selected rows.

    "mean": sum / N (0 when N == 0, still connected to the graph);
    "sum": the sum (for gradient accumulation: divide by a global token count);
    "none": a (B, L) fp32 tensor with each row's value and 0 at masked rows
    (needs `row_mask`).
    """
    if reduction == "mean" or reduction == "batchmean":
        return values.sum() / max(int(n_rows), 1)
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        if row_mask is None:
            raise ReasonkdError("reduction='none' needs the row mask")
        out = values.new_zeros(row_mask.shape)
        return out.masked_scatter(row_mask, values)
    raise ReasonkdError(f"reduction must be one of 'mean', 'batchmean', 'sum', 'none', got {reduction!r}")
