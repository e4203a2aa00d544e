"""Stage kind on_policy: the student's own completions are what the teacher scores, and each step logs
what the samples looked like (teacher log-prob, entropy, EOS rate, length, clipped chunks)."""

from __future__ import annotations

import json

import pytest

from tests.distill._tiny_distill import ONPOLICY_HEAD, build_pair, one_thread, write_traces

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)

RECIPE = (
    ONPOLICY_HEAD
    + """\
{warmup}  - name: gkd
    kind: on_policy
    steps: 4
    lr: 0.003
    rollout: {{fraction: {fraction}, max_new_tokens: 12, temperature: 1.0}}
{losses}"""
)
WARMUP = "  - {name: warmup, kind: logic, steps: 2, lr: 0.003, losses: [{name: ce}]}\n"
ON_POLICY_METRICS = (
    "onpolicy_rkl.teacher_logprob",
    "onpolicy_rkl.student_entropy",
    "onpolicy_rkl.clipped",
    "onpolicy_rkl.anchor_ce",
)


def _run(tmp_path, teacher, student, fraction=1.0, losses="", warmup="", recipe_text=RECIPE):
    from reasonkd.distill.stages import run_recipe

    data = write_traces(tmp_path / "traces.jsonl", n=8)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(
        recipe_text.format(
            student=student,
            teacher=teacher,
            data=data,
            out=tmp_path / "run",
            fraction=fraction,
            losses=losses,
            warmup=warmup,
        )
    )
    run_recipe(recipe, progress=False)
    [stage] = (tmp_path / "run" / "stages").glob("*-gkd")
    return [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]


def _spy(monkeypatch) -> list[str]:
    from reasonkd.models import generation

    completions = []
    real_generate = generation.generate_batch

    def spy_generate(*args, **kw):
        outs = real_generate(*args, **kw)
        completions.extend(o.text for o in outs)
        return outs

    monkeypatch.setattr(generation, "generate_batch", spy_generate)
    return completions


def _check_sample_metrics(rows):
    for r in rows:
        assert r["on_policy_share"] == 1.0 and 0.0 <= r["eos_rate"] <= 1.0 and 0 <= r["mean_length"] <= 12
        assert len(r["rollout_sha"]) == 16
        terms = r["terms"]
        assert set(ON_POLICY_METRICS) <= set(terms)
        assert terms["onpolicy_rkl.teacher_logprob"] < 0 and terms["onpolicy_rkl.student_entropy"] > 0
        assert 0.0 <= terms["onpolicy_rkl.clipped"] <= 1.0 and terms["onpolicy_rkl.anchor_ce"] > 0
    assert len({r["rollout_sha"] for r in rows}) == len(rows)  # new samples every step


def test_cross_tokenizer_warmup_then_on_policy_logs_the_sample_metrics(
    tmp_path, monkeypatch, tiny_llama_dir, tiny_qwen_dir
):
    """SFT warm-up (logic, ce) -> on_policy with the default onpolicy_rkl + anchor, tokenizers a vs b."""
    completions = _spy(monkeypatch)
    rows = _run(tmp_path, tiny_qwen_dir, tiny_llama_dir, warmup=WARMUP)
    assert len(completions) == 4 * 4  # every example of every micro-batch was rewritten by the student
    _check_sample_metrics(rows)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["tokenizer_relation"] == "different"
    assert [s["kind"] for s in summary["stages"]] == ["logic", "on_policy"]
    assert summary["stages"][1]["losses"][0]["name"] == "onpolicy_rkl"
    assert (tmp_path / "run" / "final" / "config.json").is_file()


def test_same_tokenizer_on_policy_uses_the_full_distribution(tmp_path, monkeypatch):
    teacher, student = build_pair(tmp_path)
    completions = _spy(monkeypatch)
    rows = _run(tmp_path, teacher, student)
    assert len(completions) == 4 * 4
    _check_sample_metrics(rows)
    assert all(r["terms"]["onpolicy_rkl"] >= 0 for r in rows)  # full mode: an exact per-token reverse KL


