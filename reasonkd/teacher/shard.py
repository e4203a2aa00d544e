"""Teacher generation split over processes or machines: `--shard i/n`, then `reasonkd teacher merge`.

    reasonkd teacher generate --teacher M --data D --out runs/traces --shard 0/2   # on machine / GPU 0
    reasonkd teacher generate --teacher M --data D --out runs/traces --shard 1/2   # on machine / GPU 1
    reasonkd teacher merge --out runs/traces        # -> runs/traces/traces.jsonl, negatives.jsonl, stats.json

Shard i of n holds the problems at positions i, i + n, i + 2n, ... of the selected problems sorted by
the SHA-1 of their id: deterministic (the same on every machine, whatever the file order), balanced to
one problem, and independent of the engine. Each shard writes an ordinary resumable `teacher generate`
folder, OUT/shard-i-of-n/; rerun the same command to resume it. `merge` checks that all n shards
are complete, keeps each (problem id, sample index) once, and recomputes the statistics.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.stats import compute_stats
from reasonkd.utils.io import read_jsonl, write_json, write_jsonl

SPEC = re.compile(r"^(\d+)/(\d+)$")
FOLDER = re.compile(r"^shard-(\d+)-of-(\d+)$")


def parse_shard(spec: str) -> tuple[int, int]:
    """'i/n' -> (i, n), with 0 <= i < n."""
    m = SPEC.match(spec.strip())
    if not m or not int(m.group(1)) < int(m.group(2)):
        raise ReasonkdError(f"--shard {spec!r}: expected i/n with 0 <= i < n, e.g. --shard 0/4")
    return int(m.group(1)), int(m.group(2))


def shard_items(items: list[dict], spec: str) -> list[dict]:
    """The problems of shard `spec` ('i/n'): every n-th of the id-hash order, starting at i."""
    i, n = parse_shard(spec)
    ordered = sorted(items, key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())
    mine = ordered[i::n]
    if not mine:
        raise ReasonkdError(f"--shard {spec}: {len(items)} problems leave shard {i} of {n} empty; use fewer shards")
    return mine


def shard_dir(out: str | Path, spec: str) -> Path:
    i, n = parse_shard(spec)
    return Path(out) / f"shard-{i}-of-{n}"


def _shard_folders(out: Path) -> tuple[int, list[Path]]:
    found = {}
    for p in sorted(out.glob("shard-*-of-*")):
        m = FOLDER.match(p.name)
        if m and p.is_dir():
            found[(int(m.group(1)), int(m.group(2)))] = p
    counts = {n for _, n in found}
    if not found:
        raise ReasonkdError(
            f"{out}: no shard-i-of-n folders; run `reasonkd teacher generate ... --out {out} --shard i/n` first"
        )
    if len(counts) > 1:
        raise ReasonkdError(f"{out}: shard folders of different splits ({sorted(counts)}); keep one n")
    n = counts.pop()
    missing = [i for i in range(n) if (i, n) not in found]
    if missing:
        raise ReasonkdError(f"{out}: shards {missing} of {n} are missing; run them with --shard i/{n}")
    unfinished = [found[(i, n)].name for i in range(n) if not (found[(i, n)] / "stats.json").is_file()]
    if unfinished:
        raise ReasonkdError(f"{out}: {', '.join(unfinished)} not finished; rerun their generate command (it resumes)")
    return n, [found[(i, n)] for i in range(n)]


def merge_shards(out: str | Path) -> dict:
    """Merge OUT/shard-*-of-n into OUT/traces.jsonl, negatives.jsonl and stats.json; returns the stats."""
    out = Path(out)
    n, folders = _shard_folders(out)
    seen: set[tuple[str, int]] = set()
    traces, negatives, rows, duplicates = [], [], [], 0
    generation = {"new_tokens": 0, "seconds": 0.0}
    teacher, settings = None, None
    for folder in folders:
        stats = json.loads((folder / "stats.json").read_text(encoding="utf-8"))
        if teacher is not None and stats.get("teacher") != teacher:
            raise ReasonkdError(
                f"{folder}: teacher {stats.get('teacher')!r} differs from the other shards' "
                f"{teacher!r}; merge shards of one run"
            )
        teacher, settings = stats.get("teacher"), stats.get("settings")
        for key in generation:
            generation[key] += (stats.get("generation") or {}).get(key) or 0
        for name, accepted, dest in (("traces.jsonl", True, traces), ("negatives.jsonl", False, negatives)):
            for r in read_jsonl(folder / name):
                key = (r["id"], r.get("sample_idx", 0))
                if key in seen:
                    duplicates += 1
                    continue
                seen.add(key)
                dest.append(r)
                rows.append({**r, "accepted": accepted, "error_type": None if accepted else r.get("error_type")})
    write_jsonl(out / "traces.jsonl", traces)
    write_jsonl(out / "negatives.jsonl", negatives)
    seconds = generation["seconds"]
    generation.update(
        seconds=round(seconds, 2), tokens_per_s=round(generation["new_tokens"] / seconds, 1) if seconds else None
    )
    merged = {
        "teacher": teacher,
        **compute_stats(rows),
        "generation": generation,
        "settings": settings,
        "merged": {"shards": n, "folders": [f.name for f in folders], "duplicates_dropped": duplicates},
    }
    write_json(out / "stats.json", merged)
    return merged
