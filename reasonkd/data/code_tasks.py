"""The bank of medium algorithm tasks behind the code-reasoning items.

Each task has a reference implementation, a step-by-step decomposition and a
random input generator; tests are made by running the reference on random
inputs. Parametric tasks put a constant `K` into the statement and the code
(e.g. "count numbers divisible by K"), so a parameter-substitution variant has
a new statement, new code and new tests.

Add a task: append a `CodeTask` to TASKS (keep the source plain: it is also
the target of the bug injector in reasonkd.data.code_gen).
"""

from __future__ import annotations

import string
from dataclasses import dataclass
from random import Random
from typing import Callable


@dataclass(frozen=True)
class CodeTask:
    name: str
    entry_point: str
    description: str
    """Statement; `{K}` is replaced by the task parameter."""
    source: str
    """Reference implementation; the token `K` (as a bare name) is replaced by the parameter."""
    steps: tuple[str, ...]
    args: Callable[[Random], tuple]
    """One random argument tuple for a test case."""
    k_range: tuple[int, int] | None = None
    """Inclusive range of K for parametric tasks; None = no parameter."""


def _ints(rng: Random, lo=-20, hi=20, n=(0, 12)) -> list[int]:
    return [rng.randint(lo, hi) for _ in range(rng.randint(*n))]


def _word(rng: Random, alphabet="abc", n=(1, 6)) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(*n)))


