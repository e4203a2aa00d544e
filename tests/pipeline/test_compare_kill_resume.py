"""`kill -9` in the middle of `reasonkd compare` (an arm half trained), then the same command again: the
rerun continues the arm from its checkpoint and ends with what an uninterrupted run gives (the same
per-step losses, the same verdicts). The arm trains in a child process (`isolate`, the default), which the
kill takes down with its parent. Each phase of an experiment (scripts/qwen_pair.sh) is this command
or `teacher generate` (tests/teacher/test_kill_resume.py) or an evaluation (tests/eval/test_eval_resume.py)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from reasonkd.distill.checkpoint import latest_checkpoint

HOOKS = Path(__file__).resolve().parents[1] / "run_with_hooks.py"
ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}


def _losses(out: Path) -> list[float]:
    return [
        json.loads(x)["loss"]
        for f in sorted(out.glob("arms/*/seed-0/stages/*/metrics.jsonl"))
        for x in f.read_text().splitlines()
    ]


@pytest.mark.slow  # ~1 min on 2 cores: runs in the slow step (make test-slow)
def test_kill9_mid_arm_then_rerun_gives_the_uninterrupted_result(setup, tmp_path):

    _, _, arms = setup
    paths = {}
    for name in ("ref", "killed"):
        cfg = dict(arms, out=str(tmp_path / name), steps=6, seeds=[0], recipe={**arms["recipe"], "save_every": 2})
        cfg["isolate"] = True  # the default: each arm-seed trains in a child process, which dies with the parent
        paths[name] = tmp_path / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(cfg))
    stage = tmp_path / "killed" / "arms" / "sft" / "seed-0" / "stages" / "1-sft"
    cmd = [sys.executable, str(HOOKS), "--step-delay", "0.4", "--", "compare", str(paths["killed"])]
    env = {**os.environ, **ENV}
    # the uninterrupted run in a process like the killed one's (same thread count: a reduction split over
    # another number of threads may round differently in the last bit, on CPUs with AMX for one)
    ref = subprocess.run(cmd[:2] + ["compare", str(paths["ref"])], env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr[-3000:]
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + 240
        while latest_checkpoint(stage) is None:
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
            assert time.time() < deadline, "no checkpoint within 240 s"
            time.sleep(0.02)
        kids = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(kids, timeout=20)
        assert kids and alive == [], "the arm's process trains on after its parent was killed"
    assert not (stage / "done.json").is_file(), "the kill landed after the arm's stage finished"
    done = subprocess.run(cmd[:2] + cmd[4:], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _losses(tmp_path / "killed") == _losses(tmp_path / "ref") and len(_losses(tmp_path / "ref")) == 12
    ref, killed = (json.loads((tmp_path / n / "compare.json").read_text())["splits"]["dev"] for n in ("ref", "killed"))
    assert [(a["arm"], a["per_seed"]["0"]["accuracy"]) for a in killed["arms"]] == [
        (a["arm"], a["per_seed"]["0"]["accuracy"]) for a in ref["arms"]
    ]
    for arm in ("sft", "kd"):
        verdicts = [
            json.loads((tmp_path / n / "arms" / arm / "seed-0" / "eval-dev.json").read_text())["verdicts"]
            for n in ("ref", "killed")
        ]
        assert verdicts[0] == verdicts[1]
