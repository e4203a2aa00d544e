"""Answer extraction on tricky completions, every style against hand-checked answers.

The expected values were worked out by hand from each style's definition
(reasonkd.data.verify): strict = "#### N", flexible = last number, boxed = last
\\boxed{}, answer_is = "the answer is N" / "Answer: N", final = boxed > strict >
answer_is > flexible. Everything inside <think>...</think> is ignored when text
follows it. None = no answer in that style.
"""

from fractions import Fraction

import pytest

from reasonkd.data.verify import EXTRACTION_STYLES, extract_answer, extract_final_answer, normalize_number
from reasonkd.eval.tasks import get_task

STYLES = (*EXTRACTION_STYLES, "final")
N = None
# completion -> (strict, flexible, boxed, answer_is, final)
FIXTURE = [
    ("She pays $1,250.50 in total.\n#### 1,250.50", ("1250.5", "1250.5", N, N, "1250.5")),
    ("<think>Let x = 12. Then 12*3 = 36, minus 4 is 32.</think>The answer is 32.", (N, "32", N, "32", "32")),
    ("<think>maybe 17? no, 19</think>\nSo the final answer is \\boxed{19}.", (N, "19", "19", "19", "19")),
    ("The temperature dropped from 5 to -3 degrees, a change of -8.\n#### -8", ("-8", "-8", N, N, "-8")),
    ("Each costs $0.75, so 4 cost $3.00. The answer is $3.", (N, "3", N, "3", "3")),
    ("Total = 2 + 3 = 5 \\boxed{5} and then I say 7", (N, "7", "5", N, "5")),
    ("<think>The answer is 40</think>", (N, "40", N, N, "40")),  # nothing after </think>: only flexible reads inside
    ("The answer is 10 apples and 3 pears.", (N, "3", N, "10", "10")),
    ("Answer: 3 + 5 = 8", (N, "8", N, "8", "8")),
    ("It is 2.5 hours, i.e. 150 minutes.\n#### 150", ("150", "150", N, N, "150")),
    ("#### 1,000,000", ("1000000", "1000000", N, N, "1000000")),
    ("The answer is \\frac{3}{4}.", (N, "3/4", N, "3/4", "3/4")),
    ("10-3 = 7", (N, "7", N, N, "7")),  # "10-3" is a subtraction, not 10 and -3
    ("No numbers here.", (N, N, N, N, N)),
    ("The answer is \u22125.", (N, "-5", N, "-5", "-5")),  # unicode minus
    ("He owes -$20 after paying. The answer is -$20.", (N, "-20", N, "-20", "-20")),
    ("<think>#### 99</think>\n#### 100", ("100", "100", N, N, "100")),
    ("So \\boxed{\\frac{1}{2}} of the pie.", (N, "1/2", "1/2", N, "1/2")),
    ("Answer: $\\boxed{42}$", (N, "42", "42", "42", "42")),
    ("The answer is 3,500.", (N, "3500", N, "3500", "3500")),
]


def _value(text):
    return None if text is None else normalize_number(text)


@pytest.mark.parametrize("completion,expected", FIXTURE)
def test_every_style_matches_the_hand_checked_answer(completion, expected):
    got = {s: extract_answer(completion, s) for s in EXTRACTION_STYLES}
    got["final"] = extract_final_answer(completion)
    for style, want in zip(STYLES, expected):
        assert _value(got[style]) == (None if want is None else Fraction(want)), (style, got[style])


def test_gsm8k_task_scores_each_style_side_by_side(tmp_path):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text('{"question": "q", "answer": "2 + 3 = 5\\n#### 5"}\n')
    task = get_task("gsm8k", data=str(data))
    ex = task.examples()[0]
    assert ex["reference"] == "5"
    s = task.score(ex, "<think>4? 6?</think> 2 + 3 = 5 so \\boxed{5}. Then 9.")
    assert s["correct"] == {"strict": False, "flexible": False, "boxed": True, "answer_is": False, "final": True}
    assert s["verdict"] is True
    rows = [{"idx": 0, **s}]
    m = task.metrics(rows)
    assert m["accuracy"] == 1.0 and m["primary"] == "final" and m["styles"]["flexible"] == 0.0
