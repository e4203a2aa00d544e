"""`reasonkd eval` / `reasonkd report` end to end on tiny random models (CPU, seconds)."""

import json
import logging

import pytest

from reasonkd.cli import main

GSM8K = [
    {"question": f"Tom has {a} apples and buys {b} more. How many now?", "answer": f"#### {a + b}"}
    for a, b in [(3, 4), (10, 5), (7, 8)]
]


@pytest.fixture
def gsm8k_file(tmp_path):
    path = tmp_path / "gsm8k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in GSM8K))
    return str(path)


def _eval_args(models, labels, data, out, tasks="gsm8k"):
    args = [
        "eval",
        "--tasks",
        tasks,
        "--data",
        data,
        "--limit",
        "2",
        "--max-new-tokens",
        "6",
        "--batch-size",
        "2",
        "--latency-problems",
        "2",
        "--latency-tokens",
        "4",
        "--case-tokens",
        "6",
        "--out",
        str(out),
    ]
    for m in models:
        args += ["--model", str(m)]
    for lab in labels:
        args += ["--label", lab]
    return args


def test_eval_two_models_writes_results_samples_and_report(
    tiny_llama_dir, tiny_qwen_dir, gsm8k_file, tmp_path, capsys, caplog
):
    out = tmp_path / "run"
    argv = _eval_args(
        [tiny_llama_dir, tiny_qwen_dir], ["student-before", "teacher"], gsm8k_file, out, tasks="gsm8k,humaneval"
    )
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "| Model | GSM8K | HumanEval pass@1 | Latency ms (p50)" in printed
    res = json.loads((out / "results.json").read_text())
    assert [m["label"] for m in res["models"]] == ["student-before", "teacher"]
    for m in res["models"]:
        assert m["params"] > 0 and m["peak_rss_mb"] > 0
        assert 0 <= m["rss_added_mb"] <= m["peak_rss_mb"]  # the model's own footprint, not the process's
        lat = m["latency"]
        assert lat["problems"] == 2 and lat["latency_ms"]["p50"] > 0 and lat["ttft_ms"]["p95"] > 0
        assert set(m["throughput"]) == {"gsm8k", "humaneval"} and m["throughput"]["gsm8k"]["tokens_per_s"] > 0
        assert [c["name"] for c in m["cases"]] == ["chickens_rabbits", "debug_three_errors"]
        g = m["tasks"]["gsm8k"]["metrics"]
        assert g["n"] == 2 and 0 <= g["ci"][0] <= g["accuracy"] <= g["ci"][1] <= 1
        assert set(g["styles"]) == {"strict", "flexible", "boxed", "answer_is", "final"}
    rows = [json.loads(x) for x in (out / "samples" / "teacher" / "gsm8k.jsonl").open()]
    assert len(rows) == 2 and {"prompt", "completion", "extracted", "verdict", "reference"} <= set(rows[0])
    assert {c["task"] for c in res["comparisons"]} == {"gsm8k", "humaneval"}
    md = (out / "report.md").read_text()
    assert "| student-before |" in md and "| teacher |" in md and "Paired differences" in md
    html = (out / "report.html").read_text()
    assert (
        html.count("data:image/png;base64,") == 4
        and "<details>" in html
        and "Where the reasoning breaks" in html
        and "Chickens and rabbits" in html
    )

    # a second run with the same settings reuses the stored completions (resume)
    caplog.set_level(logging.INFO, logger="reasonkd.eval.runner")
    assert main(argv) == 0
    assert sum("reusing 2 samples" in r.message for r in caplog.records) == 4


def test_report_command_combines_runs_and_relabels(tiny_llama_dir, gsm8k_file, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_eval_args([tiny_llama_dir], [], gsm8k_file, a) + ["--no-cases"]) == 0
    samples = tmp_path / "hand.jsonl"
    samples.write_text('{"idx": 0, "completion": "#### 7"}\n{"idx": 1, "completion": "#### 15"}\n')
    assert (
        main(
            [
                "eval",
                "--tasks",
                "gsm8k",
                "--data",
                gsm8k_file,
                "--limit",
                "2",
                "--samples",
                str(samples),
                "--out",
                str(b),
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        main(["report", str(a), str(b), "--out", str(tmp_path / "r"), "--label", "student-before", "--label", "oracle"])
        == 0
    )
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert [m["label"] for m in res["models"]] == ["student-before", "oracle"]
    assert res["models"][1]["tasks"]["gsm8k"]["metrics"]["accuracy"] == 1.0
    comp = res["comparisons"][0]
    assert comp["model"] == "oracle" and comp["baseline"] == "student-before" and comp["n"] == 2


def test_bad_flags_fail_with_one_clear_error(gsm8k_file, tmp_path, capsys):
    assert main(["eval", "--tasks", "gsm9k", "--samples", gsm8k_file]) == 1
    assert "known tasks: code, gsm8k, humaneval, logic" in capsys.readouterr().err
    assert main(["eval", "--tasks", "gsm8k,humaneval", "--samples", gsm8k_file]) == 1
    assert "use --samples TASK=FILE" in capsys.readouterr().err
    assert main(["eval", "--tasks", "gsm8k"]) == 1
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "x")]) == 1
    assert "no results.json" in capsys.readouterr().err


@pytest.mark.slow
def test_real_model_smollm2(gsm8k_file, tmp_path):
    """The shipped student loads, answers, is timed and counted (run under the heavy-job lock)."""
    from reasonkd.eval import evaluate_model, write_report

    r = evaluate_model(
        "smollm2-135m",
        ["gsm8k"],
        data=gsm8k_file,
        limit=2,
        max_new_tokens=48,
        batch_size=2,
        latency_problems=2,
        latency_tokens=16,
        case_tokens=32,
        label="student-before",
    )
    assert r["params"] == 134_515_008
    assert r["latency"]["ms_per_token"] > 0 and r["throughput"]["gsm8k"]["new_tokens"] > 0
    assert all(s["completion"] for s in r["tasks"]["gsm8k"]["samples"])
    assert write_report([r], tmp_path)["html"].is_file()
