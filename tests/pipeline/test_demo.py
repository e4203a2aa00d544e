"""`reasonkd demo` end to end on tiny random models: outputs, resume after a crash, changed settings.

Tiny random teachers never solve a problem, so these runs use traces_fallback=reference (the data
engine's verified solutions fill the training set; the report says so).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from reasonkd.cli import main as cli_main
from reasonkd.config import from_dict, load_config, to_dict
from reasonkd.distill.stages import run_recipe
from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.pipeline.config import DemoConfig, demo_distill_recipe, preset_path
from reasonkd.pipeline.demo import run_demo

HOOKS = Path(__file__).resolve().parents[1] / "run_with_hooks.py"


def _distill(steps=(2, 2, 2), **kw) -> dict:
    """The default demo's distill recipe with tiny settings: `steps` per stage, 5x its lr (1e-3), no warm-up."""
    d = to_dict(demo_distill_recipe())
    for stage, n in zip(d["stages"], steps):
        stage.update(steps=n, lr=stage["lr"] * 5, warmup=0)
    return {**d, "batch_size": 4, "max_length": 384, "bf16_autocast": False, "save_every": 1, **kw}


TINY = {
    "seed": 0,
    "data": {
        "seed": 0,
        "math": {"per_family": 4},
        "code": {"per_task": 0, "bugfix": False},
        "logic": {"zebra": 0, "sudoku": 0},
        "augment": {"variants": 0, "conditions": 0.0, "distractors": 0.0, "negatives": 0.0, "subtasks": 0.0},
        "split": {"test_templates": ["zoo_tickets", "leaky_tank", "garden_fence"], "val_fraction": 0.5},
        "decontam": {"enabled": False},
        "parquet": False,
    },
    "n_test": 6,
    "n_unseen": 4,
    "n_traces": 8,
    "min_traces": 6,
    "traces_fallback": "reference",
    "teacher_max_new_tokens": 8,
    "teacher_batch_size": 8,
    "eval_max_new_tokens": 8,
    "eval_batch_size": 8,
    "latency_problems": 1,
    "case_tokens": 8,
    "dtype": "float32",
    "device": "cpu",
    "distill": _distill(),
    "isolate": False,  # steps in this process (a child's start costs ~4 s); the default runs in the kill -9 test
}


def _cfg(out, student, teacher, **kw) -> DemoConfig:
    return from_dict(DemoConfig, {**TINY, "student": str(student), "teacher": str(teacher), "out": str(out), **kw})


@pytest.fixture(scope="module")
def same_tok_student(tmp_path_factory, tiny_qwen_dir):
    """A smaller student sharing tiny_qwen_dir's tokenizer (flavour b): a same-tokenizer pair."""
    from tiny_models import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("student_b"),
        arch="qwen2",
        tokenizer="b",
        hidden=64,
        layers=2,
        heads=4,
        kv_heads=2,
        seed=2,
    )


