"""The on-policy loss term `onpolicy_rkl` and its chunks: float64 references, gradients, hand-checked alignment.

Chunk mode (tokenizers differ): per aligned text chunk, REINFORCE with the clipped advantage
log p_T(chunk) - log p_S(chunk); full mode (one vocabulary): per-token reverse KL over the whole
vocabulary. Both plus the cross-entropy anchor on the verified traces.
"""

from types import SimpleNamespace

import pytest
import torch

from reasonkd.distill.chunk_kd import onpolicy_options, teacher_token_rows
from reasonkd.distill.losses import chunked_rows
from reasonkd.distill.forward import token_rows
from reasonkd.distill.recipe import LossSpec, StageConfig
from reasonkd.distill.terms import LOSSES, Step
from reasonkd.errors import ConfigError

V, CLIP = 11, 2.0


def _batch():
    """Two examples: student tokens 0-1 are the prompt; ex 1's end of turn was never sampled (-1)."""
    g = torch.Generator().manual_seed(3)
    input_ids = torch.randint(0, V, (2, 7), generator=g)
    labels = input_ids.clone()
    labels[:, :2] = -100
    labels[1, 6] = -100  # padding
    chunk_ids = torch.tensor([[-1, -1, 0, 0, 1, 2, 3], [-1, -1, 0, 1, 1, -1, -1]])
    t_ids = torch.randint(0, V + 5, (2, 8), generator=g)
    t_chunks = torch.tensor([[-1, -1, -1, 0, 1, 1, 2, 3], [-1, -1, -1, 0, 0, 1, -1, -1]])
    return {
        "input_ids": input_ids,
        "labels": labels,
        "attention_mask": torch.ones_like(input_ids),
        "chunk_ids": chunk_ids,
        "teacher_input_ids": t_ids,
        "teacher_chunk_ids": t_chunks,
    }


def _step(mode: str, anchor: bool = True):
    g = torch.Generator().manual_seed(0)
    batch = _batch()
    rows = token_rows(batch)
    n = rows.targets.shape[0]
    student = {"logits": torch.randn(n, V, generator=g).requires_grad_()}
    if anchor:
        student["anchor_logits"] = torch.randn(5, V, generator=g).requires_grad_()
        student["anchor_targets"] = torch.randint(0, V, (5,), generator=g)
    _, _, t_chunk = teacher_token_rows(batch)
    t_lp = -torch.rand(t_chunk.shape[0], generator=g) * 3
    t_lp[0] = -30.0  # chunk 0 of example 0: an outlier the clip bounds
    teacher = {
        "token_logprobs": t_lp,
        "logits": torch.randn(n, V, generator=g) * 3,
        "valid": torch.ones(n, dtype=torch.bool),
    }
    obj = SimpleNamespace(relation="different" if mode == "chunk" else "same", chunk_rows=0)
    return obj, Step(student, teacher, batch, rows, 1.0)


def _reference_chunk(step, clip):
    """float64, one example and one chunk at a time."""
    logits = step.student["logits"].detach().double().requires_grad_()
    lp = torch.log_softmax(logits, -1)[torch.arange(logits.shape[0]), step.rows.targets]
    s_chunk = torch.nn.functional.pad(step.batch["chunk_ids"][:, 1:], (0, 1), value=-1)[step.rows.mask]
    mask, _, t_chunk = teacher_token_rows(step.batch)
    t_b, s_b = mask.nonzero()[:, 0], step.rows.batch_index
    t_lp = step.teacher["token_logprobs"].double()
    surrogate = rkl = torch.zeros((), dtype=torch.float64)
    t_sum = torch.zeros((), dtype=torch.float64)
    n_clipped = n_chunks = 0
    for b in range(2):
        for c in range(int(s_chunk.max()) + 1):
            s_sel, t_sel = (s_b == b) & (s_chunk == c), (t_b == b) & (t_chunk == c)
            if not (s_sel.any() and t_sel.any()):
                continue
            ls, lt = lp[s_sel].sum(), t_lp[t_sel].sum()
            adv = (lt - ls).detach()
            n_chunks += 1
            n_clipped += int(abs(adv) > clip)
            surrogate = surrogate - adv.clamp(-clip, clip) * ls
            rkl = rkl + (ls - lt).detach()
            t_sum = t_sum + lt
    n_tok = int((s_chunk >= 0).sum())
    (surrogate / n_tok).backward()
    return rkl / n_tok, logits.grad, t_sum / n_tok, n_clipped / n_chunks


