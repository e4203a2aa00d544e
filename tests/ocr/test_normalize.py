"""normalize_math: each OCR repair, and that correct text passes through unchanged."""

import pytest

from reasonkd.ocr.normalize import normalize_math


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("\uff11\uff12 apples\uff0c\uff13 pears\uff1f", "12 apples, 3 pears?"),  # full-width digits / punctuation
        ("12 \u2212 7 = 5", "12 - 7 = 5"),  # unicode minus
        ("3 \u2013 1", "3 - 1"),  # en dash
        ("6 \u00d7 4 = 24 and 8 \u00f7 2", "6 \u00d7 4 = 24 and 8 \u00f7 2"),  # operators kept
        ("it is 1O5 km", "it is 105 km"),  # O inside a number
        ("1l2 and 1I0", "112 and 110"),  # l / I inside a number
        ("buy 5O apples.", "buy 50 apples."),  # O ending a number
        ("a $loo bill", "a $100 bill"),  # after $ only an amount
        ("$ 12 and 15 %", "$12 and 15%"),
        ("\u00bd of 8", "1/2 of 8"),  # vulgar fraction
        ("\u201cHi\u201d, Ava\u2019s", '"Hi", Ava\'s'),
        ("Liamis9years old", "Liamis 9 years old"),  # dropped spaces around numbers
        ("$48.A grandparent", "$48. A grandparent"),
        ("Jamal,who is 9.What", "Jamal, who is 9. What"),
    ],
)
def test_repairs(raw, clean):
    assert normalize_math(raw) == clean


@pytest.mark.parametrize(
    "text",
    [
        "A 6x6 sudoku",
        "the 3rd day",
        "a 3l bottle",
        "1,000 and 3.5 and 0.25",
        "Go to room 12b.",
        "I had 3 cats",
        "Solve this 6x6 sudoku:\n14.2..\n2.316.",
    ],
)
def test_correct_text_unchanged(text):
    assert normalize_math(text) == text
