"""External math sources: reasoning-gym `gsm_symbolic` and official GSM8K JSONL files.

    items = gsm_symbolic_items(n=300, seed=0)                       # offline, procedural
    items = import_gsm8k("gsm8k/test.jsonl", split="test")          # {"question", "answer": "... #### N"}

reasoning-gym's gsm_symbolic draws from ~80 GSM8K-derived templates; the
template index becomes the item's `template` ("gsm_symbolic_07") so the
held-out-template split works for it too.
"""

from __future__ import annotations

import re
from pathlib import Path

from reasonkd.data.schema import Item
from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import iter_jsonl

_CALC = re.compile(r"<<[^<>]*>>")  # GSM8K calculator annotations: 48/2=<<48/2=24>>24


def gsm_steps(answer_field: str) -> tuple[list[str], str] | None:
    """(steps ending '#### N', N) from a GSM8K answer field, or None without '#### N'."""
    from reasonkd.data.math_families import fmt
    from reasonkd.data.verify import extract_answer, normalize_number

    final = extract_answer(answer_field, "strict")
    value = normalize_number(final) if final is not None else None
    if value is None:
        return None
    body = answer_field.rsplit("####", 1)[0]
    steps = [_CALC.sub("", s).strip() for s in body.splitlines() if s.strip()]
    return steps + [f"#### {fmt(value)}"], fmt(value)


def gsm_symbolic_items(n: int, seed: int, split_of=None) -> list[Item]:
    """`n` reasoning-gym gsm_symbolic problems as Items (template = generator index)."""
    if n <= 0:
        return []
    import reasoning_gym

    from reasonkd.data.verify import normalize_number

    ds = reasoning_gym.create_dataset("gsm_symbolic", size=n, seed=seed)
    items = []
    for i in range(n):
        ex = ds[i]
        parsed = gsm_steps(ex["metadata"]["answer_cot"])
        if parsed is None:
            continue
        steps, answer = parsed
        if normalize_number(ex["answer"]) != normalize_number(answer):
            continue  # the worked solution and the stated answer disagree: skip it
        tid = int(ds.task_indices[i])
        items.append(
            Item(
                id=f"gsmsym-{tid:02d}-{i:05d}",
                domain="math",
                question=ex["question"],
                answer=answer,
                steps=steps,
                verifier="math_numeric",
                source="reasoning_gym",
                seed=seed + i,
                difficulty=max(1, min(5, len(steps) // 3)),
                template=f"gsm_symbolic_{tid:02d}",
                meta={
                    "variables": {
                        k: v for k, v in ex["metadata"]["variables"].items() if isinstance(v, (int, float, str))
                    }
                },
            )
        )
    return items


def read_gsm8k(path: str | Path) -> list[tuple[int, str, str]]:
    """(line number, question, answer field) rows; any bad line raises naming file:line."""
    path = Path(path)
    if not path.is_file():
        raise ReasonkdError(f"{path}: GSM8K file not found (expected JSONL with 'question' and 'answer')")
    rows = []
    for lineno, row in iter_jsonl(path, allow_empty=False, what="GSM8K JSONL file"):  # binary / truncated: one error
        if not isinstance(row.get("question"), str) or not isinstance(row.get("answer"), str):
            raise ReasonkdError(f"{path}:{lineno}: needs string fields 'question' and 'answer' (GSM8K format)")
        if gsm_steps(row["answer"]) is None:
            raise ReasonkdError(
                f"{path}:{lineno}: 'answer' must end with '#### N' (a number), got {row['answer'][-40:]!r}"
            )
        rows.append((lineno, row["question"], row["answer"]))
    return rows


def import_gsm8k(path: str | Path, split: str = "train", name: str = "gsm8k", seed: int = 0) -> list[Item]:
    """Items from an official-format GSM8K JSONL file (all rows validated before any is used)."""
    items = []
    for lineno, question, answer_field in read_gsm8k(path):
        steps, answer = gsm_steps(answer_field)
        items.append(
            Item(
                id=f"{name}-{lineno:05d}",
                domain="math",
                question=question.strip(),
                answer=answer,
                steps=steps,
                verifier="math_numeric",
                split=split,
                source="gsm8k_import",
                seed=seed,
                difficulty=max(1, min(5, len(steps) - 1)),
                template=name,
                meta={"file": str(path), "line": lineno},
            )
        )
    return items
