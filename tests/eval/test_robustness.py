"""The `robustness` eval task: data-engine items (all eight types), a GSM8K file (free-text types and
the skip message), scoring and metrics from --samples, and `reasonkd eval` end to end on a tiny model."""

import json
import logging
from pathlib import Path

import pytest

from reasonkd.cli import main
from reasonkd.data.perturb import FREE_TEXT_TYPES, NEEDS_PROGRAM, TYPES
from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.eval.runner import evaluate_samples
from reasonkd.eval.tasks import get_task
from reasonkd.eval.tasks.robustness import robustness_summary

ROOT = Path(__file__).resolve().parents[2]
GSM8K = [
    {
        "question": f"Tom has {a} apples. He buys {b} more. How many apples does he have now?",
        "answer": f"{a} + {b} = {a + b}\n#### {a + b}",
    }
    for a, b in [(3, 4), (10, 5), (7, 8)]
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from reasonkd.data import build_dataset

    out = tmp_path_factory.mktemp("robust") / "data"
    return build_dataset(
        ROOT / "recipes" / "data" / "quick.yaml", out, ["parquet=false", "logic.zebra=0", "logic.sudoku=0"]
    )


@pytest.fixture
def gsm8k_file(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K))
    return str(path)


def test_data_engine_items_get_every_type_and_limit_counts_problems(dataset):
    task = get_task("robustness", data=str(dataset), limit=6)
    ex = task.examples()
    assert len({e["group"] for e in ex}) == 6
    assert {e["perturbation"] for e in ex} == {"original", *TYPES}
    assert all(e["idx"] == i for i, e in enumerate(ex))
    assert "cannot be determined" in task.prompt(ex[0]) and "#### <number>" in task.prompt(ex[0])
    assert task.skipped == {}


def test_per_type_quota_takes_the_first_k_problems_that_take_each_type(dataset, caplog):
    full = get_task("robustness", data=str(dataset)).examples()
    k = 4
    ex = get_task("robustness", data=str(dataset), per_type=k).examples()
    order = list(dict.fromkeys(e["group"] for e in full))
    for t in TYPES:  # the first k problems (in order) that take t, exactly
        takes = [e["group"] for e in full if e["perturbation"] == t]
        assert [e["group"] for e in ex if e["perturbation"] == t] == takes[:k]
    kept = {e["group"] for e in ex if e["perturbation"] != "original"}
    assert [e["group"] for e in ex if e["perturbation"] == "original"] == [g for g in order if g in kept]
    assert all(e["idx"] == i for i, e in enumerate(ex))
    assert len(ex) < len(full)
    with caplog.at_level(logging.WARNING, logger="reasonkd.eval.tasks.robustness"):  # more than there are
        get_task("robustness", data=str(dataset), limit=2, per_type=5).examples()
    assert "fewer than --per-type 5 problems take" in caplog.text
    with pytest.raises(ReasonkdError, match="--per-type 0"):
        get_task("robustness", data=str(dataset), per_type=0).examples()


def _right(ex):
    return "It cannot be determined." if ex["perturbation"] == "critical_thinking" else f"#### {ex['reference']}"


def test_samples_scoring_drop_and_consistency(dataset, tmp_path):
    task = get_task("robustness", data=str(dataset), limit=5)
    ex = task.examples()
    wrong_digits = {e["group"] for e in ex[:1]}  # the first problem fails its digit expansion only
    rows = [
        {
            "idx": e["idx"],
            "completion": "#### 0"
            if e["group"] in wrong_digits and e["perturbation"] == "digit_expansion"
            else _right(e),
        }
        for e in ex
    ]
    samples = tmp_path / "s.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = evaluate_samples("robustness", str(samples), data=str(dataset), limit=5, label="hand")
    m = res["tasks"]["robustness"]["metrics"]["robustness"]
    assert m["original"] == {"accuracy": 1.0, "n": 5}
    assert m["types"]["distractor_insertion"]["drop"] == 0.0
    d = m["types"]["digit_expansion"]
    assert d["drop"] == pytest.approx(1 / d["n"]) and d["ci"][0] <= d["drop"] <= d["ci"][1]
    assert m["solved_originals"] == 5 and m["robust_originals"] == 4 and m["consistency"] == pytest.approx(0.8)


def test_critical_thinking_needs_the_statement_and_a_number_is_wrong(dataset):
    task = get_task("robustness", data=str(dataset), limit=3)
    crit = next(e for e in task.examples() if e["perturbation"] == "critical_thinking")
    assert task.score(crit, "Not enough information: the answer cannot be determined.")["verdict"]
    assert not task.score(crit, "#### 12")["verdict"]
    orig = next(e for e in task.examples() if e["perturbation"] == "original")
    assert not task.score(orig, "It cannot be determined.")["verdict"]
    assert task.score(orig, f"#### {orig['reference']}")["verdict"]


