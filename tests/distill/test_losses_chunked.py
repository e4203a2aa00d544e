"""`chunked_sum`: rows a chunk at a time equal all rows at once (values and gradients), and the checkpointed
chunks keep no fp32 vocabulary-wide tensor for backward."""

import pytest
import torch

from reasonkd.distill.losses import DIVERGENCES, chunked_sum, divergence, logprobs

N, V = 14, 50
NAMES = sorted(DIVERGENCES)


@pytest.fixture
def rows():
    g = torch.Generator().manual_seed(2)
    return torch.randn(N, V, generator=g) * 2, torch.randn(N, V, generator=g) * 2


def summed(name, temperature=2.0):
    def fn(s, t):
        return divergence(name)(logprobs(s, temperature), logprobs(t, temperature)).sum().reshape(1)

    return fn


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("chunk", [0, 1, 4, 1000])
def test_chunked_equals_all_rows(rows, name, chunk):
    s, t = rows
    assert torch.allclose(chunked_sum(summed(name), chunk, s, t), summed(name)(s, t), atol=1e-5)


def test_chunked_gradients_match_with_checkpointing(rows):
    s, t = rows
    for name in ("forward_kl", "generalized_jsd", "tvd"):
        x1, x2 = s.clone().requires_grad_(), s.clone().requires_grad_()
        summed(name)(x1, t).sum().backward()
        chunked_sum(summed(name), 3, x2, t).sum().backward()
        assert torch.allclose(x1.grad, x2.grad, atol=1e-6), name


def _saved_for_backward(fn):
    """(shape, dtype, storage) of every tensor autograd keeps for backward while fn() runs forward."""
    saved = []

    def pack(x):
        saved.append((tuple(x.shape), x.dtype, x.untyped_storage().data_ptr()))
        return x

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
        fn()
    return saved


def test_checkpointed_chunks_save_no_fp32_vocab_tensors(rows):
    s, t = rows
    sb = s.bfloat16().requires_grad_()
    tb = t.bfloat16()
    dense = _saved_for_backward(lambda: summed("forward_kl")(sb, tb))
    assert any(dt == torch.float32 and shape[-1] == V for shape, dt, _ in dense)
    chunked = _saved_for_backward(lambda: chunked_sum(summed("forward_kl"), 3, sb, tb))
    # only the caller's own bf16 logits (no copies) are kept vocabulary-wide
    vocab_wide = {(dt, ptr) for shape, dt, ptr in chunked if len(shape) == 2 and shape[-1] == V}
    assert vocab_wide <= {
        (torch.bfloat16, sb.untyped_storage().data_ptr()),
        (torch.bfloat16, tb.untyped_storage().data_ptr()),
    }
