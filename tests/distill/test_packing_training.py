"""Training on packed rows (data.packing: true): the same per-step losses as padded rows, and exact resume.

Tiny fp32 pair, a logic stage (ce + forward_kl to the online teacher) and an output stage (kd). The
packed run's losses match the padded run's step for step (same examples per micro-batch; only the
summation order differs), and `kill -9` mid-stage then `--resume` repeats the uninterrupted packed run.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _tiny_distill import (
    SUBPROCESS_ENV,
    build_pair,
    metric_rows,
    one_thread,
    write_traces,
)

import reasonkd
from reasonkd.distill.checkpoint import latest_checkpoint

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
HOOKS = Path(__file__).resolve().parents[1] / "run_with_hooks.py"

RECIPE = """\
student: {student}
teacher: {teacher}
data: {{path: {data}, packing: {packing}, pack_length: 160}}
output_dir: {out}
bf16_autocast: false
teacher_dtype: float32
max_length: 96
batch_size: 4
save_every: 2
chunk_rows: 32
stages:
  - {{name: logic, kind: logic, steps: 8, lr: 0.003, warmup: 1, lr_schedule: constant}}
  - {{name: output, kind: output, steps: 8, lr: 0.003, warmup: 1, lr_schedule: constant}}
"""


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    root = tmp_path_factory.mktemp("packing_train")
    teacher, student = build_pair(root)
    return {"teacher": teacher, "student": student, "data": write_traces(root / "traces.jsonl")}


def _recipe(path: Path, parts: dict, out: Path, packing: bool) -> Path:
    path.write_text(RECIPE.format(**parts, out=out, packing=str(packing).lower()))
    return path


@pytest.fixture(scope="module")
def packed_run(parts, tmp_path_factory):
    from reasonkd.distill.stages import run_recipe

    root = tmp_path_factory.mktemp("packed_ref")
    run_recipe(_recipe(root / "r.yaml", parts, root / "run", True), progress=False)
    return root / "run"


def test_packed_training_matches_padded_step_for_step(parts, packed_run, tmp_path):
    from reasonkd.distill.stages import run_recipe

    run_recipe(_recipe(tmp_path / "r.yaml", parts, tmp_path / "run", False), progress=False)
    for stage in ("1-logic", "2-output"):
        padded, packed = metric_rows(tmp_path / "run", stage), metric_rows(packed_run, stage)
        assert len(padded) == len(packed) == 8
        for a, b in zip(padded, packed):
            assert a["tokens"] == b["tokens"] and a["trace_tokens"] == b["trace_tokens"]
            assert abs(a["loss"] - b["loss"]) <= 1e-5 * max(1.0, abs(a["loss"])), (stage, a["step"])


def test_kill9_mid_stage_then_resume_repeats_the_packed_run(parts, packed_run, tmp_path):
    out = tmp_path / "run"
    recipe = _recipe(tmp_path / "r.yaml", parts, out, True)
    # the subprocess imports the reasonkd this test imported (not another installed copy)
    env = {
        **os.environ,
        **SUBPROCESS_ENV,
        "REASONKD_HOME": str(tmp_path / "home"),
        "PYTHONPATH": os.pathsep.join([str(Path(reasonkd.__file__).parents[1]), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [sys.executable, str(HOOKS), "--step-delay", "0.3", "--", "distill", str(recipe), "--quiet"]
    stage2 = out / "stages" / "2-output"
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while latest_checkpoint(stage2) is None:
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.time() < deadline, "no stage-2 checkpoint within 240 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (stage2 / "done.json").is_file(), "the kill landed after stage 2 finished"
    done = subprocess.run(
        [sys.executable, "-m", "reasonkd.cli", "distill", str(recipe), "--quiet", "--resume"],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in ("1-logic", "2-output"):
        resumed, ref = metric_rows(out, stage), metric_rows(packed_run, stage)
        assert [r["step"] for r in resumed] == list(range(1, 9))
        for a, b in zip(resumed, ref):
            assert abs(a["loss"] - b["loss"]) < 1e-6 and a["tokens"] == b["tokens"]
    assert json.loads((stage2 / "done.json").read_text())["steps"] == 8
