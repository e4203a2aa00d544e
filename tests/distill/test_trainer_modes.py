"""Trainer modes on tiny models: offline (logit cache, no teacher loaded) with LoRA + bf16 autocast,
a cache from another tokenizer mapped (or refused when it is not the named teacher's), selective heads + loss balancing, padded teacher vocabulary."""

import pytest
import torch

from _tiny_distill import build_pair, metric_rows, one_thread, summary, write_traces
from reasonkd.config import load_config
from reasonkd.models.logit_writer import write_logit_cache
from reasonkd.teacher.traces import load_traces
from reasonkd.distill.recipe import DistillRecipe
from reasonkd.distill.stages import run_recipe
from reasonkd.errors import ReasonkdError

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    root = tmp_path_factory.mktemp("modes")
    teacher, student = build_pair(root)
    return root, teacher, student, write_traces(root / "traces.jsonl")


def _recipe(out, student, teacher, data, stages, **extra):
    base = {
        "student": str(student),
        "teacher": str(teacher),
        "data": {"path": str(data)},
        "output_dir": str(out),
        "bf16_autocast": False,
        "teacher_dtype": "float32",
        "max_length": 96,
        "batch_size": 4,
        "save_every": 0,
        "chunk_rows": 16,
        "stages": stages,
    }
    for key, value in extra.items():
        node = base
        *path, last = key.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    from reasonkd.config import from_dict

    return from_dict(DistillRecipe, base)


def test_offline_lora_bf16_needs_no_teacher(pair, tmp_path):
    from reasonkd.models import load_model

    root, teacher, student, data = pair
    model, tok = load_model(str(teacher))
    examples = load_traces(data)
    cache = write_logit_cache(model, tok, examples[:20], tmp_path / "cache", k=8, progress=False)
    stages = [
        {"name": "logic", "kind": "logic", "steps": 12, "lr": 0.01, "lr_schedule": "constant"},
        {"name": "output", "kind": "output", "steps": 4, "lr": 0.01, "temperature": {"kind": "constant", "start": 2.0}},
    ]
    recipe = _recipe(
        tmp_path / "run",
        student,
        "/nonexistent/teacher",
        data,
        stages,
        bf16_autocast=True,
        **{"data.logit_cache": str(cache), "lora.enabled": True, "lora.r": 4, "lora.alpha": 8},
    )
    final = run_recipe(recipe, progress=False)
    rows = metric_rows(tmp_path / "run", "1-logic")
    assert set(rows[0]["terms"]) == {"ce", "forward_kl"}
    assert rows[-1]["terms"]["ce"] < rows[0]["terms"]["ce"]
    assert all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(final)
    assert not any("lora" in k for k in merged.state_dict())
    before = AutoModelForCausalLM.from_pretrained(student)
    w = merged.model.layers[0].self_attn.q_proj.weight
    assert not torch.equal(w, before.model.layers[0].self_attn.q_proj.weight)
    # merged into the fp32 weights from disk, not into the bf16 copy used while training
    assert (w != w.bfloat16().float()).float().mean() > 0.5


