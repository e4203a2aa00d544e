"""Logit-level divergences on rows, and the KD formula: pure tensor functions.

Row API. Every divergence takes the student's and the teacher's log-probabilities
of the same N rows and returns one value per row:

    s_logp = logprobs(student_logits, T)          # (N, V) fp32 log_softmax(logits / T)
    t_logp = logprobs(teacher_logits, T)
    forward_kl(s_logp, t_logp)                    # (N,)
    loss = kd(kl.mean(), ce(student_logits, targets).mean(), alpha=0.7, temperature=T)

The same functions serve the top-k (`sparse.topk_logprobs`) and cross-vocabulary
(`cross_vocab.shared_logprobs`) forms, which only change the distributions that
are compared. With p the teacher's and q the student's distribution per row
(TRL / DistiLLM conventions):

    forward_kl       KL(p || q) = sum_v p_v (log p_v - log q_v)
    reverse_kl       KL(q || p)
    generalized_jsd  beta * KL(p || m) + (1 - beta) * KL(q || m),
                     m = beta * p + (1 - beta) * q   (log m by log-sum-exp);
                     beta = 0 -> KL(p || q), beta = 1 -> KL(q || p) exactly
                     (special-cased as in TRL's generalized_jsd_loss)
    skew_kl          KL(p || skew * p + (1 - skew) * q)          (DistiLLM SKL)
    skew_reverse_kl  KL(q || skew * q + (1 - skew) * p)          (DistiLLM SRKL)
    tvd              0.5 * sum_v |p_v - q_v|

None multiplies by T^2: `soft_scaled` does (for `kd`, and for a divergence term with
options.t2). Temperature enters only through `tempered`, the KL sum only through
`kl_sum`, a target token's log-prob only through `target_logprobs`. Terms with p_v = 0 count as 0 (0 log 0 = 0);
log-probs are floored at -1e4 so -inf logits give finite values and gradients.
Tests: tests/distill/test_losses_logit.py (float64 references).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reasonkd.distill.losses._common import check_temperature, check_unit
from reasonkd.errors import ReasonkdError

# Log-probs are clamped at this floor inside the divergences: exp(-1e4) is 0 in
# fp32, so nothing representable changes, but -inf logits (a masked vocabulary
# entry) no longer turn 0 * inf into NaN in the forward or backward pass.
LOG_FLOOR = -1e4


def tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T, T checked > 0: the one place a temperature scales logits (or stored log-probs).

    At T = 1 the logits are returned as they are: x / 1 == x exactly, and skipping the division saves a
    full (N, V) pass and its backward (~6% of an offline KD step at V ~ 150k)."""
    check_temperature(temperature)
    if temperature == 1.0:
        return logits
    return logits / temperature


