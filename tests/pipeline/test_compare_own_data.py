"""`reasonkd compare` on one's own data, no teacher generation: a GSM8K, MATH or OpenR1-Math dataset written by
the test, its train split's traces imported (`teacher import`), its test split as the eval sets, tiny models.
Also `reasonkd eval --data PATH.parquet` on a MATH-style file: accuracy graded by math_latex."""

from __future__ import annotations

import json

import pytest
import yaml
from own_data import write_dataset


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    from tiny_models import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("own") / "student",
        arch="qwen2",
        tokenizer="b",
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        seed=2,
    )


@pytest.mark.parametrize("kind", ["gsm8k", "math", "openr1"])
def test_compare_runs_on_imported_traces(tmp_path, kind, student, tiny_qwen_dir, capsys):
    from reasonkd.cli import main

    spec, info = write_dataset(kind, tmp_path)
    traces = tmp_path / "traces"
    assert (
        main(
            [
                "teacher",
                "import",
                f"{spec}@train",
                "--out",
                str(traces),
                "--traces-column",
                info["traces_column"],
                "--correct-column",
                info["correct_column"],
                "--no-progress",
            ]
        )
        == 0
    )
    arms = {
        "student": str(student),
        "teacher": str(tiny_qwen_dir),
        "traces": str(traces),
        "out": str(tmp_path / "out"),
        "steps": 2,
        "batch_size": 2,
        "lr": 1e-3,
        "warmup": 0,
        "seeds": [0],
        "recipe": {"max_length": 192, "bf16_autocast": False, "device": "cpu", "save_every": 2},
        "eval": {
            "data": spec,
            "split": "test",
            "n_dev": 3,
            "n_heldout": 2,
            "max_new_tokens": 4,
            "batch_size": 8,
            "engine": "hf",
        },
        "arms": [
            {"name": "sft", "stages": [{"name": "sft", "kind": "logic", "losses": [{"name": "ce"}]}]},
            {"name": "sft-hot", "stages": [{"name": "sft", "kind": "logic", "lr": 3e-3, "losses": [{"name": "ce"}]}]},
        ],
    }
    path = tmp_path / "arms.yaml"
    path.write_text(yaml.safe_dump(arms))
    assert main(["compare", str(path)]) == 0
    out = tmp_path / "out"
    dev = json.loads((out / "compare.json").read_text())["splits"]["dev"]
    assert dev["n_problems"] == 3 and [r["arm"] for r in dev["arms"]] == ["sft", "sft-hot"]
    assert (out / "arms" / "sft" / "seed-0" / "final" / "config.json").is_file()
    eval_rows = [json.loads(line) for line in (out / "eval" / "dev.jsonl").read_text().splitlines()]
    assert {r["verifier"] for r in eval_rows} == {info["verifier"]} and all(r["split"] == "test" for r in eval_rows)
    samples = [
        json.loads(line)
        for f in (out / "arms" / "sft" / "seed-0").rglob("gsm8k.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert len(samples) == 3 and all(s["verdict"] in (True, False) for s in samples)


def test_eval_on_a_math_parquet_prints_accuracy_graded_by_math_latex(tmp_path, capsys, tiny_qwen_dir):
    import datasets

    from reasonkd.cli import main

    f = tmp_path / "math500.parquet"
    datasets.Dataset.from_list(
        [
            {
                "problem": "What is $\\frac{1}{2}+\\frac{1}{4}$?",
                "answer": "\\frac{3}{4}",
                "solution": "$\\boxed{\\frac34}$",
            },
            {"problem": "Simplify $\\sqrt{12}$.", "answer": "2\\sqrt{3}", "solution": "$\\boxed{2\\sqrt3}$"},
            {"problem": "Solve $0 < x \\le 1$ as an interval.", "answer": "(0,1]", "solution": "$\\boxed{(0,1]}$"},
            {"problem": "What is $3+4$?", "answer": "7", "solution": "$\\boxed{7}$"},
        ]
    ).to_parquet(f)
    samples = tmp_path / "s.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"idx": i, "completion": c}) + "\n"
            for i, c in enumerate(["So $\\boxed{0.75}$.", "$\\boxed{\\sqrt{12}}$", "\\boxed{(0,1)}", "#### 7"])
        )
    )
    assert main(["eval", "--data", str(f), "--samples", str(samples), "--out", str(tmp_path / "ev")]) == 0
    log = capsys.readouterr().out
    assert "accuracy = 0.750" in log and "graded by math_latex (3), math_numeric (1)" in log
    rows = [
        json.loads(x) for x in (tmp_path / "ev" / "samples").rglob("gsm8k.jsonl").__next__().read_text().splitlines()
    ]
    assert [r["verdict"] for r in rows] == [True, True, False, True]
    # and with a model: the prompt asks for \boxed{}, the run completes and reports the same grading
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_qwen_dir),
                "--data",
                str(f),
                "--out",
                str(tmp_path / "ev2"),
                "--max-new-tokens",
                "4",
                "--latency-problems",
                "0",
                "--no-cases",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    log = capsys.readouterr().out
    assert "gsm8k" in log and "accuracy = " in log and "graded by math_latex (3), math_numeric (1)" in log
    rows = [json.loads(x) for x in next((tmp_path / "ev2" / "samples").rglob("gsm8k.jsonl")).read_text().splitlines()]
    assert "\\boxed{}" in rows[0]["prompt"] and '"#### <number>"' in rows[3]["prompt"]


def test_the_own_pair_recipes_load():
    from pathlib import Path

    from reasonkd.config import load_config
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.pipeline.compare_config import load_compare_config

    root = Path(__file__).resolve().parents[2] / "recipes" / "own"
    gpu = load_config(DistillRecipe, root / "gpu.yaml")
    assert [s.name for s in gpu.stages] == ["sft", "output"] and gpu.data.path == "runs/own-gpu/traces"
    cpu = load_compare_config(root / "cpu.yaml")
    assert [a.name for a in cpu.arms] == ["sft", "kd"] and cpu.eval.split == "test"


def test_demo_data_step_takes_a_dataset_as_imports(tmp_path):
    from reasonkd.config import from_dict
    from reasonkd.pipeline.config import DemoConfig
    from reasonkd.pipeline.demo import step_data
    from reasonkd.utils.io import read_jsonl

    spec, _ = write_dataset("openr1", tmp_path)
    cfg = from_dict(
        DemoConfig,
        {
            "n_test": 4,
            "n_unseen": 0,
            "data": {
                "math": {"per_family": 2, "families": ["zoo_tickets", "apple_crates"]},
                "code": {"per_task": 0, "bugfix": False},
                "logic": {"zebra": 0, "sudoku": 0},
                "augment": {"variants": 0, "conditions": 0.0, "distractors": 0.0, "negatives": 0.0, "subtasks": 0.0},
                "split": {"test_templates": ["zoo_tickets"], "val_fraction": 0.0},
                "imports": [{"path": f"{spec}@test", "split": "val"}],
                "decontam": {"enabled": False},
                "parquet": False,
            },
        },
    )
    assert step_data(cfg, tmp_path / "demo") == {"heldout": 4}
    rows = read_jsonl(tmp_path / "demo" / "eval" / "heldout.jsonl")
    assert {r["verifier"] for r in rows} == {"math_latex"} and {r["template"] for r in rows} == {"openr1"}
