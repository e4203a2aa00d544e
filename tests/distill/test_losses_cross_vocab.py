"""Cross-tokenizer rows: shared-token distributions (conditioned, buckets, top-k), ULD and the GOLD-style
hybrid, each against a float64 reference."""

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.align import VocabMap
from reasonkd.distill.losses import forward_kl, gold, logprobs, shared_logprobs, shared_topk_logprobs, uld
from reasonkd.errors import ReasonkdError

N, VS, VT = 9, 7, 9
S_IDS, T_IDS = [0, 2, 5], [1, 4, 8]


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(5)
    return torch.randn(N, VS, generator=g) * 2, torch.randn(N, VT, generator=g) * 2


@pytest.fixture
def vmap():
    return VocabMap(torch.tensor(S_IDS), torch.tensor(T_IDS), VS, VT)


def identity_map(v):
    return VocabMap(torch.arange(v), torch.arange(v), v, v)


def kl64(p, q):
    return (p * (p.log() - q.log())).sum(-1)


def test_buckets_reference(rows, vmap):
    s, t = rows
    for temperature in (1.0, 2.0):
        q = torch.softmax(s.double() / temperature, -1)
        p = torch.softmax(t.double() / temperature, -1)
        q_b = torch.cat([q[:, S_IDS], 1 - q[:, S_IDS].sum(-1, keepdim=True)], -1)
        p_b = torch.cat([p[:, T_IDS], 1 - p[:, T_IDS].sum(-1, keepdim=True)], -1)
        got = forward_kl(*shared_logprobs(s, t, vmap, temperature, other_bucket=True))
        assert (got >= 0).all() and torch.allclose(got.double(), kl64(p_b, q_b), atol=1e-6)


def test_shared_mode_conditions_on_shared_tokens(rows, vmap):
    s, t = rows
    q = torch.softmax(s.double()[:, S_IDS] / 2.0, -1)
    p = torch.softmax(t.double()[:, T_IDS] / 2.0, -1)
    got = forward_kl(*shared_logprobs(s, t, vmap, 2.0))
    assert torch.allclose(got.double(), kl64(p, q), atol=1e-6)
    only_shared = forward_kl(*shared_logprobs(s, t[:, T_IDS], vmap, 2.0, teacher_is_shared=True))
    assert torch.allclose(only_shared, got, atol=1e-7)


def test_topk_mode_reference(rows, vmap):
    s, t = rows
    t_sh = t[:, T_IDS]
    p = torch.softmax(t_sh.double(), -1)
    top = p.topk(2, -1).indices
    s_ids = torch.tensor(S_IDS)[top]
    q_top = torch.softmax(s.double(), -1).gather(-1, s_ids)
    p_top = p.gather(-1, top)
    q_b = torch.cat([q_top, 1 - q_top.sum(-1, keepdim=True)], -1)
    p_b = torch.cat([p_top, 1 - p_top.sum(-1, keepdim=True)], -1)
    got = forward_kl(*shared_topk_logprobs(s, t_sh, vmap, k=2))
    assert torch.allclose(got.double(), kl64(p_b, q_b), atol=1e-6)


def test_identity_map_is_forward_kl(rows):
    s, _ = rows
    t = torch.randn(N, VS, generator=torch.Generator().manual_seed(6))
    dense = forward_kl(logprobs(s, 2.0), logprobs(t, 2.0))
    assert torch.allclose(
        forward_kl(*shared_logprobs(s, t, identity_map(VS), 2.0, other_bucket=True)), dense, atol=1e-6
    )
    assert forward_kl(*shared_logprobs(s, s.clone(), identity_map(VS), other_bucket=True)).abs().max() < 1e-6


def test_grad_and_errors(rows, vmap):
    s, t = rows
    x = s.clone().requires_grad_()
    forward_kl(*shared_logprobs(x, t, vmap, 1.5, other_bucket=True)).sum().backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ReasonkdError, match="vocab"):
        shared_logprobs(s, t, VocabMap(torch.tensor([VS]), torch.tensor([0]), VS + 1, VT))
    with pytest.raises(ReasonkdError, match="pair up"):
        shared_logprobs(s, t[:-1], vmap)


def test_uld_reference_and_properties(rows):
    s, t = rows
    for temperature in (1.0, 3.0):
        q = torch.softmax(s.double() / temperature, -1).sort(-1, descending=True).values
        p = torch.softmax(t.double() / temperature, -1).sort(-1, descending=True).values
        ref = (p - F.pad(q, (0, VT - VS))).abs().sum(-1)
        got = uld(s, t, temperature)
        assert torch.allclose(got.double(), ref, atol=1e-6)
        assert ((0 <= got) & (got <= 2)).all()
    perm = torch.randperm(VT, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(uld(s, t[:, perm]), uld(s, t), atol=1e-6)
    padded = torch.cat([s, torch.full((N, 3), -1e4)], -1)  # extra near-zero-probability tokens
    assert uld(s, padded).abs().max() < 1e-6
    x = s.clone().requires_grad_()
    uld(x, t).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gold_hybrid_reference(rows, vmap):
    s, t = rows
    for temperature, w in ((1.0, 1.0), (2.0, 0.5)):
        q = torch.softmax(s.double() / temperature, -1)
        p = torch.softmax(t.double() / temperature, -1)
        q_b = torch.cat([q[:, S_IDS], 1 - q[:, S_IDS].sum(-1, keepdim=True)], -1)
        p_b = torch.cat([p[:, T_IDS], 1 - p[:, T_IDS].sum(-1, keepdim=True)], -1)
        q_rest = q[:, [i for i in range(VS) if i not in S_IDS]].sort(-1, descending=True).values
        p_rest = p[:, [i for i in range(VT) if i not in T_IDS]].sort(-1, descending=True).values
        l1 = (p_rest - F.pad(q_rest, (0, p_rest.shape[-1] - q_rest.shape[-1]))).abs().sum(-1)
        got = gold(s, t, vmap, temperature, uld_weight=w)
        assert torch.allclose(got.double(), kl64(p_b, q_b) + w * l1, atol=1e-6)
    assert gold(s, s.clone(), identity_map(VS)).abs().max() < 1e-6


def test_topk_exact_tail_reference_and_full_k(rows, vmap):
    s, t = rows
    p = torch.softmax(t.double() / 2.0, -1)
    p_sh = p[:, T_IDS]  # full-softmax probabilities, not renormalised
    top = p_sh.topk(2, -1).indices
    q = torch.softmax(s.double() / 2.0, -1)
    q_top, p_top = q.gather(-1, torch.tensor(S_IDS)[top]), p_sh.gather(-1, top)
    q_b = torch.cat([q_top, 1 - q_top.sum(-1, keepdim=True)], -1)
    p_b = torch.cat([p_top, 1 - p_top.sum(-1, keepdim=True)], -1)  # the teacher's exact leftover mass
    got = forward_kl(*shared_topk_logprobs(s, t, vmap, k=2, temperature=2.0, exact_tail=True))
    assert torch.allclose(got.double(), kl64(p_b, q_b), atol=1e-6)
    # k = V over an identity map: exactly the full-vocabulary KL
    t_same = torch.randn(N, VS, generator=torch.Generator().manual_seed(7))
    full = forward_kl(*shared_topk_logprobs(s, t_same, identity_map(VS), k=VS, temperature=1.5, exact_tail=True))
    assert torch.allclose(full, forward_kl(logprobs(s, 1.5), logprobs(t_same, 1.5)), atol=1e-6)
