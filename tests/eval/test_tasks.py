"""Task registry, data loading and --samples scoring for gsm8k, logic and code (no model)."""

import json
from pathlib import Path

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.eval.runner import evaluate_samples
from reasonkd.eval.tasks import TASKS, get_task

ROOT = Path(__file__).resolve().parents[2]
GSM8K_ROWS = [
    {
        "question": "Tom has 3 apples and buys 4 more. How many apples does he have?",
        "answer": "3 + 4 = <<3+4=7>>7\n#### 7",
    },
    {"question": "A book costs $1,200 and a pen $35. What do both cost?", "answer": "1200 + 35 = 1235\n#### 1,235"},
    {"question": "It was 5 degrees and fell by 8. What is the temperature now?", "answer": "5 - 8 = -3\n#### -3"},
]


@pytest.fixture(scope="session")
def dataset(tmp_path_factory):
    """A small data-engine build with held-out math, logic and code items."""
    from reasonkd.data import build_dataset

    out = tmp_path_factory.mktemp("data") / "quick"
    return build_dataset(
        ROOT / "recipes" / "data" / "quick.yaml",
        out,
        [
            "code.per_task=1",
            "code.tasks=[collatz,spiral,run_length]",
            "split.test_templates=[zoo_tickets,leaky_tank,zebra_4x4,sudoku_6,code_collatz*,code_spiral*]",
        ],
    )


@pytest.fixture
def gsm8k_file(tmp_path):
    path = tmp_path / "test.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K_ROWS))
    return path


def test_registry_lists_known_tasks_on_a_typo():
    assert {"gsm8k", "humaneval", "logic", "code"} <= set(TASKS)
    with pytest.raises(ReasonkdError, match="known tasks: code, gsm8k, humaneval, logic"):
        get_task("gsm8kk")


def test_gsm8k_official_format_and_samples_by_idx(gsm8k_file, tmp_path):
    task = get_task("gsm8k", data=str(gsm8k_file))
    assert [e["reference"] for e in task.examples()] == ["7", "1,235", "-3"]
    assert "#### <number>" in task.prompt(task.examples()[0])
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"idx": 0, "completion": "3 + 4 = 7\n#### 7"},
                {"idx": 1, "completion": "It costs $1,235 in total. The answer is $1,235."},
                {"idx": 2, "completion": "5 - 8 = 3\n#### 3"},
            ]
        )
    )
    r = evaluate_samples("gsm8k", str(samples), data=str(gsm8k_file), label="hand")
    t = r["tasks"]["gsm8k"]
    assert [s["verdict"] for s in t["samples"]] == [True, True, False]
    assert t["metrics"]["accuracy"] == pytest.approx(2 / 3)
    assert t["metrics"]["styles"]["strict"] == pytest.approx(1 / 3)
    assert t["metrics"]["styles"]["answer_is"] == pytest.approx(1 / 3)


def test_gsm8k_errors_name_the_problem(tmp_path, gsm8k_file):
    with pytest.raises(ReasonkdError, match="needs --data"):
        get_task("gsm8k").examples()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(ReasonkdError, match="row 1 lacks"):
        get_task("gsm8k", data=str(bad)).examples()
    samples = tmp_path / "s.jsonl"
    samples.write_text('{"idx": 7, "completion": "#### 1"}\n')
    with pytest.raises(ReasonkdError, match="row 1: idx=7 is not an example"):
        evaluate_samples("gsm8k", str(samples), data=str(gsm8k_file))


def test_gsm8k_few_shot_prompt(gsm8k_file):
    task = get_task("gsm8k", data=str(gsm8k_file), few_shot=3)
    p = task.prompt(task.examples()[0])
    assert p.count("Question:") == 3 and p.count("####") == 4 and p.endswith('as "#### <number>".')
    with pytest.raises(ReasonkdError, match="few-shot"):
        get_task("gsm8k", data=str(gsm8k_file), few_shot=9).prompt(task.examples()[0])


def _solutions(task, tmp_path, wrong=False):
    from reasonkd.data import solution_text

    rows = [{"idx": e["idx"], "completion": "no idea" if wrong else solution_text(e["item"])} for e in task.examples()]
    path = tmp_path / f"{task.name}{'-wrong' if wrong else ''}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _gsm_solutions(dataset, tmp_path):
    from reasonkd.data import load_items, solution_text

    items = [r for r in load_items(dataset, split="test") if r["domain"] == "math"]
    path = tmp_path / "gsm.jsonl"
    path.write_text("".join(json.dumps({"idx": i, "completion": solution_text(r)}) + "\n" for i, r in enumerate(items)))
    return str(path)


@pytest.mark.parametrize("name", ["gsm8k", "logic", "code"])
def test_data_engine_held_out_split_scores_its_own_solutions(name, dataset, tmp_path):
    task = get_task(name, data=str(dataset))
    assert task.examples()
    if name == "gsm8k":
        solutions = _gsm_solutions(dataset, tmp_path)
    else:
        assert all(e["item"]["split"] == "test" for e in task.examples())
        solutions = _solutions(task, tmp_path)
    right = evaluate_samples(name, solutions, data=str(dataset))
    assert right["tasks"][name]["metrics"]["accuracy"] == 1.0
    wrong = evaluate_samples(name, _solutions(task, tmp_path, wrong=True), data=str(dataset))
    assert wrong["tasks"][name]["metrics"]["accuracy"] == 0.0


def test_limit_keeps_the_first_examples(dataset):
    assert len(get_task("logic", data=str(dataset), limit=2).examples()) == 2
