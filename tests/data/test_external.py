"""Any dataset as problems (reasonkd.data.external): GSM8K, MATH and OpenR1-Math schemas written by the test,
read through `datasets`, columns mapped, used by `data build` next to the generators; one clear error each
for a missing column, an empty split, a hub id offline."""

from __future__ import annotations

import json
import time

import pytest
from own_data import write_dataset

from reasonkd.errors import ConfigError, ReasonkdError


@pytest.mark.parametrize(
    "kind,verifier,first_answer",
    [("gsm8k", "math_numeric", "7"), ("math", "math_latex", "\\frac{5}{6}"), ("openr1", "math_latex", "\\frac{5}{6}")],
)
def test_each_schema_loads_and_maps_its_columns(tmp_path, kind, verifier, first_answer):
    from reasonkd.data import load_items
    from reasonkd.data.external import describe
    from reasonkd.data.verify import verify_item

    spec, _ = write_dataset(kind, tmp_path)
    test = load_items(spec, split="test")
    train = load_items(spec, split="train")
    assert len(test) == 5 and len(train) == 6 and {r["split"] for r in test} == {"test"}
    assert {r["verifier"] for r in train} == {verifier} and train[0]["answer"] == first_answer
    assert len({r["id"] for r in train + test}) == 11  # ids are unique across splits
    assert all(verify_item(r, "\n".join(r["steps"])) for r in train + test)  # each reference solution verifies
    assert len(load_items(spec)) == 11  # no split asked: every split, each under its own name
    text = describe(spec)
    assert {"gsm8k": "schema: gsm8k", "math": "schema: math", "openr1": "schema: openr1-math"}[kind] in text
    assert "mapping: question=" in text


def test_gsm8k_answer_field_becomes_steps_and_number(tmp_path):
    from reasonkd.data import load_items

    spec, _ = write_dataset("gsm8k", tmp_path)
    row = load_items(spec, split="train")[0]
    assert row["steps"][-1] == "#### 7" and "<<" not in " ".join(row["steps"]) and row["source"] == "dataset_import"
    one_file = load_items(f"{spec}/test.jsonl", split="test")  # an official-format GSM8K JSONL, through datasets
    assert len(one_file) == 5 and one_file[0]["answer"] == "47" and one_file[0]["verifier"] == "math_numeric"


def test_a_single_file_and_an_explicit_split_and_a_mapping(tmp_path):
    import datasets

    from reasonkd.data import load_items

    f = tmp_path / "mine.parquet"
    datasets.Dataset.from_list(
        [
            {"q": "What is $1+1$?", "final": "2", "sol": "1+1=2"},
            {"q": "Half of one?", "final": "\\frac12", "sol": "It is $\\frac12$."},
        ]
    ).to_parquet(f)
    rows = load_items(f"{f}#question=q,answer=final,solution=sol", split="test")  # a lone file is the asked split
    assert [r["answer"] for r in rows] == ["2", "\\frac12"] and [r["verifier"] for r in rows] == [
        "math_numeric",
        "math_latex",
    ]
    assert rows[0]["steps"] == ["1+1=2", "#### 2"]  # a solution that states no answer gets our answer line
    spec, _ = write_dataset("math", tmp_path)
    assert len(load_items(f"{spec}@train", split="test")) == 6  # @SPLIT picks the dataset's split


def test_missing_column_names_the_columns_there_are(tmp_path):
    from reasonkd.data import load_items

    spec, _ = write_dataset("math", tmp_path)
    with pytest.raises(
        ReasonkdError,
        match=r"no column 'probem' \(for question\); the columns are problem, "
        r"solution, answer, level, type",
    ):
        load_items(f"{spec}#question=probem")
    import datasets

    f = tmp_path / "odd.json"
    datasets.Dataset.from_list([{"text": "hi", "label": 1}]).to_json(f)
    with pytest.raises(ReasonkdError, match="no question column found; the columns are text, label"):
        load_items(str(f))
    with pytest.raises(ReasonkdError, match="ROLE=COLUMN"):
        load_items(f"{spec}#problem")