def _reference_anchor(step):
    a = step.student["anchor_logits"].detach().double().requires_grad_()
    ce = torch.nn.functional.cross_entropy(a, step.student["anchor_targets"])
    ce.backward()
    return ce, a.grad


@pytest.mark.parametrize("chunk_rows", [0, 3])
def test_chunk_mode_matches_a_float64_reference(chunk_rows):
    obj, step = _step("chunk")
    obj.chunk_rows = chunk_rows
    out = LOSSES["onpolicy_rkl"].fn(obj, LossSpec("onpolicy_rkl", options={"clip": CLIP, "anchor_ce": 0.1}), step)
    rkl, grad, t_mean, clipped = _reference_chunk(step, CLIP)
    ce, a_grad = _reference_anchor(step)
    assert out["onpolicy_rkl"].item() == pytest.approx((rkl + 0.1 * ce).item(), abs=1e-5)
    assert out["onpolicy_rkl.teacher_logprob"].item() == pytest.approx(t_mean.item(), abs=1e-5)
    assert out["onpolicy_rkl.clipped"].item() == pytest.approx(clipped) and 0 < clipped < 1
    assert out["onpolicy_rkl.anchor_ce"].item() == pytest.approx(ce.item(), abs=1e-5)
    g_s, g_a = torch.autograd.grad(out["onpolicy_rkl"], [step.student["logits"], step.student["anchor_logits"]])
    assert torch.allclose(g_s.double(), grad, atol=1e-6) and g_s.abs().sum() > 0
    assert torch.allclose(g_a.double(), 0.1 * a_grad, atol=1e-6) and g_a.abs().sum() > 0


@pytest.mark.parametrize("chunk_rows", [0, 4])
def test_full_mode_matches_a_float64_reverse_kl(chunk_rows):
    obj, step = _step("full", anchor=False)
    obj.chunk_rows = chunk_rows
    out = LOSSES["onpolicy_rkl"].fn(obj, LossSpec("onpolicy_rkl", options={"clip": CLIP}), step)
    s = step.student["logits"].detach().double().requires_grad_()
    s_lp, t_lp = torch.log_softmax(s, -1), torch.log_softmax(step.teacher["logits"].double(), -1)
    rkl = (s_lp.exp() * (s_lp - t_lp)).sum(-1)
    scored = torch.nn.functional.pad(step.batch["chunk_ids"][:, 1:], (0, 1), value=-1)[step.rows.mask] >= 0
    bounded = torch.where(rkl.detach() > CLIP, rkl * CLIP / rkl.detach(), rkl)
    assert (rkl[scored] > CLIP).any() and (rkl[scored] <= CLIP).any()  # both branches of the clip
    ref = bounded[scored].mean()
    ref.backward()
    assert out["onpolicy_rkl"].item() == pytest.approx(ref.item(), abs=1e-5)
    assert out["onpolicy_rkl.clipped"].item() == pytest.approx((rkl[scored] > CLIP).double().mean().item())
    t_tok = t_lp[torch.arange(len(rkl)), step.rows.targets]
    assert out["onpolicy_rkl.teacher_logprob"].item() == pytest.approx(t_tok[scored].mean().item(), abs=1e-5)
    entropy = -(s_lp.exp() * s_lp).sum(-1)[scored].mean()
    assert out["onpolicy_rkl.student_entropy"].item() == pytest.approx(entropy.item(), abs=1e-5)
    (g,) = torch.autograd.grad(out["onpolicy_rkl"], step.student["logits"])
    assert torch.allclose(g.double(), s.grad, atol=1e-6) and g.abs().sum() > 0
    assert g[~scored].abs().sum() == 0  # the end of turn the student never sampled carries no loss


