"""Eval sets for recipes/compare/unseen.yaml: the lead's problems as dev, fresh problems as held-out.

    reasonkd data build recipes/compare/unseen-data.yaml --out runs/unseen-data
    python benchmarks/unseen_sets.py --data runs/unseen-data --lead runs/robustness-data \
        --exclude runs/demo/data --out runs/unseen-data

- dev.jsonl: the test-split originals of --lead (the problems on which the lead was found, BENCHMARKS.md
  "Robustness"); the choice of arm was made there, so `reasonkd compare` does not rerun it;
- heldout.jsonl: the first --n test-split originals of --data in a stable hash order of ids, leaving out
  any question that appears word for word in --lead, an --exclude dataset or earlier in the set. Their ids
  get --prefix: a fresh build numbers its problems as the lead's build does (math-zoo_tickets-00001, ...),
  and `reasonkd compare` refuses an id in both sets.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path
import sys

from reasonkd.data.load import load_items
from reasonkd.utils.io import write_jsonl


def originals(folder: Path) -> list[dict]:
    return [r for r in load_items(folder, split="test") if r.get("kind") == "original"]


def fresh(rows: list[dict], avoid: set[str], n: int, prefix: str) -> list[dict]:
    """The first n rows in sha256(id) order whose question is not in `avoid` nor repeated, ids prefixed."""
    out, seen = [], set(avoid)
    for row in sorted(rows, key=lambda r: hashlib.sha256(r["id"].encode()).hexdigest()):
        if row["question"] not in seen:
            seen.add(row["question"])
            out.append({**row, "id": prefix + row["id"]})
    if len(out) < n:
        sys.exit(f"--data: {len(out)} fresh originals, fewer than --n {n}; raise math.per_family")
    return out[:n]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="the fresh build (its test split)")
    ap.add_argument("--lead", type=Path, required=True, help="the build the lead was found on -> dev.jsonl")
    ap.add_argument("--exclude", type=Path, action="append", default=[], help="more builds to avoid")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--prefix", default="seed1-")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    dev = originals(args.lead)
    avoid = {r["question"] for folder in [args.lead, *args.exclude] for r in load_items(folder)}
    held = fresh(originals(args.data), avoid, args.n, args.prefix)
    args.out.mkdir(parents=True, exist_ok=True)
    write_jsonl(args.out / "dev.jsonl", dev)
    write_jsonl(args.out / "heldout.jsonl", held)
    print(f"dev {len(dev)} (the lead's problems), heldout {len(held)} fresh -> {args.out}")


if __name__ == "__main__":
    main()