def test_empty_split_and_unknown_split(tmp_path):
    import datasets

    from reasonkd.data import load_items

    one = datasets.Dataset.from_list([{"question": "1+1?", "answer": "2"}])
    folder = tmp_path / "files"  # a folder of split files, one of them without rows
    folder.mkdir()
    one.to_parquet(folder / "train.parquet")
    one.select([]).to_parquet(folder / "test.parquet")
    with pytest.raises(ReasonkdError, match="the split 'test' is empty"):
        load_items(str(folder), split="test")
    saved = tmp_path / "saved"  # a save_to_disk folder whose test split has no rows
    datasets.DatasetDict({"train": one, "test": one.filter(lambda r: False)}).save_to_disk(str(saved))
    with pytest.raises(ReasonkdError, match="the split 'test' is empty"):
        load_items(str(saved), split="test")
    with pytest.raises(ReasonkdError, match="no split 'dev'; its splits are train, test"):
        load_items(f"{saved}@dev")
    assert len(load_items(str(saved), split="train")) == 1


def test_hub_id_offline_fails_fast_naming_the_local_alternative(monkeypatch):
    from reasonkd.data import load_items

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(
        ReasonkdError,
        match=r"huggingface-cli download someorg/no-such-set --repo-type dataset.*"
        r"pass --data DIR",
    ):
        load_items("hf:someorg/no-such-set:main@test")
    assert time.time() - t < 10


def test_hub_id_unreachable_fails_fast(monkeypatch):
    from reasonkd.data.external import load_table, parse_spec

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    t = time.time()
    with pytest.raises(ReasonkdError, match="hub is not reachable"):
        load_table(parse_spec("hf:someorg/no-such-set"))
    assert time.time() - t < 10


def test_spec_parsing():
    from reasonkd.data.external import is_dataset_spec, parse_spec

    s = parse_spec("hf:openai/gsm8k:main@test#question=question,answer=answer")
    assert (s.source, s.hub, s.config, s.split, s.columns) == (
        "openai/gsm8k",
        True,
        "main",
        "test",
        {"question": "question", "answer": "answer"},
    )
    assert s.name == "gsm8k" and is_dataset_spec("hf:x/y") and not is_dataset_spec("no/such/folder")
    with pytest.raises(ReasonkdError, match="hf:NAME"):
        parse_spec("hf:bad name")


def test_data_build_mixes_a_dataset_with_the_generators(tmp_path):
    from reasonkd.config import from_dict
    from reasonkd.data import build_dataset, load_items
    from reasonkd.data.recipe import DataRecipe

    spec, _ = write_dataset("math", tmp_path)
    recipe = {
        "seed": 0,
        "math": {"per_family": 2, "families": ["zoo_tickets", "apple_crates"]},
        "code": {"per_task": 0, "bugfix": False},
        "logic": {"zebra": 0, "sudoku": 0},
        "augment": {"variants": 0, "conditions": 0.0, "distractors": 1.0, "negatives": 1.0, "subtasks": 0.0},
        "imports": [{"path": f"{spec}@train", "split": "train", "name": "mathx", "limit": 4}],
        "split": {"test_templates": ["zoo_tickets"], "val_fraction": 0.0},
        "decontam": {"enabled": False},
        "parquet": False,
    }
    out = build_dataset(from_dict(DataRecipe, recipe), tmp_path / "built")
    rows = load_items(out, split="train")
    imported = [r for r in rows if r["template"] == "mathx"]
    assert len(imported) == 4 and {r["verifier"] for r in imported} == {"math_latex"}
    assert all(r["kind"] == "original" for r in imported)  # no numeric distractors / negatives of LaTeX answers
    assert any(r["template"] == "apple_crates" for r in rows)
    assert json.loads((out / "stats.json").read_text())["total"] == len(load_items(out))
    with pytest.raises(ConfigError, match="imports.columns"):
        from_dict(DataRecipe, {**recipe, "imports": [{"path": spec, "columns": {"quest": "x"}}]})
