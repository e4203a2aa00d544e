"""Clean OCR text for maths: the characters a word problem's answer depends on.

    from reasonkd.ocr.normalize import normalize_math
    normalize_math("Ｉt costs $ l2.5O, 3 − 1 = 2")   # -> "It costs $12.50, 3 - 1 = 2"

The recogniser (PP-OCRv4 through rapidocr) is trained on Chinese and English:
it can return full-width digits and punctuation, curly quotes, the Unicode
minus or dashes, letters that look like digits inside numbers, and it drops
some spaces. Each rule below is one of those, kept narrow so that it never
changes a correctly read number. Multiplication and division signs (×, ÷) are
kept as they are: they are what the page says, and models read them.
"""

from __future__ import annotations

import re
import unicodedata

# NFKC folds full-width forms (１２，：？) but not these
_CHAR_MAP = str.maketrans(
    {
        "\u2212": "-",
        "\u2013": "-",
        "\u2014": "-",
        "\u2010": "-",
        "\u2011": "-",
        "\u2012": "-",
        "\u2018": "'",
        "\u2019": "'",
        "\u201a": "'",
        "\u00b4": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u3002": ".",
        "\u3001": ",",
        "\u2044": "/",
        "\u2215": "/",
        "\u00b7": ".",
    }
)
# letters OCR confuses with digits; changed only where digits stand on both sides,
# or (O/o only) at the end of a number before a space or punctuation: "5O apples"
_DIGIT_LIKE = {"O": "0", "o": "0", "D": "0", "l": "1", "I": "1", "|": "1"}
_BETWEEN_DIGITS = re.compile(r"(?<=\d)([OoDlI|]+)(?=[\d.,]*\d)")
_TRAILING_O = re.compile(r"(?<=\d)([Oo]+)(?=[\s.,;:?!)%]|$)")
_LEADING_L = re.compile(r"(?<=[\s$(])([lI])(?=\d)")
_AFTER_DOLLAR = re.compile(r"(?<=\$)([\dOolI|]+)(?=\b|[.,]|$)")
_SPACED_DOLLAR = re.compile(r"\$\s+(?=\d)")
_SPACED_PERCENT = re.compile(r"(?<=\d)\s+%")
# dropped spaces: "is9" -> "is 9", "9years" -> "9 years", "Omar.Omar" -> "Omar. Omar"
_LETTERS_DIGIT = re.compile(r"(?<=[a-z]{2})(?=\d)")
_DIGIT_WORD = re.compile(r"(?<=\d)(?=(?!st\b|nd\b|rd\b|th\b)[a-z]{3,}\b)")
_PUNCT_WORD = re.compile(r"(?<=[a-z0-9][.?!])(?=[A-Z](?:[a-z]|\s))|(?<=[a-zA-Z][,;:])(?=[a-zA-Z0-9])")


def normalize_math(text: str) -> str:
    """OCR text -> the same text with numbers, operators, quotes and spacing made plain."""
    text = unicodedata.normalize("NFKC", text).translate(_CHAR_MAP)
    text = _BETWEEN_DIGITS.sub(lambda m: "".join(_DIGIT_LIKE[c] for c in m.group(1)), text)
    text = _TRAILING_O.sub(lambda m: "0" * len(m.group(1)), text)
    text = _LEADING_L.sub("1", text)
    # after "$" only an amount can follow: "$loo" -> "$100"
    text = _AFTER_DOLLAR.sub(lambda m: "".join(_DIGIT_LIKE.get(c, c) for c in m.group(1)), text)
    text = _SPACED_DOLLAR.sub("$", text)
    text = _SPACED_PERCENT.sub("%", text)
    text = _LETTERS_DIGIT.sub(" ", text)
    text = _DIGIT_WORD.sub(" ", text)
    text = _PUNCT_WORD.sub(" ", text)
    return "\n".join(" ".join(line.split()) for line in text.splitlines())
