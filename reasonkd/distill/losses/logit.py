"""Dense logit-level divergences and the article's distillation loss.

Shapes: `student_logits`, `teacher_logits`: (B, L, V), already aligned so that
position i of both predicts token i+1 (the caller shifts). `labels`: (B, L)
long, -100 = ignore. `mask`: (B, L) bool, overrides `labels` when given.
Maths is done in fp32 whatever the input dtype (bf16 is fine).

With p = softmax(teacher_logits / T) and q = softmax(student_logits / T) per
token row, the divergences are (TRL / DistiLLM conventions):

    forward_kl       KL(p || q) = sum_v p_v (log p_v - log q_v)
    reverse_kl       KL(q || p)
    generalized_jsd  beta * KL(p || m) + (1 - beta) * KL(q || m),
                     m = beta * p + (1 - beta) * q   (log m by log-sum-exp);
                     beta = 0 -> KL(p || q), beta = 1 -> KL(q || p) exactly
                     (special-cased as in TRL's generalized_jsd_loss)
    skew_kl          KL(p || skew * p + (1 - skew) * q)          (DistiLLM SKL)
    skew_reverse_kl  KL(q || skew * q + (1 - skew) * p)          (DistiLLM SRKL)
    tvd              0.5 * sum_v |p_v - q_v|

Each returns the per-token mean over unmasked rows (reduction="mean"), or the
sum ("sum", for gradient accumulation over a global token count), or a (B, L)
map with 0 at masked rows ("none"). They do NOT multiply by T^2; the article's
`distillation_loss` does. Terms with p_v = 0 count as 0 (0 log 0 = 0);
log-probs are floored at -1e4 so -inf logits give finite values and gradients.

Usage:
    from reasonkd.distill.losses import get_divergence
    loss = get_divergence("generalized_jsd")(s, t, labels, temperature=2.0, beta=0.5)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from reasonkd.distill.losses._common import (check_logits_pair, check_temperature, reduce_rows,
                                             token_mask)
from reasonkd.errors import ReasonkdError

# ---- per-row maths on log-probabilities: (N, V) fp32 -> (N,) ----------------


# Log-probs are clamped at this floor inside the divergences: exp(-1e4) is 0 in
# fp32, so nothing representable changes, but -inf logits (a masked vocabulary
# entry) no longer turn 0 * inf into NaN in the forward or backward pass.
LOG_FLOOR = -1e4


def kl_rows(a_logp: torch.Tensor, b_logp: torch.Tensor) -> torch.Tensor:
    """KL(a || b) per row, from log-probs (N, V) -> (N,); a_v = 0 terms are 0.

    Where b_v = 0 < a_v the term is a_v * (log a_v + 1e4): large but finite.
    """
    return (a_logp.exp() * (a_logp.clamp_min(LOG_FLOOR) - b_logp.clamp_min(LOG_FLOOR))).sum(-1)


def log_mixture(a_logp: torch.Tensor, b_logp: torch.Tensor, w_a: float) -> torch.Tensor:
    """log(w_a * a + (1 - w_a) * b) computed stably by log-sum-exp, 0 < w_a < 1."""
    return torch.logaddexp(a_logp.clamp_min(LOG_FLOOR) + math.log(w_a), b_logp.clamp_min(LOG_FLOOR) + math.log1p(-w_a))


def _check_unit(name: str, value: float) -> float:
    if not 0.0 <= float(value) <= 1.0:
        raise ReasonkdError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def forward_kl_rows(s_logp, t_logp):
    return kl_rows(t_logp, s_logp)


def reverse_kl_rows(s_logp, t_logp):
    return kl_rows(s_logp, t_logp)


def generalized_jsd_rows(s_logp, t_logp, beta: float = 0.5):
    beta = _check_unit("beta", beta)
    if beta == 0.0:
        return kl_rows(t_logp, s_logp)
    if beta == 1.0:
        return kl_rows(s_logp, t_logp)
    m_logp = log_mixture(t_logp, s_logp, beta)
    return beta * kl_rows(t_logp, m_logp) + (1 - beta) * kl_rows(s_logp, m_logp)


def skew_kl_rows(s_logp, t_logp, skew: float = 0.1):
    skew = _check_unit("skew", skew)
    if skew == 0.0:
        return kl_rows(t_logp, s_logp)
    if skew == 1.0:
        return 0 * s_logp.sum(-1)
    return kl_rows(t_logp, log_mixture(t_logp, s_logp, skew))


def skew_reverse_kl_rows(s_logp, t_logp, skew: float = 0.1):
    skew = _check_unit("skew", skew)
    if skew == 0.0:
        return kl_rows(s_logp, t_logp)
    if skew == 1.0:
        return 0 * s_logp.sum(-1)
    return kl_rows(s_logp, log_mixture(s_logp, t_logp, skew))


def tvd_rows(s_logp, t_logp):
    return 0.5 * (t_logp.exp() - s_logp.exp()).abs().sum(-1)


# name -> per-row function (s_logp, t_logp, **kw) -> (N,); shared by the dense,
# sparse (top-k) and chunked forms so all three compute the same maths.
ROW_DIVERGENCES = {
    "forward_kl": forward_kl_rows,
    "reverse_kl": reverse_kl_rows,
    "generalized_jsd": generalized_jsd_rows,
    "skew_kl": skew_kl_rows,
    "skew_reverse_kl": skew_reverse_kl_rows,
    "tvd": tvd_rows,
}


def row_divergence(name: str):
    """The per-row function for `name`; unknown names list the known ones."""
    try:
        return ROW_DIVERGENCES[name]
    except KeyError:
        raise ReasonkdError(f"unknown divergence {name!r}; known: {', '.join(sorted(ROW_DIVERGENCES))}")\
            from None


# ---- dense wrappers ---------------------------------------------------------


def _dense(row_fn, student_logits, teacher_logits, labels, temperature, mask, reduction, **kw):
    check_logits_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    rows = token_mask(student_logits.shape, labels, mask, student_logits.device)
    # Select rows before the fp32 cast so masked rows never get an fp32 copy.
    s_logp = F.log_softmax(student_logits[rows].float() / temperature, dim=-1)
    t_logp = F.log_softmax(teacher_logits[rows].float() / temperature, dim=-1)
    values = row_fn(s_logp, t_logp, **kw)
    return reduce_rows(values, values.shape[0], reduction, rows)


def forward_kl(student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None,
               reduction="mean"):
    """KL(p_teacher || q_student) at temperature T, per-token mean over unmasked rows.

    student_logits, teacher_logits: (B, L, V); labels: (B, L) or None; mask: (B, L) bool or None.
    """
    return _dense(forward_kl_rows, student_logits, teacher_logits, labels, temperature, mask, reduction)


def reverse_kl(student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None,
               reduction="mean"):
    """KL(q_student || p_teacher) at temperature T (mode-seeking), per-token mean."""
    return _dense(reverse_kl_rows, student_logits, teacher_logits, labels, temperature, mask, reduction)


def generalized_jsd(student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None,
                    reduction="mean", beta=0.5):
    """Generalised JSD (GKD, Agarwal et al. 2024; TRL's convention), per-token mean.

    beta * KL(p || m) + (1 - beta) * KL(q || m) with m = beta p + (1 - beta) q;
    beta = 0 is forward KL(p || q), beta = 1 reverse KL(q || p).
    """
    return _dense(generalized_jsd_rows, student_logits, teacher_logits, labels, temperature, mask,
                  reduction, beta=beta)


def skew_kl(student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None,
            reduction="mean", skew=0.1):
    """Skew KL (DistiLLM): KL(p || skew p + (1 - skew) q), per-token mean. skew=0 is forward KL."""
    return _dense(skew_kl_rows, student_logits, teacher_logits, labels, temperature, mask, reduction,
                  skew=skew)


def skew_reverse_kl(student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None,
                    reduction="mean", skew=0.1):
    """Skew reverse KL (DistiLLM): KL(q || skew q + (1 - skew) p), per-token mean."""
    return _dense(skew_reverse_kl_rows, student_logits, teacher_logits, labels, temperature, mask,
                  reduction, skew=skew)


def tvd(student_logits, teacher_logits, labels=None, *, temperature=1.0, mask=None, reduction="mean"):
    """Total variation 0.5 * sum_v |p_v - q_v| at temperature T, per-token mean (in [0, 1])."""
    return _dense(tvd_rows, student_logits, teacher_logits, labels, temperature, mask, reduction)


DIVERGENCES = {
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "generalized_jsd": generalized_jsd,
    "skew_kl": skew_kl,
    "skew_reverse_kl": skew_reverse_kl,
    "tvd": tvd,
}


def get_divergence(name: str):
    """The dense divergence function registered as `name` (see DIVERGENCES)."""
    try:
        return DIVERGENCES[name]
    except KeyError:
        raise ReasonkdError(f"unknown divergence {name!r}; known: {', '.join(sorted(DIVERGENCES))}")\
            from None


# ---- the article's loss -----------------------------------------------------


def combine_kd_terms(kl_rows_: torch.Tensor, ce_rows: torch.Tensor, n_ce: torch.Tensor, rows: torch.Tensor,
                     temperature: float, alpha: float, reduction: str) -> dict:
    """alpha * T^2 * KL + (1 - alpha) * CE from per-row KL and CE values over the selected rows.

    batchmean: KL summed / number of rows, CE summed / number of labelled rows.
    """
    if reduction in ("batchmean", "mean"):
        kl = kl_rows_.sum() / max(kl_rows_.shape[0], 1)
        ce = ce_rows.sum() / n_ce.clamp_min(1)
    elif reduction in ("sum", "none"):
        kl = reduce_rows(kl_rows_, kl_rows_.shape[0], reduction, rows)
        ce = reduce_rows(ce_rows, kl_rows_.shape[0], reduction, rows)
    else:
        raise ReasonkdError(f"reduction must be 'batchmean', 'sum' or 'none', got {reduction!r}")
    total = alpha * temperature ** 2 * kl + (1 - alpha) * ce
    return {"kl": kl, "ce": ce, "total": total}


def check_alpha_labels(alpha: float, labels) -> float:
    alpha = _check_unit("alpha", alpha)
    if labels is None and alpha < 1.0:
        raise ReasonkdError("distillation loss needs labels for its CE term (or alpha = 1.0 for pure KD)")
    return alpha


def ce_rows_of(student_rows: torch.Tensor, labels, rows: torch.Tensor):
    """Per-row CE (0 where the label is -100) of the selected student rows, and the labelled count."""
    if labels is None:
        zero = student_rows.new_zeros(student_rows.shape[0], dtype=torch.float32)
        return zero, torch.zeros((), dtype=torch.long, device=student_rows.device)
    row_labels = labels.to(student_rows.device)[rows]
    ce = F.cross_entropy(student_rows.float(), row_labels, ignore_index=-100, reduction="none")
    return ce, (row_labels != -100).sum()


def distillation_loss_terms(student_logits, teacher_logits, labels, temperature=3.0, alpha=0.7, mask=None,
                            reduction="batchmean") -> dict:
    """The article's loss and its parts: dict(kl=..., ce=..., total=...).

        total = alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)

    Masking: the KL rows are the unmasked token rows (`mask` if given, else
    labels != -100); rows of masked tokens are dropped before
    `F.kl_div(log_softmax(s/T), softmax(t/T), reduction="batchmean")`, so
    batchmean divides the summed KL by the number of unmasked tokens. CE is the
    plain (T = 1) token cross-entropy averaged over the rows that are unmasked
    AND have a label != -100. `kl` and `ce` are returned unscaled (no alpha,
    no T^2). reduction: "batchmean" (default), "sum" (sums, for dividing by a
    global token count) or "none" ((B, L) maps, 0 at masked rows).
    labels may be None only with alpha = 1.0.
    """
    check_logits_pair(student_logits, teacher_logits)
    check_temperature(temperature)
    alpha = check_alpha_labels(alpha, labels)
    rows = token_mask(student_logits.shape, labels, mask, student_logits.device)
    s_rows = student_logits[rows].float()
    t_rows = teacher_logits[rows].float()
    kl = F.kl_div(F.log_softmax(s_rows / temperature, dim=-1), F.softmax(t_rows / temperature, dim=-1),
                  reduction="none").sum(-1)
    ce, n_ce = ce_rows_of(s_rows, labels, rows)
    return combine_kd_terms(kl, ce, n_ce, rows, temperature, alpha, reduction)


def distillation_loss(student_logits, teacher_logits, labels, temperature=3.0, alpha=0.7, mask=None,
                      reduction="batchmean") -> torch.Tensor:
    """The article's KD loss (S2.3); see `distillation_loss_terms` for the maths and masking."""
    return distillation_loss_terms(student_logits, teacher_logits, labels, temperature, alpha, mask,
                                   reduction)["total"]
