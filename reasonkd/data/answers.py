"""Reading the answer a completion states: numbers, `#### N`, `\\boxed{...}`, "The answer is", code blocks.

    from reasonkd.data.answers import extract_final_answer, numbers_equal
    extract_final_answer("<think>2+3=5</think> The answer is \\boxed{10}.")   # '10'
    numbers_equal("1,234.0", "$1234")                                       # True

Pure text functions, used by the verifiers (reasonkd.data.verify), the puzzle
checks (reasonkd.data.puzzles) and eval's GSM8K scoring. Extraction is
R1-aware: when a completion contains `</think>`, only the text after the last
`</think>` is read (the reasoning inside the think block is full of
intermediate numbers that are not the answer).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

EXTRACTION_STYLES = ("strict", "flexible", "boxed", "answer_is")

# A number as people write it: optional sign, thousands commas, decimals,
# an optional "/denominator". The sign must not follow a word character or ")"
# so "10-3" reads as 10 and 3, not 10 and -3.
_NUM_RE = re.compile(r"(?<![\w.)])[-−]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?:/\d+)?(?!\d)")
_FRAC_TEX = re.compile(r"\\[dt]?frac\s*\{\s*([^{}]+?)\s*\}\s*\{\s*([^{}]+?)\s*\}")
_STRICT_RE = re.compile(r"####\s*\$?\s*([-−]?)\s*\$?\s*((?:\d[\d,]*)?\.?\d+(?:/\d+)?)")
_ANSWER_IS_RE = re.compile(r"(?:the\s+)?(?:final\s+)?answer\s*(?:is|:|=)\s*:?\s*([^\n]*)", re.IGNORECASE)


def strip_think(text: str, style: str) -> str | None:
    """Text after the last </think>; None when nothing follows (except flexible)."""
    if "</think>" not in text:
        return text
    tail = text.rsplit("</think>", 1)[1]
    if tail.strip():
        return tail
    return text if style == "flexible" else None


def boxed_contents(text: str) -> list[str]:
    """Contents of every \\boxed{...} / \\fbox{...}, braces balanced."""
    out = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1].strip())
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
    boxed = boxed_contents(s)
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
    text = strip_think(completion, style)
    if text is None:
        return None
    if style == "boxed":
        boxed = boxed_contents(text)
        return boxed[-1] if boxed else None
    if style == "strict":
        found = _STRICT_RE.findall(text)
        return _clean_token("".join(found[-1])) if found else None
    if style == "answer_is":
        for m in reversed(list(_ANSWER_IS_RE.finditer(text))):
            rest = m.group(1)
            boxed = boxed_contents(rest)
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


# ---------------------------------------------------------------- code

_CODE_BLOCK = re.compile(r"```(?:python|py|python3)?\s*\n(.*?)```", re.DOTALL)


def extract_code(completion: str) -> str:
    """The last fenced Python block of a completion (after </think>), else the text."""
    text = completion
    if "</think>" in text and text.rsplit("</think>", 1)[1].strip():
        text = text.rsplit("</think>", 1)[1]
    blocks = _CODE_BLOCK.findall(text)
    return blocks[-1] if blocks else text
