"""The loss registry: every registered term, fed one hand-made step, gives a finite loss whose gradient
reaches the student's logits / hidden states / attention maps (a term that silently detaches fails here)."""

from types import SimpleNamespace

import pytest
import torch

from reasonkd.distill import losses as L
from reasonkd.distill.align import VocabMap
from reasonkd.distill.forward import Rows
from reasonkd.distill.recipe import LOSS_NAMES, LossSpec
from reasonkd.distill.terms import CROSS_MODES, LOSSES, Step

B, LEN, V, H, HEADS = 2, 6, 13, 8, 2


def _step(relation: str = "same"):
    g = torch.Generator().manual_seed(0)
    labels = torch.full((B, LEN), -100)
    labels[:, 2:] = torch.randint(0, V, (B, LEN - 2), generator=g)
    mask = torch.zeros(B, LEN, dtype=torch.bool)
    mask[:, 1:-1] = True
    n = int(mask.sum())
    rows = Rows(mask, torch.randint(0, V, (n,), generator=g), mask.nonzero()[:, 0])
    leaves = {
        "logits": torch.randn(n, V, generator=g).requires_grad_(),
        "hidden": torch.randn(B, LEN, H, generator=g).requires_grad_(),
        "attn": torch.randn(B, HEADS, LEN, LEN, generator=g).requires_grad_(),
        "neg_logits": torch.randn(n, V, generator=g).requires_grad_(),
    }
    causal = torch.ones(LEN, LEN, dtype=torch.bool).tril()
    s_attn = leaves["attn"].masked_fill(~causal, float("-inf")).softmax(-1)
    t_attn = torch.randn(B, HEADS, LEN, LEN, generator=g).masked_fill(~causal, float("-inf")).softmax(-1)
    student = {
        "logits": leaves["logits"],
        "hidden": [leaves["hidden"]],
        "attentions": {0: s_attn},
        "neg_logits": leaves["neg_logits"],
        "neg_rows": rows,
        "neg_wrong": torch.arange(n) % 2 == 0,
    }
    vt = V + 4 if relation == "different" else V
    teacher = {
        "logits": torch.randn(n, vt, generator=g),
        "valid": torch.ones(n, dtype=torch.bool),
        "hidden": [torch.randn(B, LEN, H, generator=g)],
        "attentions": {0: t_attn},
    }
    batch = {
        "attention_mask": torch.ones(B, LEN, dtype=torch.long),
        "labels": labels,
        "teacher_index": torch.arange(LEN).expand(B, LEN),
        "teacher_identity": relation != "different",
        "has_neg": torch.ones(B, dtype=torch.bool),
    }
    return Step(student, teacher, batch, rows, 2.0), leaves


def _objective(name, relation="same", chunk=0, fused=True):
    vmap = VocabMap(torch.tensor([0, 2, 3, 5, 8, 9]), torch.tensor([1, 4, 6, 10, 12, 16]), V, V + 4)
    return SimpleNamespace(
        chunk_rows=chunk,
        relation=relation,
        vocab_map=vmap,
        teacher_shared_only=False,
        sources={name: "online"},
        attn_pairs=[(0, 0)],
        heads=None,
        head_map=L.head_map(HEADS, HEADS),
        fused=fused,
    )


def _leaf_for(name):
    term = LOSSES[name]
    if "hidden" in term.needs:
        return "hidden"
    if "attentions" in term.needs:
        return "attn"
    return "neg_logits" if name == "unlikelihood" else "logits"


def test_registry_is_the_recipe_vocabulary():
    assert set(LOSS_NAMES) == set(LOSSES)
    assert set(L.DIVERGENCES) < set(LOSSES) and {"ce", "kd"} < set(LOSSES)


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("chunk", [0, 3])
@pytest.mark.parametrize("fused", [True, False])
def test_every_term_has_a_gradient_on_the_student(name, chunk, fused):
    step, leaves = _step()
    values = LOSSES[name].fn(_objective(name, chunk=chunk, fused=fused), LossSpec(name), step)
    assert name in values and torch.isfinite(values[name]) and values[name].dim() == 0
    (grad,) = torch.autograd.grad(values[name], leaves[_leaf_for(name)])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@pytest.mark.parametrize("cross", CROSS_MODES)
