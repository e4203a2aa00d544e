"""Row divergences and the KD formula against straightforward float64 references."""

import os

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.losses import (
    DIVERGENCES,
    ce,
    divergence,
    forward_kl,
    generalized_jsd,
    kd,
    logprobs,
    reverse_kl,
    skew_kl,
    skew_reverse_kl,
    tvd,
)
from reasonkd.errors import ReasonkdError

N, V = 10, 11
NAMES = sorted(DIVERGENCES)


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(0)
    s = torch.randn(N, V, generator=g) * 2
    t = torch.randn(N, V, generator=g) * 2
    targets = torch.randint(0, V, (N,), generator=g)
    return s, t, targets


def ref_rows(name, s, t, temperature=1.0, beta=0.5, skew=0.1):
    """Per-row divergence (N,), written out in float64."""
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


def rows_of(name, s, t, temperature=1.0, **kw):
    return divergence(name)(logprobs(s, temperature), logprobs(t, temperature), **kw)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_divergence_matches_reference(rows, name, temperature):
    s, t, _ = rows
    for value in (0.0, 0.3, 0.5, 1.0) if kw_for(name, 0) else (None,):
        kw = kw_for(name, value) if value is not None else {}
        got = rows_of(name, s, t, temperature, **kw)
        ref = ref_rows(name, s, t, temperature, **kw)
        assert got.dtype == torch.float32 and got.shape == (N,)
        assert torch.allclose(got.double(), ref, atol=1e-6), (name, kw, got, ref)


@pytest.mark.parametrize("name", NAMES)
def test_nonnegative_and_zero_on_identical(rows, name):
    s, t, _ = rows
    assert (rows_of(name, s, t, 2.0) >= 0).all()
    assert rows_of(name, s, s.clone(), 2.0).abs().max() < 1e-6


def test_gjsd_endpoints_and_symmetry(rows):
    s, t, _ = rows
    sl, tl = logprobs(s), logprobs(t)
    assert torch.allclose(generalized_jsd(sl, tl, beta=0.0), forward_kl(sl, tl), atol=1e-7)
    assert torch.allclose(generalized_jsd(sl, tl, beta=1.0), reverse_kl(sl, tl), atol=1e-7)
    assert torch.allclose(generalized_jsd(sl, tl, beta=0.5), generalized_jsd(tl, sl, beta=0.5), atol=1e-6)
    assert torch.allclose(skew_kl(sl, tl, skew=0.0), forward_kl(sl, tl), atol=1e-7)
    assert torch.allclose(skew_reverse_kl(sl, tl, skew=0.0), reverse_kl(sl, tl), atol=1e-7)
    assert (skew_kl(sl, tl, skew=1.0) == 0).all()
    assert ((0 <= tvd(sl, tl)) & (tvd(sl, tl) <= 1)).all()


def test_gjsd_matches_trl(rows):
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    gkd = pytest.importorskip("trl.experimental.gkd.gkd_trainer")
    s, t, targets = rows
    for beta in (0.0, 0.2, 0.5, 1.0):
        ref = gkd.GKDTrainer.generalized_jsd_loss(s[None], t[None], targets[None], beta=beta, temperature=1.5)
        got = generalized_jsd(logprobs(s, 1.5), logprobs(t, 1.5), beta=beta).mean()
        assert torch.allclose(got, ref, atol=1e-6), (beta, got, ref)


def test_bf16_inputs_are_computed_in_fp32(rows):
    s, t, _ = rows
    got = rows_of("forward_kl", s.bfloat16(), t.bfloat16(), 2.0)
    ref = rows_of("forward_kl", s.bfloat16().float(), t.bfloat16().float(), 2.0)
    assert got.dtype == torch.float32 and torch.allclose(got, ref, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_even_with_minus_inf_logits(rows, name):
    s, t, _ = rows
    t = t.clone()
    t[:, 0] = float("-inf")  # a teacher vocabulary entry masked out
    x = s.clone()
    x[:, 1] = float("-inf")  # and a student one
    x.requires_grad_()
    out = rows_of(name, x, t, 2.0).mean()
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x.grad).all()


def test_unknown_name_and_bad_arguments(rows):
    s, t, _ = rows
    with pytest.raises(ReasonkdError, match="forward_kl.*tvd"):
        divergence("kl_forward")
    with pytest.raises(ReasonkdError, match="temperature"):
        logprobs(s, 0)
    with pytest.raises(ReasonkdError, match="beta"):
        generalized_jsd(logprobs(s), logprobs(t), beta=1.5)
    with pytest.raises(ReasonkdError, match="alpha"):
        kd(torch.tensor(1.0), torch.tensor(1.0), alpha=2.0, temperature=1.0)


@pytest.mark.parametrize("temperature,alpha", [(3.0, 0.7), (1.0, 0.5), (5.0, 1.0), (2.0, 0.0)])
def test_kd_is_the_hinton_formula(rows, temperature, alpha):
    s, t, targets = rows
    kl_ref = F.kl_div(
        F.log_softmax(s.double() / temperature, -1), F.softmax(t.double() / temperature, -1), reduction="batchmean"
    )
    ce_ref = F.cross_entropy(s.double(), targets)
    hand = alpha * temperature**2 * kl_ref + (1 - alpha) * ce_ref
    kl = rows_of("forward_kl", s, t, temperature).mean()
    got = kd(kl, ce(s, targets).mean(), alpha, temperature)
    assert torch.allclose(got.double(), hand, atol=1e-5)
    assert torch.allclose(ce(s, targets).double(), F.cross_entropy(s.double(), targets, reduction="none"), atol=1e-6)
