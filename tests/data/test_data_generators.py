"""Generators on their own: math families, negatives, code bug injection, puzzles, gsm_symbolic."""

from fractions import Fraction
from random import Random

import pytest

from reasonkd.data import augment as aug
from reasonkd.data.code_gen import bug_items, code_item, inject
from reasonkd.data.code_tasks import TASKS, TASKS_BY_NAME
from reasonkd.data.logic import make_sudoku, make_zebra, sudoku_item, zebra_item
from reasonkd.data.math_families import FAMILIES, fmt, sample_valid, solve
from reasonkd.data.puzzles import count_sudoku_solutions, solve_zebra, sudoku_valid
from reasonkd.data.verify import numbers_equal, verify_code, verify_item


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_family_programs_are_whole_and_consistent(name):
    fam = FAMILIES[name]
    for seed in range(15):
        for extra in (False, True):
            p = sample_valid(fam, Random(seed), extra=extra)
            answer, steps, subs = solve(fam, p)
            assert steps[-1] == f"#### {fmt(answer)}" and answer.denominator == 1 and answer >= 0
            assert subs[-1][1] == answer and all(q.endswith("?") for q, _ in subs)
            assert "{" not in fam.question(p) and "{" not in "".join(steps)


def test_chickens_and_rabbits():
    fam = FAMILIES["chickens_rabbits"]
    p = dict(sample_valid(fam, Random(0), extra=False), heads=35, legs=94)
    answer, steps, _ = solve(fam, p)
    assert answer == 12  # 23 chickens, 12 rabbits
    assert "35 heads" in fam.question(p) and any(s.startswith("Check:") for s in steps)


def test_condition_variants_change_difficulty_and_answer():
    fam = FAMILIES["eggs_market"]
    item = aug.math_item(fam, sample_valid(fam, Random(3), extra=False), "math-eggs_market-00000", seed=3)
    harder = aug.condition_variant(item)
    assert harder.meta["augment"] == "add_condition" and harder.difficulty > item.difficulty
    assert Fraction(harder.answer) < Fraction(item.answer)  # eggs given away are not sold
    easier = aug.condition_variant(harder)
    assert easier.meta["augment"] == "remove_condition" and easier.answer == item.answer


@pytest.mark.parametrize("etype", aug.NEGATIVE_TYPES)
def test_each_negative_type_is_wrong(etype):
    made = 0
    for i, name in enumerate(sorted(FAMILIES)):
        fam = FAMILIES[name]
        item = aug.math_item(fam, sample_valid(fam, Random(i)), f"math-{name}-00000", seed=i)
        for neg in aug.negatives(item, Random(i), [etype]):
            made += 1
            assert neg.error_type == etype and neg.meta["reference"] == item.answer
            assert not numbers_equal(neg.answer, item.answer)
            assert not verify_item(neg.to_dict(), neg.solution_text())
    assert made >= len(FAMILIES) - 2


def test_distractor_keeps_answer():
    fam = FAMILIES["shopping_change"]
    item = aug.math_item(fam, sample_valid(fam, Random(1)), "math-shopping_change-00000", seed=1)
    v = aug.distractor_variant(item, Random(2))
    assert v.answer == item.answer and v.meta["distractor"] in v.question and v.question != item.question


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_reference_code_passes_its_tests(task):
    k = task.k_range[0] if task.k_range else None
    item = code_item(task, k, f"code-{task.name}-00000", seed=5)
    assert item.meta["tests"].count("assert") >= 4
    assert verify_code(item.answer, item.meta["tests"], item.meta["entry_point"])


def test_bugfix_has_three_errors_buggy_fails_fixed_passes():
    items = [code_item(TASKS_BY_NAME[n], None, f"code-{n}-00000", seed=1) for n in ("roman", "binary_search", "lis")]
    fixes, negs = bug_items(items, seed=0, n_bugs=3, negative_ids={items[0].id})
    assert len(fixes) == 3 and len(negs) == 1
    for fix in fixes:
        assert len(fix.meta["bugs"]) == 3 and len({b["line"] for b in fix.meta["bugs"]}) == 3
        assert f"```python\n{fix.meta['buggy_code']}```" in fix.question
        assert not verify_code(fix.meta["buggy_code"], fix.meta["tests"], fix.meta["entry_point"], timeout=1.0)
        assert verify_code(fix.answer, fix.meta["tests"], fix.meta["entry_point"])
        assert sum(s.startswith("Line ") for s in fix.steps) == 3
    assert not verify_item(negs[0].to_dict(), negs[0].answer)


def test_inject_reports_exact_lines():
    code = code_item(TASKS_BY_NAME["collatz"], None, "c", seed=0).answer
    buggy, bugs = inject(code, [0])
    assert buggy != code and bugs[0]["buggy"] in buggy and bugs[0]["fixed"] in code


def test_zebra_unique_and_sudoku_unique():
    for seed in range(5):
        meta = make_zebra(Random(seed), 4, 3)
        assert len(solve_zebra(meta, limit=2)) == 1
        for c in meta["clues"]:  # no clue is redundant
            rest = dict(meta, clues=[d for d in meta["clues"] if d is not c])
            assert len(solve_zebra(rest, limit=2)) == 2
        puzzle, solution = make_sudoku(Random(seed), 6, 20)
        assert count_sudoku_solutions(puzzle, 6, (2, 3)) == 1 and sudoku_valid(solution, 6, (2, 3))
    z = zebra_item(Random(1), 3, 3, "logic-zebra_3x3-00000", seed=1)
    s = sudoku_item(Random(1), 4, "logic-sudoku_4-00000", seed=1)
    assert verify_item(z.to_dict(), z.solution_text()) and verify_item(s.to_dict(), s.solution_text())


def test_gsm_symbolic_offline():
    from reasonkd.data.sources import gsm_symbolic_items

    items = gsm_symbolic_items(8, seed=0)
    assert len(items) >= 6 and all(it.template.startswith("gsm_symbolic_") for it in items)
    assert all(verify_item(it.to_dict(), it.solution_text()) for it in items)
