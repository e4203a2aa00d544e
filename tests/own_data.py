"""Small datasets in the public schemas, written by the tests: GSM8K (JSONL folder), MATH (Parquet folder),
OpenR1-Math (a save_to_disk folder). Each has a train split with teacher traces in that dataset's format and
the dataset's own verdicts, and a test split of 5 other problems.

    spec, info = write_dataset("math", tmp_path)   # spec for --data; info: traces / correct columns, verdicts
"""

from __future__ import annotations

import json
from pathlib import Path

# (question, answer, a right trace, a wrong trace); the wrong one is flagged right by the "dataset" in one row,
# so that the dataset's verdict and ours disagree somewhere.
_NUMERIC = [
    ("Tom has {a} apples and buys {b} more. How many apples does he have?", lambda a, b: a + b),
    ("A box holds {a} pens. How many pens are in {b} boxes?", lambda a, b: a * b),
]
_LATEX = [
    (
        "What is $\\frac{{1}}{{{a}}} + \\frac{{1}}{{{b}}}$? Give a fraction.",
        lambda a, b: f"\\frac{{{a + b}}}{{{a * b}}}",
        lambda a, b: f"\\frac{{2}}{{{a + b}}}",
    ),
    (
        "Simplify $\\sqrt{{{a}}}\\cdot\\sqrt{{{b}}}$ when $a={a}$ and $b={b}$, in radical form.",
        lambda a, b: f"\\sqrt{{{a * b}}}",
        lambda a, b: f"{a * b}",
    ),
    ("Write the interval of $x$ with ${a} < x \\le {b}$.", lambda a, b: f"({a}, {b}]", lambda a, b: f"({a}, {b})"),
]


def _gsm8k_rows(n: int, offset: int) -> list[dict]:
    rows = []
    for i in range(n):
        a, b = 3 + i + offset, 4 + 2 * i
        q, f = _NUMERIC[i % 2]
        ans = f(a, b)
        right = f"We combine {a} and {b}: the result is {ans}.\n#### {ans}"
        wrong = f"I think it is {ans + 1}.\n#### {ans + 1}"
        rows.append(
            {
                "question": q.format(a=a, b=b),
                "answer": f"{a} and {b} give <<{a}?{b}={ans}>>{ans}.\n#### {ans}",
                # chat format, one chat per row; the dataset calls the wrong trace right in row 1
                "messages": [
                    {"role": "user", "content": q.format(a=a, b=b)},
                    {"role": "assistant", "content": wrong if i in (1, 2) else right},
                ],
                "is_correct": i != 2,
            }
        )
    return rows


def _latex_rows(n: int, offset: int) -> list[tuple[str, str, str]]:
    out = []
    for i in range(n):
        a, b = 2 + i + offset, 3 + i + offset
        q, right, wrong = _LATEX[i % 3]
        out.append((q.format(a=a, b=b), right(a, b), wrong(a, b)))
    return out


def _math_rows(n: int, offset: int) -> list[dict]:
    rows = []
    for i, (q, right, wrong) in enumerate(_latex_rows(n, offset)):
        final = wrong if i == 1 else right
        rows.append(
            {
                "problem": q,
                "solution": f"Working it out gives $\\boxed{{{right}}}$.",
                "answer": right,
                "level": f"Level {1 + i % 5}",
                "type": "Algebra",
                # one <think>-format text per row
                "response": f"<think>\nLet me work it out.\n</think>\n\nSo the answer is $\\boxed{{{final}}}$.",
                "correct": i != 1,
            }
        )
    return rows


def _openr1_rows(n: int, offset: int) -> list[dict]:
    rows = []
    for i, (q, right, wrong) in enumerate(_latex_rows(n, offset)):
        gens = [
            f"<think>\nStep by step.\n</think>\n\nThe answer is $\\boxed{{{right}}}$.",
            f"<think>\nA slip.\n</think>\n\nThe answer is $\\boxed{{{wrong}}}$.",
        ]
        rows.append(
            {
                "problem": q,
                "solution": f"Hence $\\boxed{{{right}}}$.",
                "answer": right,
                "problem_type": "Algebra",
                "question_type": "math-word-problem",
                "source": "synthetic",
                "generations": gens,
                "correctness_math_verify": [True, i == 0],
                "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": gens[0]}],
            }
        )
    return rows


def write_dataset(kind: str, root: Path, n_train: int = 6, n_test: int = 5) -> tuple[str, dict]:
    """Write the `kind` dataset (gsm8k | math | openr1) under root; returns (spec, info)."""
    import datasets

    folder = Path(root) / kind
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "gsm8k":
        for split, rows in (("train", _gsm8k_rows(n_train, 0)), ("test", _gsm8k_rows(n_test, 40))):
            (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return str(folder), {
            "traces_column": "messages",
            "correct_column": "is_correct",
            "verifier": "math_numeric",
            "traces": n_train,
            "ours_right": n_train - 2,
            "disagree": 1,
        }
    if kind == "math":
        for split, rows in (("train", _math_rows(n_train, 0)), ("test", _math_rows(n_test, 40))):
            datasets.Dataset.from_list(rows).to_parquet(str(folder / f"{split}.parquet"))
        return str(folder), {
            "traces_column": "response",
            "correct_column": "correct",
            "verifier": "math_latex",
            "traces": n_train,
            "ours_right": n_train - 1,
            "disagree": 0,
        }
    if kind == "openr1":
        dd = datasets.DatasetDict(
            {
                "train": datasets.Dataset.from_list(_openr1_rows(n_train, 0)),
                "test": datasets.Dataset.from_list(_openr1_rows(n_test, 40)),
            }
        )
        dd.save_to_disk(str(folder))
        return str(folder), {
            "traces_column": "generations",
            "correct_column": "correctness_math_verify",
            "verifier": "math_latex",
            "traces": 2 * n_train,
            "ours_right": n_train,
            "disagree": 1,
        }
    raise ValueError(kind)
