"""End to end: `reasonkd data build` on a small recipe covering all three domains.

Checks on real output: one schema, positives pass
and negatives fail their verifiers, variants differ from parents with
recomputed answers, same seed -> identical bytes, held-out-template split,
decontamination, and a malformed import line -> error naming file:line with
nothing written.
"""

import json
from pathlib import Path

import pytest

from reasonkd.cli import main
from reasonkd.config import load_config
from reasonkd.data import build_dataset, load_items, solution_text
from reasonkd.data.build import generate
from reasonkd.data.math_families import FAMILIES, fmt, solve
from reasonkd.data.puzzles import solve_zebra, zebra_answer
from reasonkd.data.recipe import DataRecipe
from reasonkd.data.schema import ERROR_TYPES, FIELDS
from reasonkd.data.verify import numbers_equal, reference_answer, verify_item
from reasonkd.errors import ReasonkdError

QUICK = Path(__file__).resolve().parents[2] / "recipes" / "data" / "quick.yaml"
DEFAULT = QUICK.with_name("default.yaml")
SMALL = [
    "math.per_family=4",
    "math.gsm_symbolic=6",
    "code.per_task=2",
    "code.tasks=[roman,rotate_left,binary_search,spiral]",
    "logic.zebra=4",
    "logic.sudoku=4",
    "logic.sudoku_sizes=[4,6]",
    "augment.negatives=0.6",
    "augment.subtasks=0.5",
    "augment.logic_variants=1.0",
    "decontam.humaneval=true",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("data") / "small"
    build_dataset(load_config(DataRecipe, QUICK, SMALL), out)
    return out


@pytest.fixture(scope="module")
def rows(built):
    return load_items(built)


def test_files_schema_and_stats(built, rows):
    for name in (
        "train.jsonl",
        "val.jsonl",
        "test.jsonl",
        "stats.json",
        "decontam.json",
        "config.yaml",
        "parquet/train.parquet",
        "parquet/test.parquet",
    ):
        assert (built / name).is_file(), name
    assert {r["domain"] for r in rows} == {"math", "code", "logic"}
    assert {r["kind"] for r in rows} == {"original", "variant", "negative", "subtask"}
    for r in rows:
        assert tuple(r) == FIELDS
        assert isinstance(r["steps"], list) and r["steps"]
    stats = json.loads((built / "stats.json").read_text())
    assert stats["total"] == len(rows) and stats["dropped_by_verification"] == 0
    assert sum(stats["by_split"].values()) == len(rows)
    for split in ("train", "val", "test"):
        assert all(r["split"] == split for r in load_items(built, split))
    import pyarrow.parquet as pq

    assert pq.read_table(built / "parquet" / "train.parquet").num_rows == stats["by_split"]["train"]


def test_every_positive_passes_and_every_negative_fails(rows):
    for r in rows:
        assert verify_item(r, solution_text(r)) == (r["kind"] != "negative"), r["id"]
    negatives = [r for r in rows if r["kind"] == "negative"]
    assert {r["domain"] for r in negatives} == {"math", "code", "logic"}
    for r in negatives:
        assert r["error_type"] in ERROR_TYPES and r["parent_id"]
        assert r["answer"] != reference_answer(r)


def test_math_answers_are_clean_numbers(rows):
    for r in rows:
        if r["domain"] == "math" and r["kind"] != "negative":
            assert r["steps"][-1] == f"#### {r['answer']}"
            assert numbers_equal(r["answer"], r["answer"]) and "," not in r["answer"] and "/" not in r["answer"]


def test_variants_differ_and_carry_recomputed_answers(rows):
    by_id = {r["id"]: r for r in rows}
    variants = [r for r in rows if r["kind"] == "variant"]
    assert {r["domain"] for r in variants} == {"math", "code", "logic"}
    for v in variants:
        parent = by_id[v["parent_id"]]
        assert v["question"] != parent["question"], v["id"]
        if "family" in v["meta"]:  # math: rerun the family program on the variant's own params
            answer, _, _ = solve(FAMILIES[v["meta"]["family"]], v["meta"]["params"])
            assert fmt(answer) == v["answer"]
        elif v["verifier"] == "zebra":
            (sol,) = solve_zebra(v["meta"], limit=2)
            assert zebra_answer(v["meta"], sol) == v["answer"]
        elif v["verifier"] == "code_tests":
            assert v["meta"]["k"] != parent["meta"]["k"] and v["answer"] != parent["answer"]
    augments = {v["meta"].get("augment") for v in variants}
    assert {"param_substitution", "add_condition", "remove_condition", "distractor"} <= augments


def test_subtasks_answer_intermediate_steps(rows):
    by_id = {r["id"]: r for r in rows}
    subs = [r for r in rows if r["kind"] == "subtask"]
    assert subs
    for s in subs:
        parent = by_id[s["parent_id"]]
        sq = parent["meta"]["subquestions"][s["meta"]["step_index"]]
        assert s["answer"] == sq["answer"] and sq["question"] in s["question"]


def test_test_split_holds_out_whole_templates(built, rows):
    recipe = load_config(DataRecipe, built / "config.yaml")
    test_t = {r["template"] for r in rows if r["split"] == "test"}
    other_t = {r["template"] for r in rows if r["split"] != "test"}
    assert test_t and not (test_t & other_t)
    assert all(r["kind"] == "original" for r in rows if r["split"] == "test")
    assert recipe.split.test_templates  # the policy is explicit in the saved config


def test_same_seed_gives_identical_bytes(tmp_path):
    overrides = ["math.per_family=3", "logic.zebra=2", "logic.sudoku=2", "code.per_task=1", "code.tasks=[roman,lis]"]
    a = build_dataset(load_config(DataRecipe, QUICK, overrides), tmp_path / "a")
    b = build_dataset(load_config(DataRecipe, QUICK, overrides), tmp_path / "b")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files and files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f
    c = build_dataset(load_config(DataRecipe, QUICK, overrides + ["seed=1"]), tmp_path / "c")
    assert (c / "train.jsonl").read_bytes() != (a / "train.jsonl").read_bytes()


def _gsm_file(path: Path, questions: list[str], bad_line: int | None = None) -> Path:
    lines = [json.dumps({"question": q, "answer": f"Work it out.\n#### {i + 3}"}) for i, q in enumerate(questions)]
    if bad_line:
        lines[bad_line - 1] = '{"question": "no closing brace"'
    path.write_text("\n".join(lines) + "\n")
    return path


def test_malformed_import_line_names_file_and_line_and_writes_nothing(tmp_path, capsys):
    bad = _gsm_file(tmp_path / "gsm.jsonl", ["Q one?", "Q two?", "Q three?"], bad_line=2)
    out = tmp_path / "out"
    with pytest.raises(ReasonkdError, match=rf"{bad}:2"):
        build_dataset(load_config(DataRecipe, QUICK, [f"imports=[{{path: {bad}, split: test}}]"]), out)
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]  # no temp folder left
    # through the CLI: exit 1, one line naming file:line, an existing output folder untouched
    out.mkdir()
    (out / "keep.txt").write_text("old")
    rc = main(["data", "build", str(QUICK), "--out", str(out), f"imports=[{{path: {bad}, split: test}}]"])
    assert rc == 1 and f"{bad}:2" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    missing_answer = tmp_path / "noanswer.jsonl"
    missing_answer.write_text(json.dumps({"question": "Q?", "answer": "no final line"}) + "\n")
    with pytest.raises(ReasonkdError, match=rf"{missing_answer}:1: 'answer' must end with '#### N'"):
        generate(load_config(DataRecipe, QUICK, [f"imports=[{{path: {missing_answer}}}]"]))


