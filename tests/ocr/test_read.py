"""Reading: rendered-then-OCR'd problems match their source, numbers exactly; reading order."""

import re

import pytest

from reasonkd.ocr.normalize import normalize_math
from reasonkd.ocr.read import OcrLine, cer, order_blocks, read_image, reflow
from reasonkd.ocr.render import render_problem

pytest.importorskip("rapidocr_onnxruntime", reason="needs the `ocr` extra")

# a fixed set of short problems covering the characters answers depend on
PROBLEMS = [
    "Ava buys 3 pens at $1.25 each. How much does she pay?",
    "A coat costs $80 and is 15% off. What is the sale price?",
    "Tom ate 1/4 of a pizza with 8 slices. How many slices are left?",
    "Compute 12 - 7 + 3 = ? and 6 x 4 = ?",
    "A tank holds 2,500 liters and loses 37.5 liters a day. After 12 days, how much is left?",
    "What is 18 \u00f7 3 \u00d7 2 \u2212 5? Write \u00bd as 0.5 and 3/4 as 75%.",
    "Ben pays $0.75 for 1 apple, $12.40 for 8 pears (about 6.5% tax).",
]

NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")


@pytest.fixture(scope="module")
def read_back():
    return [read_image(render_problem(p)[0]) for p in PROBLEMS]


def test_clean_render_matches_source(read_back):
    errors = total = 0
    for src, res in zip(PROBLEMS, read_back):
        src = normalize_math(src)  # the source as OCR output is written: "\u2212" -> "-", "\u00bd" -> "1/2"
        assert NUM.findall(res.text) == NUM.findall(src), (src, res.text)
        e, n = cer(src, res.text)
        errors, total = errors + e, total + n
        assert 0.5 < res.confidence <= 1 and all(0 < ln.confidence <= 1 for ln in res.lines)
    assert errors / total <= 0.02, [r.text for r in read_back]


def test_two_column_reading_order():
    text = (
        "Mia has 14 stickers. She buys 3 packs of 6 stickers each. Then she gives 9 stickers to "
        "her brother and 2 to a friend. How many stickers does Mia have now?"
    )
    img, style = render_problem(text, columns=2)
    assert style["columns"] == 2
    res = read_image(img)
    assert NUM.findall(res.text) == NUM.findall(text)
    assert cer(text, res.text)[0] <= 3, res.text
    assert "\n" not in res.text  # wrapped lines and the two columns run on as one paragraph
    assert {ln.block for ln in res.lines} == {0, 1}


def test_degraded_render_reads_numbers():
    text = "Sam saves $12 a week for 9 weeks and spends $35. How many dollars are left?"
    res = read_image(render_problem(text, degraded=True, seed=3)[0])
    assert NUM.findall(res.text) == NUM.findall(text), res.text


def order_boxes(quads: list) -> list[list[int]]:
    """Lines of box indices in reading order, the blocks of `order_blocks` one after the other."""
    return [line for block in order_blocks(quads) for line in block]


def _quad(x0, y0, x1, y1):
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def test_order_boxes_columns_lines_and_skew():
    # two columns, two lines each, given shuffled; the right column sits slightly higher; boxes of one
    # line nearly touch (rapidocr grows them), the gutter is wider than 0.6 box heights
    boxes = [
        _quad(520, 8, 900, 38),
        _quad(40, 60, 420, 90),
        _quad(40, 10, 200, 40),
        _quad(210, 10, 420, 40),
        _quad(520, 58, 880, 88),
    ]
    assert order_boxes(boxes) == [[2, 3], [1], [0], [4]]
    # one column rotated by 3 degrees: still two lines of two boxes, left to right
    import math

    t = math.radians(3)
    rot = [
        [[x * math.cos(t) - y * math.sin(t), x * math.sin(t) + y * math.cos(t)] for x, y in q]
        for q in [_quad(40, 10, 400, 40), _quad(410, 10, 800, 40), _quad(40, 60, 400, 90), _quad(410, 60, 800, 90)]
    ]
    assert order_boxes(rot) == [[0, 1], [2, 3]]
    assert order_boxes([]) == []


def test_cer():
    assert cer("a b  c", "a b c") == (0, 5)
    assert cer("$12", "$l2") == (1, 3)


def test_reflow_joins_wrapped_lines_and_keeps_short_ones():
    lines = [
        OcrLine("Answer with the grid, one", 1.0, [0, 0, 900, 30]),
        OcrLine("row per line.", 1.0, [0, 40, 300, 70]),
        OcrLine("14.2..", 1.0, [0, 80, 90, 110]),
        OcrLine("2.316.", 1.0, [0, 120, 90, 150]),
        OcrLine("right column", 1.0, [1000, 0, 1800, 30], block=1),
    ]
    assert reflow(lines) == "Answer with the grid, one row per line.\n14.2..\n2.316.\nright column"
