"""GSM-Plus perturbations (reasonkd.data.perturb): every generator property-tested with hypothesis.

Each test draws a family, a seed and the optional condition, makes the original
item, perturbs it, and checks that the recomputed answer is verified and that
the perturbation changed what it claims to change.
"""

import re
from fractions import Fraction
from random import Random

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reasonkd.data.augment import math_item
from reasonkd.data.math_families import FAMILIES, sample_valid, solve
from reasonkd.data.math_program import fmt
from reasonkd.data.perturb import (
    FREE_TEXT_TYPES,
    TYPES,
    UNDETERMINABLE,
    as_item,
    perturb,
    perturb_all,
    states_undeterminable,
    training_items,
    verify_perturbation,
    wrong_paths,
)
from reasonkd.data.perturb.program import CONTINUOUS, EXPAND, parse_number, valid
from reasonkd.data.perturb.text import split_sentences
from reasonkd.data.verify import verify_item

SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
NUM = re.compile(r"\d+(?:\.\d+)?")


def _item(family: str, seed: int, extra: bool | None = None):
    fam = FAMILIES[family]
    return math_item(fam, sample_valid(fam, Random(seed), extra=extra), f"math-{family}-{seed:05d}", seed=seed)


def _checked(item, ptype, seed):
    v = perturb(item, ptype, Random(seed))
    assume(v is not None)
    assert v.kind == "variant" and v.parent_id == item.id and v.meta["perturbation"] == ptype
    assert v.question != item.question
    assert verify_perturbation(v), v.to_dict()
    assert verify_item(v.to_dict(), v.solution_text())
    return v


families = st.sampled_from(sorted(FAMILIES))
seeds = st.integers(0, 10**6)


@SETTINGS
@given(families, seeds, st.booleans(), seeds)
def test_numerical_substitution_changes_one_number_same_digits(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "numerical_substitution", pseed)
    p, q = item.meta["params"], v.meta["params"]
    changed = [k for k in p if p[k] != q[k]]
    assert len(changed) == 1
    old, new = p[changed[0]], q[changed[0]]
    assert len(str(old)) == len(str(new)) and old != new
    assert v.answer == fmt(solve(FAMILIES[family], q)[0])


@SETTINGS
@given(st.sampled_from(sorted(EXPAND)), seeds, st.booleans(), seeds)
def test_digit_expansion_makes_numbers_larger(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "digit_expansion", pseed)
    p, q = item.meta["params"], v.meta["params"]
    changed = [k for k in p if p[k] != q[k]]
    assert changed and all(q[k] == p[k] * v.meta["factor"] and q[k] > p[k] for k in changed)
    old_nums, new_nums = NUM.findall(item.question), NUM.findall(v.question)
    assert len(old_nums) == len(new_nums) and all(float(b) >= float(a) for a, b in zip(old_nums, new_nums))
    assert any(len(b) > len(a) for a, b in zip(old_nums, new_nums))  # more digits somewhere
    assert v.answer == fmt(solve(FAMILIES[family], q)[0])


@SETTINGS
@given(st.sampled_from(sorted(CONTINUOUS)), seeds, st.booleans(), seeds)
def test_integer_decimal_fraction_writes_the_value_it_computes_with(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "integer_decimal_fraction", pseed)
    conv = v.meta["conversion"]
    value = parse_number(conv["text"])
    assert value == Fraction(conv["value"]) and value.denominator != 1  # written form keeps the value
    assert abs(value - conv["from"]) < 1 and conv["text"] in v.question
    assert "/" not in v.answer  # a clean decimal answer


@SETTINGS
@given(families, seeds, seeds)
def test_added_operation_adds_a_step(family, seed, pseed):
    item = _item(family, seed, extra=False)
    v = _checked(item, "added_operation", pseed)
    fam = FAMILIES[family]
    assert len(fam.program(v.meta["params"])) > len(fam.program(item.meta["params"]))
    assert v.answer == fmt(solve(fam, v.meta["params"])[0])
    assert perturb(_item(family, seed, extra=True), "added_operation", Random(pseed)) is None