def test_import_and_decontamination(tmp_path):
    recipe = load_config(DataRecipe, QUICK, ["math.per_family=3", "logic.zebra=0", "logic.sudoku=0"])
    items, _, _ = generate(recipe)
    leaked = next(it for it in items if it.kind == "original" and it.split == "train")
    # an eval file holding one of our training questions verbatim, plus an unrelated one
    eval_file = _gsm_file(tmp_path / "eval.jsonl", [leaked.question, "How many legs do 3 spiders have?"])
    recipe = load_config(
        DataRecipe,
        QUICK,
        [
            "math.per_family=3",
            "logic.zebra=0",
            "logic.sudoku=0",
            f"decontam.gsm8k_files=[{eval_file}]",
            f"imports=[{{path: {eval_file}, split: test, name: gsm8k_test}}]",
        ],
    )
    out = build_dataset(recipe, tmp_path / "out")
    report = json.loads((out / "decontam.json").read_text())
    removed = {r["id"]: r for r in report["items"]}
    assert removed[leaked.id]["reason"] == "exact"
    assert all(r["parent_id"] != leaked.id for r in load_items(out))  # its variants went too
    test_rows = load_items(out, "test")
    imported = [r for r in test_rows if r["source"] == "gsm8k_import"]
    assert [r["answer"] for r in imported] == ["3", "4"] and imported[0]["template"] == "gsm8k_test"


