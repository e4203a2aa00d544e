"""Hidden-state and attention losses, projector, layer and head maps."""

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill.losses import FeatureProjector, attention_loss, head_map, hidden_state_loss, layer_map
from reasonkd.errors import ReasonkdError

B, L = 2, 6


def hidden(width, seed):
    return torch.randn(B, L, width, generator=torch.Generator().manual_seed(seed))


def test_hidden_state_loss_reference_and_zero():
    s, t = hidden(8, 0), hidden(8, 1)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, :2] = False
    assert torch.allclose(hidden_state_loss(s, t, mask=mask), F.mse_loss(s[mask], t[mask]), atol=1e-6)
    cos = (1 - F.cosine_similarity(s[mask].double(), t[mask].double(), dim=-1)).mean()
    assert torch.allclose(hidden_state_loss(s, t, mask=mask, kind="cosine").double(), cos, atol=1e-6)
    for kind in ("mse", "cosine"):
        assert hidden_state_loss(s, s.clone(), kind=kind).abs() < 1e-6
        assert hidden_state_loss(s, s.clone(), kind=kind, normalize=True).abs() < 1e-6
    s2 = s.clone()
    s2[~mask] = 99.0
    assert torch.equal(hidden_state_loss(s2, t, mask=mask), hidden_state_loss(s, t, mask=mask))


def test_hidden_state_loss_with_projector():
    s, t = hidden(8, 0), hidden(12, 1)
    proj = FeatureProjector(8, 12)
    ref = F.mse_loss(proj(s), t)
    assert torch.allclose(hidden_state_loss(s, t, projector=proj), ref, atol=1e-6)
    hidden_state_loss(s.bfloat16(), t, projector=proj).backward()
    assert proj.projs[0].weight.grad is not None
    with pytest.raises(ReasonkdError, match="FeatureProjector"):
        hidden_state_loss(s, t)
    with pytest.raises(ReasonkdError, match="kind"):
        hidden_state_loss(s, s, kind="l1")


def test_feature_projector_identity_init_and_per_layer():
    x = hidden(8, 2)
    assert torch.allclose(FeatureProjector(8, 8)(x), x)
    proj = FeatureProjector(8, 16, n_layers=3)
    assert len(proj.projs) == 3 and proj(x, layer=2).shape == (B, L, 16)
    t = hidden(16, 3)
    assert torch.allclose(hidden_state_loss(x, t, projector=proj.at(2)), F.mse_loss(proj(x, layer=2), t))
    assert not torch.allclose(proj(x, layer=0), proj(x, layer=1))
    with pytest.raises(ReasonkdError, match="layer"):
        proj(x)


def test_layer_map():
    assert layer_map(2, 4) == [(0, 1), (1, 3)]
    assert layer_map(4, 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert layer_map(3, 24) == [(0, 7), (1, 15), (2, 23)]
    assert layer_map(28, 61)[-1] == (27, 60)  # last maps to last
    js = [j for _, j in layer_map(28, 61)]
    assert js == sorted(js) and len(set(js)) == 28
    assert layer_map(4, 2) == [(0, 0), (1, 0), (2, 1), (3, 1)]
    assert layer_map(2, 4, [(0, 0), (1, 3)]) == [(0, 0), (1, 3)]
    assert layer_map(2, 4, [2, 3]) == [(0, 2), (1, 3)]
    with pytest.raises(ReasonkdError, match="out of range"):
        layer_map(2, 4, [(0, 4)])
    with pytest.raises(ReasonkdError, match="uniform"):
        layer_map(2, 4, "skip")


def test_head_map_shapes_including_gqa():
    assert head_map(4, 8) == [[0, 1], [2, 3], [4, 5], [6, 7]]
    assert head_map(8, 4) == [[0], [0], [1], [1], [2], [2], [3], [3]]
    assert head_map(4, 4) == [[0], [1], [2], [3]]
    m = head_map(4, 6)  # not divisible: contiguous groups of 1 or 2 covering every teacher head once
    assert sorted(j for g in m for j in g) == list(range(6)) and all(g for g in m)
    # Qwen2.5-0.5B student (14 query heads, 2 kv) vs a 12-head / 2-kv teacher: map inside kv groups
    m = head_map(14, 12, n_student_kv_heads=2, n_teacher_kv_heads=2)
    assert len(m) == 14
    assert all(j < 6 for g in m[:7] for j in g) and all(j >= 6 for g in m[7:] for j in g)
    # 4 student heads / 2 kv vs 32 teacher heads / 8 kv: kv counts differ -> proportional groups of 8
    assert head_map(4, 32, 2, 8) == [list(range(k * 8, k * 8 + 8)) for k in range(4)]


def attn(n_heads, seed, causal=True):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, n_heads, L, L, generator=g)
    if causal:
        scores = scores.masked_fill(torch.triu(torch.ones(L, L, dtype=torch.bool), 1), float("-inf"))
    return scores.softmax(-1)


def ref_attention(sa, ta, groups, rows):
    total, count = 0.0, 0
    for h, group in enumerate(groups):
        if not group:
            continue
        p = ta[:, group].double().mean(1)[rows]
        q = sa[:, h].double()[rows]
        terms = torch.where(p > 0, p * (p.log() - q.log()), torch.zeros_like(p))
        total += terms.sum()
        count += 1
    return total / (rows.sum() * count)


def test_attention_loss_reference_zero_and_selective():
    sa, ta = attn(4, 0), attn(8, 1)
    rows = torch.ones(B, L, dtype=torch.bool)
    rows[1, -2:] = False
    got = attention_loss(sa, ta, mask=rows)
    assert torch.isfinite(got) and torch.allclose(got.double(), ref_attention(sa, ta, head_map(4, 8), rows), atol=1e-6)
    assert attention_loss(ta, ta.clone()).abs() < 1e-6
    # student matching the averaged teacher groups exactly -> 0
    avg = torch.stack([ta[:, g].mean(1) for g in head_map(4, 8)], 1)
    assert attention_loss(avg, ta).abs() < 1e-6
    # selective: only teacher heads 2 and 3 -> only student head 1 is distilled
    sel = attention_loss(sa, ta, heads=[2, 3])
    groups = [[], [2, 3], [], []]
    assert torch.allclose(sel.double(), ref_attention(sa, ta, groups, torch.ones(B, L, dtype=torch.bool)), atol=1e-6)
    sa2 = sa.clone()
    sa2[:, 0] = attn(1, 7)[:, 0]  # changing an undistilled head does not matter
    assert torch.equal(attention_loss(sa2, ta, heads=[2, 3]), sel)


def test_attention_loss_mask_grad_and_errors():
    sa, ta = attn(8, 2), attn(4, 3)  # fewer teacher heads: repeated
    rows = torch.zeros(B, L, dtype=torch.bool)
    rows[0, 1:4] = True
    logits = torch.randn(B, 8, L, L, requires_grad=True)
    out = attention_loss(logits.softmax(-1), ta, mask=rows)
    out.backward()
    assert torch.isfinite(logits.grad).all()
    sa2 = sa.clone()
    sa2[1] = attn(8, 9)[1]
    assert torch.equal(attention_loss(sa2, ta, mask=rows), attention_loss(sa, ta, mask=rows))
    with pytest.raises(ReasonkdError, match="same B and L"):
        attention_loss(sa[..., :-1, :-1], ta)
    with pytest.raises(ReasonkdError, match="entries"):
        attention_loss(sa, ta, head_map=[[0]])