TASKS: tuple[CodeTask, ...] = (
    CodeTask(
        "run_length",
        "run_length_encode",
        "Write `run_length_encode(s)` that compresses runs of equal characters: each run becomes the "
        "character followed by its length, e.g. 'aaabcc' -> 'a3b1c2'. The empty string gives ''.",
        "def run_length_encode(s):\n    out = []\n    i = 0\n    while i < len(s):\n        j = i\n"
        "        while j < len(s) and s[j] == s[i]:\n            j += 1\n        out.append(s[i] + str(j - i))\n"
        "        i = j\n    return ''.join(out)\n",
        (
            "Walk the string with an index i.",
            "From i, advance j while s[j] equals s[i]; j - i is the run length.",
            "Append the character and the run length, then continue from j.",
            "Join the pieces.",
        ),
        lambda r: (_word(r, "aab", (0, 10)),),
    ),
    CodeTask(
        "balanced",
        "is_balanced",
        "Write `is_balanced(s)` that returns True when every bracket in s ('()', '[]', '{}') is closed in the "
        "right order, and False otherwise. Other characters are ignored.",
        "def is_balanced(s):\n    pairs = {')': '(', ']': '[', '}': '{'}\n    stack = []\n    for ch in s:\n"
        "        if ch in '([{':\n            stack.append(ch)\n        elif ch in pairs:\n"
        "            if not stack or stack[-1] != pairs[ch]:\n                return False\n            stack.pop()\n"
        "    return len(stack) == 0\n",
        (
            "Keep a stack of open brackets.",
            "Push every opening bracket.",
            "On a closing bracket the top of the stack must be its partner; pop it, else fail.",
            "At the end the stack must be empty.",
        ),
        lambda r: (_brackets(r),),
    ),
    CodeTask(
        "merge_intervals",
        "merge_intervals",
        "Write `merge_intervals(intervals)` that takes a list of [start, end] pairs (start <= end) and returns "
        "the merged, sorted list where overlapping or touching intervals are combined.",
        "def merge_intervals(intervals):\n    merged = []\n    for start, end in sorted(intervals):\n"
        "        if merged and start <= merged[-1][1]:\n            merged[-1][1] = max(merged[-1][1], end)\n"
        "        else:\n            merged.append([start, end])\n    return merged\n",
        (
            "Sort the intervals by start.",
            "Scan them, keeping the merged list.",
            "If an interval starts before the last merged one ends, extend that one's end.",
            "Otherwise start a new merged interval.",
        ),
        lambda r: ([sorted([r.randint(0, 30), r.randint(0, 30)]) for _ in range(r.randint(0, 6))],),
    ),
    CodeTask(
        "max_subarray",
        "max_subarray_sum",
        "Write `max_subarray_sum(nums)` that returns the largest sum of a non-empty contiguous slice of the "
        "non-empty list nums.",
        "def max_subarray_sum(nums):\n    best = nums[0]\n    current = 0\n    for x in nums:\n"
        "        current = max(x, current + x)\n        best = max(best, current)\n    return best\n",
        (
            "Track the best sum of a slice ending at the current position (Kadane).",
            "At each x, either extend the previous slice or start fresh at x.",
            "Keep the best value seen so far and return it.",
        ),
        lambda r: (_ints(r, n=(1, 12)),),
    ),
    CodeTask(
        "binary_search",
        "binary_search",
        "Write `binary_search(nums, target)` that returns the index of target in the sorted list nums of "
        "distinct integers, or -1 if it is absent. Use binary search.",
        "def binary_search(nums, target):\n    lo = 0\n    hi = len(nums) - 1\n    while lo <= hi:\n"
        "        mid = (lo + hi) // 2\n        if nums[mid] == target:\n            return mid\n"
        "        if nums[mid] < target:\n            lo = mid + 1\n        else:\n            hi = mid - 1\n"
        "    return -1\n",
        (
            "Keep a window [lo, hi] that must contain the target if it is present.",
            "Look at the middle; return it on a match.",
            "If the middle is too small, move lo past it; otherwise move hi below it.",
            "When the window is empty, return -1.",
        ),
        lambda r: _search_case(r),
    ),
    CodeTask(
        "common_prefix",
        "longest_common_prefix",
        "Write `longest_common_prefix(words)` that returns the longest string that starts every word in the "
        "list; return '' for an empty list.",
        "def longest_common_prefix(words):\n    if not words:\n        return ''\n    prefix = words[0]\n"
        "    for w in words[1:]:\n        i = 0\n        while i < len(prefix) and i < len(w) and prefix[i] == w[i]:\n"
        "            i += 1\n        prefix = prefix[:i]\n    return prefix\n",
        (
            "Start with the first word as the candidate prefix.",
            "For each other word, count how many leading characters agree with the candidate.",
            "Cut the candidate to that length.",
            "What is left is the common prefix.",
        ),
        lambda r: ([("ab" if r.random() < 0.7 else "") + _word(r, "ab", (0, 4)) for _ in range(r.randint(0, 4))],),
    ),
    CodeTask(
        "roman",
        "roman_to_int",
        "Write `roman_to_int(s)` that converts a valid Roman numeral (I, V, X, L, C, D, M, with subtractive "
        "pairs such as IV and XC) to an integer.",
        "def roman_to_int(s):\n    values = {'I': 1, 'V': 5, 'X': 10, 'L': 50, 'C': 100, 'D': 500, 'M': 1000}\n"
        "    total = 0\n    for i in range(len(s)):\n        v = values[s[i]]\n"
        "        if i + 1 < len(s) and values[s[i + 1]] > v:\n            total -= v\n        else:\n"
        "            total += v\n    return total\n",
        (
            "Map each symbol to its value.",
            "A symbol followed by a larger one is subtracted (IV = 5 - 1).",
            "Every other symbol is added.",
            "Return the total.",
        ),
        lambda r: (_roman(r.randint(1, 3999)),),
    ),
    CodeTask(
        "count_multiples",
        "count_multiples",
        "Write `count_multiples(nums)` that returns how many numbers in the list nums are divisible by {K}.",
        "def count_multiples(nums):\n    count = 0\n    for x in nums:\n        if x % K == 0:\n"
        "            count += 1\n    return count\n",
        (
            "Start a counter at 0.",
            "For each number, test divisibility by {K} with the remainder.",
            "Add one for each number that divides evenly.",
            "Return the count.",
        ),
        lambda r: (_ints(r, -50, 50),),
        (2, 9),
    ),
    CodeTask(
        "rotate_left",
        "rotate_left",
        "Write `rotate_left(items)` that returns a new list with the elements of items rotated {K} places to "
        "the left (wrapping around; an empty list stays empty).",
        "def rotate_left(items):\n    if not items:\n        return []\n    k = K % len(items)\n"
        "    return items[k:] + items[:k]\n",
        (
            "An empty list stays empty.",
            "Reduce the shift {K} modulo the length.",
            "The result is the tail from the shift point followed by the head.",
        ),
        lambda r: (_ints(r, 0, 9, (0, 8)),),
        (1, 6),
    ),
    CodeTask(
        "chunk_sums",
        "chunk_sums",
        "Write `chunk_sums(nums)` that splits nums into consecutive chunks of {K} elements (the last chunk may "
        "be shorter) and returns the list of chunk sums.",
        "def chunk_sums(nums):\n    sums = []\n    for start in range(0, len(nums), K):\n"
        "        sums.append(sum(nums[start:start + K]))\n    return sums\n",
        (
            "Step through the start positions 0, {K}, 2*{K}, ...",
            "Sum the slice of {K} elements at each start.",
            "Collect the sums in order.",
        ),
        lambda r: (_ints(r, -9, 9, (0, 11)),),
        (2, 5),
    ),
    CodeTask(
        "top_k_words",
        "top_words",
        "Write `top_words(words)` that returns the {K} most frequent words in the list, most frequent first; "
        "ties are broken alphabetically. Return fewer if there are fewer distinct words.",
        "def top_words(words):\n    counts = {}\n    for w in words:\n        counts[w] = counts.get(w, 0) + 1\n"
        "    ranked = sorted(counts, key=lambda w: (-counts[w], w))\n    return ranked[:K]\n",
        (
            "Count each word in a dictionary.",
            "Sort the distinct words by count descending, then alphabetically.",
            "Return the first {K}.",
        ),
        lambda r: ([r.choice(["ant", "bee", "cat", "dog", "eel"]) for _ in range(r.randint(0, 10))],),
        (1, 3),
    ),
    CodeTask(
        "spiral",
        "spiral_order",
        "Write `spiral_order(matrix)` that returns the elements of a rectangular matrix (list of equal-length "
        "rows) in clockwise spiral order starting at the top-left.",
        "def spiral_order(matrix):\n    out = []\n    while matrix:\n        out.extend(matrix[0])\n"
        "        matrix = [list(row) for row in zip(*matrix[1:])][::-1]\n    return out\n",
        (
            "Take the first row.",
            "Rotate the remaining rows a quarter turn counter-clockwise so the next edge becomes the first row.",
            "Repeat until nothing is left.",
        ),
        lambda r: (_matrix(r),),
    ),
    CodeTask(
        "lis",
        "lis_length",
        "Write `lis_length(nums)` that returns the length of the longest strictly increasing subsequence of nums.",
        "def lis_length(nums):\n    best = [1] * len(nums)\n    for i in range(len(nums)):\n        for j in range(i):\n"
        "            if nums[j] < nums[i]:\n                best[i] = max(best[i], best[j] + 1)\n"
        "    return max(best) if best else 0\n",
        (
            "best[i] = length of the longest increasing subsequence ending at i; start at 1.",
            "For each earlier j with nums[j] < nums[i], best[i] can be best[j] + 1.",
            "The answer is the largest best[i] (0 for an empty list).",
        ),
        lambda r: (_ints(r, 0, 15, (0, 10)),),
    ),
    CodeTask(
        "prime_factors",
        "prime_factors",
        "Write `prime_factors(n)` that returns the prime factors of the integer n >= 2 in ascending order, "
        "with repetition (12 -> [2, 2, 3]).",
        "def prime_factors(n):\n    factors = []\n    d = 2\n    while d * d <= n:\n        while n % d == 0:\n"
        "            factors.append(d)\n            n //= d\n        d += 1\n    if n > 1:\n"
        "        factors.append(n)\n    return factors\n",
        (
            "Try divisors d from 2 while d * d <= n.",
            "Divide out d as often as it divides n, recording it.",
            "Whatever is left above 1 is a prime factor too.",
        ),
        lambda r: (r.randint(2, 500),),
    ),
    CodeTask(
        "caesar",
        "caesar_shift",
        "Write `caesar_shift(text)` that shifts every lowercase letter {K} places forward in the alphabet "
        "(wrapping z to a) and leaves other characters unchanged.",
        "def caesar_shift(text):\n    out = ''\n    for ch in text:\n        if 'a' <= ch <= 'z':\n"
        "            out += chr((ord(ch) - ord('a') + K) % 26 + ord('a'))\n        else:\n            out += ch\n"
        "    return out\n",
        (
            "Go through the characters.",
            "For a lowercase letter, take its position 0..25, add {K}, wrap modulo 26.",
            "Keep any other character as is.",
        ),
        lambda r: (_word(r, string.ascii_lowercase[:8] + "xyz .", (0, 10)),),
        (1, 25),
    ),
    CodeTask(
        "pascal",
        "pascal_row",
        "Write `pascal_row(n)` that returns row n (0-based) of Pascal's triangle as a list.",
        "def pascal_row(n):\n    row = [1]\n    for _ in range(n):\n"
        "        row = [a + b for a, b in zip([0] + row, row + [0])]\n    return row\n",
        ("Row 0 is [1].", "Each next row adds the previous row to itself shifted by one.", "Repeat n times."),
        lambda r: (r.randint(0, 12),),
    ),
    CodeTask(
        "window_max",
        "window_max",
        "Write `window_max(nums)` that returns the maximum of every window of {K} consecutive elements of nums "
        "(an empty list if nums has fewer than {K} elements).",
        "def window_max(nums):\n    out = []\n    for i in range(len(nums) - K + 1):\n"
        "        out.append(max(nums[i:i + K]))\n    return out\n",
        (
            "There are len(nums) - {K} + 1 windows.",
            "For each start i, take the maximum of nums[i:i+{K}].",
            "Collect the maxima in order.",
        ),
        lambda r: (_ints(r, -9, 9, (0, 10)),),
        (2, 4),
    ),
    CodeTask(
        "collatz",
        "collatz_steps",
        "Write `collatz_steps(n)` that returns how many steps the Collatz process takes to reach 1 from n >= 1 "
        "(halve even numbers, map odd n to 3n + 1).",
        "def collatz_steps(n):\n    steps = 0\n    while n != 1:\n        if n % 2 == 0:\n            n = n // 2\n"
        "        else:\n            n = 3 * n + 1\n        steps += 1\n    return steps\n",
        ("Count steps until n is 1.", "Even n: halve it.", "Odd n: replace it by 3n + 1."),
        lambda r: (r.randint(1, 200),),
    ),
    CodeTask(
        "digit_sum",
        "digit_sum_base",
        "Write `digit_sum_base(n)` that returns the sum of the digits of the non-negative integer n written in "
        "base {K}.",
        "def digit_sum_base(n):\n    total = 0\n    while n > 0:\n        total += n % K\n        n = n // K\n"
        "    return total\n",
        ("The last base-{K} digit is n % {K}.", "Add it and drop it with n // {K}.", "Stop when n is 0."),
        lambda r: (r.randint(0, 5000),),
        (2, 9),
    ),
    CodeTask(
        "second_largest",
        "second_largest",
        "Write `second_largest(nums)` that returns the second largest distinct value in nums, or None when "
        "there are fewer than two distinct values.",
        "def second_largest(nums):\n    first = None\n    second = None\n    for x in nums:\n"
        "        if first is None or x > first:\n            if first is not None:\n                second = first\n"
        "            first = x\n        elif x != first and (second is None or x > second):\n"
        "            second = x\n    return second\n",
        (
            "Track the largest and second largest distinct values.",
            "A new maximum pushes the old maximum down to second place.",
            "A value below the maximum but above the second replaces the second.",
        ),
        lambda r: (_ints(r, 0, 9, (0, 8)),),
    ),
)


