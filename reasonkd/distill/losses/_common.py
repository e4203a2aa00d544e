"""Shared plumbing of the loss functions: constants, argument checks, the one row-chunking helper.

Nothing here is a loss; it keeps the loss modules down to their maths. A *row*
is one token position that carries a loss (the trainer gathers them as (N, V)).
"""

from __future__ import annotations

import torch
from torch.utils.checkpoint import checkpoint

from reasonkd.errors import ReasonkdError

IGNORE_INDEX = -100

# Probability floor for the "other" bucket of sparse / cross-vocabulary
# distributions. Remainders below it are fp32 round-off of "the top-k already
# covers everything" (sum of K fp32 probabilities is only accurate to ~1e-7 *
# entropy), so they are set to exactly this floor on both sides and contribute
# 0 to every divergence. Keeping it > 0 also keeps logs finite.
BUCKET_FLOOR = 1e-6


def check_temperature(temperature: float) -> None:
    if not temperature > 0:
        raise ReasonkdError(f"temperature must be > 0, got {temperature}")


def check_unit(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ReasonkdError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _chunk_values(fn, chunk: int, rows: tuple) -> list[torch.Tensor]:
    """fn of each `chunk`-row slice of `rows` (one call over all rows when chunk <= 0 or N <= chunk); under
    autograd each call runs inside `torch.utils.checkpoint` (non-reentrant)."""
    n = rows[0].shape[0]
    if chunk <= 0 or n <= chunk:
        return [fn(*rows)]
    use_ckpt = torch.is_grad_enabled() and rows[0].requires_grad
    parts = []
    for s in range(0, n, chunk):
        part = [r[s : s + chunk] for r in rows]
        parts.append(checkpoint(fn, *part, use_reentrant=False) if use_ckpt else fn(*part))
    return parts


def chunked_sum(fn, chunk: int, *rows: torch.Tensor) -> torch.Tensor:
    """Sum over row chunks of fn(*chunk_rows) -> a 1-D tensor of partial sums.

    rows: tensors whose first dimension is the N rows (logits (N, V), targets (N,), masks (N,) ...).
    With V ~ 150k, fp32 softmax intermediates of every row at once are the memory peak of logit KD:
    under autograd each chunk runs inside `torch.utils.checkpoint` (non-reentrant), so its fp32
    intermediates are freed after the forward and recomputed chunk by chunk in backward. chunk <= 0,
    or N <= chunk, computes all rows at once. Equals fn(*rows) up to float summation order.
    """
    total = None
    for value in _chunk_values(fn, chunk, rows):
        total = value if total is None else total + value
    return total


def chunked_rows(fn, chunk: int, *rows: torch.Tensor) -> torch.Tensor:
    """fn(*rows) -> (N, ...) per-row values, computed `chunk` rows at a time as `chunked_sum` does, but the
    rows are kept (concatenated) instead of summed."""
    parts = _chunk_values(fn, chunk, rows)
    return parts[0] if len(parts) == 1 else torch.cat(parts)