def test_bf16_frozen_lora_base_computes_the_same_numbers(tmp_path):
    """Under autocast, storing the frozen base linears in bf16 changes no logit and no gradient."""
    from peft import LoraConfig, get_peft_model

    from reasonkd.distill.student import bf16_frozen_base
    from reasonkd.models import load_model
    from tiny_models import build_tiny_model

    model, _ = load_model(str(build_tiny_model(tmp_path / "q", arch="qwen2", tokenizer="a")))  # biased q/k/v
    torch.manual_seed(0)
    model = get_peft_model(
        model,
        LoraConfig(
            r=4,
            lora_alpha=8,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "down_proj"],
        ),
    )
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.1)
    ids = torch.randint(0, 300, (2, 20))

    def run():
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(ids).logits
            logits.float().sum().backward()
        return logits, {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    a, grads_a = run()
    bf16_frozen_base(model)
    b, grads_b = run()
    assert model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight.dtype == torch.bfloat16
    assert torch.equal(a, b) and all(torch.equal(grads_a[k], grads_b[k]) for k in grads_a)


@pytest.fixture(scope="module")
def other_cache(pair, tmp_path_factory):
    """A logit cache written by a teacher with another tokenizer than the student's."""
    from reasonkd.models import load_model
    from tiny_models import build_tiny_model

    root, teacher, student, data = pair
    tmp = tmp_path_factory.mktemp("other")
    other = build_tiny_model(tmp / "other", arch="qwen2", tokenizer="b")
    model, tok = load_model(str(other))
    return write_logit_cache(model, tok, load_traces(data), tmp / "cache", k=4, progress=False)


def test_cache_from_another_tokenizer_is_mapped_into_the_students_vocabulary(pair, other_cache, tmp_path):
    root, teacher, student, data = pair
    stages = [{"name": "logic", "kind": "logic", "steps": 2}]
    recipe = _recipe(tmp_path / "run", student, "", data, stages, **{"data.logit_cache": str(other_cache)})
    run_recipe(recipe, progress=False)  # the teacher the cache names gives the tokenizer to align with
    rows = metric_rows(tmp_path / "run", "1-logic")
    assert set(rows[0]["terms"]) == {"ce", "forward_kl"}
    assert all(0 < r["terms"]["forward_kl"] < float("inf") for r in rows)


def test_cache_of_another_tokenizer_than_the_named_teachers_is_refused(pair, other_cache, tmp_path):
    root, teacher, student, data = pair
    recipe = _recipe(
        tmp_path / "run",
        student,
        student,
        data,
        [{"name": "logic", "kind": "logic", "steps": 1}],
        **{"data.logit_cache": str(other_cache)},
    )
    with pytest.raises(ReasonkdError, match="tokenizer differs"):
        run_recipe(recipe, progress=False)


def test_selective_heads_and_balanced_losses(pair, tmp_path):
    root, teacher, student, data = pair
    stages = [
        {
            "name": "feature",
            "kind": "feature",
            "steps": 3,
            "lr": 0.003,
            "heads": [[2, 0], [2, 5]],
            "layer_map": [[0, 0], [1, 2]],
        }
    ]
    recipe = _recipe(tmp_path / "run", student, teacher, data, stages, balance_losses=True)
    run_recipe(recipe, progress=False)
    rows = metric_rows(tmp_path / "run", "1-feature")
    first = rows[0]["terms"]
    # balanced: weight x scale x term is the same for both terms (the geometric mean)
    a = first["scale.hidden_mse"] * first["hidden_mse"]
    b = first["scale.attention_kl"] * first["attention_kl"]
    assert a == pytest.approx(b, rel=1e-4)
    assert first["attention_kl"] < 0.1 * first["hidden_mse"]  # the imbalance balancing corrects


def test_no_layer_holding_a_selected_head_is_an_error(pair, tmp_path):
    root, teacher, student, data = pair
    stages = [{"name": "feature", "kind": "feature", "steps": 1, "heads": [[0, 1]], "layer_map": [[0, 1], [1, 2]]}]
    with pytest.raises(ReasonkdError, match="selected head"):
        run_recipe(_recipe(tmp_path / "run", student, teacher, data, stages), progress=False)


def test_padded_teacher_vocab_is_truncated(pair, tmp_path):
    from tiny_models import build_tiny_model

    root, teacher, student, data = pair
    padded = build_tiny_model(
        tmp_path / "padded", arch="llama", tokenizer="a", hidden=96, layers=3, heads=6, vocab_pad=16, seed=1
    )
    stages = [{"name": "output", "kind": "output", "steps": 2}]
    with pytest.warns(UserWarning, match="truncating logits"):
        run_recipe(_recipe(tmp_path / "run", student, padded, data, stages), progress=False)
    assert summary(tmp_path / "run")["total"]["steps"] == 2


def test_default_recipe_loads_with_overrides():
    r = load_config(DistillRecipe, "recipes/distill/default.yaml", ["student=s", "stages.1.steps=7"])
    assert r.stages[1].steps == 7 and r.lora.enabled


def _term(name, s, teacher, rows, T, options, chunk, source="online", batch=None, fused=False):
    """The registered term function on hand-made rows (no trainer), same tokenizer."""
    from types import SimpleNamespace

    from reasonkd.distill.recipe import LossSpec
    from reasonkd.distill.terms import LOSSES, Step

    obj = SimpleNamespace(chunk_rows=chunk, relation="same", vocab_map=None, sources={name: source}, fused=fused)
    return LOSSES[name].fn(obj, LossSpec(name, options=options), Step({"logits": s}, teacher, batch or {}, rows, T))


@pytest.mark.parametrize("chunk", [0, 3])
@pytest.mark.parametrize("fused", [False, True])
def test_chunked_logit_terms_equal_the_row_losses(chunk, fused):
    """The trainer's row-chunked (checkpointed) terms equal the row loss functions on all rows at once."""
    from reasonkd.distill import losses as L
    from reasonkd.distill.forward import Rows

    torch.manual_seed(0)
    n, v, k = 7, 11, 4
    s = torch.randn(n, v, requires_grad=True)
    t = torch.randn(n, v)
    y = torch.randint(0, v, (n,))
    valid = torch.tensor([True, True, False, True, True, True, False])
    rows = Rows(torch.ones(1, n, dtype=torch.bool), y, torch.zeros(n, dtype=torch.long))
    teacher = {"logits": t, "valid": valid}
    got = _term("kd", s, teacher, rows, 2.0, {"alpha": 0.7}, chunk, fused=fused)
    kl = L.forward_kl(L.logprobs(s[valid], 2.0), L.logprobs(t[valid], 2.0)).mean()
    ce = torch.nn.functional.cross_entropy(s, y)  # CE on every trace row, soft target or not
    assert torch.allclose(got["kd"], 0.7 * 4 * kl + 0.3 * ce, atol=1e-6)
    (g1,) = torch.autograd.grad(got["kd"], s, retain_graph=True)
    (g2,) = torch.autograd.grad(0.7 * 4 * kl + 0.3 * ce, s, retain_graph=True)
    assert torch.allclose(g1, g2, atol=1e-6)
    assert torch.allclose(got["kd.kl"], kl, atol=1e-6) and torch.allclose(got["kd.ce"], ce, atol=1e-6)
    got = _term("generalized_jsd", s, teacher, rows, 1.5, {"beta": 0.3, "t2": True}, chunk)["generalized_jsd"]
    want = 1.5**2 * L.generalized_jsd(L.logprobs(s[valid], 1.5), L.logprobs(t[valid], 1.5), beta=0.3).mean()
    assert torch.allclose(got, want, atol=1e-6)
    (g1,) = torch.autograd.grad(got, s)
    (g2,) = torch.autograd.grad(want, s)
    assert torch.allclose(g1, g2, atol=1e-6)
    top = torch.log_softmax(t, -1).topk(k)
    batch = {"teacher_topk_ids": top.indices[None], "teacher_topk_logprobs": top.values[None], "soft_mask": valid[None]}
    got = _term("forward_kl", s, None, rows, 1.0, {}, chunk, source="cache", batch=batch, fused=fused)["forward_kl"]
    want = L.forward_kl(*L.topk_logprobs(s[valid], top.indices[valid], top.values[valid])).mean()
    assert torch.allclose(got, want, atol=1e-6)
    assert torch.allclose(torch.autograd.grad(got, s)[0], torch.autograd.grad(want, s)[0], atol=1e-6)
    ce = _term("ce", s, None, rows, 1.0, {}, chunk, fused=fused)["ce"]
    assert torch.allclose(ce, torch.nn.functional.cross_entropy(s, y), atol=1e-6)
    want = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(torch.autograd.grad(ce, s)[0], torch.autograd.grad(want, s)[0], atol=1e-6)
