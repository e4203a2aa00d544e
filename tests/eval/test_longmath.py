"""`longmath`: accuracy per input-length bucket (the evaluated model's tokenizer), speed per bucket, the plot,
and the too-long error that names the window option."""

import pytest

from reasonkd.config import load_config
from reasonkd.data import build_dataset
from reasonkd.data.recipe import DataRecipe
from reasonkd.eval.report import write_report
from reasonkd.eval.runner import evaluate_model
from reasonkd.eval.tasks.longmath import by_length


@pytest.fixture(scope="module")
def long_data(tiny_llama_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("longmath") / "data"
    recipe = load_config(
        DataRecipe,
        None,
        [
            "math.families=[zoo_tickets,garden_fence]",
            "math.per_family=1",
            "code.tasks=[]",
            "logic.zebra=0",
            "logic.sudoku=0",
            "augment.variants=0",
            "decontam.enabled=false",
            "parquet=false",
            "long.per_bucket=2",
            "long.buckets=[1k]",
            f"long.tokenizer={tiny_llama_dir}",
        ],
    )
    return build_dataset(recipe, out)


def test_too_long_for_full_attention_names_window(tiny_llama_dir, long_data, caplog):
    evaluate_model(
        str(tiny_llama_dir),
        "longmath",
        data=str(long_data),
        max_new_tokens=2,
        cases=False,
        latency_problems=0,
        progress=False,
        dtype="float32",
    )
    assert "longer than the model's maximum context of 512 tokens" in caplog.text and "--window" in caplog.text


def test_longmath_by_length_with_window(tiny_llama_dir, long_data, tmp_path):
    r = evaluate_model(
        str(tiny_llama_dir),
        "longmath",
        data=str(long_data),
        max_new_tokens=4,
        cases=False,
        latency_problems=1,
        latency_tokens=2,
        progress=False,
        dtype="float32",
        window=128,
        sinks=4,
        label="tiny",
        out_dir=tmp_path,
    )
    m = r["tasks"]["longmath"]["metrics"]
    assert set(m["by_length"]) == {"short", "1k"}  # buckets from the tiny model's own prompt lengths
    assert m["by_length"]["1k"]["n"] == 2 and m["by_length"]["short"]["n"] == 2
    assert m["by_length"]["1k"]["mean_prompt_tokens"] > 512
    assert "vs_short" in m["by_length"]["1k"]
    assert set(m["by_length_speed"]) == {"short", "1k"}
    assert m["by_length_speed"]["1k"]["peak_rss_mb"] > 0
    assert r["settings"]["window"] == 128
    paths = write_report([r], tmp_path / "report")
    assert "longmath: accuracy" not in paths["html"].read_text()  # the plot is an image
    assert paths["html"].read_text().count("data:image/png") >= 2


def test_by_length_uses_prompt_tokens():
    rows = [
        {"verdict": True, "problem": "p1", "data_bucket": "short", "prompt_tokens": 90},
        {"verdict": False, "problem": "p1", "data_bucket": "2k", "prompt_tokens": 1300},  # model's count: 1k
        {"verdict": True, "problem": "p2", "data_bucket": "short"},
        {"verdict": True, "problem": "p2", "data_bucket": "2k"},
    ]
    out = by_length(rows)
    assert out["1k"]["n"] == 1 and out["2k"]["n"] == 1 and out["short"]["n"] == 2
    assert out["1k"]["vs_short"]["diff"] == -1.0
