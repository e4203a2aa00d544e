"""Cross-tokenizer logit losses: shared-vocabulary KL with "other" buckets, and ULD."""

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.align import VocabMap
from reasonkd.distill.losses import cross_vocab_kl, forward_kl, uld_loss
from reasonkd.errors import ReasonkdError

B, L, VS, VT = 2, 5, 7, 9


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(5)
    s = torch.randn(B, L, VS, generator=g) * 2
    t = torch.randn(B, L, VT, generator=g) * 2
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[1, 0] = False
    return s, t, mask


def identity_map(v):
    return VocabMap(torch.arange(v), torch.arange(v), v, v)


def test_cross_vocab_kl_reference(batch):
    s, t, mask = batch
    vmap = VocabMap(torch.tensor([0, 2, 5]), torch.tensor([1, 4, 8]), VS, VT)
    for temperature in (1.0, 2.0):
        q = torch.softmax(s.double() / temperature, -1)
        p = torch.softmax(t.double() / temperature, -1)
        q_b = torch.cat([q[..., [0, 2, 5]], 1 - q[..., [0, 2, 5]].sum(-1, keepdim=True)], -1)
        p_b = torch.cat([p[..., [1, 4, 8]], 1 - p[..., [1, 4, 8]].sum(-1, keepdim=True)], -1)
        ref = (p_b * (p_b.log() - q_b.log())).sum(-1)[mask].mean()
        got = cross_vocab_kl(s, t, vmap, mask, temperature)
        assert got >= 0 and torch.allclose(got.double(), ref, atol=1e-6)


def test_cross_vocab_kl_identity_map_is_forward_kl(batch):
    s, _, mask = batch
    t = torch.randn(B, L, VS, generator=torch.Generator().manual_seed(6))
    assert torch.allclose(cross_vocab_kl(s, t, identity_map(VS), mask, 2.0),
                          forward_kl(s, t, mask=mask, temperature=2.0), atol=1e-6)
    assert cross_vocab_kl(s, s.clone(), identity_map(VS), mask).abs() < 1e-6


def test_cross_vocab_kl_mask_grad_and_errors(batch):
    s, t, mask = batch
    vmap = VocabMap(torch.tensor([0, 3]), torch.tensor([2, 7]), VS, VT)
    x = s.clone().requires_grad_()
    out = cross_vocab_kl(x, t, vmap, mask, 1.5)
    out.backward()
    assert torch.isfinite(x.grad).all()
    s2 = s.clone()
    s2[~mask] = 30.0
    assert torch.equal(cross_vocab_kl(s2, t, vmap, mask, 1.5), out.detach())
    with pytest.raises(ReasonkdError, match="vocab"):
        cross_vocab_kl(s, t, VocabMap(torch.tensor([VS]), torch.tensor([0]), VS + 1, VT), mask)
    with pytest.raises(ReasonkdError, match="same"):
        cross_vocab_kl(s, t[:, :-1], vmap, mask)


def test_uld_reference_and_properties(batch):
    s, t, mask = batch
    for temperature in (1.0, 3.0):
        q = torch.softmax(s.double() / temperature, -1).sort(-1, descending=True).values
        p = torch.softmax(t.double() / temperature, -1).sort(-1, descending=True).values
        q = F.pad(q, (0, VT - VS))
        ref = (p - q).abs().sum(-1)[mask].mean()
        got = uld_loss(s, t, mask, temperature)
        assert torch.allclose(got.double(), ref, atol=1e-6)
        assert 0 <= got <= 2
    perm = torch.randperm(VT, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(uld_loss(s, t[..., perm], mask), uld_loss(s, t, mask), atol=1e-6)
    padded = torch.cat([s, torch.full((B, L, 3), -1e4)], -1)  # extra near-zero-probability tokens
    assert uld_loss(s, padded, mask).abs() < 1e-6
    assert uld_loss(t, t.clone(), mask).abs() < 1e-6
    x = s.clone().requires_grad_()
    uld_loss(x, t, mask).backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
