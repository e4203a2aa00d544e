"""Chunked divergences equal the unchunked ones (values and gradients)."""

import pytest
import torch

from reasonkd.distill.losses import (DIVERGENCES, chunked_distillation_loss, chunked_distillation_loss_terms,
                                     chunked_divergence, chunked_divergence_from_hidden, distillation_loss,
                                     distillation_loss_terms, get_divergence)

B, L, V, H = 2, 7, 50, 16
NAMES = sorted(DIVERGENCES)


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(2)
    s = torch.randn(B, L, V, generator=g) * 2
    t = torch.randn(B, L, V, generator=g) * 2
    labels = torch.randint(0, V, (B, L), generator=g)
    labels[0, :3] = -100
    return s, t, labels


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk_size", [1, 4, 1000])
def test_chunked_equals_dense(batch, name, chunk_size):
    s, t, labels = batch
    got = chunked_divergence(name, s, t, labels, temperature=2.0, chunk_size=chunk_size)
    assert torch.allclose(got, get_divergence(name)(s, t, labels, temperature=2.0), atol=1e-6)


def test_chunked_gradients_match_with_checkpointing(batch):
    s, t, labels = batch
    for name in ("forward_kl", "generalized_jsd", "tvd"):
        x1, x2 = s.clone().requires_grad_(), s.clone().requires_grad_()
        get_divergence(name)(x1, t, labels, temperature=2.0).backward()
        chunked_divergence(name, x2, t, labels, temperature=2.0, chunk_size=3, checkpoint=True).backward()
        assert torch.allclose(x1.grad, x2.grad, atol=1e-7), name


def test_chunked_bf16_mask_and_reductions(batch):
    s, t, labels = batch
    sb, tb = s.bfloat16(), t.bfloat16()
    assert torch.allclose(chunked_divergence("reverse_kl", sb, tb, labels, chunk_size=5),
                          get_divergence("reverse_kl")(sb, tb, labels), atol=1e-6)
    mask = torch.rand(B, L, generator=torch.Generator().manual_seed(3)) > 0.5
    assert torch.allclose(chunked_divergence("skew_kl", s, t, mask=mask, chunk_size=2, skew=0.2),
                          get_divergence("skew_kl")(s, t, mask=mask, skew=0.2), atol=1e-6)
    none = chunked_divergence("forward_kl", s, t, labels, chunk_size=3, reduction="none")
    assert torch.allclose(none, get_divergence("forward_kl")(s, t, labels, reduction="none"), atol=1e-6)
    x = s.clone().requires_grad_()
    out = chunked_divergence("forward_kl", x, t, torch.full_like(labels, -100))
    out.backward()
    assert out == 0 and torch.all(x.grad == 0)


def test_from_hidden_equals_dense_logits(batch):
    _, _, labels = batch
    g = torch.Generator().manual_seed(4)
    hs, w, bias = torch.randn(B, L, H, generator=g), torch.randn(V, H, generator=g) / 4, torch.randn(V, generator=g)
    ht, wt = torch.randn(B, L, H + 3, generator=g), torch.randn(V, H + 3, generator=g) / 4
    t_logits = ht @ wt.t()
    for name in ("forward_kl", "skew_reverse_kl"):
        hs1, w1 = hs.clone().requires_grad_(), w.clone().requires_grad_()
        hs2, w2 = hs.clone().requires_grad_(), w.clone().requires_grad_()
        dense = get_divergence(name)(hs1 @ w1.t() + bias, t_logits, labels, temperature=1.5)
        dense.backward()
        chunked = chunked_divergence_from_hidden(name, hs2, w2, None, labels, teacher_hidden=ht,
                                                 teacher_lm_head_weight=wt, lm_head_bias=bias, temperature=1.5,
                                                 chunk_size=3)
        chunked.backward()
        assert torch.allclose(chunked, dense, atol=1e-6)
        assert torch.allclose(hs1.grad, hs2.grad, atol=1e-6) and torch.allclose(w1.grad, w2.grad, atol=1e-6)
        via_logits = chunked_divergence_from_hidden(name, hs, w, t_logits, labels, lm_head_bias=bias,
                                                    temperature=1.5, chunk_size=4)
        assert torch.allclose(via_logits, dense, atol=1e-6)


def test_chunked_distillation_loss(batch):
    s, t, labels = batch
    for chunk_size in (1, 5):
        assert torch.allclose(chunked_distillation_loss(s, t, labels, chunk_size=chunk_size),
                              distillation_loss(s, t, labels), atol=1e-6)
    a = chunked_distillation_loss_terms(s, t, labels, temperature=2.0, alpha=0.3, reduction="none", chunk_size=4)
    b = distillation_loss_terms(s, t, labels, temperature=2.0, alpha=0.3, reduction="none")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in ("kl", "ce", "total"))


def _saved_for_backward(fn):
    """(shape, dtype, storage) of every tensor autograd keeps for backward while fn() runs forward."""
    saved = []

    def pack(x):
        saved.append((tuple(x.shape), x.dtype, x.untyped_storage().data_ptr()))
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        fn()
    return saved


def test_checkpointed_chunks_save_no_fp32_vocab_tensors(batch):
    s, t, labels = batch
    sb = s.bfloat16().requires_grad_()
    tb = t.bfloat16()
    dense = _saved_for_backward(lambda: get_divergence("forward_kl")(sb, tb, labels, temperature=2.0))
    assert any(dt == torch.float32 and shape[-1] == V for shape, dt, _ in dense)
    chunked = _saved_for_backward(lambda: chunked_divergence("forward_kl", sb, tb, labels, temperature=2.0,
                                                             chunk_size=3))
    # only the caller's own bf16 logits (no copies) and small row-index chunks are kept
    vocab_wide = {(dt, ptr) for shape, dt, ptr in chunked if shape[-1] == V}
    assert vocab_wide <= {(torch.bfloat16, sb.untyped_storage().data_ptr()),
                          (torch.bfloat16, tb.untyped_storage().data_ptr())}
