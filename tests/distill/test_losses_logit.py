"""Dense divergences and the article's loss against straightforward float64 references."""

import os

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.losses import (DIVERGENCES, distillation_loss, distillation_loss_terms, forward_kl,
                                     generalized_jsd, get_divergence, reverse_kl, skew_kl, skew_reverse_kl, tvd)
from reasonkd.errors import ReasonkdError

B, L, V = 2, 6, 11
NAMES = sorted(DIVERGENCES)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(B, L, V, generator=g) * 2
    t = torch.randn(B, L, V, generator=g) * 2
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, :2] = -100
    labels[1, -1] = -100
    return s, t, labels


def ref_rows(name, s, t, temperature=1.0, beta=0.5, skew=0.1):
    """Per-row divergence (B, L), written out in float64."""
    q = torch.softmax(s.double() / temperature, -1)
    p = torch.softmax(t.double() / temperature, -1)

    def kl(a, b):
        return (a * (a.log() - b.log())).sum(-1)

    if name == "forward_kl":
        return kl(p, q)
    if name == "reverse_kl":
        return kl(q, p)
    if name == "generalized_jsd":
        if beta == 0:
            return kl(p, q)
        if beta == 1:
            return kl(q, p)
        m = beta * p + (1 - beta) * q
        return beta * kl(p, m) + (1 - beta) * kl(q, m)
    if name == "skew_kl":
        return kl(p, skew * p + (1 - skew) * q)
    if name == "skew_reverse_kl":
        return kl(q, skew * q + (1 - skew) * p)
    if name == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    raise AssertionError(name)


def kw_for(name, value):
    return {"beta": value} if name == "generalized_jsd" else {"skew": value} if "skew" in name else {}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_divergence_matches_reference(batch, name, temperature):
    s, t, labels = batch
    for value in (0.0, 0.3, 0.5, 1.0) if kw_for(name, 0) else (None,):
        kw = kw_for(name, value) if value is not None else {}
        got = get_divergence(name)(s, t, labels, temperature=temperature, **kw)
        ref = ref_rows(name, s, t, temperature, **kw)[labels != -100].mean()
        assert got.dtype == torch.float32 and got.dim() == 0
        assert torch.allclose(got.double(), ref, atol=1e-6), (name, kw, got, ref)


@pytest.mark.parametrize("name", NAMES)
def test_nonnegative_and_zero_on_identical(batch, name):
    s, t, labels = batch
    fn = get_divergence(name)
    assert fn(s, t, labels, temperature=2.0) >= 0
    assert fn(s, s.clone(), labels, temperature=2.0).abs() < 1e-6


def test_gjsd_endpoints_and_symmetry(batch):
    s, t, labels = batch
    assert torch.allclose(generalized_jsd(s, t, labels, beta=0.0), forward_kl(s, t, labels), atol=1e-7)
    assert torch.allclose(generalized_jsd(s, t, labels, beta=1.0), reverse_kl(s, t, labels), atol=1e-7)
    assert torch.allclose(generalized_jsd(s, t, labels, beta=0.5), generalized_jsd(t, s, labels, beta=0.5),
                          atol=1e-6)
    assert torch.allclose(skew_kl(s, t, labels, skew=0.0), forward_kl(s, t, labels), atol=1e-7)
    assert torch.allclose(skew_reverse_kl(s, t, labels, skew=0.0), reverse_kl(s, t, labels), atol=1e-7)
    assert skew_kl(s, t, labels, skew=1.0) == 0
    assert 0 <= tvd(s, t, labels) <= 1


def test_gjsd_matches_trl(batch):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    gkd = pytest.importorskip("trl.experimental.gkd.gkd_trainer")
    s, t, labels = batch
    for beta in (0.0, 0.2, 0.5, 1.0):
        ref = gkd.GKDTrainer.generalized_jsd_loss(s, t, labels, beta=beta, temperature=1.5)
        got = generalized_jsd(s, t, labels, beta=beta, temperature=1.5)
        assert torch.allclose(got, ref, atol=1e-6), (beta, got, ref)


@pytest.mark.parametrize("name", NAMES)
def test_masked_positions_do_not_matter(batch, name):
    s, t, labels = batch
    fn = get_divergence(name)
    before = fn(s, t, labels, temperature=2.0)
    s2, t2 = s.clone(), t.clone()
    s2[labels == -100] = 100.0 * torch.randn_like(s2[labels == -100])
    t2[labels == -100] = -7.0
    assert torch.equal(fn(s2, t2, labels, temperature=2.0), before)
    # an explicit mask overrides labels
    mask = torch.zeros(B, L, dtype=torch.bool)
    mask[1, 2:4] = True
    got = fn(s, t, labels, temperature=2.0, mask=mask)
    assert torch.allclose(got.double(), ref_rows(name, s, t, 2.0)[mask].mean(), atol=1e-6)


