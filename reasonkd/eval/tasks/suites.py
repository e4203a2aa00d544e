"""`logic` and `code` suites: the data engine's held-out test split, graded by verify_item.

`--data` is a data-engine output folder (its `test` split) or one reasonkd
dataset JSONL. The held-out split holds template families never used in
training (zebra 4x4, sudoku 6x6, the spiral / collatz / window-max code tasks
and their bug-fix versions in the default recipe), so these numbers measure
transfer, not recall. Logic answers are checked against the puzzle's
constraints; code runs its tests in reasonkd.utils.sandbox.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reasonkd.errors import ReasonkdError
from reasonkd.eval.tasks.base import Task, data_path, register


class ItemSuite(Task):
    domain = ""

    def load(self) -> list[dict]:
        from reasonkd.data import load_items
        from reasonkd.data.verify import reference_answer

        path = data_path(self.data, self.name, "a data-engine output folder (`reasonkd data build`) or its JSONL")
        items = load_items(path, split="test") if path.is_dir() else load_items(path)
        items = [r for r in items if r["domain"] == self.domain and r.get("kind", "original") != "negative"]
        if not items:
            raise ReasonkdError(
                f"{path}: no held-out {self.domain} items; build a recipe that includes "
                f"{self.domain} problems (e.g. recipes/data/default.yaml)"
            )
        return [
            {
                "idx": i,
                "id": r["id"],
                "domain": self.domain,
                "question": r["question"],
                "reference": reference_answer(r),
                "item": r,
            }
            for i, r in enumerate(items)
        ]

    def extract(self, completion: str) -> str | None:
        from reasonkd.data.verify import extract_final_answer

        return extract_final_answer(completion)

    def score(self, ex: dict, completion: str) -> dict:
        from reasonkd.data.verify import verify_item

        try:
            ok = bool(verify_item(ex["item"], completion))
        except (ValueError, KeyError) as e:  # an unparseable answer is a wrong answer
            ok = False
            return {"verdict": ok, "extracted": self.extract(completion), "error": str(e)[:200]}
        return {"verdict": ok, "extracted": self.extract(completion)}


@register("logic")
class LogicSuite(ItemSuite):
    domain = "logic"


@register("code")
class CodeSuite(ItemSuite):
    domain = "code"

    def extract(self, completion: str) -> str | None:
        from reasonkd.data.verify import extract_code

        return extract_code(completion)

    def score_many(self, examples: list[dict], completions: list[str]) -> list[dict]:
        # each verify_item runs one sandboxed process: a small pool overlaps them
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(self.score, examples, completions))