@SETTINGS
@given(families, seeds, st.booleans(), seeds)
def test_reversed_question_solves_for_a_given_quantity(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "reversed_question", pseed)
    rev, fam, p = v.meta["reversed"], FAMILIES[family], item.meta["params"]
    assert v.answer == str(p[rev["param"]]) and rev["given_answer"] == item.answer
    assert re.search(r"\bx\b", v.question.split(" The answer to the question")[0])
    assert f"is {item.answer}. What is x?" in v.question
    for x in (p[rev["param"]] + 1, p[rev["param"]] + 2):  # another x gives another (or no) answer
        res = valid(fam, dict(p, **{rev["param"]: x}))
        assert res is None or res[0] != item.answer


@SETTINGS
@given(families, seeds, st.booleans(), seeds)
def test_paraphrase_keeps_numbers_and_answer(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "paraphrase", pseed)
    assert sorted(NUM.findall(v.question)) == sorted(NUM.findall(item.question))
    assert v.answer == item.answer


@SETTINGS
@given(families, seeds, st.booleans(), seeds)
def test_distractor_leaves_the_answer_unchanged(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "distractor_insertion", pseed)
    sentence = v.meta["distractor"]
    assert v.answer == item.answer and NUM.search(sentence) and sentence in v.question
    assert " ".join(v.question.replace(sentence, "").split()) == " ".join(item.question.split())


@SETTINGS
@given(families, seeds, st.booleans(), seeds)
def test_critical_thinking_removed_fact_makes_it_undeterminable(family, seed, extra, pseed):
    item = _item(family, seed, extra)
    v = _checked(item, "critical_thinking", pseed)
    rem, alt, fam, p = v.meta["removed"], v.meta["alternative"], FAMILIES[family], item.meta["params"]
    assert v.answer == UNDETERMINABLE and states_undeterminable(v.solution_text())
    # the missing quantity decides the answer: two values, two different valid answers
    assert valid(fam, p)[0] != valid(fam, dict(p, **{rem["param"]: alt["value"]}))[0]
    if rem["how"] == "sentence_removed":
        assert rem["text"] not in v.question and len(split_sentences(v.question)) >= 2
    else:
        assert "some " in v.question and "some " not in item.question


@SETTINGS
@given(families, seeds, st.booleans())
def test_wrong_paths_fail_verification(family, seed, extra):
    item = _item(family, seed, extra)
    for v in perturb_all(item).values():
        for neg in wrong_paths(v, Random(seed)):
            assert neg.kind == "negative" and neg.parent_id == v.id
            assert not verify_item(neg.to_dict(), neg.solution_text())


def test_every_type_is_reachable_on_the_families():
    seen = set()
    for family in FAMILIES:
        for seed in range(3):
            seen |= set(perturb_all(_item(family, seed, extra=False)))
    assert seen == set(TYPES)


def test_free_text_gets_only_wording_types():
    row = {
        "id": "g-1",
        "domain": "math",
        "question": "Tom has 3 apples. He buys 4 more. How many apples now?",
        "answer": "7",
        "steps": [],
        "verifier": "math_numeric",
        "split": "test",
        "source": "gsm8k_import",
    }
    out = perturb_all(as_item(row))
    assert set(out) == set(FREE_TEXT_TYPES)
    assert all(v.answer == "7" for v in out.values())
    assert out["paraphrase"].question.startswith("How many apples now?")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The price is missing, so the answer cannot be determined.", True),
        ("There is not enough information to answer.", True),
        ("\\boxed{cannot be determined}", True),
        ("We can't determine it without the number of pens. #### 12", False),
        ("The answer is 12.", False),
        ("<think>it cannot be determined?</think> The answer is 5.", False),
        ("So x = 4. But wait, the width is not given, so it cannot be determined.", True),
    ],
)
def test_undeterminable_grader(text, expected):
    assert states_undeterminable(text) is expected


@settings(max_examples=50, deadline=None)
@given(st.integers(-1000, 10**6))
def test_a_number_after_the_statement_is_not_a_clear_statement(n):
    assert not states_undeterminable(f"It cannot be determined. Let me guess anyway.\n#### {n}")


def test_training_items_only_use_the_given_types():
    item = _item("zoo_tickets", 3, extra=False)
    out = training_items(item, ["paraphrase", "digit_expansion"], seed=0, k=2, negatives=1.0)
    variants = [v for v in out if v.kind == "variant"]
    assert {v.meta["perturbation"] for v in variants} == {"paraphrase", "digit_expansion"}
    negs = [n for n in out if n.kind == "negative"]
    assert negs and {n.parent_id for n in negs} <= {v.id for v in variants}
