"""The two qualitative cases of docs/design.md §4, asked of every model and shown side by side in the report.

1. A chickens-and-rabbits variant: set up variables, eliminate one, verify.
2. Debugging a Python function with three logic errors: the line and type of
   each error, how it propagates, and the corrected code.

The prompts are fixed (so runs are comparable); each answer also gets a rough
automatic check (the right numbers appear / the corrected code passes tests
in the sandbox), shown next to it, never mixed into accuracy.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

BUGGY = '''def average_of_evens(nums):
    """Return the average of the even numbers in nums, or 0.0 if there are none."""
    total = 0
    count = 0
    for i in range(1, len(nums)):
        if nums[i] % 2 == 1:
            total += nums[i]
            count += 1
    if count == 0:
        return 0.0
    return total // count
'''

FIXED = '''def average_of_evens(nums):
    """Return the average of the even numbers in nums, or 0.0 if there are none."""
    total = 0
    count = 0
    for i in range(0, len(nums)):
        if nums[i] % 2 == 0:
            total += nums[i]
            count += 1
    if count == 0:
        return 0.0
    return total / count
'''

TESTS = """
assert average_of_evens([2, 4, 5]) == 3.0
assert average_of_evens([2, 3]) == 2.0
assert average_of_evens([1, 3]) == 0.0
assert average_of_evens([3, 4, 7]) == 4.0
assert average_of_evens([]) == 0.0
assert average_of_evens([1, 2, 4, 5, 7]) == 3.0
"""


@dataclass(frozen=True)
class Case:
    name: str
    title: str
    prompt: str
    reference: str
    check: Callable[[str], bool]


def _rabbits_ok(answer: str) -> bool:
    tail = answer.rsplit("</think>", 1)[-1]
    return bool(re.search(r"\b24\b", tail)) and bool(re.search(r"\b16\b", tail))


def _debug_ok(answer: str) -> bool:
    from reasonkd.data.verify import extract_code
    from reasonkd.utils.sandbox import run_in_sandbox

    code = extract_code(answer)
    if "def average_of_evens" not in code:
        return False
    return run_in_sandbox(code + "\n" + TESTS, timeout=10).ok


CASES = [
    Case(
        "chickens_rabbits",
        "Chickens and rabbits (set up, eliminate, verify)",
        "A farmer keeps chickens and rabbits in one pen. Together they have 40 heads and 112 legs. "
        "How many chickens and how many rabbits are there?\n"
        "Solve it step by step: define variables, write the two equations, eliminate one variable, "
        "solve, and then verify your result against both the heads and the legs.",
        "c + r = 40, 2c + 4r = 112 -> 2r = 112 - 80 = 32, r = 16, c = 24. Check: 24 + 16 = 40 heads, "
        "48 + 64 = 112 legs.",
        _rabbits_ok,
    ),
    Case(
        "debug_three_errors",
        "Debugging a function with three logic errors",
        "The Python function below contains exactly three logic errors.\n\n```python\n" + BUGGY + "```\n\n"
        "For each error give the line, the type of error, and how it propagates to the returned value. "
        "Then give the corrected function in one ```python code block.",
        "1) `range(1, len(nums))` skips nums[0] (off-by-one: the first number is never counted); "
        "2) `nums[i] % 2 == 1` selects odd numbers (wrong condition: sums the wrong elements); "
        "3) `total // count` is floor division (wrong operator: the average is truncated).\n\n"
        "```python\n" + FIXED + "```",
        _debug_ok,
    ),
]