def _roman(n: int) -> str:
    out = ""
    for v, s in (
        (1000, "M"),
        (900, "CM"),
        (500, "D"),
        (400, "CD"),
        (100, "C"),
        (90, "XC"),
        (50, "L"),
        (40, "XL"),
        (10, "X"),
        (9, "IX"),
        (5, "V"),
        (4, "IV"),
        (1, "I"),
    ):
        while n >= v:
            out += s
            n -= v
    return out


def _search_case(rng: Random) -> tuple[list[int], int]:
    nums = sorted(rng.sample(range(-30, 30), rng.randint(0, 10)))
    return nums, (rng.choice(nums) if nums and rng.random() < 0.6 else rng.randint(-30, 30))


def _brackets(rng: Random, depth: int = 0) -> str:
    """Balanced about half the time, so tests see both answers."""
    out = ""
    for _ in range(rng.randint(0, 3 - depth)):
        o, c = rng.choice(["()", "[]", "{}"])
        out += o + ("x" if rng.random() < 0.2 else "") + (_brackets(rng, depth + 1) if depth < 2 else "") + c
    if rng.random() < 0.5 and out:
        i = rng.randrange(len(out))
        out = out[:i] + rng.choice("()[]{}") + out[i + 1 :]
    return out


def _matrix(rng: Random) -> list[list[int]]:
    rows, cols = rng.randint(0, 4), rng.randint(1, 4)
    return [[rng.randint(0, 9) for _ in range(cols)] for _ in range(rows)]


TASKS_BY_NAME = {t.name: t for t in TASKS}
