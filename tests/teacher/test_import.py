"""`reasonkd teacher import`: GSM8K (chat traces), MATH (<think> texts) and OpenR1-Math (lists of generations)
datasets written by the test become the traces folder `teacher generate` writes, keeping only traces our
verifier accepts and reporting the dataset's verdict next to ours; bad trace columns are one clear error."""

from __future__ import annotations

import json

import pytest
from own_data import write_dataset

from reasonkd.errors import ReasonkdError


@pytest.mark.parametrize("kind", ["gsm8k", "math", "openr1"])
def test_import_keeps_verified_traces_and_reports_both_verdicts(tmp_path, kind, capsys):
    from reasonkd.cli import main
    from reasonkd.teacher.traces import load_traces
    from reasonkd.utils.io import read_jsonl

    spec, info = write_dataset(kind, tmp_path)
    out = tmp_path / "traces"
    assert (
        main(
            [
                "teacher",
                "import",
                f"{spec}@train",
                "--out",
                str(out),
                "--traces-column",
                info["traces_column"],
                "--correct-column",
                info["correct_column"],
                "--no-progress",
            ]
        )
        == 0
    )
    log = capsys.readouterr().out
    traces, negatives = read_jsonl(out / "traces.jsonl"), read_jsonl(out / "negatives.jsonl")
    assert len(traces) == info["ours_right"] and len(traces) + len(negatives) == info["traces"]
    assert all(r["verified"] and r["verifier"] == info["verifier"] for r in traces)
    assert not any(r["verified"] for r in negatives)
    stats = json.loads((out / "stats.json").read_text())
    agree = stats["import"]["agreement"]
    assert agree["dataset_only"] == info["disagree"] and agree["no_dataset_verdict"] == 0
    assert agree["both_correct"] + agree["ours_only"] == info["ours_right"]
    assert stats["overall"]["accepted"] == info["ours_right"] and "verdicts, ours vs the dataset's" in log
    # the traces read like generated ones: the student's prompt, a trace ending in its answer
    rows = load_traces(out)
    assert all(r["prompt"].startswith(t["prompt"][:20]) for r, t in zip(rows, traces))
    if info["verifier"] == "math_latex":
        assert all("\\boxed{}" in r["prompt"] and "<think>" in r["trace"] for r in rows)
    else:
        assert all('"#### <number>"' in r["prompt"] for r in rows)
    # teacher check re-verifies the folder against the same dataset
    assert main(["teacher", "check", "--traces", str(out), "--data", f"{spec}@train"]) == 0
    # resumable: a rerun commits nothing new and writes the same traces
    assert (
        main(
            [
                "teacher",
                "import",
                f"{spec}@train",
                "--out",
                str(out),
                "--traces-column",
                info["traces_column"],
                "--correct-column",
                info["correct_column"],
                "--no-progress",
            ]
        )
        == 0
    )
    assert read_jsonl(out / "traces.jsonl") == traces


def test_thinking_cut_and_the_length_cap(tmp_path, tiny_qwen_dir):
    from reasonkd.teacher.importer import ImportSettings, import_traces
    from reasonkd.utils.io import read_jsonl

    spec, info = write_dataset("openr1", tmp_path)
    stats = import_traces(
        ImportSettings(
            data=spec, out=str(tmp_path / "cut"), thinking="cut", progress=False, correct_column=info["correct_column"]
        )
    )
    traces = read_jsonl(tmp_path / "cut" / "traces.jsonl")
    assert len(traces) == 6 and not any("<think>" in r["trace"] or "Step by step" in r["trace"] for r in traces)
    assert all(r["trace"].startswith("The answer is") for r in traces) and stats["import"]["thinking"] == "cut"
    # a cap below every trace's length: nothing is kept, all are 'truncated', our verdicts are still reported
    stats = import_traces(
        ImportSettings(
            data=spec,
            out=str(tmp_path / "cap"),
            max_tokens=3,
            progress=False,
            tokenizer=str(tiny_qwen_dir),
            correct_column=info["correct_column"],
        )
    )
    assert stats["overall"]["accepted"] == 0 and stats["overall"]["truncated"] == 12
    assert stats["import"]["length_unit"] == "tokens" and stats["import"]["agreement"]["both_correct"] == 6


def test_bad_trace_and_verdict_columns(tmp_path):
    import datasets

    from reasonkd.teacher.importer import ImportSettings, import_traces

    spec, _ = write_dataset("math", tmp_path)
    with pytest.raises(
        ReasonkdError,
        match=r"--traces-column generations: no such column; the columns are "
        r"problem, solution, answer, level, type, response, correct",
    ):
        import_traces(ImportSettings(data=spec, out=str(tmp_path / "a"), progress=False))
    f = tmp_path / "bad.parquet"
    datasets.Dataset.from_list([{"problem": "1+1?", "answer": "2", "generations": 3, "ok": "yes"}]).to_parquet(f)
    with pytest.raises(
        ReasonkdError,
        match=r"split train row 0, --traces-column generations: holds a int; a traces "
        r"column holds text, a list of texts, or chat messages",
    ):
        import_traces(ImportSettings(data=str(f), out=str(tmp_path / "b"), progress=False))
    datasets.Dataset.from_list(
        [{"problem": "1+1?", "answer": "2", "generations": ["\\boxed{2}"], "ok": "yes"}]
    ).to_parquet(f)
    with pytest.raises(ReasonkdError, match=r"--correct-column ok: holds a str; --correct-column must hold a bool"):
        import_traces(ImportSettings(data=str(f), out=str(tmp_path / "c"), correct_column="ok", progress=False))
    with pytest.raises(ReasonkdError, match="--correct-column correctnes: no such column"):
        import_traces(ImportSettings(data=str(f), out=str(tmp_path / "d"), correct_column="correctnes", progress=False))
