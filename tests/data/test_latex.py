"""The math_latex verifier (reasonkd.data.latex) on hand-written answer pairs, each with its expected verdict;
timeouts and parser crashes are wrong answers with a reason, never exceptions."""

from __future__ import annotations

import logging

import pytest

# (completion, reference, expected verdict)
PAIRS = [
    # numbers written in other ways
    ("0.5", "\\frac{1}{2}", True),
    ("\\boxed{0.5}", "\\frac12", True),
    ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}", True),
    ("\\boxed{1/2}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", True),
    ("\\boxed{\\frac{7}{2}}", "3\\frac{1}{2}", True),
    ("\\boxed{3.5}", "3\\frac12", True),
    ("\\boxed{0.3333333}", "\\frac{1}{3}", True),
    ("\\boxed{0.333}", "\\frac{1}{3}", False),
    ("\\boxed{-\\frac{1}{3}}", "\\frac{-1}{3}", True),
    ("\\boxed{\\frac{1}{3}}", "-\\frac{1}{3}", False),
    ("\\boxed{1,000}", "1000", True),
    ("\\boxed{\\$5.00}", "5", True),
    ("\\boxed{50\\%}", "0.5", True),
    ("\\boxed{10}", "10\\%", True),
    ("\\boxed{10^\\circ}", "10", True),
    ("\\boxed{5\\text{ cm}}", "5", True),
    ("\\boxed{2^{10}}", "1024", True),
    ("\\boxed{5!}", "120", True),
    ("\\boxed{\\binom{5}{2}}", "10", True),
    ("\\boxed{\\log_2 8}", "3", True),
    ("\\boxed{\\frac{1}{0}}", "1", False),
    ("7", "7", True),
    ("#### 5", "5", True),
    ("#### 6", "5", False),
    # radicals and constants
    ("\\boxed{2\\sqrt3}", "2\\sqrt{3}", True),
    ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", True),
    ("\\boxed{\\sqrt{12}}", "2\\sqrt{3}", True),
    ("\\boxed{\\sqrt[3]{27}}", "3", True),
    ("\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{1}{2}\\sqrt{3}", True),
    ("\\boxed{\\sqrt{3}}", "3", False),
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}", True),
    ("\\boxed{2\\pi}", "\\pi", False),
    ("\\boxed{1.5708}", "\\frac{\\pi}{2}", False),
    ("\\boxed{\\infty}", "\\infty", True),
    ("\\boxed{3+4i}", "4i+3", True),
    # expressions and equations
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True),
    ("\\boxed{a+b}", "b+a", True),
    ("\\boxed{\\sin^2 x + \\cos^2 x}", "1", True),
    ("\\boxed{x=3}", "3", True),
    ("\\boxed{y=2x+1}", "y=2x+1", True),
    ("\\boxed{x^2-1}", "(x-1)(x+2)", False),
    # intervals
    ("\\boxed{(0,1]}", "(0,1]", True),
    ("\\boxed{(0,1]}", "(0,1)", False),
    ("\\boxed{[-2, 3)}", "[-2,3)", True),
    ("\\boxed{[-2, 3]}", "[-2,3)", False),
    ("\\boxed{(-\\infty, 2) \\cup (3, \\infty)}", "(-\\infty,2)\\cup(3,\\infty)", True),
    ("\\boxed{x \\in [0, 1]}", "[0,1]", True),
    # sets and tuples
    ("\\boxed{\\{1,2\\}}", "\\{2,1\\}", True),
    ("\\boxed{\\{1,2\\}}", "\\{1,3\\}", False),
    ("\\boxed{\\{1,2,2\\}}", "\\{1,2\\}", True),
    ("\\boxed{3, 5}", "5, 3", True),
    ("\\boxed{(1,2)}", "(2,1)", False),
    ("\\boxed{\\emptyset}", "\\emptyset", True),
    ("\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}", True),
    ("\\boxed{\\begin{pmatrix}1\\\\2\\end{pmatrix}}", "\\begin{pmatrix}2\\\\1\\end{pmatrix}", False),
    # multiple choice
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", True),
    ("\\boxed{C}", "\\text{(C)}", True),
    # text around the box, R1 think blocks
    ("The answer is $\\boxed{\\frac{3}{4}}$.", "0.75", True),
    ("First I tried 4. Then, correcting myself: \\boxed{5}. Done.", "5", True),
    ("The final answer is $7$", "7", True),
    ("<think>maybe \\boxed{4}</think> so \\boxed{5}", "5", True),
    ("<think>maybe \\boxed{5}</think> so \\boxed{4}", "5", False),
    ("<think>\\boxed{5}</think>", "5", False),  # nothing after the think block: no answer given
    ("\\boxed{12}", "\\boxed{12}", True),  # a boxed reference
    # malformed or missing answers
    ("\\boxed{\\frac{3}{4", "0.75", False),
    ("$\\frac{", "\\frac{1}{2}", False),
    ("\\boxed{}", "5", False),
    ("", "3", False),
    ("I don't know", "3", False),
]


