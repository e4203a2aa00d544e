"""`kill -9` in the middle of stage 2, then `--resume`, finishes with the same step
count and a final loss within 1e-4 of an uninterrupted run with the same seed.

The run is the real command (`reasonkd distill RECIPE`) in a subprocess, slowed by tests/run_with_hooks.py
(--step-delay) so the kill reliably lands in stage 2 after its first checkpoint.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _tiny_distill import SUBPROCESS_ENV, metric_rows, one_thread, reference_parts, reference_run, summary, write_recipe
from reasonkd.distill.checkpoint import latest_checkpoint

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


HOOKS = Path(__file__).resolve().parents[1] / "run_with_hooks.py"


def _cmd(recipe, *extra, hooks=()):
    if hooks:  # the same command with test hooks (here: a slower step)
        return [sys.executable, str(HOOKS), *hooks, "--", "distill", str(recipe), "--quiet", *extra]
    return [sys.executable, "-m", "reasonkd.cli", "distill", str(recipe), "--quiet", *extra]


def test_kill9_in_stage2_then_resume_matches_uninterrupted(tmp_path_factory, tmp_path):
    ref = reference_run(tmp_path_factory)
    parts = reference_parts()
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", parts["teacher"], parts["student"], parts["data"], out)
    env = {**os.environ, **SUBPROCESS_ENV, "REASONKD_HOME": str(tmp_path / "home")}
    stage2 = out / "stages" / "2-logic"
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen(
            _cmd(recipe, hooks=("--step-delay", "0.1")), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + 120
        while latest_checkpoint(stage2) is None:
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.time() < deadline, "no stage-2 checkpoint within 120 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert (out / "stages" / "1-feature" / "done.json").is_file()
    assert not (stage2 / "done.json").is_file(), "the kill landed after stage 2 finished"
    killed_at = len(metric_rows(out, "2-logic"))
    assert 5 <= killed_at < 20

    done = subprocess.run(_cmd(recipe, "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    a, b = summary(ref), summary(out)
    assert a["total"]["steps"] == b["total"]["steps"] == 60
    assert abs(a["total"]["final_loss"] - b["total"]["final_loss"]) < 1e-4
    assert [r["step"] for r in metric_rows(out, "2-logic")] == list(range(1, 21))
    for x, y in zip(metric_rows(ref, "2-logic"), metric_rows(out, "2-logic")):
        assert abs(x["loss"] - y["loss"]) < 1e-4
