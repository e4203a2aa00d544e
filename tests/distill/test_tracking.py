"""report_to: [tensorboard] writes every stage's loss terms, temperature, lr and throughput as scalars, and
an evaluation table; trackio / wandb missing -> one clear error naming the pip command."""

import pytest

from _tiny_distill import build_pair, one_thread, write_recipe, write_traces

from reasonkd.config import load_config
from reasonkd.distill.recipe import DistillRecipe
from reasonkd.distill.tracking import Tracking, _available, log_eval_table
from reasonkd.errors import ConfigError

_one_thread = pytest.fixture(autouse=True)(one_thread)


def _scalars(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags, texts = {}, {}
    for events in folder.rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events.parent), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            tags.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags().get("tensors", []):
            texts[tag] = acc.Tensors(tag)
    return tags, texts


def test_tensorboard_scalars_of_every_stage(tmp_path):
    pytest.importorskip("tensorboard")
    from reasonkd.distill.stages import run_recipe

    teacher, student = build_pair(tmp_path)
    data = write_traces(tmp_path / "traces.jsonl", n=8)
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", teacher, student, data, out, steps=2, save_every=0)
    run_recipe(load_config(DistillRecipe, recipe, ["report_to=[tensorboard]"]), progress=False)
    tags, _ = _scalars(out / "tracking")
    for stage in ("1-feature", "2-logic", "3-output"):
        for key in ("loss", "temperature", "lr", "tok_s"):
            assert len(tags[f"{stage}/{key}"]) == 2, (stage, key, sorted(tags))
        assert any(t.startswith(f"{stage}/terms/") for t in tags), sorted(tags)
        assert f"{stage}/summary/tok_s" in tags
    assert any(t.startswith("2-logic/terms/ce") for t in tags)

    tracking = Tracking(["tensorboard"], tmp_path / "eval_run")
    log_eval_table(
        tracking,
        [
            {"model": "student", "accuracy": 0.25, "latency_ms": 30.5},
            {"model": "distilled", "accuracy": 0.5, "latency_ms": 31.0},
        ],
    )
    tracking.finish()
    tags, texts = _scalars(tmp_path / "eval_run" / "tracking")
    assert tags["eval/distilled/accuracy"][0][1] == 0.5 and "eval/student/latency_ms" in tags
    assert any("eval/table" in t for t in texts)


@pytest.mark.parametrize("name", ["trackio", "wandb"])
def test_missing_tracker_names_the_pip_command(tmp_path, name):
    if _available(name):
        pytest.skip(f"{name} is installed here")
    with pytest.raises(ConfigError, match=f"pip install {name}"):
        Tracking([name], tmp_path)


def test_report_to_is_checked():
    with pytest.raises(ConfigError, match="report_to: unknown tracker 'mlflw'"):
        DistillRecipe(report_to=["mlflw"])
    assert DistillRecipe(report_to="tensorboard").report_to == ["tensorboard"]