def test_demo_end_to_end_resumes_after_a_crash(tmp_path, monkeypatch, same_tok_student, tiny_qwen_dir, capsys):
    out = tmp_path / "demo"
    cfg = _cfg(out, same_tok_student, tiny_qwen_dir, n_robust=2)
    with monkeypatch.context() as m:  # the distill step dies after its first step
        m.setitem(run_recipe.__kwdefaults__, "stop_after", 1)
        with pytest.raises(ReasonkdError, match="stopped on request"):
            run_demo(cfg)
    state = json.loads((out / "state.json").read_text())
    finished = {k: v["finished_at"] for k, v in state["steps"].items()}
    assert set(finished) == {"data", "eval_before", "traces"}
    assert (out / "distill" / "stages").is_dir()

    capsys.readouterr()
    summary = run_demo(cfg)
    log = capsys.readouterr().out
    assert log.count("done earlier") == 3
    state = json.loads((out / "state.json").read_text())
    assert {k: state["steps"][k]["finished_at"] for k in finished} == finished  # not redone
    assert all(state["steps"][k]["done"] for k in ("distill", "sft", "eval_after", "report"))

    for f in (
        "report/demo.md",
        "report/demo.json",
        "report/index.html",
        "report/report.md",
        "timings.md",
        "eval/heldout.jsonl",
        "eval/unseen.jsonl",
        "train_traces.jsonl",
        "config.yaml",
    ):
        assert (out / f).is_file(), f
    heldout = [json.loads(x) for x in (out / "eval/heldout.jsonl").read_text().splitlines()]
    assert len(heldout) == 6 and all(r["split"] == "val" and r["kind"] == "original" for r in heldout)
    unseen = [json.loads(x) for x in (out / "eval/unseen.jsonl").read_text().splitlines()]
    assert {r["template"] for r in unseen} <= {"zoo_tickets", "leaky_tank", "garden_fence"}

    assert [r["label"] for r in summary["rows"]] == ["student-before", "sft-only", "distilled", "teacher"]
    table = summary["table"].splitlines()
    assert sum(line.startswith("| ") and "(" in line for line in table[2:]) == 4
    assert all(r["heldout"]["n"] == 6 and r["unseen"]["n"] == 4 for r in summary["rows"])
    assert summary["paired"]["held-out"]["distilled - sft-only"]["n"] == 6
    assert summary["traces"]["reference"] >= 1  # the fallback is reported, not hidden
    md = (out / "report/demo.md").read_text()
    assert "reference solutions, not teacher traces" in md and "Retention" in md
    assert "| distill |" in (out / "timings.md").read_text()
    rob = json.loads((out / "eval/teacher.robustness.json").read_text())["tasks"]["robustness"]["metrics"]
    assert all(v["n"] <= 2 for v in rob["robustness"]["types"].values()) and rob["robustness"]["types"]
    assert "## Robustness (GSM-Plus perturbation types, same problems)" in (out / "report/report.md").read_text()
    assert 'alt="robustness plot"' in (out / "report/index.html").read_text()
    # the first-error analysis: its section, plot and the distilled - SFT-only comparison in the HTML too
    report_md, index = (out / "report/report.md").read_text(), (out / "report/index.html").read_text()
    assert "## Where the reasoning breaks" in report_md and "### sft-only -> distilled (gsm8k, 6 shared" in report_md
    assert 'alt="errors by first-error class"' in index and "<td>distilled</td><td>sft-only</td>" in index
    assert "no gold steps" not in report_md  # the held-out and unseen items carry them
    capsys.readouterr()
    assert cli_main(["analyze", str(out / "eval")]) == 0
    printed = capsys.readouterr().out
    assert "sft-only -> distilled (gsm8k, 6 shared problems)" in printed and "gsm8k_unseen" in printed

    # a run recorded before a config key existed resumes when the key is at its default
    state = json.loads((out / "state.json").read_text())
    del state["fingerprint"]["latency_problems"]
    (out / "state.json").write_text(json.dumps(state))
    run_demo(_cfg(out, same_tok_student, tiny_qwen_dir, n_robust=2, latency_problems=DemoConfig().latency_problems))
    state = json.loads((out / "state.json").read_text())
    del state["fingerprint"]["latency_problems"]
    (out / "state.json").write_text(json.dumps(state))
    with pytest.raises(ReasonkdError, match="latency_problems"):  # at another value it is a changed setting
        run_demo(_cfg(out, same_tok_student, tiny_qwen_dir, n_robust=2, latency_problems=0))

    # (c) other settings on the same folder are refused, naming the key
    with pytest.raises(ReasonkdError, match="n_test"):
        run_demo(_cfg(out, same_tok_student, tiny_qwen_dir, n_robust=2, n_test=5))
    with pytest.raises(ReasonkdError, match=r"data\.math\.per_family"):
        run_demo(
            _cfg(out, same_tok_student, tiny_qwen_dir, n_robust=2, data={**TINY["data"], "math": {"per_family": 5}})
        )


