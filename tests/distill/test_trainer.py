"""The distillation engine end to end on tiny random models (teacher 96/3 layers/6 heads, student 64/2/4).

A 3-stage run completes, every stage leaves its checkpoint, the loss falls in every stage,
the final student loads with plain transformers, and an interrupted run resumes to the same numbers.
"""

import json

import pytest
import torch

from _tiny_distill import metric_rows, one_thread, reference_parts, reference_run, summary, write_recipe
from reasonkd.config import load_config
from reasonkd.distill.recipe import DistillRecipe, StageConfig
from reasonkd.distill.schedules import TemperatureSchedule
from reasonkd.distill.stages import run_recipe
from reasonkd.distill.trainer import StopRequested
from reasonkd.errors import ConfigError, ReasonkdError

STAGES = ["1-feature", "2-logic", "3-output"]


_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def ref(tmp_path_factory):
    return reference_run(tmp_path_factory)


def test_three_stage_run_completes_with_checkpoints(ref):
    for stage in STAGES:
        d = ref / "stages" / stage
        assert (d / "done.json").is_file()
        assert (d / "student" / "model.safetensors").is_file() and (d / "student" / "tokenizer.json").is_file()
        assert list((d / "checkpoints").glob("step-*")), f"{stage}: no mid-stage checkpoint"
        assert len(metric_rows(ref, stage)) == 20
    assert (ref / "stages" / "1-feature" / "projectors.safetensors").is_file()
    s = summary(ref)
    assert s["total"]["steps"] == 60 and s["n_examples"] == 24
    assert (ref / "config.yaml").is_file() and (ref / "final" / "distill_config.yaml").is_file()


def test_loss_falls_in_every_stage(ref):
    for st in summary(ref)["stages"]:
        assert st["final_loss_mean"] < 0.9 * st["first_loss_mean"], st


def test_metrics_log_every_term_and_temperature(ref):
    rows = metric_rows(ref, "3-output")
    assert set(rows[0]["terms"]) == {"kd", "kd.kl", "kd.ce"}
    assert rows[0]["temperature"] == pytest.approx(5.0) and rows[-1]["temperature"] == pytest.approx(1.0)
    assert all(rows[i]["temperature"] > rows[i + 1]["temperature"] for i in range(len(rows) - 1))
    feature = metric_rows(ref, "1-feature")[0]["terms"]
    assert set(feature) == {"hidden_mse", "attention_kl"}
    assert all(r["tokens"] > r["trace_tokens"] > 0 for r in rows)


def test_final_student_loads_with_plain_transformers(ref):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    final = ref / "final"
    model = AutoModelForCausalLM.from_pretrained(final)
    tok = AutoTokenizer.from_pretrained(final)
    assert model.config.hidden_size == 64 and model.config.num_hidden_layers == 2 and model.config.use_cache
    assert not any("proj" in k and "projs" in k for k in model.state_dict())  # projectors stay out
    ids = tok("Step 1: 3 + 4 = 7.", return_tensors="pt").input_ids
    assert torch.isfinite(model(ids).logits).all()
    last = ref / "stages" / STAGES[-1] / "student" / "model.safetensors"
    assert (final / "model.safetensors").stat().st_ino == last.stat().st_ino  # a hard link, not a second copy
    card = (final / "README.md").read_text()
    for needle in (str(reference_parts()["teacher"]), "feature", "logic", "output", "hidden_mse", "kd", "Final"):
        assert needle in card


