"""kill -9 in the middle of `reasonkd teacher generate`, twice, then rerun: every problem exactly once."""

import pytest
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

from reasonkd.utils.io import read_jsonl

N = 48


def _committed(out) -> int:
    try:
        return len(json.loads((out / "progress.json").read_text())["shards"])
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def _run_and_kill(cmd, out, env, after_shards: int, extra_delay: float) -> int:
    """Start the command, SIGKILL it once `after_shards` shards are committed (+ a delay); return
    how many shards were committed at the kill."""
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _committed(out) < after_shards:
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.monotonic() < deadline, "no shard committed in 120 s"
        time.sleep(0.005)
    time.sleep(extra_delay)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    return _committed(out)


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_sigkill_mid_run_then_rerun(tmp_path, tiny_llama_dir):
    data = tmp_path / "items.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {
                    "id": f"m-{i:03d}",
                    "domain": "math",
                    "question": f"What is {i} + 1?",
                    "answer": str(i + 1),
                    "verifier": "math_numeric",
                    "kind": "original",
                    "split": "train",
                    "difficulty": 1 + i % 3,
                }
            )
            + "\n"
            for i in range(N)
        )
    )
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        "-m",
        "reasonkd.cli",
        "teacher",
        "generate",
        "--teacher",
        str(tiny_llama_dir),
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-new-tokens",
        "48",
        "--batch-size",
        "2",
        "--shard-size",
        "4",
        "--dtype",
        "float32",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    total_shards = N // 4

    first = _run_and_kill(cmd, out, env, after_shards=1, extra_delay=0.0)  # right after a commit
    assert 1 <= first < total_shards, "the run finished before it could be killed"
    assert not (out / "traces.jsonl").exists() and not (out / "negatives.jsonl").exists()
    second = _run_and_kill(cmd, out, env, after_shards=first + 1, extra_delay=0.05)  # mid-batch
    assert first < second < total_shards, "the rerun finished before it could be killed"

    subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=300)
    rows = read_jsonl(out / "traces.jsonl") + read_jsonl(out / "negatives.jsonl")
    ids = Counter(r["id"] for r in rows)
    assert len(rows) == N and set(ids) == {f"m-{i:03d}" for i in range(N)} and max(ids.values()) == 1
    shards = json.loads((out / "progress.json").read_text())["shards"]
    committed = [i for s in shards for i in s["ids"]]
    assert len(committed) == len(set(committed)) == N
    stats = json.loads((out / "stats.json").read_text())
    assert stats["overall"]["problems"] == N and stats["overall"]["samples"] == N
    assert not list(out.rglob(".*.tmp"))  # temp files of the killed writes are gone
