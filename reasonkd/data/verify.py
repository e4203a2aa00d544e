"""Verifiers: is a completion (or a stored answer) right for an item?

Used by the data engine (every generated positive must pass, every negative
must fail), by the teacher filter (keep only verified traces) and by eval
(GSM8K / HumanEval scoring). Everything here is pure and offline.

    from reasonkd.data.verify import extract_final_answer, verify_math, verify_item
    verify_math("<think>2+3=5, 5*2=10</think> The answer is \\boxed{10}.", "10")  # True

Answer extraction is R1-aware: when a completion contains `</think>`, only the
text after the last `</think>` is read (the reasoning inside the think block
is full of intermediate numbers that are not the answer).
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import tempfile
from fractions import Fraction
from typing import Any

EXTRACTION_STYLES = ("strict", "flexible", "boxed", "answer_is")

# A number as people write it: optional sign, thousands commas, decimals,
# an optional "/denominator". The sign must not follow a word character or ")"
# so "10-3" reads as 10 and 3, not 10 and -3.
_NUM_RE = re.compile(r"(?<![\w.)])[-−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:/\d+)?(?!\d)")
_FRAC_TEX = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_STRICT_RE = re.compile(r"####\s*\$?\s*([-−]?)\s*\$?\s*((?:\d[\d,]*)?\.?\d+(?:/\d+)?)")
_ANSWER_IS_RE = re.compile(
    r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.IGNORECASE)


def _strip_think(text: str, style: str) -> str | None:
    """Text after the last </think>; None when nothing follows (except flexible)."""
    if "</think>" not in text:
        return text
    tail = text.rsplit("</think>", 1)[1]
    if tail.strip():
        return tail
    return text if style == "flexible" else None


def _boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...} / \\fbox{...}, braces balanced."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end():i - 1].strip())
    return out


def _drop_dollars(text: str) -> str:
    """Remove $ signs (currency and LaTeX math) without detaching a minus: "-$5" -> "-5"."""
    text = re.sub(r"([-−])\s*\\?\$\s*", r"\1", text)
    return text.replace("\\$", " ").replace("$", " ")


def _to_fraction(token: str) -> Fraction | None:
    token = token.replace(",", "").replace("−", "-").replace(" ", "")
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            d = Fraction(den)
            return None if d == 0 else Fraction(num) / d
        return Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None


def normalize_number(text: Any) -> Fraction | None:
    """Parse one number written the ways answers are written, else None.

    Accepts "1,234", "$5", "5 dollars", "3/4", "\\frac{3}{4}", "-2.50",
    "\\boxed{12}", "12.", "50%", "#### 7" and ints/floats/Fractions. A text with
    zero or several distinct numbers ("3 or 4") gives None: it is not one answer.
    """
    if isinstance(text, bool) or text is None:
        return None
    if isinstance(text, (int, Fraction)):
        return Fraction(text)
    if isinstance(text, float):
        return Fraction(text).limit_denominator(10**9) if text == text and abs(text) != float("inf") else None
    s = str(text).strip()
    boxed = _boxed_contents(s)
    if boxed:
        s = boxed[-1]
    s = _FRAC_TEX.sub(lambda m: f"{m.group(1)}/{m.group(2)}", s)
    s = _drop_dollars(s.replace("####", " ")).replace("\\!", "").replace("\\,", ",")
    s = re.sub(r"\\(?:text|mathrm|textbf)\s*\{([^{}]*)\}", r" \1 ", s)
    s = re.sub(r"(\d)\s*/\s*(\d)", r"\1/\2", s)
    s = re.sub(r"(?<=\d),(?=\d{3}\b)", "", s)  # thousands separators
    tokens = _NUM_RE.findall(s)
    values = {v for v in (_to_fraction(t) for t in tokens) if v is not None}
    if len(values) != 1:
        return None
    return values.pop()


def numbers_equal(pred: Any, ref: Any, rel_tol: float = 1e-6) -> bool:
    """True when both parse to numbers within rel_tol (relative to max(|ref|, 1))."""
    p, r = normalize_number(pred), normalize_number(ref)
    if p is None or r is None:
        return False
    if p == r:
        return True
    return abs(float(p) - float(r)) <= rel_tol * max(abs(float(r)), 1.0)


def _clean_token(token: str) -> str:
    return token.strip().rstrip(".").replace("−", "-")


def extract_answer(completion: str, style: str) -> str | None:
    """The answer a completion states, read in one of EXTRACTION_STYLES.

    strict: "#### N"; flexible: the last number; boxed: the last \\boxed{...};
    answer_is: "The answer is N" / "Answer: N". Returns the text as written
    (pass it to normalize_number / numbers_equal), or None.
    """
    if style not in EXTRACTION_STYLES:
        raise ValueError(f"unknown extraction style {style!r}; choose one of {EXTRACTION_STYLES}")
    if not completion:
        return None
    text = _strip_think(completion, style)
    if text is None:
        return None
    if style == "boxed":
        boxed = _boxed_contents(text)
        return boxed[-1] if boxed else None
    if style == "strict":
        found = _STRICT_RE.findall(text)
        return _clean_token("".join(found[-1])) if found else None
    if style == "answer_is":
        for m in reversed(list(_ANSWER_IS_RE.finditer(text))):
            rest = m.group(1)
            boxed = _boxed_contents(rest)
            if boxed:
                return boxed[-1]
            rest = _FRAC_TEX.sub(lambda f: f"{f.group(1)}/{f.group(2)}", _drop_dollars(rest))
            rest = re.split(r"\.(?:\s|$)|;|,\s", rest)[0]  # the first clause is the answer
            nums = _NUM_RE.findall(rest)
            if nums:  # "Answer: 3 + 5 = 8" states the result last; "The answer is 10 apples" first
                return _clean_token(nums[-1] if "=" in rest else nums[0])
        return None
    text = _FRAC_TEX.sub(lambda f: f"{f.group(1)}/{f.group(2)}", text)
    nums = _NUM_RE.findall(_drop_dollars(text))
    return _clean_token(nums[-1]) if nums else None


def extract_final_answer(completion: str) -> str | None:
    """Best single answer: boxed > strict (####) > answer_is > flexible (last number)."""
    for style in ("boxed", "strict", "answer_is", "flexible"):
        ans = extract_answer(completion, style)
        if ans is not None and (style != "boxed" or ans.strip()):
            return ans
    return None


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

_CODE_BLOCK = re.compile(r"```(?:python|py|python3)?\s*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    """The last fenced Python block of a completion (after </think>), else the text."""
    text = completion
    if "</think>" in text and text.rsplit("</think>", 1)[1].strip():
        text = text.rsplit("</think>", 1)[1]
    blocks = _CODE_BLOCK.findall(text)
    return blocks[-1] if blocks else text


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


def run_python(program: str, timeout: float = 5.0, mem_mb: int = 1024) -> tuple[bool, str]:
    """Run `program` in `python -I` in a fresh temp dir with rlimits and a clean env.

    Returns (ok, status) with status one of passed/failed/timeout. A fallback
    for machines without reasonkd.eval.sandbox; it limits damage from buggy
    code, it is not a security boundary against hostile code.
    """
    with tempfile.TemporaryDirectory(prefix="reasonkd-run-") as tmp:
        path = os.path.join(tmp, "prog.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program)
        env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONHASHSEED": "0",
               "OMP_NUM_THREADS": "1", "LANG": "C.UTF-8"}
        cpu = max(1, int(timeout) + 1)
        with open(os.path.join(tmp, "out.txt"), "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-B", path], cwd=tmp, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=lambda: _limit_child(cpu, mem_mb << 20))
            try:
                rc = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, 9)  # the whole group: tests may have forked
                except ProcessLookupError:
                    pass
                proc.wait()
                return False, "timeout"
        return rc == 0, "passed" if rc == 0 else "failed"


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


def run_programs(programs: list[str], timeout: float = 2.0, max_lines: int = 20_000,
                 mem_mb: int = 2048) -> list[bool]:
    """Run many TRUSTED test programs (the data engine's own code and mutants) in one child.

    A program fails when it raises, or runs more than `max_lines` Python line
    events (a deterministic step budget, so a mutant that loops forever fails
    the same way on a busy or an idle machine), or exceeds `timeout` seconds
    (a backstop for loops inside C code). One `python -I` child with rlimits
    runs them all, ~100x faster than a process each; if it dies mid-way the
    program it died on fails and the rest are rerun. Model-written code goes
    through verify_code instead.
    """
    import json

    results: list[bool] = []
    while len(results) < len(programs):
        todo = programs[len(results):]
        with tempfile.TemporaryDirectory(prefix="reasonkd-batch-") as tmp:
            src, res = os.path.join(tmp, "progs.json"), os.path.join(tmp, "results.txt")
            with open(src, "w", encoding="utf-8") as f:
                json.dump(todo, f)
            env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "PYTHONHASHSEED": "0", "LANG": "C.UTF-8"}
            budget = timeout * len(todo) + 30
            try:
                subprocess.run([sys.executable, "-I", "-B", "-c", _BATCH_CHILD, src, str(timeout), str(max_lines), res],
                               cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, timeout=budget,
                               preexec_fn=lambda: _limit_child(int(budget) + 1, mem_mb << 20))
            except subprocess.TimeoutExpired:
                pass
            done = open(res).read().split() if os.path.exists(res) else []
        results += [d == "1" for d in done]
        if len(results) < len(programs):
            results.append(False)  # the program the child died on
    return results


def _sandbox():
    try:
        from reasonkd.eval.sandbox import run_in_sandbox  # stronger isolation when present
    except Exception:  # noqa: BLE001 - any import problem means "not available"
        return None
    return run_in_sandbox


def verify_code(code: str, tests: str, entry_point: str | None = None, timeout: float = 5.0) -> bool:
    """Do `tests` pass against `code`? Runs in reasonkd.eval.sandbox when available."""
    program = _test_program(code, tests, entry_point)
    sandbox = _sandbox()
    if sandbox is not None:
        return bool(sandbox(program, timeout=timeout).ok)
    ok, _ = run_python(program, timeout=timeout)
    return ok


# ---------------------------------------------------------------- puzzles and dispatch

def verify_puzzle(item_or_solution: Any, answer: str | None = None, *,
                  kind: str | None = None, meta: dict | None = None) -> bool:
    """Check a zebra / sudoku answer against the puzzle's constraints.

    Pass an item dict (`verifier` in {"zebra", "sudoku"}, puzzle in `meta`) and
    the answer text (default: the item's own `answer`), or a bare solution with
    `kind=` and `meta=`. Sudoku answers are checked cell by cell against the
    rules and givens; zebra answers against the unique solution that the
    solver derives from the clues.
    """
    from reasonkd.data import puzzles

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
    if verifier == "code_tests":
        return verify_code(extract_code(text), meta["tests"], meta.get("entry_point"),
                           timeout=float(meta.get("timeout", 5.0)))
    if verifier in ("zebra", "sudoku"):  # checked against the constraints, not a stored answer
        return verify_puzzle(item, text)
    raise ValueError(f"item {item.get('id')!r}: unknown verifier {verifier!r} "
                     "(known: math_numeric, code_tests, zebra, sudoku)")