def test_stop_then_resume_matches_uninterrupted(ref, tmp_path):
    parts = reference_parts()
    recipe = write_recipe(tmp_path / "r.yaml", parts["teacher"], parts["student"], parts["data"], tmp_path / "run")
    with pytest.raises(StopRequested):
        run_recipe(recipe, progress=False, stop_after=27)  # stops at the checkpoint after step 10 of stage 2
    out = tmp_path / "run"
    assert (out / "stages" / "1-feature" / "done.json").is_file()
    assert not (out / "stages" / "2-logic" / "done.json").is_file()
    assert len(metric_rows(out, "2-logic")) == 10
    with pytest.raises(ReasonkdError, match="--resume"):
        run_recipe(recipe, progress=False)
    torn = out / "stages" / "2-logic" / "checkpoints" / ".step-000015.tmp"  # a checkpoint killed mid-write
    torn.mkdir()
    (torn / "trainable.safetensors").write_bytes(b"partial")
    run_recipe(recipe, resume=True, progress=False)
    assert not torn.exists()
    a, b = summary(ref), summary(out)
    assert a["total"]["steps"] == b["total"]["steps"] == 60
    assert abs(a["total"]["final_loss"] - b["total"]["final_loss"]) < 1e-4
    for stage in STAGES:
        la, lb = metric_rows(ref, stage), metric_rows(out, stage)
        assert [r["step"] for r in la] == [r["step"] for r in lb]
        assert max(abs(x["loss"] - y["loss"]) for x, y in zip(la, lb)) < 1e-4


def test_a_resume_may_turn_on_gradient_checkpointing_and_gives_the_same_numbers(ref, tmp_path):
    """Activation recompute trades time for memory: a run that ran out of memory continues with it on."""
    parts = reference_parts()
    recipe = write_recipe(tmp_path / "r.yaml", parts["teacher"], parts["student"], parts["data"], tmp_path / "run")
    with pytest.raises(StopRequested):
        run_recipe(recipe, progress=False, stop_after=27)
    run_recipe(recipe, resume=True, overrides=["gradient_checkpointing=true"], progress=False)
    for stage in STAGES:
        la, lb = metric_rows(ref, stage), metric_rows(tmp_path / "run", stage)
        assert [r["step"] for r in la] == [r["step"] for r in lb]
        assert max(abs(x["loss"] - y["loss"]) for x, y in zip(la, lb)) < 1e-4


def test_a_full_disk_at_a_checkpoint_is_one_clear_error_and_the_run_resumes(ref, tmp_path, monkeypatch):
    """The checkpoint that hit the full disk is removed (the last whole one stays); the rerun continues from it."""
    from reasonkd.distill import checkpoint

    parts = reference_parts()
    recipe = write_recipe(
        tmp_path / "r.yaml", parts["teacher"], parts["student"], parts["data"], tmp_path / "run", steps=4, save_every=1
    )
    real, calls = checkpoint.torch.save, []

    def full_at_the_third(obj, f, *a, **k):
        calls.append(f)
        if len(calls) == 7:  # rng of the third checkpoint (rng, optimizer, scheduler per checkpoint)
            raise OSError(28, "No space left on device")
        return real(obj, f, *a, **k)

    monkeypatch.setattr(checkpoint.torch, "save", full_at_the_third)
    with pytest.raises(ReasonkdError, match=r"step-000003 failed: the disk is full"):
        run_recipe(recipe, progress=False)
    ckpts = tmp_path / "run" / "stages" / "1-feature" / "checkpoints"
    assert [p.name for p in ckpts.iterdir()] == ["step-000002"]  # the newest whole one; no partial .tmp left
    monkeypatch.setattr(checkpoint.torch, "save", real)
    run_recipe(recipe, resume=True, progress=False)
    assert (tmp_path / "run" / "final" / "config.json").is_file()


def test_resume_refuses_a_changed_recipe(ref, tmp_path):
    parts = reference_parts()
    recipe = write_recipe(
        tmp_path / "r.yaml", parts["teacher"], parts["student"], parts["data"], tmp_path / "run", steps=2, save_every=1
    )
    with pytest.raises(StopRequested):
        run_recipe(recipe, progress=False, stop_after=1)
    with pytest.raises(ReasonkdError, match="stages"):
        run_recipe(recipe, resume=True, overrides=["stages.0.lr=0.1"], progress=False)


def test_recipe_validation_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match="stages.1.lr must be > 0"):
        load_config(DistillRecipe, None, ["stages.1.lr=-1"])
    with pytest.raises(ConfigError, match="unknown loss 'kl'"):
        load_config(DistillRecipe, None, ["stages.0.losses.0.name=kl"])
    with pytest.raises(ConfigError, match="student is required"):
        load_config(DistillRecipe, None, ["data.path=x.jsonl"]).check_ready()
    with pytest.raises(ConfigError, match="temperature.kind"):
        load_config(DistillRecipe, None, ["stages.2.temperature.kind=exp"])
    with pytest.raises(ConfigError, match="source=cache needs data.logit_cache"):
        load_config(
            DistillRecipe, None, ["student=s", "teacher=t", "data.path=d", "stages.1.losses.1.options={source: cache}"]
        ).check_ready()


