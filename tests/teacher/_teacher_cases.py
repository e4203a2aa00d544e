"""A handful of verified items and a scripted teacher backend (no model needed); shared by tests/teacher."""

import json

from reasonkd.teacher.backends import Result

GRID = "4123\n2341\n3412\n1234"
ITEMS = [
    # id, domain, difficulty, question, answer, scripted teacher output, finished, reasoning_content
    ("m-add", "math", 1, "How many is 2 + 3?", "5", "2 + 3 = 5\n#### 5", True, None),
    ("m-mul", "math", 2, "What is 6 * 7?", "42", "6 * 7 = 48\n#### 48", True, None),
    ("m-sub", "math", 1, "What is 9 - 4?", "5", "9 - 4 = 5\n#### 5", False, None),
    ("m-div", "math", 2, "What is 10 / 2?", "5", "I am not sure.", True, None),
    ("m-sq", "math", 2, "What is 3 * 3?", "9", "#### 9", True, "3 * 3 = 9"),
    ("m-dbl", "math", 3, "What is 8 + 8?", "16", "<think>8 + 8 = 16</think>\n\n#### 16", True, None),
    (
        "l-sud",
        "logic",
        1,
        "Solve this 4x4 sudoku:\n41.3\n234.\n..12\n12..",
        GRID,
        f"r1c3 = 2 first.\nAnswer:\n{GRID}",
        True,
        None,
    ),
]
EXPECTED = {
    "m-add": None,
    "m-mul": "wrong_final_answer",
    "m-sub": "truncated",
    "m-div": "no_answer",
    "m-sq": None,
    "m-dbl": None,
    "l-sud": None,
}


def item_rows():
    rows = []
    for id_, domain, diff, q, a, *_ in ITEMS:
        row = {
            "id": id_,
            "domain": domain,
            "question": q,
            "answer": a,
            "steps": [],
            "kind": "original",
            "split": "train",
            "difficulty": diff,
            "template": id_.split("-")[0],
            "verifier": "math_numeric" if domain == "math" else "sudoku",
            "meta": {},
        }
        if domain == "logic":
            row["meta"] = {"puzzle": "41.3234...1212..", "size": 4, "box": [2, 2]}
        rows.append(row)
    return rows


def write_items(path):
    path.write_text("".join(json.dumps(r) + "\n" for r in item_rows()))
    return path


class ScriptedBackend:
    """Answers from ITEMS by question; groups of `group` results; can fail after `fail_after` requests."""

    name = "scripted"

    def __init__(self, group: int = 2, fail_after: int | None = None):
        self.group, self.fail_after, self.generated = group, fail_after, []

    def generate(self, requests, sampling):
        for i in range(0, len(requests), self.group):
            chunk = requests[i : i + self.group]
            if self.fail_after is not None and len(self.generated) >= self.fail_after:
                raise RuntimeError("teacher crashed")
            out = []
            for r in chunk:
                _, _, _, _, _, text, finished, rc = next(it for it in ITEMS if it[3] in r.user)
                out.append(Result(r.key, text, rc, 20, 7, finished, 0.01))
            self.generated += [r.key for r in chunk]
            yield out
