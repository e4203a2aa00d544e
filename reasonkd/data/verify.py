"""Verifiers: is a completion (or a stored answer) right for an item?

Used by the data engine (every generated positive must pass, every negative
must fail), by the teacher filter (keep only verified traces) and by eval
(GSM8K / HumanEval scoring). LaTeX answers (MATH, NuminaMath, AIME) go to
`math_latex` (reasonkd.data.latex, backed by math-verify). Everything here is offline; model-written code
runs in reasonkd.utils.sandbox.

    from reasonkd.data.verify import extract_final_answer, verify_math, verify_item
    verify_math("<think>2+3=5, 5*2=10</think> The answer is \\boxed{10}.", "10")  # True

Reading the stated answer (R1-aware: only the text after the last `</think>`)
is reasonkd.data.answers; its names are importable from here too, as the
verifiers use them.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from typing import Any

from reasonkd.data import puzzles
from reasonkd.data.answers import (
    EXTRACTION_STYLES,
    extract_answer,
    extract_code,
    extract_final_answer,
    normalize_number,
    numbers_equal,
)
from reasonkd.data.latex import verify_latex
from reasonkd.utils.sandbox import run_in_sandbox

__all__ = [
    "EXTRACTION_STYLES",
    "extract_answer",
    "extract_code",
    "extract_final_answer",
    "normalize_number",
    "numbers_equal",
    "reference_answer",
    "run_programs",
    "verify_code",
    "verify_item",
    "verify_latex",
    "verify_math",
    "verify_puzzle",
]


def _reference_number(reference: Any) -> Any:
    if isinstance(reference, str) and "####" in reference:  # a full GSM8K answer field
        return extract_answer(reference, "strict")
    return reference


def verify_math(completion: str, reference: Any) -> bool:
    """Does the completion's final answer equal the reference number?"""
    ans = extract_final_answer(completion or "")
    if ans is None:
        return False
    ref = _reference_number(reference)
    if normalize_number(ref) is None:  # non-numeric reference: compare text
        return ans.strip().lower() == str(ref).strip().lower()
    return numbers_equal(ans, ref)


# ---------------------------------------------------------------- code


def _test_program(code: str, tests: str, entry_point: str | None) -> str:
    prog = f"{code}\n\n{tests}\n"
    if entry_point and re.search(r"^def check\(", tests, re.MULTILINE):
        prog += f"\ncheck({entry_point})\n"  # HumanEval convention
    return prog


def _limit_child(cpu_s: int, mem_bytes: int) -> None:  # runs in the child before exec
    os.setsid()
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    resource.setrlimit(resource.RLIMIT_AS, (mem_bytes, mem_bytes))
    resource.setrlimit(resource.RLIMIT_FSIZE, (10 << 20, 10 << 20))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


_BATCH_CHILD = r"""
import io, json, signal, sys
progs = json.load(open(sys.argv[1]))
timeout, max_lines = float(sys.argv[2]), int(sys.argv[3])
out = open(sys.argv[4], "w")

class Budget(Exception):
    pass

def _alarm(*_):
    raise TimeoutError

count = 0
def _local(frame, event, arg):
    global count
    if event == "line":
        count += 1
        if count > max_lines:
            raise Budget
    return _local

def _global(frame, event, arg):
    return _local if frame.f_code.co_filename == "<item>" else None

signal.signal(signal.SIGALRM, _alarm)
real_stdout = sys.stdout
for p in progs:
    sys.stdout = io.StringIO()
    ok, count = False, 0
    try:
        signal.setitimer(signal.ITIMER_REAL, timeout)
        if max_lines > 0:
            sys.settrace(_global)
        exec(compile(p, "<item>", "exec"), {"__name__": "__main__"})
        ok = True
    except SystemExit as e:
        ok = e.code in (None, 0)
    except BaseException:
        ok = False
    finally:
        sys.settrace(None)
        signal.setitimer(signal.ITIMER_REAL, 0)
    sys.stdout = real_stdout
    out.write("1\n" if ok else "0\n")
    out.flush()
"""


