"""The `math_latex` verifier: is a completion's final answer equivalent to a LaTeX reference?

    from reasonkd.data.latex import verify_latex, latex_verdict
    verify_latex("... so the answer is $\\boxed{\\frac{1}{2}}$.", "0.5")    # True
    latex_verdict("\\boxed{(0,1]}", "(0,1)")                               # (False, None)
    latex_verdict("no answer here", "\\frac{3}{4}")                       # (False, 'no answer found')

Backed by Hugging Face's `math-verify` (what Open-R1 and TRL grade MATH, AIME
and NuminaMath answers with): it reads the last `\\boxed{}` (or a stated final
answer / expression), parses it with SymPy and compares fractions, radicals,
intervals, sets, matrices and equations by value, not by spelling. Reading is
R1-aware as in reasonkd.data.answers: only the text after the last `</think>`
counts. A reference without `$` or `\\boxed` is read as one LaTeX expression.

A timeout, a parse failure or an answer that is not there is a wrong answer,
never an exception: `latex_verdict` returns the reason and it is logged
(timeouts and crashes of the parser as warnings). math-verify stops slow SymPy
work with SIGALRM, which only the main thread can use; elsewhere (a server or
a thread pool) the comparison runs without its own time limit.
"""

from __future__ import annotations

import logging
import re
import threading

from reasonkd.data.answers import boxed_contents, strip_think

log = logging.getLogger(__name__)

TIMEOUT_S = 5
"""Seconds math-verify may spend parsing one answer and comparing one pair (main thread only)."""
_STRICT_LINE = re.compile(r"####\s*([^\n]+)")
_PLAIN_NUMBER = re.compile(r"^\s*\$?\s*[-−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?\s*\$?\s*$")


def is_plain_number(answer: object) -> bool:
    """True for "42", "-3.5", "1,234", "$12": answers math_numeric grades; anything else needs math_latex."""
    text = str(answer).strip()
    return bool(text) and any(ch.isdigit() for ch in text) and bool(_PLAIN_NUMBER.match(text))


def _timeout() -> int | None:
    return TIMEOUT_S if threading.current_thread() is threading.main_thread() else None


def _parse(text: str):
    """math-verify's parse with errors raised (so that the caller can name them)."""
    from math_verify import parse  # lazy: sympy and the LaTeX grammar load in ~1 s, only graders need them

    return parse(text, parsing_timeout=_timeout(), raise_on_error=True)


def _gold_text(reference: str) -> str:
    ref = str(reference).strip()
    if "\\boxed" in ref or "$" in ref or "\\(" in ref or "\\[" in ref:
        return ref
    return f"${ref}$"


def _pred_text(completion: str) -> str | None:
    """The part of a completion that states its answer (after </think>; a `#### X` line as `$X$`)."""
    text = strip_think(completion or "", "boxed")
    if text is None or not text.strip():
        return None
    if boxed_contents(text):
        return text
    strict = _STRICT_LINE.findall(text)
    if strict:
        return f"${strict[-1].strip().rstrip('.')}$"
    return text


def latex_verdict(completion: str, reference: object) -> tuple[bool, str | None]:
    """(equivalent, reason): reason says why a wrong verdict came without a comparison
    ("no answer found", "reference unreadable", "timeout ...", "parse error ..."), else None."""
    from math_verify import verify
    from math_verify.errors import TimeoutException

    pred_text = _pred_text(completion)
    if pred_text is None:
        return False, "no answer found"
    try:
        gold = _parse(_gold_text(str(reference)))
        if not gold:
            log.warning("math_latex: reference %r could not be read; counted as wrong", str(reference)[:80])
            return False, "reference unreadable"
        pred = _parse(pred_text)
        if not pred:
            return False, "no answer found"
        return bool(verify(gold, pred, timeout_seconds=_timeout(), raise_on_error=True)), None
    except TimeoutException:
        log.warning(
            "math_latex: timed out after %ss on %r vs %r; counted as wrong",
            TIMEOUT_S,
            pred_text[-80:],
            str(reference)[:80],
        )
        return False, f"timeout after {TIMEOUT_S}s"
    except Exception as e:  # noqa: BLE001  (SymPy and the LaTeX grammar raise many kinds; any is a wrong answer)
        log.warning(
            "math_latex: %s on %r vs %r; counted as wrong", type(e).__name__, pred_text[-80:], str(reference)[:80]
        )
        return False, f"parse error: {type(e).__name__}: {str(e)[:120]}"


def verify_latex(completion: str, reference: object) -> bool:
    """Is the completion's final answer equivalent to `reference` (LaTeX or plain)? Never raises."""
    return latex_verdict(completion, reference)[0]
