"""`kill -9` in the middle of a cross-tokenizer on_policy stage, then `--resume`: the resumed run samples
exactly the completions an uninterrupted run samples (same digest per step) and computes the same losses.

The run is the real command (`reasonkd distill RECIPE`) in a subprocess, slowed by tests/run_with_hooks.py
(--step-delay) so the kill lands after the stage's first checkpoint and before its end.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reasonkd.distill.checkpoint import latest_checkpoint
from tests.distill._tiny_distill import ONPOLICY_HEAD, SUBPROCESS_ENV, one_thread, write_traces

_one_thread = pytest.fixture(scope="module", autouse=True)(one_thread)
HOOKS = Path(__file__).resolve().parents[1] / "run_with_hooks.py"
STEPS = 8
RECIPE = (
    ONPOLICY_HEAD
    + """\
  - name: on_policy
    kind: on_policy
    steps: {steps}
    lr: 0.003
    rollout: {{fraction: 0.75, max_new_tokens: 12, temperature: 1.0}}
"""
)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "stages" / "1-on_policy" / "metrics.jsonl").read_text().splitlines()]


def _cmd(recipe, *extra, hooks=()):
    return [sys.executable, str(HOOKS), *hooks, "--", "distill", str(recipe), "--quiet", *extra]


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_kill9_mid_on_policy_stage_then_resume_samples_the_same_completions(tmp_path, tiny_llama_dir, tiny_qwen_dir):
    from reasonkd.distill.stages import run_recipe

    data = write_traces(tmp_path / "traces.jsonl", n=8)
    recipes = {}
    for name in ("ref", "killed"):
        recipes[name] = tmp_path / f"{name}.yaml"
        recipes[name].write_text(
            RECIPE.format(student=tiny_llama_dir, teacher=tiny_qwen_dir, data=data, out=tmp_path / name, steps=STEPS)
        )
    run_recipe(recipes["ref"], progress=False)  # uninterrupted, in this process

    out = tmp_path / "killed"
    stage = out / "stages" / "1-on_policy"
    env = {**os.environ, **SUBPROCESS_ENV, "REASONKD_HOME": str(tmp_path / "home")}
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen(
            _cmd(recipes["killed"], hooks=("--step-delay", "0.3")), env=env, stdout=log, stderr=subprocess.STDOUT
        )
        deadline = time.time() + 180
        while latest_checkpoint(stage) is None:
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.time() < deadline, "no on_policy checkpoint within 180 s"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (stage / "done.json").is_file(), "the kill landed after the stage finished"
    killed_at = len(_rows(out))
    assert 2 <= killed_at < STEPS

    done = subprocess.run(_cmd(recipes["killed"], "--resume"), env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ref, resumed = _rows(tmp_path / "ref"), _rows(out)
    assert [r["step"] for r in resumed] == list(range(1, STEPS + 1))
    # fraction 0.75: the on/off-policy draws and the samples themselves repeat after the resume
    assert [r["on_policy_share"] for r in resumed] == [r["on_policy_share"] for r in ref]
    assert 0 < sum(r["on_policy_share"] for r in ref) < STEPS
    assert [r.get("rollout_sha") for r in resumed] == [r.get("rollout_sha") for r in ref]
    for x, y in zip(ref, resumed):
        assert abs(x["loss"] - y["loss"]) < 1e-4
        assert x.get("mean_length") == y.get("mean_length") and x.get("eos_rate") == y.get("eos_rate")