def test_default_recipe_runs_the_three_stages_at_t1_and_article_keeps_the_schedule():
    r = load_config(DistillRecipe, "recipes/distill/default.yaml")
    assert [s.kind for s in r.stages] == ["feature", "logic", "output"]
    out = r.stages[2]
    assert out.loss_names == ["kd"] and out.losses[0].options["alpha"] == 0.7
    assert (out.temperature.kind, out.temperature.start, out.temperature.end) == ("constant", 1.0, 1.0)
    assert set(r.stages[0].loss_names) == {"hidden_mse", "attention_kl"}
    assert r.stages[1].loss_names == ["ce", "forward_kl"]
    assert isinstance(r.stages[0].temperature, TemperatureSchedule)
    article = load_config(DistillRecipe, "recipes/distill/article.yaml")
    t = article.stages[2].temperature
    assert (t.kind, t.start, t.end) == ("linear", 5.0, 1.0)
    assert [s.loss_names for s in article.stages] == [s.loss_names for s in r.stages]
    # every stage kind defaults to T = 1 when the recipe leaves the temperature out
    for kind in ("feature", "logic", "output", "on_policy"):
        default = StageConfig(kind=kind, steps=1).temperature
        assert (default.kind, default.start, default.end) == ("constant", 1.0, 1.0)


def test_cli_runs_keys_and_reports_errors(capsys):
    from reasonkd.cli import main

    assert main(["distill", "--keys"]) == 0
    assert "stages.N.losses.M.weight" in capsys.readouterr().out
    assert main(["distill", "recipes/distill/default.yaml", "stages.0.steps=-3"]) == 2


def test_data_labels_cover_only_the_trace(ref):
    from reasonkd.distill.data import batch_order, collate, encode_all
    from reasonkd.models.encoding import end_of_turn_ids
    from reasonkd.teacher.traces import load_traces
    from reasonkd.models import load_tokenizer

    tok = load_tokenizer(str(reference_parts()["student"]))
    examples = load_traces(reference_parts()["data"])
    enc = encode_all(examples, tok, max_length=96)
    batch = collate(enc[:3], tok.pad_token_id)
    for r, e in enumerate(enc[:3]):
        lab = batch["labels"][r]
        assert (lab[: e.prompt_len] == -100).all() and (lab[e.prompt_len : len(e.input_ids)] != -100).all()
        assert (lab[len(e.input_ids) :] == -100).all()
        assert e.input_ids[-len(end_of_turn_ids(tok)) :] == end_of_turn_ids(tok)
        text = tok.decode(lab[lab != -100])
        assert text.startswith(examples[r]["trace"][:10]) and "<|im_end|>" in text
    assert batch["teacher_identity"] and torch.equal(
        batch["teacher_index"][0], torch.arange(batch["input_ids"].shape[1])
    )
    order = batch_order([len(e.input_ids) for e in enc], 4, seed=0, epoch=0)
    assert sorted(i for b in order for i in b) == list(range(len(enc)))
    assert order == batch_order([len(e.input_ids) for e in enc], 4, seed=0, epoch=0)
    assert order != batch_order([len(e.input_ids) for e in enc], 4, seed=0, epoch=1)


def test_loss_balancer_equalises_magnitudes():
    from reasonkd.distill.balance import LossBalancer

    b = LossBalancer(True)
    values = {"a": 100.0, "b": 1.0}
    s = b.scales(values)
    assert s["a"] * 100 == pytest.approx(s["b"] * 1.0)
    for _ in range(5):
        b.update(values)
    s = b.scales({"a": 50.0, "b": 3.0})  # uses the running means, not one noisy batch
    assert s["a"] * 100 == pytest.approx(s["b"] * 1.0)
    b2 = LossBalancer(True)
    b2.load_state_dict(json.loads(json.dumps(b.state_dict())))
    assert b2.scales(values) == b.scales(values)
    assert LossBalancer(False).scales(values) == {"a": 1.0, "b": 1.0}