def test_chunked_rows_equals_all_at_once():
    x = torch.randn(10, 4, requires_grad=True)

    def fn(a):
        return a.pow(2).sum(-1, keepdim=True)

    assert torch.allclose(chunked_rows(fn, 3, x), fn(x))
    (g1,) = torch.autograd.grad(chunked_rows(fn, 3, x).sum(), x)
    assert torch.allclose(g1, 2 * x)


def test_options_are_checked():
    assert onpolicy_options({}, "different")[0] == "chunk" and onpolicy_options({}, "same")[0] == "full"
    assert onpolicy_options({"mode": "chunk"}, "same_padded")[0] == "chunk"
    with pytest.raises(ConfigError, match="unknown option 'anchor'"):
        onpolicy_options({"anchor": 0.1})
    with pytest.raises(ConfigError, match="mode full"):
        onpolicy_options({"mode": "full"}, "different")
    with pytest.raises(ConfigError, match="clip"):
        StageConfig(kind="on_policy", steps=1, losses=[LossSpec("onpolicy_rkl", options={"clip": -1})])
    with pytest.raises(ConfigError, match="kind on_policy"):
        StageConfig(kind="logic", steps=1, losses=[LossSpec("onpolicy_rkl")])
    default = StageConfig(kind="on_policy", steps=1).losses
    assert [(s.name, s.options) for s in default] == [("onpolicy_rkl", {"clip": 5.0, "anchor_ce": 0.1})]


def test_objective_runs_what_the_mode_needs():
    from reasonkd.distill.objective import Objective

    stage = StageConfig(kind="on_policy", steps=1)
    cross = Objective(stage, None, None, relation="different")
    assert cross.teacher_tokens and cross.anchor and cross.needs_teacher and not cross.online_logits
    same = Objective(stage, None, None, relation="same")
    assert same.online_logits and not same.teacher_tokens and same.needs_teacher
    no_anchor = StageConfig(kind="on_policy", steps=1, losses=[LossSpec("onpolicy_rkl")])
    assert not Objective(no_anchor, None, None, relation="same").anchor


# ---- chunks of a real encoded example ---------------------------------------------------------

TEXT = "Step 1: 12 * 34 = 408. café 😀 #### 408"


def _pair(max_length=512):
    from tiny_models import build_tiny_tokenizer

    from reasonkd.distill.crosstok import PairEncoder

    a, b = build_tiny_tokenizer("a"), build_tiny_tokenizer("b")
    return a, b, PairEncoder(a, b, len(a), len(b), max_length=max_length)


def _chunk_texts(tok, ids, chunks):
    n = max(chunks) + 1
    return [tok.decode([i for i, c in zip(ids, chunks) if c == g]) for g in range(n)]


def test_completion_chunks_hand_checked_across_tokenizers():
    from reasonkd.distill.onpolicy import completion_chunks

    a, b, pair = _pair()
    e = pair.encode("What is 12 * 34?", TEXT)
    s, t = completion_chunks(TEXT, e, a, b, finished=True)
    assert len(s) == len(e.input_ids) and len(t) == len(e.teacher_input_ids)
    assert s[: e.prompt_len] == [-1] * e.prompt_len and s[e.prompt_len] == 0  # the template is never scored
    expected = [
        "S",
        "t",
        "ep",
        " 1",
        ":",
        " 12",
        " ",
        "*",
        " 3",
        "4",
        " =",
        " 4",
        "0",
        "8",
        ".",
        " café",
        " ",
        "😀",
        " ####",
        " 4",
        "0",
        "8",
        "<|im_end|>",
    ]
    assert _chunk_texts(a, e.input_ids, s) == expected  # " 12": 2 student tokens, " café": 5 (bytes of é), 😀: 4
    assert _chunk_texts(b, e.teacher_input_ids, t) == expected
    assert s.count(5) == 2 and t.count(5) == 1 and s.count(15) == 5 and t.count(15) == 1
    assert s[-1] == t[-1] == 22 and e.input_ids[-1] == a.convert_tokens_to_ids("<|im_end|>")
    # a sample cut at max_new_tokens never sampled its end of turn: that chunk is not scored
    s2, t2 = completion_chunks(TEXT, e, a, b, finished=False)
    assert s2[-1] == t2[-1] == -1 and s2[:-1] == s[:-1]