def test_there_are_at_least_60_pairs_both_ways():
    assert len(PAIRS) >= 60
    assert sum(v for *_, v in PAIRS) >= 25 and sum(not v for *_, v in PAIRS) >= 20


@pytest.mark.parametrize("completion,reference,expected", PAIRS)
def test_pair(completion, reference, expected):
    from reasonkd.data.latex import latex_verdict, verify_latex

    ok, reason = latex_verdict(completion, reference)
    assert ok is expected and verify_latex(completion, reference) is expected
    assert reason is None or not ok


def test_no_answer_reason():
    from reasonkd.data.latex import latex_verdict

    assert latex_verdict("no answer here", "\\frac{3}{4}") == (False, "no answer found")
    assert latex_verdict("<think>\\boxed{5}</think>", "5") == (False, "no answer found")


def test_timeout_counts_as_wrong_with_the_reason_logged(monkeypatch, caplog):
    import math_verify
    from math_verify.errors import TimeoutException

    from reasonkd.data import latex

    def slow(*a, **k):
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "verify", slow)
    with caplog.at_level(logging.WARNING, logger="reasonkd.data.latex"):
        assert latex.latex_verdict("\\boxed{x^{x^{x^{x}}}}", "1") == (False, f"timeout after {latex.TIMEOUT_S}s")
    assert "timed out" in caplog.text and "counted as wrong" in caplog.text


def test_parser_crash_counts_as_wrong_with_the_reason_logged(monkeypatch, caplog):
    import math_verify

    from reasonkd.data import latex

    def broken(*a, **k):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(math_verify, "parse", broken)
    with caplog.at_level(logging.WARNING, logger="reasonkd.data.latex"):
        ok, reason = latex.latex_verdict("\\boxed{1}", "1")
    assert not ok and reason.startswith("parse error: RecursionError") and "RecursionError" in caplog.text


def test_off_the_main_thread_no_signal_is_used():
    from concurrent.futures import ThreadPoolExecutor

    from reasonkd.data.latex import verify_latex

    with ThreadPoolExecutor(2) as pool:
        assert list(pool.map(verify_latex, ["\\boxed{\\frac{1}{2}}", "\\boxed{3}"], ["0.5", "4"])) == [True, False]


def test_verify_item_dispatches_math_latex():
    from reasonkd.data.verify import verify_item

    item = {"id": "x", "verifier": "math_latex", "answer": "(0,1]"}
    assert verify_item(item, "So $x \\in \\boxed{(0, 1]}$.") and not verify_item(item, "\\boxed{(0,1)}")


def test_plain_numbers_keep_the_numeric_verifier():
    from reasonkd.data.latex import is_plain_number

    assert all(is_plain_number(a) for a in ("42", "-3.5", "1,234", "$12", " 7 "))
    assert not any(is_plain_number(a) for a in ("\\frac{1}{2}", "2\\sqrt{3}", "(0,1]", "x+1", "", "3/4"))