def run_programs(programs: list[str], timeout: float = 2.0, max_lines: int = 20_000, mem_mb: int = 2048) -> list[bool]:
    """Run many TRUSTED test programs (the data engine's own code and mutants) in one child.

    A program fails when it raises, or runs more than `max_lines` Python line
    events (a deterministic step budget, so a mutant that loops forever fails
    the same way on a busy or an idle machine), or exceeds `timeout` seconds
    (a backstop for loops inside C code). One `python -I` child with rlimits
    runs them all, ~100x faster than a process each; if it dies mid-way the
    program it died on fails and the rest are rerun. Model-written code goes
    through verify_code instead.
    """
    results: list[bool] = []
    while len(results) < len(programs):
        todo = programs[len(results) :]
        with tempfile.TemporaryDirectory(prefix="reasonkd-batch-") as tmp:
            src, res = os.path.join(tmp, "progs.json"), os.path.join(tmp, "results.txt")
            with open(src, "w", encoding="utf-8") as f:
                json.dump(todo, f)
            env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
            budget = timeout * len(todo) + 30
            try:
                subprocess.run(
                    [sys.executable, "-I", "-B", "-c", _BATCH_CHILD, src, str(timeout), str(max_lines), res],
                    cwd=tmp,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    timeout=budget,
                    preexec_fn=lambda: _limit_child(int(budget) + 1, mem_mb << 20),  # noqa: B023
                )
            except subprocess.TimeoutExpired:
                pass
            done = open(res).read().split() if os.path.exists(res) else []
        results += [d == "1" for d in done]
        if len(results) < len(programs):
            results.append(False)  # the program the child died on
    return results


def verify_code(code: str, tests: str, entry_point: str | None = None, timeout: float = 5.0) -> bool:
    """Do `tests` pass against `code`? Runs in the sandbox (reasonkd.utils.sandbox)."""
    return run_in_sandbox(_test_program(code, tests, entry_point), timeout=timeout).ok


# ---------------------------------------------------------------- puzzles and dispatch


def verify_puzzle(
    item_or_solution: Any, answer: str | None = None, *, kind: str | None = None, meta: dict | None = None
) -> bool:
    """Check a zebra / sudoku answer against the puzzle's constraints.

    Pass an item dict (`verifier` in {"zebra", "sudoku"}, puzzle in `meta`) and
    the answer text (default: the item's own `answer`), or a bare solution with
    `kind=` and `meta=`. Sudoku answers are checked cell by cell against the
    rules and givens; zebra answers against the unique solution that the
    solver derives from the clues.
    """
    if isinstance(item_or_solution, dict) and "verifier" in item_or_solution:
        kind = item_or_solution["verifier"]
        meta = item_or_solution.get("meta") or {}
        if answer is None:
            answer = item_or_solution.get("answer")
    else:
        answer = item_or_solution if answer is None else answer
    if kind not in ("zebra", "sudoku") or meta is None:
        raise ValueError("verify_puzzle needs an item with verifier zebra|sudoku, or kind= and meta=")
    if answer is None:
        return False
    if kind == "sudoku":
        return puzzles.check_sudoku_answer(meta, str(answer))
    return puzzles.check_zebra_answer(meta, str(answer))


def reference_answer(item: dict) -> str:
    """The verified correct answer of an item (negatives store it in meta.reference)."""
    return str((item.get("meta") or {}).get("reference", item["answer"]))


def verify_item(item: dict, completion_or_answer: str) -> bool:
    """Verify a completion (or bare answer) for an item, dispatching on item["verifier"]."""
    verifier = item.get("verifier")
    meta = item.get("meta") or {}
    text = completion_or_answer or ""
    if verifier == "math_numeric":
        return verify_math(text, reference_answer(item))
    if verifier == "math_latex":
        return verify_latex(text, reference_answer(item))
    if verifier == "code_tests":
        return verify_code(
            extract_code(text), meta["tests"], meta.get("entry_point"), timeout=float(meta.get("timeout", 5.0))
        )
    if verifier in ("zebra", "sudoku"):  # checked against the constraints, not a stored answer
        return verify_puzzle(item, text)
    raise ValueError(
        f"item {item.get('id')!r}: unknown verifier {verifier!r} "
        "(known: math_numeric, math_latex, code_tests, zebra, sudoku)"
    )
