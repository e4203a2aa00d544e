"""Learning from wrong reasoning (S3 negatives): losses that push probability away from the
tokens of a wrong step, or prefer a correct trace over a wrong one.

    loss = unlikelihood_loss(student_logits, labels, negative_mask)        # token level
    chosen, rejected = sequence_logprob(logits_c, labels_c), sequence_logprob(logits_r, labels_r)
    loss = pairwise_preference_loss(chosen, rejected, beta=0.1)            # sequence level (DPO-style)

Pure tensor functions. Shapes: logits (B, L, V) already aligned with labels (B, L) (position t
scores labels[t]; shift before calling if the logits come straight from a causal LM);
labels use -100 for ignored positions. Maths in fp32.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from reasonkd.errors import ReasonkdError

IGNORE_INDEX = -100


def _token_logprobs(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(log p(labels) with 0 at ignored positions, valid mask), both (B, L)."""
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ReasonkdError(f"logits {tuple(logits.shape)} and labels {tuple(labels.shape)} must be "
                            "(B, L, V) and (B, L)")
    valid = labels != IGNORE_INDEX
    safe = labels.masked_fill(~valid, 0)
    logp = torch.log_softmax(logits.float(), dim=-1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    return logp.masked_fill(~valid, 0.0), valid


def unlikelihood_loss(student_logits: torch.Tensor, labels: torch.Tensor, negative_mask: torch.Tensor,
                      eps: float = 1e-6) -> torch.Tensor:
    """Mean of -log(1 - p(labels[t])) over the tokens of a wrong step (Welleck et al. 2019).

    student_logits: (B, L, V); labels: (B, L) the wrong trace's tokens, -100 ignored;
    negative_mask: (B, L) bool, True on the tokens of the wrong step. A token counts when it is
    marked and not ignored; with none, the loss is 0 (still attached to the graph).
    1 - p is computed as -expm1(log p) (exact near p = 1), clamped at `eps` so a certain wrong
    token gives a large finite loss, not inf.
    """
    if negative_mask.shape != labels.shape:
        raise ReasonkdError(f"negative_mask {tuple(negative_mask.shape)} must match labels {tuple(labels.shape)}")
    logp, valid = _token_logprobs(student_logits, labels)
    use = valid & negative_mask.bool()
    per_token = -torch.log((-torch.expm1(logp)).clamp_min(eps))
    return (per_token * use).sum() / use.sum().clamp_min(1)


def sequence_logprob(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed log-probability of the labelled tokens per sequence: (B,) from (B, L, V), (B, L)."""
    logp, _ = _token_logprobs(logits, labels)
    return logp.sum(-1)


def pairwise_preference_loss(chosen_logps: torch.Tensor, rejected_logps: torch.Tensor, beta: float = 0.1,
                             ref_chosen_logps: torch.Tensor | None = None,
                             ref_rejected_logps: torch.Tensor | None = None) -> torch.Tensor:
    """DPO loss: mean of -logsigmoid(beta * ((c - rc) - (r - rr))) over the batch.

    chosen_logps / rejected_logps: (B,) sequence log-probs (sequence_logprob) of the correct and
    the wrong trace under the student; ref_*: the same under a frozen reference model. Without a
    reference (both None) rc = rr = 0, so it is a logistic margin loss on the student's own
    log-probs, -logsigmoid(beta * (c - r)): it rewards any widening of the gap, including lowering
    both, so keep a likelihood term on the chosen trace beside it. Decreasing in the margin.
    """
    if chosen_logps.shape != rejected_logps.shape or chosen_logps.dim() != 1:
        raise ReasonkdError(f"chosen_logps {tuple(chosen_logps.shape)} and rejected_logps "
                            f"{tuple(rejected_logps.shape)} must both be (B,)")
    if (ref_chosen_logps is None) != (ref_rejected_logps is None):
        raise ReasonkdError("pass both ref_chosen_logps and ref_rejected_logps, or neither")
    margin = chosen_logps.float() - rejected_logps.float()
    if ref_chosen_logps is not None:
        margin = margin - (ref_chosen_logps.float() - ref_rejected_logps.float())
    return -F.logsigmoid(beta * margin).mean()
