"""One row of an outside dataset as a problem: find its answer, its worked steps and its grader.

    from reasonkd.data.dataset_rows import row_item
    item = row_item(row, {"question": "problem", "solution": "solution"}, "math500", "test", "test", 0, spec)

The answer comes from the answer column (a GSM8K `#### N` field gives the steps too; a `\\boxed{}` inside
gives the answer) or, failing that, the last `\\boxed{}` of the solution. Plain numbers are graded by
`math_numeric`, everything else by `math_latex`. reasonkd.data.external finds the columns and reads the
tables; this module only turns a row into an Item.
"""

from __future__ import annotations

import re

from reasonkd.data.answers import boxed_contents, normalize_number
from reasonkd.data.latex import is_plain_number
from reasonkd.data.schema import Item


def _difficulty(level, steps: list[str]) -> int:
    m = re.search(r"\d+", str(level)) if level is not None else None
    return max(1, min(5, int(m.group()) if m else len(steps) // 3))


def row_item(row: dict, cols: dict, name: str, split: str, split_name: str, index: int, spec: str) -> Item | None:
    """One dataset row as an Item, or None when it has no question or no answer to check against."""
    from reasonkd.data.math_families import fmt
    from reasonkd.data.sources import gsm_steps

    question = row.get(cols["question"])
    if not isinstance(question, str) or not question.strip():
        return None
    raw = row.get(cols["answer"]) if "answer" in cols else None
    solution = row.get(cols["solution"]) if "solution" in cols else None
    steps: list[str] = []
    answer = None
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        answer = str(raw)
    elif isinstance(raw, str) and raw.strip():
        if "####" in raw and (parsed := gsm_steps(raw)):  # a GSM8K answer field: worked steps, then '#### N'
            steps, answer = parsed
        else:
            boxed = boxed_contents(raw)
            answer = boxed[-1] if boxed else raw.strip()
    if answer is None and isinstance(solution, str):
        boxed = boxed_contents(solution)
        answer = boxed[-1] if boxed else None
    if not answer:
        return None
    numeric = is_plain_number(answer) and normalize_number(answer) is not None
    if numeric:
        answer = fmt(normalize_number(answer))
    if isinstance(solution, str) and solution.strip() and not steps:
        steps = [s.strip() for s in solution.strip().splitlines() if s.strip()]
        if not boxed_contents(solution) and "####" not in solution:  # so that it states its answer as ours do
            steps.append(f"#### {answer}" if numeric else f"The answer is $\\boxed{{{answer}}}$.")
    meta = {"dataset": spec, "row": index, "dataset_split": split_name}
    for key in ("type", "subject", "source", "level"):
        if isinstance(row.get(key), (str, int)):
            meta[key] = row[key]
    return Item(
        id=f"{name}-{re.sub(r'[^a-z0-9]+', '', split_name.lower()) or 'split'}-{index:05d}",
        domain="math",
        question=question.strip(),
        answer=answer,
        steps=steps,
        verifier="math_numeric" if numeric else "math_latex",
        split=split,
        source="dataset_import",
        difficulty=_difficulty(row.get("level"), steps),
        template=name,
        meta=meta,
    )
