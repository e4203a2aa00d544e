"""Stage kind on_policy (GKD-style): the student's own completions are what the teacher scores."""

from __future__ import annotations

import json

import pytest

from tests.distill._tiny_distill import build_pair, write_traces

RECIPE = """\
student: {student}
teacher: {teacher}
data: {{path: {data}}}
output_dir: {out}
bf16_autocast: false
teacher_dtype: float32
max_length: 96
batch_size: 4
save_every: 2
stages:
  - name: gkd
    kind: on_policy
    steps: 4
    lr: 0.003
    rollout: {{fraction: {fraction}, max_new_tokens: 12, temperature: 1.0}}
"""


def _run(tmp_path, teacher, student, fraction=1.0):
    from reasonkd.distill.stages import run_recipe

    data = write_traces(tmp_path / "traces.jsonl", n=8)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(student=student, teacher=teacher, data=data, out=tmp_path / "run",
                                    fraction=fraction))
    run_recipe(recipe, progress=False)
    [stage] = (tmp_path / "run" / "stages").glob("*-gkd")
    return [json.loads(x) for x in (stage / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("pair", ["same", "different"])
def test_on_policy_stage_scores_the_students_own_completions(tmp_path, monkeypatch, pair):
    from reasonkd.models import generation
    from reasonkd.models.tiny import build_tiny_model

    if pair == "same":
        teacher, student = build_pair(tmp_path)
    else:
        teacher = build_tiny_model(tmp_path / "teacher", arch="qwen2", tokenizer="b", hidden=96, layers=3, heads=6,
                                   kv_heads=2, seed=1)
        student = build_tiny_model(tmp_path / "student", arch="llama", tokenizer="a", seed=2)
    completions = []
    real_generate = generation.generate_batch

    def spy_generate(*args, **kw):
        outs = real_generate(*args, **kw)
        completions.extend(o.text for o in outs)
        return outs

    monkeypatch.setattr(generation, "generate_batch", spy_generate)
    rows = _run(tmp_path, teacher, student)
    assert [r["on_policy_share"] for r in rows] == [1.0] * 4
    assert len(completions) == 4 * 4  # every example of every micro-batch was rewritten by the student
    assert all("generalized_jsd" in r["terms"] and r["terms"]["generalized_jsd"] >= 0 for r in rows)


def test_fraction_zero_trains_on_the_teacher_traces_only(tmp_path, monkeypatch):
    from reasonkd.models import generation

    teacher, student = build_pair(tmp_path)
    monkeypatch.setattr(generation, "generate_batch", lambda *a, **k: pytest.fail("no rollout expected"))
    rows = _run(tmp_path, teacher, student, fraction=0.0)
    assert [r["on_policy_share"] for r in rows] == [0.0] * 4


def test_on_policy_refuses_non_logit_losses_and_cached_targets():
    from reasonkd.distill.recipe import LossSpec, StageConfig
    from reasonkd.errors import ConfigError

    with pytest.raises(ConfigError, match="on_policy"):
        StageConfig(kind="on_policy", steps=1, losses=[LossSpec("hidden_mse")])
    with pytest.raises(ConfigError, match="on_policy"):
        StageConfig(kind="on_policy", steps=1, losses=[LossSpec("forward_kl", options={"source": "cache"})])
