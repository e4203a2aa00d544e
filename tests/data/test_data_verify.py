"""Verifiers: number normalisation (property tests), answer extraction on tricky
completions, code and puzzle checks."""

from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonkd.data.verify import (
    EXTRACTION_STYLES,
    extract_answer,
    extract_final_answer,
    normalize_number,
    numbers_equal,
    verify_code,
    verify_item,
    verify_math,
    verify_puzzle,
)

ints = st.integers(min_value=-(10**12), max_value=10**12)


# ---------------------------------------------------------------- normalisation properties


@given(ints)
def test_int_written_many_ways_parses_back(n):
    for text in (str(n), f"{n:,}", f"{n}.", f"{n:,} dollars", f"\\boxed{{{n}}}", f"#### {n:,}", f"{n}.00", f" {n} "):
        assert normalize_number(text) == n, text
    sign = "-" if n < 0 else ""
    assert normalize_number(f"{sign}${abs(n):,}") == n


@given(st.integers(-(10**6), 10**6), st.integers(1, 10**6))
def test_fractions_parse(p, q):
    assert normalize_number(f"{p}/{q}") == Fraction(p, q)
    assert normalize_number(f"\\frac{{{p}}}{{{q}}}") == Fraction(p, q)


@given(st.decimals(min_value=-(10**9), max_value=10**9, places=3, allow_nan=False, allow_infinity=False))
def test_decimals_parse_exactly(d):
    assert normalize_number(f"{d:f}") == Fraction(d)


@given(ints, ints)
def test_numbers_equal_is_symmetric_and_exact_on_ints(a, b):
    assert numbers_equal(a, b) == numbers_equal(b, a)
    assert numbers_equal(f"{a:,}", str(a))
    if abs(a - b) >= 1 and max(abs(a), abs(b)) < 10**5:
        assert not numbers_equal(a, b)


@given(st.lists(st.integers(-999, 999), min_size=1, max_size=8), ints)
@settings(max_examples=50)
def test_think_numbers_never_leak_into_answer(noise, n):
    think = " ".join(f"so {x} apples" for x in noise)
    completion = f"<think>{think}</think>\nThe answer is {n:,}."
    assert numbers_equal(extract_final_answer(completion), n)
    assert verify_math(completion, n)


def test_non_answers_are_none():
    for text in ("", "abc", "3 or 4", "between 5 and 7", None, "1/0"):
        assert normalize_number(text) is None, text
    assert not numbers_equal("abc", "abc")


# ---------------------------------------------------------------- extraction fixture

TRICKY = [
    # (completion, expected final answer)
    ("Natalia sold 48/2 = 24 clips in May.\nAltogether 48+24 = 72 clips.\n#### 72", 72),
    ("She pays $1,234.50 in total.\n#### 1,234.50", Fraction(246900, 200)),
    ("The temperature falls to -3 degrees. The answer is -3.", -3),
    ("Each costs 0.25, so 4 cost 1. Answer: $1.00", 1),
    ("<think>Try 12, then 15, then 30... #### 99 is wrong</think>The answer is \\boxed{42}.", 42),
    ("<think>3 + 4 = 7 and 7 * 2 = 14</think>\nSo the result is 14 dollars.", 14),
    ("x = \\frac{3}{4} so the final answer is \\boxed{\\frac{3}{4}}", Fraction(3, 4)),
    ("We get 5 and then 6. The answer is 10, since 4 more.", 10),
    ("It grows 1,000,000 times.", 1_000_000),
    ("The total is 2,500 dollars.\n\n", 2500),
    ("Final Answer: The final answer is $18$. I hope it is correct.", 18),
    ("Answer: 3 + 5 = 8", 8),
    ("The answer is 1,250, which is 250 more than 1,000.", 1250),
    ("She has -$5 left. The answer is -$5.", -5),
]


@pytest.mark.parametrize("completion,expected", TRICKY)
def test_extract_final_answer_on_tricky_completions(completion, expected):
    assert numbers_equal(extract_final_answer(completion), expected), extract_final_answer(completion)
    assert verify_math(completion, expected)


def test_styles_and_think_fallback():
    c = "<think>#### 5 and \\boxed{6}</think>"
    assert extract_answer(c, "strict") is None and extract_answer(c, "boxed") is None
    assert extract_answer(c, "flexible") == "6"  # nothing after </think>: flexible reads it all
    c = "<think>the answer is 3</think> so #### 4"
    assert [extract_answer(c, s) for s in EXTRACTION_STYLES] == ["4", "4", None, None]
    with pytest.raises(ValueError):
        extract_answer("1", "nope")


def test_verify_math_reference_forms():
    assert verify_math("#### 72", "Natalia sold ... #### 72")  # GSM8K answer field
    assert verify_math("The answer is 0.5", "1/2")
    assert not verify_math("The answer is 5", "6")
    assert not verify_math("no numbers here", "6")


# ---------------------------------------------------------------- code and puzzles


def test_verify_code_pass_fail_timeout():
    tests = "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    assert verify_code("def add(a, b):\n    return a + b\n", tests, "add")
    assert not verify_code("def add(a, b):\n    return a - b\n", tests, "add")
    assert not verify_code("def add(a, b):\n    while True: pass\n", tests, "add", timeout=1.0)
    assert verify_code("def f(x):\n    return x * 2\n", "assert f(4) == 8\n", None)
    item = {"verifier": "code_tests", "answer": "", "meta": {"tests": "assert f(4) == 8", "entry_point": "f"}}
    assert verify_item(item, "Here:\n```python\ndef f(x):\n    return 8\n```")


def test_verify_puzzle_sudoku_and_zebra():
    meta = {"puzzle": "1.3.34..2.4...21", "size": 4, "box": [2, 2]}
    good = "1234\n3412\n2143\n4321"
    assert verify_puzzle(good, kind="sudoku", meta=meta)
    assert not verify_puzzle("1234\n3412\n2143\n4312", kind="sudoku", meta=meta)
    zmeta = {
        "n": 2,
        "attributes": [["name", ["Ann", "Bob"]], ["pet", ["cat", "dog"]]],
        "clues": [
            {"type": "at", "x": ["name", "Ann"], "house": 1},
            {"type": "same", "x": ["name", "Bob"], "y": ["pet", "cat"]},
        ],
        "ask": {"attr": "pet", "value": "cat", "target": "name"},
    }
    item = {"verifier": "zebra", "answer": "Bob", "meta": zmeta}
    assert verify_item(item, "The answer is Bob.")
    assert verify_item(item, "<think>Ann? no.</think> Bob owns the cat.")
    assert not verify_item(item, "The answer is Ann.")
