"""Crash-safe output of `reasonkd teacher generate`: committed shards + a request cache.

    OUT/
      run.json          the settings that define this run (checked on resume)
      progress.json     the commit index: every committed shard, its problem ids, rows, sha256
      shards/shard-00000.jsonl   rows of one group of problems (accepted and rejected traces)
      cache/*.jsonl     request cache: every finished teacher request, by request key
      traces.jsonl, negatives.jsonl, stats.json   merged views, rewritten at the end of each run

Commit protocol: a shard file is written to a temp file and renamed (atomic),
then progress.json is rewritten the same way. A problem counts as done only
once progress.json names it, so `kill -9` at any instant leaves either the old
index or the new one: a rerun skips exactly the committed problems and redoes
the rest. A shard file the index does not name (killed between the two
renames) is simply overwritten. Generated completions go to the request cache
as each batch finishes (also one atomic file per batch), so redoing a problem
after a crash costs no teacher time. One run at a time per OUT (a file lock).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Iterator

from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import read_jsonl, sha256_file, write_json, write_jsonl


def _remove_temps(folder: Path) -> None:
    """Temp files of writes that a kill interrupted (atomic_write names them .NAME.*.tmp)."""
    for p in folder.glob(".*.tmp"):
        p.unlink(missing_ok=True)


class RequestCache:
    """Finished teacher requests by key; `put` writes one new file atomically per group."""

    def __init__(self, folder: str | os.PathLike):
        self.dir = Path(folder)
        self.dir.mkdir(parents=True, exist_ok=True)
        _remove_temps(self.dir)
        self._rows: dict[str, dict] = {}
        for f in sorted(self.dir.glob("*.jsonl")):
            for row in read_jsonl(f):
                self._rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def get(self, key: str) -> dict:
        return self._rows[key]

    def keys(self) -> list[str]:
        return list(self._rows)

    def put(self, rows: list[dict]) -> None:
        if not rows:
            return
        digest = hashlib.sha1("".join(r["key"] for r in rows).encode()).hexdigest()[:12]
        write_jsonl(self.dir / f"{time.time_ns()}-{digest}.jsonl", rows)
        for r in rows:
            self._rows[r["key"]] = r


class ShardStore:
    """Committed shards of one output folder, indexed by progress.json."""

    def __init__(self, out_dir: str | os.PathLike):
        self.out = Path(out_dir)
        self.shard_dir = self.out / "shards"
        self.index_path = self.out / "progress.json"
        self.shard_dir.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.out / ".lock", "w")
        try:  # the kernel drops this lock when the process dies, even on kill -9
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise ReasonkdError(
                f"{self.out} is being written by another run; wait for it or use another --out"
            ) from None
        _remove_temps(self.shard_dir)
        _remove_temps(self.out)
        self.index = json.loads(self.index_path.read_text()) if self.index_path.is_file() else {"shards": []}
        self._done: set[str] = set()
        for s in self.index["shards"]:
            path = self.shard_dir / s["name"]
            if not path.is_file() or sha256_file(path) != s["sha256"]:
                raise ReasonkdError(
                    f"{path}: missing or changed since it was committed (progress.json); "
                    f"restore it or start again with a new --out"
                )
            self._done.update(s["ids"])

    def close(self) -> None:
        self._lock.close()

    @property
    def done_ids(self) -> set[str]:
        return set(self._done)

    def check_settings(self, settings: dict, keys: tuple[str, ...]) -> None:
        """Refuse to resume with different generation settings; record them on a fresh folder."""
        path = self.out / "run.json"
        if path.is_file():
            old = json.loads(path.read_text())
            diff = [f"{k}: was {old.get(k)!r}, now {settings.get(k)!r}" for k in keys if old.get(k) != settings.get(k)]
            if diff and self.index["shards"]:
                raise ReasonkdError(
                    f"{self.out} holds a run with other settings ({'; '.join(diff)}); rerun with "
                    "the same settings to resume, or pass a new --out"
                )
        write_json(path, settings)

    def commit(self, rows: list[dict], ids: list[str], info: dict) -> None:
        """Write one shard of `rows` covering problems `ids`, then add it to the index."""
        again = self._done.intersection(ids)
        if again:  # a bug upstream, never expected: refuse rather than duplicate
            raise RuntimeError(f"problems already committed: {sorted(again)[:5]}")
        name = f"shard-{len(self.index['shards']):05d}.jsonl"
        path = self.shard_dir / name
        write_jsonl(path, rows)
        entry = {"name": name, "ids": list(ids), "rows": len(rows), "sha256": sha256_file(path), **info}
        index = {**self.index, "shards": self.index["shards"] + [entry]}
        write_json(self.index_path, index)  # the commit point
        self.index = index
        self._done.update(ids)

    def rows(self) -> Iterator[dict]:
        for s in self.index["shards"]:
            yield from read_jsonl(self.shard_dir / s["name"])

    def totals(self) -> dict:
        """Generated tokens and generation seconds over every committed shard (all runs)."""
        tok = sum(s.get("new_tokens", 0) for s in self.index["shards"])
        sec = sum(s.get("seconds", 0.0) for s in self.index["shards"])
        return {"new_tokens": tok, "seconds": round(sec, 3), "tokens_per_s": round(tok / sec, 2) if sec else None}