def test_sft_baseline_matches_the_distillation_budget(tmp_path):
    from reasonkd.pipeline.demo import distill_recipe

    cfg = _cfg(tmp_path, "s", "t", distill=_distill((3, 4, 5)))
    d, s = distill_recipe(cfg, tmp_path), distill_recipe(cfg, tmp_path, sft=True)
    assert [st.kind for st in d.stages] == ["feature", "logic", "output"]
    assert "attention_kl" not in d.stages[0].loss_names
    assert d.stages[2].temperature.start == 5.0 and d.stages[2].temperature.end == 1.0
    assert [st.steps for st in s.stages] == [12] and s.stages[0].loss_names == ["ce"] and s.teacher == ""
    assert s.batch_size == d.batch_size and s.stages[0].lr == d.stages[0].lr


def test_presets_load_and_default_yaml_equals_the_defaults():
    assert to_dict(load_config(DemoConfig, preset_path("default"))) == to_dict(DemoConfig())
    quick = load_config(DemoConfig, preset_path("quick"))
    assert quick.n_test < DemoConfig().n_test
    qwen = load_config(DemoConfig, preset_path("qwen-1.5b-to-0.5b"))
    assert qwen.distill.lora.enabled and [st.loss_names for st in qwen.distill.stages] == [["ce", "forward_kl"]]
    assert qwen.teacher_correction.steps > 0 and qwen.train_steps == 150


@pytest.mark.parametrize(
    "key,value", [("teacher", "other-teacher"), ("student", "other-student"), ("seed", "7"), ("device", "cpu")]
)
def test_a_demo_owned_key_under_distill_is_refused_naming_the_top_level_key(key, value):
    """distill.teacher=X (student, seed, device) never silently loses to the demo's own key."""
    from reasonkd.pipeline.config import load_demo_config

    with pytest.raises(ConfigError, match=rf"distill\.{key}=.*set {key}={value} instead"):
        load_demo_config(overrides=[f"distill.{key}={value}"])
    cfg = load_demo_config(overrides=[f"{key}={value}", f"distill.{key}={value}"])  # the same value: fine
    assert str(getattr(cfg.distill, key)) == value
    cfg = load_demo_config(overrides=[f"{key}={value}"])  # the top-level key reaches the recipe
    assert str(getattr(cfg.distill, key)) == value and str(getattr(cfg, key)) == value
    assert dataclasses.replace(cfg, **{key: getattr(DemoConfig(), key)}).distill == DemoConfig().distill


def test_too_few_verified_traces_is_a_clear_error(tmp_path, same_tok_student, tiny_qwen_dir):
    cfg = _cfg(tmp_path / "demo", same_tok_student, tiny_qwen_dir, traces_fallback="off", n_unseen=0)
    with pytest.raises(ReasonkdError, match="traces_fallback=reference"):
        run_demo(cfg)


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_demo_cross_tokenizer_pair(tmp_path, tiny_llama_dir, tiny_qwen_dir):
    cfg = _cfg(
        tmp_path / "demo",
        tiny_llama_dir,
        tiny_qwen_dir,
        n_unseen=0,
        n_test=4,
        latency_problems=0,
        distill=_distill((1, 1, 1), max_length=256),
    )
    summary = run_demo(cfg)
    assert len(summary["rows"]) == 4


