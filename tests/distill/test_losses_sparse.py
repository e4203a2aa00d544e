"""Top-k (sparse teacher) rows: K = V equals the full-vocabulary divergence; K < V equals a float64 bucket
reference with the teacher's exact tail mass."""

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.losses import DIVERGENCES, divergence, logprobs, topk_logprobs
from reasonkd.errors import ReasonkdError

N, V = 9, 13
NAMES = sorted(DIVERGENCES)


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, V, generator=g) * 2, torch.randn(N, V, generator=g) * 2


def topk(t, k):
    vals, ids = F.log_softmax(t, -1).topk(k, dim=-1)
    return ids, vals


def _kl(a, b):
    return torch.where(a > 0, a * (a.log() - b.log()), torch.zeros_like(a)).sum(-1)


def ref_from_probs(name, q, p, beta=0.5, skew=0.1):
    if name == "forward_kl":
        return _kl(p, q)
    if name == "reverse_kl":
        return _kl(q, p)
    if name == "generalized_jsd":
        m = beta * p + (1 - beta) * q
        return beta * _kl(p, m) + (1 - beta) * _kl(q, m)
    if name == "skew_kl":
        return _kl(p, skew * p + (1 - skew) * q)
    if name == "skew_reverse_kl":
        return _kl(q, skew * q + (1 - skew) * p)
    return 0.5 * (p - q).abs().sum(-1)


def ref_buckets(s, t, k, temperature):
    """float64: teacher [top-k probs, exact leftover mass] (re-tempered as one token at T != 1); student
    [its probs at the teacher's ids over the FULL vocabulary, its mass outside them]."""
    ids, lp = topk(t.double(), k)
    p_top = lp.exp()
    r = 1 - p_top.sum(-1, keepdim=True)
    w = torch.cat([p_top ** (1 / temperature), r ** (1 / temperature)], -1)
    p = w / w.sum(-1, keepdim=True)
    q_top = torch.softmax(s.double() / temperature, -1).gather(-1, ids)
    return torch.cat([q_top, 1 - q_top.sum(-1, keepdim=True)], -1), p


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_full_k_equals_full_vocabulary(rows, name, temperature):
    s, t = rows
    ids, lp = topk(t, V)
    got = divergence(name)(*topk_logprobs(s, ids, lp, temperature))
    dense = divergence(name)(logprobs(s, temperature), logprobs(t, temperature))
    assert torch.allclose(got, dense, atol=1e-6), (name, got, dense)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_topk_matches_exact_tail_reference(rows, name, temperature):
    s, t = rows
    ids, lp = topk(t, 4)
    got = divergence(name)(*topk_logprobs(s, ids, lp, temperature))
    ref = ref_from_probs(name, *ref_buckets(s, t, 4, temperature))
    assert torch.allclose(got.double(), ref, atol=1e-6), (name, got, ref)


def test_options_pass_through(rows):
    s, t = rows
    ids, lp = topk(t, 5)
    got = divergence("generalized_jsd")(*topk_logprobs(s, ids, lp), beta=0.9)
    assert torch.allclose(
        got.double(), ref_from_probs("generalized_jsd", *ref_buckets(s, t, 5, 1.0), beta=0.9), atol=1e-6
    )


def test_gradients_finite_even_when_topk_is_complete(rows):
    s, t = rows
    for k in (V, 2):
        ids, lp = topk(t, k)
        for name in NAMES:
            x = s.clone().requires_grad_()
            divergence(name)(*topk_logprobs(x, ids, lp, 2.0)).sum().backward()
            assert torch.isfinite(x.grad).all(), (name, k)


def test_bad_ids_are_caught(rows):
    s, t = rows
    ids, lp = topk(t, 3)
    with pytest.raises(ReasonkdError, match="out of range"):
        topk_logprobs(s, ids + V, lp)
    with pytest.raises(ReasonkdError, match="must match"):
        topk_logprobs(s, ids, lp[..., :2])
