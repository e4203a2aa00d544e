"""FSDP (recipes/accelerate/fsdp.yaml: FSDP2 full shard, one unit per decoder layer, teacher replicated) on
2 CPU processes over gloo, tiny models:

- the loss curve equals a 1-process run that sees the same data per optimizer step (grad_accum=2);
- a checkpoint written under FSDP holds full tensors and resumes on another process count (1), and a
  1-process checkpoint resumes under FSDP on 2 processes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from _tiny_distill import SUBPROCESS_ENV, build_pair, metric_rows, one_thread, summary, write_recipe, write_traces

ROOT = Path(__file__).resolve().parents[2]
_one_thread = pytest.fixture(autouse=True)(one_thread)


def _launch(args, env, processes=2, hooks=()):
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    cmd = [
        accelerate,
        "launch",
        "--config_file",
        str(ROOT / "recipes" / "accelerate" / "fsdp.yaml"),
        "--num_processes",
        str(processes),
        "--mixed_precision",
        "no",
        "--main_process_port",
        "29523",
        "--num_cpu_threads_per_process",
        "1",
        str(ROOT / "tests" / "run_with_hooks.py"),
        *hooks,
        "--",
        "distill",
        *args,
        "--quiet",
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fsdp_two_processes_matches_one_and_resumes_on_one(tmp_path):
    from safetensors.torch import load_file

    from reasonkd.config import load_config
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.distill.stages import run_recipe

    teacher, student = build_pair(tmp_path)
    data = write_traces(tmp_path / "traces.jsonl")  # 24 traces = 6 batches of 4: 3 per process per epoch
    out = tmp_path / "fsdp"
    recipe = write_recipe(tmp_path / "r.yaml", teacher, student, data, out, steps=3, save_every=2)
    env = {**os.environ, **SUBPROCESS_ENV, "REASONKD_HOME": str(tmp_path / "home")}
    # stage 1 (3 steps), then stop at stage 2's step-2 checkpoint
    done = _launch([str(recipe)], env, hooks=("--stop-after", "5"))
    assert done.returncode != 0 and "stopped on request after step 2 of stage logic" in done.stderr, done.stderr[-4000:]
    assert "FSDP2 on CPU processes" in done.stderr  # the sharded path ran, not a DDP fallback

    # 1 process, 2 micro-batches per step = the same 8 examples per optimizer step as 2 x 4
    ref = run_recipe(
        load_config(DistillRecipe, recipe, [f"output_dir={tmp_path / 'one'}", "grad_accum=2"]), progress=False
    ).parent
    for stage, n in (("1-feature", 3), ("2-logic", 2)):
        got, want = metric_rows(out, stage), metric_rows(ref, stage)[:n]
        assert len(got) == n
        print(stage, "fsdp x2:", [round(g["loss"], 6) for g in got], "1 process:", [round(w["loss"], 6) for w in want])
        for g, w in zip(got, want):
            assert g["loss"] == pytest.approx(w["loss"], rel=1e-3, abs=1e-5), (stage, g, w)
            assert g["tokens"] == w["tokens"]  # both ranks' batches counted: the same data as grad_accum=2

    ckpt = out / "stages" / "2-logic" / "checkpoints" / "step-000002"
    state = json.loads((ckpt / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == 2
    weights = load_file(str(ckpt / "trainable.safetensors"))  # gathered: full shapes, not shards
    embed = next(v for k, v in weights.items() if k.endswith("embed_tokens.weight"))
    assert embed.shape[1] == 64 and embed.shape[0] > 100

    resumed = subprocess.run(
        [sys.executable, "-m", "reasonkd.cli", "distill", str(recipe), "--resume", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )  # one process, no FSDP
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert "written by 2 processes, resuming on 1" in resumed.stderr
    s = summary(out)
    assert s["total"]["steps"] == 9 and s["total"]["world_size"] == 1
    rows = metric_rows(out, "2-logic")
    assert [r["step"] for r in rows] == [1, 2, 3]
    # the resumed step continues from the FSDP weights: its loss is near the reference's, far from a restart
    assert rows[2]["loss"] == pytest.approx(metric_rows(ref, "2-logic")[2]["loss"], rel=0.2)
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(out / "final")

    # the other direction: a 1-process checkpoint loads into the sharded model and optimizer on 2 processes
    from reasonkd.distill.trainer import StopRequested

    out2 = tmp_path / "one-then-fsdp"
    recipe2 = write_recipe(tmp_path / "r2.yaml", teacher, student, data, out2, steps=3, save_every=2)
    with pytest.raises(StopRequested):
        run_recipe(load_config(DistillRecipe, recipe2), stop_after=2, progress=False)
    done2 = _launch([str(recipe2), "--resume"], env)
    assert done2.returncode == 0, done2.stderr[-4000:]
    assert "written by 1 processes, resuming on 2" in done2.stderr
    assert summary(out2)["total"]["world_size"] == 2 and summary(out2)["total"]["steps"] == 9
    assert [r["step"] for r in metric_rows(out2, "1-feature")] == [1, 2, 3]