def test_humaneval_prompts_are_decontaminated():
    from reasonkd.data.decontam import EvalIndex, decontaminate, humaneval_prompts
    from reasonkd.data.schema import Item

    task_id, prompt = humaneval_prompts()[0]
    orig = Item(
        id="code-x-00000",
        domain="code",
        question="Solve:\n" + prompt,
        answer="pass",
        verifier="code_tests",
        template="code_x",
    )
    child = orig.derive("v1", kind="variant", question="something else entirely")
    clean = Item(
        id="code-y-00000",
        domain="code",
        question="Write a function that adds two numbers.",
        answer="pass",
        verifier="code_tests",
        template="code_y",
    )
    kept, report = decontaminate([orig, child, clean], EvalIndex.build(humaneval=True))
    assert [k.id for k in kept] == ["code-y-00000"]
    assert report["removed"] == 2 and report["by_reason"] == {"10-gram": 1, "parent removed": 1}
    assert {r["matched"] for r in report["items"]} == {task_id, orig.id}


def test_cli_build_prints_stats_and_bad_key_exits_2(tmp_path, capsys):
    out = tmp_path / "cli"
    assert (
        main(["data", "build", str(QUICK), "--out", str(out), "math.per_family=2", "logic.zebra=1", "logic.sudoku=1"])
        == 0
    )
    printed = capsys.readouterr().out
    assert " items" in printed and "dropped by verification: 0" in printed
    assert main(["data", "build", str(QUICK), "--out", str(out), "math.per_famly=2"]) == 2
    assert "per_family" in capsys.readouterr().err


def test_default_recipe_builds_5000_items_fast(tmp_path):
    import time

    t0 = time.perf_counter()
    out = build_dataset(DEFAULT, tmp_path / "default")
    seconds = time.perf_counter() - t0
    stats = json.loads((out / "stats.json").read_text())
    assert stats["total"] >= 5000 and set(stats["by_domain"]) == {"math", "code", "logic"}
    assert stats["dropped_by_verification"] == 0
    assert set(stats["by_kind"]) == {"original", "variant", "negative", "subtask"}
    assert seconds < 120, f"default build took {seconds:.0f}s"


def test_no_train_question_repeats_a_held_out_one(rows):
    held = {r["question"] for r in rows if r["split"] in ("val", "test")}
    assert not [r["id"] for r in rows if r["split"] == "train" and r["question"] in held]


def test_split_repeats_drop_the_trainable_side_only():
    from reasonkd.data.build import drop_split_repeats
    from reasonkd.data.schema import Item

    def item(i, split, q):
        return Item(id=i, domain="math", question=q, answer="1", split=split, source="s", template="t")

    items = [
        item("a", "train", "Q1"),
        item("b", "val", "Q1"),
        item("c", "val", "Q2"),
        item("d", "test", "Q2"),
        item("e", "train", "Q2"),
        item("f", "train", "Q3"),
    ]
    kept, n = drop_split_repeats(items)
    assert [it.id for it in kept] == ["b", "d", "f"] and n == 3
