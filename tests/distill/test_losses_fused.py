"""losses.fused: the same row values as the autograd forms, gradients against float64 references."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reasonkd.distill import losses as L
from reasonkd.distill.losses._common import BUCKET_FLOOR

N, V, K = 6, 40, 5


def _logits(seed=0, dtype=torch.float32, scale=3.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(N, V, generator=g, dtype=torch.float64) * scale).to(dtype)


def _grad(fn, s, weights):
    s = s.detach().clone().requires_grad_(True)
    (fn(s) * weights).sum().backward()
    return s.grad


def _weights():
    return torch.linspace(0.5, 1.5, N, dtype=torch.float64)


# ---- float64 references, written from the definitions ----------------------------------------


def ref_ce(s, y):
    return -F.log_softmax(s.double(), -1).gather(-1, y[:, None]).squeeze(-1)


def ref_forward_kl(s, t, T):
    p = F.softmax(t.double() / T, -1)
    return (p * (p.log() - F.log_softmax(s.double() / T, -1))).sum(-1)


def ref_topk_forward_kl(s, ids, t_lp, T):
    """Buckets [ids..., tail] on both sides; the teacher's re-tempered as in losses.sparse."""
    q = F.softmax(s.double() / T, -1)
    q_b = torch.cat([q.gather(-1, ids), (1 - q.gather(-1, ids).sum(-1, keepdim=True)).clamp_min(BUCKET_FLOOR)], -1)
    lp = t_lp.double()
    tail = 1 - lp.exp().sum(-1, keepdim=True)
    w = torch.cat([lp.exp() ** (1 / T), tail.clamp_min(0) ** (1 / T)], -1)
    p_b = w / w.sum(-1, keepdim=True)
    p_b[:, -1:] = p_b[:, -1:].clamp_min(BUCKET_FLOOR)
    return (p_b * (p_b.log() - q_b.log())).sum(-1)


def _teacher_topk(seed=1):
    t = _logits(seed)
    top = F.log_softmax(t, -1).topk(K, -1)
    return top.indices, top.values


# ---- values: exactly the autograd forms ------------------------------------------------------


def test_fused_values_equal_the_autograd_forms_bit_for_bit():
    s, t = _logits(0), _logits(1)
    y = torch.arange(N) % V
    ids, lp = _teacher_topk()
    assert torch.equal(L.fused_ce(s, y), L.ce(s, y))
    for T in (1.0, 2.0):
        assert torch.equal(L.fused_forward_kl(s, t, T), L.forward_kl(L.logprobs(s, T), L.logprobs(t, T)))
        assert torch.equal(L.fused_topk_forward_kl(s, ids, lp, T), L.forward_kl(*L.topk_logprobs(s, ids, lp, T)))


# ---- gradients: float64 references ------------------------------------------------------------


def test_fused_ce_gradient_matches_float64():
    s, y, w = _logits(0), torch.tensor([0, 3, 7, 39, 12, 5]), _weights()
    got = _grad(lambda x: L.fused_ce(x, y), s, w.float())
    want = _grad(lambda x: ref_ce(x, y), s.double(), w)
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("T", [1.0, 0.7, 2.0])
def test_fused_forward_kl_gradient_matches_float64(T):
    s, t, w = _logits(0), _logits(1), _weights()
    got = _grad(lambda x: L.fused_forward_kl(x, t, T), s, w.float())
    want = _grad(lambda x: ref_forward_kl(x, t, T), s.double(), w)
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5)


@pytest.mark.parametrize("T", [1.0, 0.7, 2.0])
def test_fused_topk_forward_kl_gradient_matches_float64(T):
    s, w = _logits(0), _weights()
    ids, lp = _teacher_topk()
    got = _grad(lambda x: L.fused_topk_forward_kl(x, ids, lp, T), s, w.float())
    want = _grad(lambda x: ref_topk_forward_kl(x, ids, lp, T), s.double(), w)
    torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5)


def test_fused_topk_with_a_floored_student_tail_matches_autograd():
    """Rows whose top-k holds all the student's mass: the tail sits at BUCKET_FLOOR and passes no gradient."""
    s = torch.full((N, V), -60.0)
    ids = torch.stack([torch.randperm(V, generator=torch.Generator().manual_seed(i))[:K] for i in range(N)])
    s.scatter_(-1, ids, torch.linspace(0.0, 2.0, K).expand(N, K).contiguous())
    _, lp = _teacher_topk()
    w = _weights().float()
    got = _grad(lambda x: L.fused_topk_forward_kl(x, ids, lp), s, w)
    want = _grad(lambda x: L.forward_kl(*L.topk_logprobs(x, ids, lp)), s, w)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


def test_fused_bf16_logits_get_a_bf16_gradient_close_to_autograd():
    s, t, w = _logits(0, torch.bfloat16), _logits(1, torch.bfloat16), _weights().float()
    got = _grad(lambda x: L.fused_forward_kl(x, t), s, w)
    want = _grad(lambda x: L.forward_kl(L.logprobs(x), L.logprobs(t)), s, w)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got.float(), want.float(), atol=1e-2, rtol=2e-2)


@pytest.mark.parametrize("chunk", [0, 2, 4])
def test_fused_rows_in_chunks_equal_one_pass_and_the_plain_ce(chunk):
    s, y = _logits(0), torch.arange(N) % V
    ids, lp = _teacher_topk()
    a = s.clone().requires_grad_(True)
    rows = L.fused_ce(a, y, chunk=chunk)
    assert torch.equal(rows, L.fused_ce(s, y))
    rows.sum().backward()
    b = s.clone().requires_grad_(True)
    L.ce(b, y, reduction="sum").backward()
    torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-5)
    assert torch.equal(L.fused_topk_forward_kl(s, ids, lp, chunk=chunk), L.fused_topk_forward_kl(s, ids, lp))


def test_a_run_started_before_fused_losses_existed_resumes_with_its_numerics(tmp_path):
    import yaml

    from reasonkd.config import from_dict, to_dict
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.distill.stages import _check_output_dir
    from reasonkd.errors import ReasonkdError

    recipe = from_dict(DistillRecipe, {"student": "s"})
    assert recipe.fused_loss  # the default for new runs
    saved = to_dict(recipe)
    del saved["fused_loss"]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(saved))
    _check_output_dir(tmp_path, recipe, resume=True)
    assert recipe.fused_loss is False  # the plain autograd losses it ran with
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**saved, "fused_loss": True}))
    with pytest.raises(ReasonkdError, match="differs from the run .* in fused_loss"):
        _check_output_dir(tmp_path, from_dict(DistillRecipe, {"student": "s", "fused_loss": False}), True)
