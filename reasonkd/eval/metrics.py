"""Evaluation statistics: bootstrap intervals, paired model comparison, pass@k, percentiles.

    from reasonkd.eval.metrics import bootstrap_ci, paired_diff_ci, pass_at_k
    bootstrap_ci([1, 0, 1, 1])                 # {'mean': 0.75, 'lo': ..., 'hi': ..., 'n': 4}
    paired_diff_ci(after_correct, before_correct)   # accuracy(after) - accuracy(before), same items
    pass_at_k(n=10, c=3, k=1)                  # 0.3 (unbiased estimator of Chen et al., 2021)
    mcnemar_exact(a_correct, b_correct)        # exact two-sided McNemar p on the same items

All resampling is seeded, so the same verdicts always give the same interval.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def bootstrap_ci(values: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> dict:
    """Mean of `values` (0/1 verdicts or per-item scores) with a percentile bootstrap interval."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        return {"mean": float("nan"), "lo": float("nan"), "hi": float("nan"), "n": 0}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return {"mean": float(x.mean()), "lo": float(lo), "hi": float(hi), "n": int(x.size)}


def paired_diff_ci(
    a_correct: Sequence[float], b_correct: Sequence[float], n_boot: int = 2000, alpha: float = 0.05, seed: int = 0
) -> dict:
    """Accuracy(a) - accuracy(b) on the SAME items, with a paired bootstrap interval.

    Items are resampled together for both models, so the item-difficulty
    variance cancels and the interval is much tighter than two separate ones.
    `p_value` is the two-sided bootstrap p-value for "no difference".
    """
    a, b = np.asarray(a_correct, dtype=float), np.asarray(b_correct, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired_diff_ci needs verdicts on the same items: got {a.size} and {b.size}")
    if a.size == 0:
        return {"diff": float("nan"), "lo": float("nan"), "hi": float("nan"), "p_value": float("nan"), "n": 0}
    d = a - b
    rng = np.random.default_rng(seed)
    diffs = d[rng.integers(0, d.size, size=(n_boot, d.size))].mean(axis=1)
    lo, hi = np.quantile(diffs, [alpha / 2, 1 - alpha / 2])
    p = 2 * min((diffs <= 0).mean(), (diffs >= 0).mean()) if d.any() else 1.0
    return {
        "diff": float(d.mean()),
        "lo": float(lo),
        "hi": float(hi),
        "p_value": float(min(p, 1.0)),
        "n": int(d.size),
        "a_only": int(((a > 0) & (b == 0)).sum()),
        "b_only": int(((b > 0) & (a == 0)).sum()),
    }


def mcnemar_exact(a_correct: Sequence[float], b_correct: Sequence[float]) -> dict:
    """Exact two-sided McNemar test of "a and b are equally accurate" on the SAME items.

    Only the discordant items count: `a_only` (a right, b wrong) and `b_only`. Under the null each is
    Binomial(a_only + b_only, 1/2); p = min(1, 2 * P(X <= min(a_only, b_only))). Written out with exact
    integer binomials (a few lines) rather than pulling in scipy / statsmodels for it.
    """
    a, b = np.asarray(a_correct, dtype=float) > 0, np.asarray(b_correct, dtype=float) > 0
    if a.shape != b.shape:
        raise ValueError(f"mcnemar_exact needs verdicts on the same items: got {a.size} and {b.size}")
    a_only, b_only = int((a & ~b).sum()), int((b & ~a).sum())
    n = a_only + b_only
    term, total = 1, 0  # C(n, i) for i = 0..min, built up exactly in integers
    for i in range(min(a_only, b_only) + 1):
        total += term
        term = term * (n - i) // (i + 1)
    tail = total / 2**n if n else 1.0
    return {"a_only": a_only, "b_only": b_only, "discordant": n, "p_value": min(1.0, 2 * tail), "n": int(a.size)}


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def percentiles(values: Sequence[float], qs: Sequence[float] = (50, 95)) -> dict:
    """{'p50': ..., 'p95': ...} of values (nan when empty)."""
    x = np.asarray(values, dtype=float)
    return {f"p{q:g}": (float(np.percentile(x, q)) if x.size else float("nan")) for q in qs}
