"""Two compare keys of the same-tokenizer experiment (recipes/compare/qwen-pair.yaml) on tiny random models:
`start_from` (an arm continues another arm's trained student: SFT then N more steps, and its control) and
`logit_cache` (arms with a logit term read the teacher's top-k cache instead of running it per step)."""

from __future__ import annotations

import json

import pytest
import yaml
from safetensors.torch import load_file

from reasonkd.errors import ConfigError

CE = [{"name": "sft", "kind": "logic", "losses": [{"name": "ce"}]}]


def _write(tmp_path, cfg: dict):
    path = tmp_path / "arms.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_an_arm_continues_another_arms_student_which_is_trained_first(setup, tmp_path):
    from reasonkd.cli import main
    from reasonkd.pipeline import compare_run

    _, _, arms = setup
    out = tmp_path / "out"
    more = {"name": "sft-n", "start_from": "sft", "extra_steps": 1, "stages": CE}
    # listed before the arm it starts from: that one is trained first all the same, and only once
    path = _write(tmp_path, dict(arms, out=str(out), seeds=[0], arms=[more, arms["arms"][0]]))
    calls = []
    orig = compare_run.run_recipe
    compare_run.run_recipe = lambda recipe, *a, **k: calls.append(recipe.output_dir) or orig(recipe, *a, **k)
    try:
        assert main(["compare", str(path)]) == 0
    finally:
        compare_run.run_recipe = orig
    sft, cont = out / "arms" / "sft" / "seed-0", out / "arms" / "sft-n" / "seed-0"
    assert calls == [str(sft), str(cont)]
    saved = yaml.safe_load((cont / "config.yaml").read_text())
    assert saved["student"] == str(sft / "final") and [s["steps"] for s in saved["stages"]] == [1]
    a, b = (load_file(d / "final" / "model.safetensors") for d in (sft, cont))
    assert any(not a[k].equal(b[k]) for k in a)  # the extra step moved the weights
    rows = {r["arm"]: r for r in json.loads((out / "compare.json").read_text())["splits"]["dev"]["arms"]}
    # its budget and wall time count the steps it continues from
    assert rows["sft"]["per_seed"]["0"]["steps"] == 2 and rows["sft-n"]["per_seed"]["0"]["steps"] == 3
    assert rows["sft-n"]["per_seed"]["0"]["train_s"] > rows["sft"]["per_seed"]["0"]["train_s"]


@pytest.mark.parametrize(
    "arm, match",
    [
        (
            {"name": "x", "start_from": "nope", "extra_steps": 1, "stages": CE},
            r"arms\.2\.start_from: no other arm named 'nope'",
        ),
        (
            {"name": "x", "start_from": "x", "extra_steps": 1, "stages": CE},
            r"arms\.2\.start_from: no other arm named 'x'",
        ),
        (
            {"name": "x", "start_from": "sft", "stages": CE},
            r"arm x: start_from needs runner reasonkd and extra_steps >= 1",
        ),
        ({"name": "x", "start_from": "y", "extra_steps": 1, "stages": CE}, r"arm 'y' must start from the untrained"),
    ],
)
def test_bad_start_from_names_the_key(setup, tmp_path, arm, match):
    from reasonkd.pipeline.compare_config import load_compare_config

    _, _, arms = setup
    chained = {"name": "y", "start_from": "sft", "extra_steps": 1, "stages": CE}
    with pytest.raises(ConfigError, match=match):
        load_compare_config(_write(tmp_path, dict(arms, arms=[*arms["arms"], arm, chained])))


def test_logit_terms_read_the_teacher_cache_and_ce_arms_do_not(setup, tmp_path, tiny_qwen_dir):
    from reasonkd.cli import main

    _, _, arms = setup
    cache, out = tmp_path / "logits", tmp_path / "out"
    args = ["--teacher", str(tiny_qwen_dir), "--traces", arms["traces"], "--out", str(cache), "--k", "8"]
    assert main(["teacher", "logits", *args, "--max-length", "256", "--device", "cpu"]) == 0
    path = _write(tmp_path, dict(arms, out=str(out), seeds=[0], logit_cache=str(cache)))
    assert main(["compare", str(path)]) == 0
    saved = {a: yaml.safe_load((out / "arms" / a / "seed-0" / "config.yaml").read_text()) for a in ("sft", "kd")}
    assert saved["kd"]["data"]["logit_cache"] == str(cache) and saved["sft"]["data"]["logit_cache"] is None
    rows = {r["arm"]: r for r in json.loads((out / "compare.json").read_text())["splits"]["dev"]["arms"]}
    assert rows["kd"]["teacher_read_tokens"] == 0  # soft targets from the cache: no teacher forward in training


def test_a_corrected_teacher_gets_its_own_cache_and_is_a_reference(setup, tmp_path, tiny_qwen_dir):
    from reasonkd.cli import main

    _, _, arms = setup
    cache, out = tmp_path / "logits", tmp_path / "out"
    args = ["--teacher", str(tiny_qwen_dir), "--traces", arms["traces"], "--out", str(cache), "--k", "8"]
    assert main(["teacher", "logits", *args, "--max-length", "256", "--device", "cpu"]) == 0
    kd = arms["arms"][1]
    cfg = dict(
        arms,
        out=str(out),
        seeds=[0],
        logit_cache=str(cache),
        references=["student", "teacher", "teacher-corrected"],
        teacher_correction={"steps": 1, "batch_size": 2, "max_length": 256, "bf16_autocast": "auto"},
        arms=[arms["arms"][0], {**kd, "name": "kd-ct", "corrected_teacher": True}],
    )
    assert main(["compare", str(_write(tmp_path, cfg))]) == 0
    corrected = out / "teacher-corrected"
    saved = yaml.safe_load((out / "arms" / "kd-ct" / "seed-0" / "config.yaml").read_text())
    assert saved["teacher"] == str(corrected / "final") and saved["data"]["logit_cache"] == str(corrected / "logits")
    own, shared = (json.loads((d / "meta.json").read_text()) for d in (corrected / "logits", cache))
    assert own["teacher"] == str(corrected / "final") and (own["k"], own["max_length"]) == (shared["k"], 256)
    refs = json.loads((out / "compare.json").read_text())["splits"]["dev"]["references"]
    assert set(refs) == {"student", "teacher", "teacher-corrected"} and refs["teacher-corrected"]["n"] == 3


def test_a_corrected_reference_needs_the_correction(setup, tmp_path):
    from reasonkd.pipeline.compare_config import load_compare_config

    _, _, arms = setup
    with pytest.raises(ConfigError, match="teacher-corrected needs teacher_correction.steps >= 1"):
        load_compare_config(_write(tmp_path, dict(arms, references=["student", "teacher-corrected"])))
