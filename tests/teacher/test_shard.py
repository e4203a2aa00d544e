"""`teacher generate --shard i/n` in 2 concurrent local processes (hf engine, tiny model), then `teacher merge`:
the merged folder holds every problem exactly once and the same traces as one unsharded run."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.shard import merge_shards, parse_shard, shard_items
from reasonkd.utils.io import read_jsonl

N = 10


def _items(n=N):
    return [
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
        for i in range(n)
    ]


def test_shards_partition_deterministically():
    items = _items(11)
    parts = [shard_items(items, f"{i}/3") for i in range(3)]
    ids = [r["id"] for p in parts for r in p]
    assert sorted(ids) == sorted(r["id"] for r in items) and len(set(ids)) == 11
    assert sorted(len(p) for p in parts) == [3, 4, 4]
    assert [r["id"] for r in shard_items(list(reversed(items)), "1/3")] == [r["id"] for r in parts[1]]
    for bad in ("2/2", "1", "a/b", "-1/2"):
        with pytest.raises(ReasonkdError, match="--shard"):
            parse_shard(bad)


def test_two_processes_then_merge(tmp_path, tiny_llama_dir):
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in _items()))
    out = tmp_path / "run"
    base = [
        sys.executable,
        "-m",
        "reasonkd.cli",
        "teacher",
        "generate",
        "--teacher",
        str(tiny_llama_dir),
        "--data",
        str(data),
        "--max-new-tokens",
        "12",
        "--batch-size",
        "1",
        "--shard-size",
        "2",
        "--dtype",
        "float32",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    procs = [
        subprocess.Popen(
            base + ["--out", str(out), "--shard", f"{i}/2"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err[-3000:]
    with pytest.raises(ReasonkdError, match="different splits"):  # a shard of another split is refused
        (out / "shard-0-of-3").mkdir()
        merge_shards(out)
    (out / "shard-0-of-3").rmdir()
    merged = subprocess.run(
        [sys.executable, "-m", "reasonkd.cli", "teacher", "merge", "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert merged.returncode == 0, merged.stderr[-3000:]
    rows = read_jsonl(out / "traces.jsonl") + read_jsonl(out / "negatives.jsonl")
    ids = Counter(r["id"] for r in rows)
    assert set(ids) == {r["id"] for r in _items()} and max(ids.values()) == 1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["overall"]["problems"] == N and stats["merged"]["shards"] == 2
    # a rerun of a finished shard resumes (nothing to do) and merging twice changes nothing
    again = subprocess.run(
        base + ["--out", str(out), "--shard", "0/2"], env=env, capture_output=True, text=True, timeout=240
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert merge_shards(out)["overall"] == stats["overall"]

    from reasonkd.teacher.generate import GenerateSettings, generate_traces  # the same job in one process

    one = tmp_path / "one"
    generate_traces(
        GenerateSettings(
            teacher=str(tiny_llama_dir),
            data=str(data),
            out=str(one),
            max_new_tokens=12,
            batch_size=1,
            dtype="float32",
            progress=False,
        )
    )
    key = lambda r: (r["id"], r["sample_idx"], r["trace"])  # noqa: E731
    single = read_jsonl(one / "traces.jsonl") + read_jsonl(one / "negatives.jsonl")
    assert sorted(map(key, rows)) == sorted(map(key, single))