@pytest.mark.parametrize("pair", ["same", "different"])
def test_any_online_logit_loss_still_works_on_policy(tmp_path, monkeypatch, pair, tiny_llama_dir, tiny_qwen_dir):
    teacher, student = build_pair(tmp_path) if pair == "same" else (tiny_qwen_dir, tiny_llama_dir)
    completions = _spy(monkeypatch)
    losses = "    losses: [{name: generalized_jsd, options: {beta: 0.5, source: online}}]\n"
    rows = _run(tmp_path, teacher, student, losses=losses)
    assert [r["on_policy_share"] for r in rows] == [1.0] * 4 and len(completions) == 16
    assert all(r["terms"]["generalized_jsd"] >= 0 and "eos_rate" in r for r in rows)


def test_fraction_zero_trains_on_the_teacher_traces_only(tmp_path, monkeypatch):
    from reasonkd.models import generation

    teacher, student = build_pair(tmp_path)
    monkeypatch.setattr(generation, "generate_batch", lambda *a, **k: pytest.fail("no rollout expected"))
    rows = _run(tmp_path, teacher, student, fraction=0.0)
    assert [r["on_policy_share"] for r in rows] == [0.0] * 4
    assert all("eos_rate" not in r and "onpolicy_rkl" in r["terms"] for r in rows)


def test_on_policy_refuses_non_logit_losses_and_cached_targets():
    from reasonkd.distill.recipe import LossSpec, StageConfig
    from reasonkd.errors import ConfigError

    with pytest.raises(ConfigError, match="on_policy"):
        StageConfig(kind="on_policy", steps=1, losses=[LossSpec("hidden_mse")])
    with pytest.raises(ConfigError, match="on_policy"):
        StageConfig(kind="on_policy", steps=1, losses=[LossSpec("forward_kl", options={"source": "cache"})])


def test_on_policy_steps_leave_the_teacher_weights_unchanged(tmp_path, monkeypatch):
    """The qwen-pair arm's options (mode full, forward KL, CE anchor): the student moves, the teacher that
    scored its samples keeps every weight bit for bit and never holds a gradient."""
    import torch

    from reasonkd.distill import stages

    teacher, student = build_pair(tmp_path)
    seen = []
    load = stages._load_teacher

    def spy(*a, **kw):
        model, tok = load(*a, **kw)
        seen.append((model, {k: v.detach().clone() for k, v in model.state_dict().items()}))
        return model, tok

    monkeypatch.setattr(stages, "_load_teacher", spy)
    completions = _spy(monkeypatch)
    losses = (
        "    losses: [{name: onpolicy_rkl, options: {mode: full, clip: 5.0, anchor_ce: 0.1, divergence: forward_kl}}]\n"
    )
    rows = _run(tmp_path, teacher, student, losses=losses)
    assert len(completions) == 16 and all(r["terms"]["onpolicy_rkl"] >= 0 for r in rows)
    [(model, before)] = seen
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())
    from transformers import AutoModelForCausalLM

    start = AutoModelForCausalLM.from_pretrained(student).state_dict()
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final").state_dict()
    assert any(not torch.equal(start[k], trained[k]) for k in start)  # the student did learn


def test_on_policy_rollouts_run_under_lora_with_bf16_autocast(tmp_path, monkeypatch):
    """The qwen-pair arms' setting: LoRA with bf16 autocast stores the frozen base linears in bf16, so the
    student's rollouts must run under the same autocast as its training step (they failed with "mat1 and
    mat2 must have the same dtype" outside it). bf16 runs on every x86 CPU, natively or emulated."""
    teacher, student = build_pair(tmp_path)
    completions = _spy(monkeypatch)
    losses = (
        "    losses: [{name: onpolicy_rkl, options: {mode: full, clip: 5.0, anchor_ce: 0.1, divergence: forward_kl}}]\n"
    )
    head = "bf16_autocast: true\nlora: {{enabled: true, r: 4, alpha: 8}}\n"
    lora_bf16 = RECIPE.replace("bf16_autocast: false\n", head)
    rows = _run(tmp_path, teacher, student, losses=losses, recipe_text=lora_bf16)
    assert len(completions) == 16 and all(r["terms"]["onpolicy_rkl"] >= 0 for r in rows)
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "bf16_autocast: true" in config and "enabled: true" in config
