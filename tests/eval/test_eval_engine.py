"""`reasonkd eval --engine openvino` on a tiny random model: same samples as the hf engine, and the
engine, its precision and its conversion are recorded with the result."""

import json

import pytest

from reasonkd.cli import main

pytest.importorskip("openvino_genai")

GSM8K = [
    {"question": f"Tom has {a} apples and buys {b} more. How many now?", "answer": f"#### {a + b}"}
    for a, b in [(3, 4), (10, 5)]
]


@pytest.fixture
def gsm8k_file(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K))
    return str(path)


def test_openvino_engine_matches_hf(gsm8k_file, tiny_qwen_dir, tmp_path):
    from reasonkd.eval import evaluate_model

    kw = dict(
        data=gsm8k_file,
        limit=2,
        max_new_tokens=8,
        batch_size=2,
        latency_problems=1,
        latency_tokens=4,
        case_tokens=6,
        dtype="float32",
    )
    hf = evaluate_model(str(tiny_qwen_dir), ["gsm8k"], engine="hf", **kw)
    ov = evaluate_model(str(tiny_qwen_dir), ["gsm8k"], engine="openvino", out_dir=tmp_path / "run", **kw)
    assert ov["engine"] == "openvino" and ov["dtype"] == "fp32" and hf["engine"] == "hf"
    strip = [
        {k: s[k] for k in ("idx", "completion", "verdict", "new_tokens", "finished")}
        for s in hf["tasks"]["gsm8k"]["samples"]
    ]
    assert [{k: s[k] for k in strip[0]} for s in ov["tasks"]["gsm8k"]["samples"]] == strip
    assert ov["params"] == hf["params"]
    assert ov["throughput"]["gsm8k"]["engine"] == "openvino" and ov["throughput"]["gsm8k"]["new_tokens"] > 0
    assert ov["latency"]["problems"] == 1 and ov["latency"]["ttft_ms"]["p50"] > 0
    assert [c["answer"] for c in ov["cases"]] == [c["answer"] for c in hf["cases"]]


def test_eval_cli_engine_flag(gsm8k_file, tiny_llama_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    assert (
        main(
            [
                "eval",
                "--model",
                str(tiny_llama_dir),
                "--engine",
                "openvino",
                "--tasks",
                "gsm8k",
                "--data",
                gsm8k_file,
                "--limit",
                "2",
                "--max-new-tokens",
                "4",
                "--latency-problems",
                "0",
                "--no-cases",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    rows = results if isinstance(results, list) else results.get("results", results.get("models"))
    assert "openvino" in json.dumps(rows)
