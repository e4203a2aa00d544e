"""`reasonkd teacher correct`: teacher correction outside `reasonkd compare` (tiny random teacher)."""

from __future__ import annotations

import json


def test_teacher_correct_writes_a_merged_teacher_and_resumes(setup, tmp_path, tiny_qwen_dir, capsys):
    from reasonkd.cli import main

    _, _, arms = setup
    out = tmp_path / "corrected"
    args = ["teacher", "correct", "--teacher", str(tiny_qwen_dir), "--traces", arms["traces"], "--out", str(out)]
    args += ["--steps", "2", "--batch-size", "2", "--max-length", "256", "--device", "cpu", "--bf16-autocast", "false"]
    args += ["--gradient-checkpointing"]
    assert main(args) == 0
    assert (out / "final" / "config.json").is_file() and str(out / "final") in capsys.readouterr().out
    saved = (out / "config.yaml").read_text()
    assert "student: " + str(tiny_qwen_dir) in saved and "r: 16" in saved  # the teacher is what is trained
    assert "gradient_checkpointing: true" in saved
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total"]["steps"] == 2
    before = (out / "final" / "config.json").stat().st_mtime_ns
    assert main(args) == 0  # finished: returned at once, nothing trained again
    assert (out / "final" / "config.json").stat().st_mtime_ns == before


def test_teacher_correct_refuses_zero_steps(setup, tmp_path, tiny_qwen_dir, capsys):
    from reasonkd.cli import main

    _, _, arms = setup
    args = ["teacher", "correct", "--teacher", str(tiny_qwen_dir), "--traces", arms["traces"]]
    assert main([*args, "--out", str(tmp_path / "c"), "--steps", "0"]) != 0
    assert "steps must be >= 1" in capsys.readouterr().err and not (tmp_path / "c" / "final").exists()