def test_cli_keys_and_flag_conflict(capsys):
    from reasonkd.cli import main

    assert main(["demo", "--keys"]) == 0
    keys = capsys.readouterr().out
    assert "n_test = 200" in keys and "data.math.per_family" in keys and "traces_fallback" in keys
    assert main(["demo", "--quick", "--config", "x.yaml"]) == 2  # ConfigError


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_cli_plan_prints_estimates_and_writes_nothing(tmp_path, capsys):
    from reasonkd.cli import main

    out = tmp_path / "never"
    assert main(["demo", "--plan", "--out", str(out), "n_traces=320"]) == 0
    text = capsys.readouterr().out
    assert "traces" in text and "total" in text and not out.exists()
    from reasonkd.pipeline.config import DemoConfig
    from reasonkd.pipeline.eta import estimate

    # the estimate scales with the work: twice the traces, twice the trace time
    a, b = estimate(DemoConfig(n_traces=160), False), estimate(DemoConfig(n_traces=320), False)
    assert abs(b["traces"] / a["traces"] - 2.0) < 1e-9 and b["eval_before"] == a["eval_before"]


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_kill9_mid_distill_then_rerun_resumes(tmp_path, same_tok_student, tiny_qwen_dir):
    """`kill -9` of a real `reasonkd demo` process during the distill step; the rerun skips the finished
    steps (their finish times do not change) and continues distillation from its last checkpoint."""
    import signal
    import subprocess
    import sys
    import time

    import psutil
    import yaml

    out = tmp_path / "demo"
    recipe = tmp_path / "tiny.yaml"
    # the default: each heavy step in a child process, which the kill takes down with the demo
    recipe.write_text(yaml.safe_dump(to_dict(_cfg(out, same_tok_student, tiny_qwen_dir, isolate=True))))
    cmd = [sys.executable, "-m", "reasonkd", "demo", "--config", str(recipe)]
    slow = [sys.executable, str(HOOKS), "--step-delay", "0.5", "--", *cmd[3:]]  # a slow distill step to kill in
    proc = subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    checkpoints = out / "distill" / "stages"
    while time.time() < deadline and proc.poll() is None:
        if any(checkpoints.glob("*/checkpoints/step-*")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the demo finished or died before a distill checkpoint appeared"
    kids = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(kids, timeout=20)
    assert kids and alive == [], "the distill step's process trains on after the demo was killed"
    state = json.loads((out / "state.json").read_text())
    finished = {k: v["finished_at"] for k, v in state["steps"].items() if v.get("done")}
    assert set(finished) == {"data", "eval_before", "traces"}

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("done earlier") == 3
    assert "resum" in (done.stdout + done.stderr).lower()  # the distill step continued from its checkpoint
    state = json.loads((out / "state.json").read_text())
    assert {k: state["steps"][k]["finished_at"] for k in finished} == finished
    assert all(state["steps"][k]["done"] for k in ("distill", "sft", "eval_after", "report"))
    assert (out / "report" / "index.html").is_file() and not list(out.rglob("*.tmp"))
    # the demo prunes finished stages' optimizer-state checkpoints; the stage students stay
    assert not list(out.glob("*/stages/*/checkpoints")) and list(out.glob("distill/stages/*/student"))


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_demo_with_teacher_correction_distils_from_the_corrected_teacher(tmp_path, same_tok_student, tiny_qwen_dir):
    """teacher_correction.steps >= 1 adds a step after the traces: the teacher's LoRA pass on the verified
    traces the student trains on; the distillation then reads that teacher, the SFT baseline none."""
    import yaml

    from reasonkd.pipeline.eta import estimate

    out = tmp_path / "demo"
    tc = {"steps": 2, "lora_r": 4, "batch_size": 2, "max_length": 384}
    cfg = _cfg(out, same_tok_student, tiny_qwen_dir, n_unseen=0, distill=_distill((1, 1, 1)), teacher_correction=tc)
    assert list(estimate(cfg))[:4] == ["data", "eval_before", "traces", "correct"]
    assert "correct" not in estimate(_cfg(out, same_tok_student, tiny_qwen_dir))
    run_demo(cfg)
    state = json.loads((out / "state.json").read_text())
    assert state["steps"]["correct"]["done"] and list(state["steps"]).index("correct") == 3
    corrected = out / "teacher-corrected" / "final"
    assert (corrected / "config.json").is_file()
    assert json.loads((out / "teacher-corrected" / "summary.json").read_text())["total"]["steps"] == 2
    assert yaml.safe_load((out / "distill.yaml").read_text())["teacher"] == str(corrected)
    assert yaml.safe_load((out / "sft.yaml").read_text())["teacher"] == ""
    assert (out / "distill" / "final" / "config.json").is_file() and (out / "sft" / "final" / "config.json").is_file()
