"""On-policy chunk alignment and the chunk-level sampled reverse KL (reasonkd.distill.chunk_kd)."""

import math

import pytest
import torch

from reasonkd.distill.chunk_kd import chunk_groups, chunk_policy_loss, chunk_sums, token_logprobs


def spans(pieces):
    out, pos = [], 0
    for p in pieces:
        out.append((pos, pos + len(p)))
        pos += len(p)
    return out


def test_chunk_groups_hand_checked_words_digits_unicode():
    # "The 123 cats é!" : student splits digits one by one and the accented word into bytes-ish pieces
    text = "The 123 café!"
    s = ["The", " ", "1", "2", "3", " caf", "é", "!"]
    t = ["The", " 123", " café", "!"]
    assert "".join(s) == "".join(t) == text
    sg, tg, n = chunk_groups(spans(s), spans(t))
    # chunks: "The" | " 123" (4 student tokens : 1 teacher) | " café" (2:1) | "!"
    assert n == 4
    assert sg == [0, 1, 1, 1, 1, 2, 2, 3]
    assert tg == [0, 1, 2, 3]


def test_chunk_groups_multi_character_pieces_and_n_to_m():
    # n:m: "ab|cd" vs "a|bc|d" share only the end boundary
    sg, tg, n = chunk_groups(spans(["ab", "cd"]), spans(["a", "bc", "d"]))
    assert (sg, tg, n) == ([0, 0], [0, 0, 0], 1)
    # byte pieces of one emoji end at the same character: they stay in one chunk
    s_off = [(0, 1), (1, 2), (1, 2), (2, 3)]  # "a", emoji as two byte tokens, "b"
    t_off = [(0, 1), (1, 2), (2, 3)]
    sg, tg, n = chunk_groups(s_off, t_off)
    assert n == 3 and sg == [0, 1, 1, 2] and tg == [0, 1, 2]


def test_chunk_groups_real_tokenizers(tiny_llama_dir, tiny_qwen_dir):
    from transformers import AutoTokenizer

    a, b = AutoTokenizer.from_pretrained(tiny_llama_dir), AutoTokenizer.from_pretrained(tiny_qwen_dir)
    text = "Step 1: 12 * 34 = 408. Done é #### 408"
    sa = [tuple(o) for o in a(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    sb = [tuple(o) for o in b(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    sg, tg, n = chunk_groups(sa, sb)
    assert min(sg) == 0 and max(sg) == n - 1 and min(tg) == 0 and max(tg) == n - 1
    assert sg == sorted(sg) and tg == sorted(tg)  # chunks in text order, contiguous
    for g in range(n):  # each chunk covers the same characters on both sides
        s_idx = [i for i, x in enumerate(sg) if x == g]
        t_idx = [j for j, x in enumerate(tg) if x == g]
        assert sa[s_idx[-1]][1] == sb[t_idx[-1]][1] or g == n - 1


def test_chunk_sums_and_token_logprobs():
    v = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert chunk_sums(v, torch.tensor([0, 0, -1, 1]), 2).tolist() == [3.0, 4.0]
    logits = torch.randn(3, 7, dtype=torch.float64)
    tgt = torch.tensor([1, 6, 0])
    ref = torch.log_softmax(logits, -1)[torch.arange(3), tgt]
    assert torch.allclose(token_logprobs(logits, tgt).double(), ref, atol=1e-6)


def test_policy_loss_gradient_is_reverse_kl_estimate_float64():
    torch.manual_seed(0)
    s_logits = torch.randn(4, 9, dtype=torch.float64, requires_grad=True)
    tgt = torch.tensor([2, 5, 5, 1])
    s_lp = torch.log_softmax(s_logits, -1)[torch.arange(4), tgt]
    t_lp = torch.tensor([-1.0, -0.5, -3.0, -0.2], dtype=torch.float64)
    sg = torch.tensor([0, 0, 1, 2])  # student tokens 0,1 form chunk 0
    tg = torch.tensor([0, 1, 2])
    t_tok = torch.tensor([-1.5, -3.0, -0.2], dtype=torch.float64)
    out = chunk_policy_loss(s_lp, t_tok, sg, tg, 3, clip=0)
    ls = torch.stack([s_lp[0] + s_lp[1], s_lp[2], s_lp[3]])
    lt = torch.tensor([-1.5, -3.0, -0.2], dtype=torch.float64)
    ref = -((lt - ls.detach()) * ls).sum() / 4
    assert torch.allclose(out["loss"].double(), ref, atol=1e-6)
    assert math.isclose(out["reverse_kl"].item(), ((ls - lt).sum() / 4).item(), rel_tol=1e-6)
    out["loss"].backward()
    assert s_logits.grad is not None and s_logits.grad.abs().sum() > 0
    del t_lp


def test_policy_loss_zero_when_student_matches_teacher_and_clipping():
    s_lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    g = torch.tensor([0, 1])
    out = chunk_policy_loss(s_lp, torch.tensor([-1.0, -2.0]), g, g, 2)
    assert out["loss"].item() == 0 and out["reverse_kl"].item() == 0
    out = chunk_policy_loss(s_lp, torch.tensor([-30.0, -2.0]), g, g, 2, clip=5.0)
    assert out["clipped"].item() == pytest.approx(0.5)
    out["loss"].backward()
    assert s_lp.grad.tolist() == pytest.approx([2.5, 0.0])  # -(-5)/2 on chunk 0, advantage 0 on chunk 1


def test_policy_loss_unscored_chunks_and_empty():
    s_lp = torch.tensor([-1.0, -2.0], requires_grad=True)
    # chunk 1 has no teacher tokens (teacher truncated): not scored
    out = chunk_policy_loss(s_lp, torch.tensor([-3.0]), torch.tensor([0, 1]), torch.tensor([0]), 2, clip=0)
    out["loss"].backward()
    assert s_lp.grad.tolist() == pytest.approx([1.0, 0.0])
    empty = chunk_policy_loss(
        torch.zeros(0, requires_grad=True),
        torch.zeros(0),
        torch.zeros(0, dtype=torch.long),
        torch.zeros(0, dtype=torch.long),
        0,
    )
    assert empty["loss"].item() == 0 and empty["loss"].requires_grad
