"""Shared by the compare tests: a tiny dataset, reference traces of its train split, a same-tokenizer
student and an ARMS.yaml with two arms (sft, kd)."""

from __future__ import annotations

import pytest
import yaml

TINY_DATA = {
    "seed": 0,
    "math": {"per_family": 4},
    "code": {"per_task": 0, "bugfix": False},
    "logic": {"zebra": 0, "sudoku": 0},
    "augment": {"variants": 0, "conditions": 0.0, "distractors": 0.0, "negatives": 0.0, "subtasks": 0.0},
    "split": {"test_templates": ["zoo_tickets"], "val_fraction": 0.5},
    "decontam": {"enabled": False},
    "parquet": False,
}


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_qwen_dir):
    """A tiny dataset, reference traces of its train split, a same-tokenizer student, ARMS.yaml."""
    from reasonkd.config import from_dict
    from reasonkd.data import build_dataset, load_items, solution_text
    from reasonkd.data.recipe import DataRecipe
    from tiny_models import build_tiny_model
    from reasonkd.data.prompts import DEFAULT_TEMPLATE, render
    from reasonkd.utils.io import write_jsonl

    root = tmp_path_factory.mktemp("compare")
    data = build_dataset(from_dict(DataRecipe, TINY_DATA), root / "data")
    train = [r for r in load_items(data, split="train") if r["domain"] == "math"][:8]
    write_jsonl(
        root / "traces.jsonl",
        [
            {
                "id": r["id"],
                "sample_idx": 0,
                "prompt": render(DEFAULT_TEMPLATE, r)[1],
                "system": None,
                "trace": solution_text(r),
            }
            for r in train
        ],
    )
    student = build_tiny_model(
        root / "student", arch="qwen2", tokenizer="b", hidden=64, layers=2, heads=4, kv_heads=2, seed=2
    )
    arms = {
        "student": str(student),
        "teacher": str(tiny_qwen_dir),
        "traces": str(root / "traces.jsonl"),
        "out": str(root / "out"),
        "steps": 2,
        "batch_size": 4,
        "lr": 1e-3,
        "warmup": 0,
        "seeds": [0, 1],
        "recipe": {"max_length": 256, "bf16_autocast": False, "device": "cpu", "save_every": 1},
        # jobs in this process (a child's interpreter start costs ~4 s a job); the default, a process per job,
        # runs in test_isolated_jobs_give_the_in_process_results and the kill -9 test
        "isolate": False,
        "eval": {
            "data": str(data),
            "split": "val",
            "n_dev": 3,
            "n_heldout": 2,
            "max_new_tokens": 6,
            "batch_size": 8,
            "engine": "hf",
        },  # the openvino engine in evaluation: tests/eval/test_eval_engine.py
        "arms": [
            {
                "name": "sft",
                "description": "ce only",
                "stages": [{"name": "sft", "kind": "logic", "losses": [{"name": "ce"}]}],
            },
            {
                "name": "kd",
                "stages": [
                    {"name": "warm", "kind": "logic", "share": 0.5, "losses": [{"name": "ce"}]},
                    {
                        "name": "kd",
                        "kind": "output",
                        "share": 0.5,
                        "losses": [{"name": "kd", "options": {"alpha": 0.5}}],
                        "temperature": {"kind": "constant", "start": 1.0},
                    },
                ],
            },
        ],
    }
    path = root / "arms.yaml"
    path.write_text(yaml.safe_dump(arms))
    return root, path, arms