def test_gsm8k_file_gets_free_text_types_and_one_clear_skip_message(gsm8k_file, caplog):
    caplog.set_level(logging.WARNING, logger="reasonkd.eval.tasks.robustness")
    task = get_task("robustness", data=gsm8k_file)
    ex = task.examples()
    assert {e["perturbation"] for e in ex} == {"original", *FREE_TEXT_TYPES}
    assert [e["reference"] for e in ex if e["perturbation"] == "distractor_insertion"] == ["7", "15", "15"]
    msgs = [r.getMessage() for r in caplog.records]
    assert len(msgs) == 1
    assert all(t in msgs[0] for t in NEEDS_PROGRAM) and "distractor_insertion" in msgs[0]
    assert "solution program" in msgs[0] and "3 of 3 problems" in msgs[0]
    summary = task.metrics(
        [{"idx": e["idx"], "verdict": True, "perturbation": e["perturbation"], "group": e["group"]} for e in ex]
    )["robustness"]
    assert set(summary["types"]) == set(FREE_TEXT_TYPES) and summary["skipped"]["types"] == list(NEEDS_PROGRAM)


def test_bad_file_names_the_row(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(ReasonkdError, match="row 1 lacks"):
        get_task("robustness", data=str(bad)).examples()
    with pytest.raises(ReasonkdError, match="needs --data"):
        get_task("robustness").examples()


def test_summary_pairs_only_problems_with_both_versions():
    rows = [
        {"idx": 0, "group": "a", "perturbation": "original", "verdict": True},
        {"idx": 1, "group": "a", "perturbation": "paraphrase", "verdict": False},
        {"idx": 2, "group": "b", "perturbation": "original", "verdict": False},
        {"idx": 4, "group": "b", "perturbation": "paraphrase", "verdict": False},
        {"idx": 3, "group": "c", "perturbation": "paraphrase", "verdict": True},
    ]  # no original: not paired
    s = robustness_summary(rows)
    assert s["types"]["paraphrase"]["n"] == 2 and s["types"]["paraphrase"]["drop"] == 0.5
    assert s["consistency"] == 0.0


def test_eval_cli_robustness_end_to_end(tiny_llama_dir, dataset, tmp_path, capsys):
    out = tmp_path / "run"
    argv = [
        "eval",
        "--model",
        str(tiny_llama_dir),
        "--label",
        "tiny",
        "--tasks",
        "robustness",
        "--data",
        str(dataset),
        "--limit",
        "2",
        "--max-new-tokens",
        "4",
        "--batch-size",
        "8",
        "--latency-problems",
        "1",
        "--latency-tokens",
        "2",
        "--no-cases",
        "--out",
        str(out),
    ]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    m = res["models"][0]["tasks"]["robustness"]["metrics"]
    assert m["robustness"]["original"]["n"] == 2 and set(m["robustness"]["types"]) <= set(TYPES)
    rows = [json.loads(x) for x in (out / "samples" / "tiny" / "robustness.jsonl").open()]
    assert {r["perturbation"] for r in rows} >= {"original", "distractor_insertion"} and len(rows) == m["n"]
    md = (out / "report.md").read_text()
    assert "## Robustness (GSM-Plus perturbation types, same problems)" in md and "| tiny | paraphrase |" in md
    html = (out / "report.html").read_text()
    assert "<h2>Robustness</h2>" in html and 'alt="robustness plot"' in html
    # --per-type reaches the task and is part of the samples' identity (no reuse of the run above)
    assert main(argv[:-2] + ["--per-type", "1", "--out", str(out)]) == 0
    rows = [json.loads(x) for x in (out / "samples" / "tiny" / "robustness.jsonl").open()]
    per = [r["perturbation"] for r in rows if r["perturbation"] != "original"]
    assert sorted(per) == sorted(set(per)) and len(rows) < m["n"]


def test_recipe_adversarial_mix_keeps_held_out_types_out_of_train(tmp_path):
    from reasonkd.config import load_config
    from reasonkd.data import build_dataset, load_items
    from reasonkd.data.recipe import DataRecipe

    out = build_dataset(
        ROOT / "recipes" / "data" / "quick.yaml",
        tmp_path / "adv",
        [
            "parquet=false",
            "logic.zebra=0",
            "logic.sudoku=0",
            "adversarial.fraction=1.0",
            "adversarial.per_item=2",
            "adversarial.types=[paraphrase,distractor_insertion,digit_expansion]",
        ],
    )
    rows = load_items(out)
    trained = {r["meta"]["perturbation"] for r in rows if r["meta"].get("perturbation")}
    assert trained == {"paraphrase", "distractor_insertion", "digit_expansion"}
    assert not any(r["meta"].get("perturbation") for r in rows if r["split"] == "test")
    variants = {r["id"] for r in rows if r["kind"] == "variant" and r["meta"].get("perturbation")}
    negs = [r for r in rows if r["kind"] == "negative" and r["parent_id"] in variants]
    assert negs  # wrong reasoning paths on perturbed items, keyed to them for the negatives loss
    stats = json.loads((out / "stats.json").read_text())
    assert stats["dropped_by_verification"] == 0
    with pytest.raises(ConfigError, match="held_out"):
        load_config(DataRecipe, None, ["adversarial.types=[paraphrase,critical_thinking]"])