@pytest.mark.parametrize("name", ["kd", "forward_kl", "generalized_jsd"])
def test_cross_vocabulary_terms_have_a_gradient(name, cross):
    step, leaves = _step("different")
    values = LOSSES[name].fn(_objective(name, "different"), LossSpec(name, options={"cross": cross}), step)
    (grad,) = torch.autograd.grad(values[name], leaves["logits"])
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0, (name, cross)


@pytest.mark.parametrize("balance", [False, True])
def test_objective_loss_weights_every_term_and_logs_the_tensor_it_returns(balance):
    """Objective.loss: the returned loss is sum weight * scale * term of the stage's specs, and the logged
    "loss" is that very tensor's value (not a total recomputed beside it)."""
    from reasonkd.distill.balance import LossBalancer
    from reasonkd.distill.objective import Objective

    step, leaves = _step()
    specs = [
        LossSpec("ce", weight=0.5),
        LossSpec("kd", weight=2.0, options={"alpha": 0.6}),
        LossSpec("hidden_mse", weight=0.25),
    ]
    obj = _objective("kd")
    obj.sources = {"kd": "online"}
    obj.specs = specs
    balancer = LossBalancer(balance)
    if balance:
        balancer.update({"ce": 4.0, "kd": 0.5, "hidden_mse": 0.01})
    loss, logged = Objective.loss(
        obj, step.student, step.teacher, step.batch, step.rows, step.temperature, balancer, lambda t: t
    )
    terms = {}
    for spec in specs:
        terms.update(LOSSES[spec.name].fn(obj, spec, step))
    scales = balancer.scales({s.name: float(terms[s.name]) for s in specs})
    want = sum(s.weight * scales[s.name] * float(terms[s.name]) for s in specs)
    assert logged["loss"] == float(loss) and loss.item() == pytest.approx(want, rel=1e-6)
    assert {"ce", "kd", "kd.kl", "kd.ce", "hidden_mse"} <= set(logged)
    assert ("scale.kd" in logged) == balance
    (grad,) = torch.autograd.grad(loss, leaves["logits"])
    assert grad.abs().sum() > 0


@pytest.mark.parametrize("fused", [True, False])
def test_the_kd_arm_objective_is_ce_plus_full_vocabulary_forward_kl_float64(fused):
    """The qwen-pair `kd` arm (same tokenizer, online teacher, T = 1): Objective.loss equals, in float64 by
    hand over the teacher's full vocabulary, mean CE on the trace tokens + mean KL(p_teacher || p_student)."""
    from reasonkd.distill.balance import LossBalancer
    from reasonkd.distill.objective import Objective

    step, _ = _step()
    step.student["logits"] = step.student["logits"].detach().double().requires_grad_()
    step.teacher["logits"] = step.teacher["logits"].double()
    obj = _objective("forward_kl", fused=fused)
    obj.specs = [LossSpec("ce"), LossSpec("forward_kl")]
    obj.sources = {"forward_kl": "online"}
    loss, logged = Objective.loss(
        obj, step.student, step.teacher, step.batch, step.rows, 1.0, LossBalancer(False), lambda t: t
    )
    s, t = step.student["logits"].detach(), step.teacher["logits"]
    log_ps, log_pt = s.log_softmax(-1), t.log_softmax(-1)
    ce = -log_ps.gather(1, step.rows.targets[:, None]).mean()
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1).mean()
    # the terms compute in float32 (losses.logit.log_probs: bf16 / fp64 logits alike), so fp32's precision
    assert float(loss.detach()) == pytest.approx(float(ce + kl), rel=1e-6)
    assert logged["ce"] == pytest.approx(float(ce), rel=1e-6)
    assert logged["forward_kl"] == pytest.approx(float(kl), rel=1e-6)
    (grad,) = torch.autograd.grad(loss, step.student["logits"])
    n = s.shape[0]  # d(CE + KL)/d logits of one row, / n rows: (p_s - onehot) + (p_s - p_t)
    want = (2 * log_ps.exp() - log_pt.exp() - torch.nn.functional.one_hot(step.rows.targets, s.shape[1])) / n
    assert torch.allclose(grad, want, atol=1e-7)