def test_completion_chunks_drop_a_chunk_cut_by_max_length():
    from reasonkd.distill.onpolicy import completion_chunks

    a, b, full = _pair()
    e_full = full.encode("What is 12 * 34?", TEXT)
    s_full, _ = completion_chunks(TEXT, e_full, a, b)
    cut_at = e_full.prompt_len + 17  # inside " café" (student tokens 15-19 of the trace)
    a, b, pair = _pair(max_length=cut_at)
    e = pair.encode("What is 12 * 34?", TEXT)
    s, t = completion_chunks(TEXT, e, a, b)
    assert len(s) == cut_at and 15 not in s and 15 not in t
    assert s == [g if g < 15 else -1 for g in s_full[:cut_at]]


def test_completion_chunks_same_tokenizer_one_token_per_chunk():
    from reasonkd.distill.data import Encoded
    from reasonkd.distill.onpolicy import completion_chunks
    from reasonkd.models.encoding import encode_example

    a, _, _ = _pair()
    ids, n_prompt = encode_example(a, "q", "12 café")
    s, t = completion_chunks("12 café", Encoded("x", ids, n_prompt), a)
    assert t is None and s == [-1] * n_prompt + list(range(len(ids) - n_prompt))


def test_full_mode_takes_the_divergence_the_recipe_names():
    """options.divergence: forward KL / generalised JSD on the student's samples (mode full), checked
    against a float64 reference; the default stays the reverse KL."""
    import torch

    from reasonkd.distill.chunk_kd import _full_rows, onpolicy_divergence

    g = torch.Generator().manual_seed(0)
    s = torch.randn(5, 11, generator=g, dtype=torch.float64)
    t = torch.randn(5, 11, generator=g, dtype=torch.float64)
    y = torch.randint(0, 11, (5,), generator=g)
    ps, pt = s.softmax(-1), t.softmax(-1)
    ref = {"reverse_kl": (ps * (ps.log() - pt.log())).sum(-1), "forward_kl": (pt * (pt.log() - ps.log())).sum(-1)}
    for name, want in ref.items():
        got = _full_rows(onpolicy_divergence({"divergence": name}), s, t, y)[:, 0].double()  # computed in fp32
        assert torch.allclose(got, want, atol=1e-5), name
    assert torch.allclose(_full_rows(onpolicy_divergence({}), s, t, y)[:, 0].double(), ref["reverse_kl"], atol=1e-5)
    m = 0.5 * (ps + pt)  # beta 0.5: the symmetric JSD
    jsd = 0.5 * (ps * (ps.log() - m.log())).sum(-1) + 0.5 * (pt * (pt.log() - m.log())).sum(-1)
    got = _full_rows(
        onpolicy_divergence({"divergence": "generalized_jsd", "divergence_options": {"beta": 0.5}}), s, t, y
    )[:, 0].double()
    assert torch.allclose(got, jsd, atol=1e-5)


def test_divergence_options_are_checked_when_the_recipe_loads():
    from reasonkd.distill.chunk_kd import onpolicy_options
    from reasonkd.errors import ConfigError

    assert onpolicy_options({"divergence": "forward_kl"}, "same")[0] == "full"
    with pytest.raises(ConfigError, match="needs mode full"):
        onpolicy_options({"divergence": "forward_kl"}, "different")  # chunk mode: reverse KL only
    with pytest.raises(ConfigError, match="divergence must be one of"):
        onpolicy_options({"divergence": "kl"})
    with pytest.raises(ConfigError, match="do not fit generalized_jsd"):
        onpolicy_options({"divergence": "generalized_jsd", "divergence_options": {"alpha": 1}})
