"""scripts/gpu_check.sh: without a GPU it stops at once with a clear message (exit 2); --dry-run lists
the steps it runs on a GPU machine (the vLLM teacher, the CUDA distillation smoke run, the demo timing)."""

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.sh"


def _run(tmp_path, *args):
    env = {**os.environ, "OUT": str(tmp_path / "gc")}
    return subprocess.run(
        ["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120, cwd=SCRIPT.parents[1]
    )


def test_no_gpu_exits_with_a_clear_message(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is present: the script would run for real")
    done = _run(tmp_path)
    assert done.returncode == 2 and "no CUDA GPU visible to torch" in done.stderr, done.stderr
    assert not (tmp_path / "gc").exists()  # nothing run, nothing written


def test_dry_run_lists_every_step(tmp_path):
    done = _run(tmp_path, "--dry-run")
    assert done.returncode == 0, done.stderr
    for step in ("teacher generate --backend vllm", "distill", "demo --quick", "device=cuda"):
        assert step in done.stdout
    table = (tmp_path / "gc" / "summary.md").read_text()
    assert "| step | status | seconds | result |" in table
    assert [line.split("|")[1].strip() for line in table.splitlines() if "dry-run" in line] == [
        "data",
        "teacher-vllm",
        "teacher-hf-cuda",
        "distill-cuda",
        "demo-quick-cuda",
    ]
    recipe = tmp_path / "gc" / "distill.yaml"  # the smoke run's recipe loads as a DistillRecipe
    from reasonkd.config import load_config
    from reasonkd.distill.recipe import DistillRecipe

    r = load_config(DistillRecipe, recipe)
    assert r.device == "cuda" and r.student == "smollm2-135m" and r.report_to == ["tensorboard"]
