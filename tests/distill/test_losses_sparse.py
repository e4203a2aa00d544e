"""Top-k (sparse teacher) divergences: K = V equals dense; K < V equals a hand-built bucket reference."""

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.losses import (DIVERGENCES, distillation_loss, get_divergence, sparse_distillation_loss,
                                     sparse_distillation_loss_terms, sparse_divergence)
from reasonkd.errors import ReasonkdError

B, L, V = 2, 5, 13
NAMES = sorted(DIVERGENCES)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(B, L, V, generator=g) * 2
    t = torch.randn(B, L, V, generator=g) * 2
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, 0] = labels[1, 3] = -100
    return s, t, labels


def topk(t, k):
    lp = F.log_softmax(t, -1)
    vals, ids = lp.topk(k, dim=-1)
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
    ids, lp = topk(t.double(), k)
    p_top = lp.exp()
    r = 1 - p_top.sum(-1, keepdim=True)
    w = torch.cat([p_top ** (1 / temperature), r ** (1 / temperature)], -1)
    p = w / w.sum(-1, keepdim=True)
    q_full = torch.softmax(s.double() / temperature, -1)
    q_top = q_full.gather(-1, ids)
    q = torch.cat([q_top, 1 - q_top.sum(-1, keepdim=True)], -1)
    return q, p


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.7])
def test_full_k_equals_dense(batch, name, temperature):
    s, t, labels = batch
    ids, lp = topk(t, V)
    got = sparse_divergence(name, s, ids, lp, labels, temperature=temperature)
    dense = get_divergence(name)(s, t, labels, temperature=temperature)
    assert torch.allclose(got, dense, atol=1e-6), (name, got, dense)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 3.0])
def test_topk_matches_bucket_reference(batch, name, temperature):
    s, t, labels = batch
    k = 4
    ids, lp = topk(t, k)
    got = sparse_divergence(name, s, ids, lp, labels, temperature=temperature)
    q, p = ref_buckets(s, t, k, temperature)
    ref = ref_from_probs(name, q, p)[labels != -100].mean()
    assert torch.allclose(got.double(), ref, atol=1e-6), (name, got, ref)


def test_kwargs_pass_through_and_mask(batch):
    s, t, labels = batch
    ids, lp = topk(t, 5)
    q, p = ref_buckets(s, t, 5, 1.0)
    got = sparse_divergence("generalized_jsd", s, ids, lp, labels, beta=0.9)
    assert torch.allclose(got.double(), ref_from_probs("generalized_jsd", q, p, beta=0.9)[labels != -100].mean(),
                          atol=1e-6)
    s2 = s.clone()
    s2[labels == -100] = 50.0
    assert torch.equal(sparse_divergence("forward_kl", s2, ids, lp, labels),
                       sparse_divergence("forward_kl", s, ids, lp, labels))


def test_sparse_distillation_loss(batch):
    s, t, labels = batch
    ids, lp = topk(t, V)
    assert torch.allclose(sparse_distillation_loss(s, ids, lp, labels), distillation_loss(s, t, labels), atol=1e-5)
    ids, lp = topk(t, 3)
    terms = sparse_distillation_loss_terms(s, ids, lp, labels, temperature=2.0, alpha=0.6)
    q, p = ref_buckets(s, t, 3, 2.0)
    kl = ref_from_probs("forward_kl", q, p)[labels != -100].mean()
    ce = F.cross_entropy(s.reshape(-1, V), labels.reshape(-1))
    assert torch.allclose(terms["kl"].double(), kl, atol=1e-6)
    assert torch.allclose(terms["total"].double(), 0.6 * 4 * kl + 0.4 * ce.double(), atol=1e-5)


def test_gradients_finite_even_when_topk_is_complete(batch):
    s, t, labels = batch
    for k in (V, 2):
        ids, lp = topk(t, k)
        for name in NAMES:
            x = s.clone().requires_grad_()
            sparse_divergence(name, x, ids, lp, labels, temperature=2.0).backward()
            assert torch.isfinite(x.grad).all(), (name, k)


def test_bad_ids_are_caught(batch):
    s, t, labels = batch
    ids, lp = topk(t, 3)
    with pytest.raises(ReasonkdError, match="out of range"):
        sparse_divergence("forward_kl", s, ids + V, lp, labels)
    with pytest.raises(ReasonkdError, match="must match"):
        sparse_divergence("forward_kl", s, ids, lp[..., :2], labels)