def logprobs(logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log_softmax(logits / T) in fp32 whatever the input dtype: (N, V) -> (N, V)."""
    return F.log_softmax(tempered(logits.float(), temperature), dim=-1)


def soft_scaled(value: torch.Tensor, temperature: float, weight: float = 1.0) -> torch.Tensor:
    """weight * T^2 * value: the soft-target scale (Hinton et al. 2015) that keeps the gradients of a
    divergence taken at temperature T on the scale of the CE's as T grows. The one place T^2 is applied."""
    check_temperature(temperature)
    return weight * temperature * temperature * value


def target_logprobs(logp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) of each row: log-probs (N, V) (from `logprobs`), token ids (N,) -> (N,)."""
    if logp.dim() != 2 or targets.shape != logp.shape[:1]:
        raise ReasonkdError(f"log-probs {tuple(logp.shape)} and targets {tuple(targets.shape)} must be (N, V) and (N,)")
    return logp.gather(-1, targets.long().unsqueeze(-1)).squeeze(-1)


def kl_sum(a_p: torch.Tensor, a_logp: torch.Tensor, b_logp: torch.Tensor, dim: int | None = -1) -> torch.Tensor:
    """sum_v a_v (log a_v - log b_v) over `dim` (None: over every element): the one KL sum.

    a_p: the probabilities a_v; a_logp / b_logp: their logs and those of b, already floored by the caller
    (so a_v = 0 terms are 0 * finite = 0).
    """
    terms = a_p * (a_logp - b_logp)
    return terms.sum() if dim is None else terms.sum(dim)


def kl_rows(a_logp: torch.Tensor, b_logp: torch.Tensor) -> torch.Tensor:
    """KL(a || b) per row, from log-probs (N, V) -> (N,); a_v = 0 terms are 0.

    Where b_v = 0 < a_v the term is a_v * (log a_v + 1e4): large but finite.
    """
    return kl_sum(a_logp.exp(), a_logp.clamp_min(LOG_FLOOR), b_logp.clamp_min(LOG_FLOOR))


def log_mixture(a_logp: torch.Tensor, b_logp: torch.Tensor, w_a: float) -> torch.Tensor:
    """log(w_a * a + (1 - w_a) * b) computed stably by log-sum-exp, 0 < w_a < 1."""
    return torch.logaddexp(a_logp.clamp_min(LOG_FLOOR) + math.log(w_a), b_logp.clamp_min(LOG_FLOOR) + math.log1p(-w_a))


def forward_kl(s_logp, t_logp):
    """KL(teacher || student) per row (mode-covering): (N, V), (N, V) -> (N,)."""
    return kl_rows(t_logp, s_logp)


def reverse_kl(s_logp, t_logp):
    """KL(student || teacher) per row (mode-seeking)."""
    return kl_rows(s_logp, t_logp)


def generalized_jsd(s_logp, t_logp, beta: float = 0.5):
    """Generalised JSD (GKD, Agarwal et al. 2024; TRL's convention) per row; beta in [0, 1]."""
    beta = check_unit("beta", beta)
    if beta == 0.0:
        return kl_rows(t_logp, s_logp)
    if beta == 1.0:
        return kl_rows(s_logp, t_logp)
    m_logp = log_mixture(t_logp, s_logp, beta)
    return beta * kl_rows(t_logp, m_logp) + (1 - beta) * kl_rows(s_logp, m_logp)


def _skewed_kl(a_logp, b_logp, skew: float, s_logp):
    """KL(a || skew a + (1 - skew) b) per row; skew = 1 is 0 (kept on the student's graph, s_logp)."""
    skew = check_unit("skew", skew)
    if skew == 0.0:
        return kl_rows(a_logp, b_logp)
    if skew == 1.0:
        return 0 * s_logp.sum(-1)
    return kl_rows(a_logp, log_mixture(a_logp, b_logp, skew))


def skew_kl(s_logp, t_logp, skew: float = 0.1):
    """Skew KL (DistiLLM): KL(p || skew p + (1 - skew) q) per row; skew = 0 is forward KL."""
    return _skewed_kl(t_logp, s_logp, skew, s_logp)


def skew_reverse_kl(s_logp, t_logp, skew: float = 0.1):
    """Skew reverse KL (DistiLLM): KL(q || skew q + (1 - skew) p) per row."""
    return _skewed_kl(s_logp, t_logp, skew, s_logp)


def tvd(s_logp, t_logp):
    """Total variation 0.5 * sum_v |p_v - q_v| per row (in [0, 1])."""
    return 0.5 * (t_logp.exp() - s_logp.exp()).abs().sum(-1)


# name -> (s_logp, t_logp, **options) -> (N,): the recipe's divergence loss names
DIVERGENCES = {
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "generalized_jsd": generalized_jsd,
    "skew_kl": skew_kl,
    "skew_reverse_kl": skew_reverse_kl,
    "tvd": tvd,
}


def divergence(name: str):
    """The row divergence registered as `name`; unknown names list the known ones."""
    try:
        return DIVERGENCES[name]
    except KeyError:
        raise ReasonkdError(f"unknown divergence {name!r}; known: {', '.join(sorted(DIVERGENCES))}") from None


def ce(student_logits: torch.Tensor, targets: torch.Tensor, reduction: str = "none") -> torch.Tensor:
    """Token cross-entropy at T = 1: logits (N, V), targets (N,) -> (N,) fp32 per row ("none") or "sum"."""
    return F.cross_entropy(student_logits.float(), targets, reduction=reduction)


def kd(kl: torch.Tensor, ce: torch.Tensor, alpha: float, temperature: float) -> torch.Tensor:
    """Hinton-style KD: alpha * T^2 * KL + (1 - alpha) * CE.

    kl: the divergence at temperature T (already averaged); ce: the hard-label cross-entropy at T = 1.
    T^2 keeps the soft-target gradients on the scale of the CE's as T grows.
    """
    alpha = check_unit("alpha", alpha)
    return soft_scaled(kl, temperature, alpha) + (1 - alpha) * ce