def test_reductions_and_no_labels(batch):
    s, t, labels = batch
    rows = labels != -100
    per = forward_kl(s, t, labels, reduction="none")
    assert per.shape == (B, L) and torch.all(per[~rows] == 0)
    assert torch.allclose(per.sum(), forward_kl(s, t, labels, reduction="sum"))
    assert torch.allclose(forward_kl(s, t, labels, reduction="sum") / rows.sum(), forward_kl(s, t, labels))
    assert torch.allclose(forward_kl(s, t).double(), ref_rows("forward_kl", s, t).mean(), atol=1e-6)
    empty = torch.full_like(labels, -100)
    s_req = s.clone().requires_grad_()
    out = forward_kl(s_req, t, empty)
    out.backward()
    assert out == 0 and torch.all(s_req.grad == 0)


def test_bf16_inputs_are_computed_in_fp32(batch):
    s, t, labels = batch
    got = forward_kl(s.bfloat16(), t.bfloat16(), labels, temperature=2.0)
    ref = forward_kl(s.bfloat16().float(), t.bfloat16().float(), labels, temperature=2.0)
    assert got.dtype == torch.float32 and torch.allclose(got, ref, atol=1e-6)


def test_gradients_finite(batch):
    s, t, labels = batch
    for name in NAMES:
        x = s.clone().requires_grad_()
        get_divergence(name)(x, t, labels, temperature=2.0).backward()
        assert torch.isfinite(x.grad).all(), name


def test_unknown_name_and_bad_arguments(batch):
    s, t, labels = batch
    with pytest.raises(ReasonkdError, match="forward_kl.*tvd"):
        get_divergence("kl_forward")
    with pytest.raises(ReasonkdError, match="temperature"):
        forward_kl(s, t, labels, temperature=0)
    with pytest.raises(ReasonkdError, match="beta"):
        generalized_jsd(s, t, labels, beta=1.5)
    with pytest.raises(ReasonkdError, match="vocab sizes differ"):
        forward_kl(s, t[..., :-1], labels)


@pytest.mark.parametrize("temperature,alpha", [(3.0, 0.7), (1.0, 0.5), (5.0, 1.0), (2.0, 0.0)])
def test_distillation_loss_is_the_article_formula(batch, temperature, alpha):
    s, t, labels = batch
    rows = labels != -100
    kl = F.kl_div(F.log_softmax(s[rows] / temperature, -1), F.softmax(t[rows] / temperature, -1),
                  reduction="batchmean")
    ce = F.cross_entropy(s.reshape(-1, V), labels.reshape(-1))
    hand = alpha * temperature ** 2 * kl + (1 - alpha) * ce
    got = distillation_loss(s, t, labels, temperature=temperature, alpha=alpha)
    assert torch.allclose(got, hand, atol=1e-6)
    terms = distillation_loss_terms(s, t, labels, temperature=temperature, alpha=alpha)
    assert torch.allclose(terms["kl"], kl, atol=1e-6) and torch.allclose(terms["ce"], ce, atol=1e-6)
    assert torch.equal(terms["total"], got)
    # batchmean KL is forward_kl's per-token mean
    assert torch.allclose(terms["kl"], forward_kl(s, t, labels, temperature=temperature), atol=1e-6)


def test_distillation_loss_defaults_mask_and_sum(batch):
    s, t, labels = batch
    assert torch.allclose(distillation_loss(s, t, labels),
                          distillation_loss(s, t, labels, temperature=3.0, alpha=0.7))
    mask = torch.ones(B, L, dtype=torch.bool)  # KL on every row, CE still only on labelled rows
    terms = distillation_loss_terms(s, t, labels, mask=mask)
    assert torch.allclose(terms["kl"], forward_kl(s, t, temperature=3.0), atol=1e-6)
    assert torch.allclose(terms["ce"], F.cross_entropy(s.reshape(-1, V), labels.reshape(-1)), atol=1e-6)
    summed = distillation_loss(s, t, labels, reduction="sum")
    per = distillation_loss(s, t, labels, reduction="none")
    assert per.shape == (B, L) and torch.allclose(per.sum(), summed, atol=1e-5)
    assert torch.allclose(distillation_loss(s, t, None, alpha=1.0), 9.0 * forward_kl(s, t, temperature=3.0))
    with pytest.raises(ReasonkdError, match="labels"):
        distillation_loss(s, t, None, alpha=0.7)


@pytest.mark.parametrize("name", NAMES)
def test_minus_inf_logits_stay_finite(batch, name):
    s, t, labels = batch
    t = t.clone()
    t[..., 0] = float("-inf")  # a teacher vocabulary entry masked out
    x = s.clone()
    x[..., 1] = float("-inf")  # and a student one
    x.requires_grad_()
    out = get_divergence(name)(x, t, labels, temperature=2.0)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()
