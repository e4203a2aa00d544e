"""`reasonkd compare ARMS.yaml --status`: progress read from the output folder, nothing run or written."""

from __future__ import annotations

from reasonkd.utils.io import write_json


def _trained(run, steps: int, train_s: float = 0.0) -> None:
    (run / "final").mkdir(parents=True)
    (run / "final" / "config.json").write_text("{}")
    write_json(run / "summary.json", {"total": {"steps": steps}})
    write_json(run / "timing.json", {"train_s": train_s, "eval_s": {}})


def test_status_reads_progress_from_the_folder_without_running(setup, tmp_path, capsys):
    from reasonkd.cli import main
    from reasonkd.pipeline.compare_run import _eval_identity
    from reasonkd.pipeline.compare_config import arm_dir, load_compare_config

    _, path, _ = setup
    out = tmp_path / "out"
    cfg = load_compare_config(str(path), [f"out={out}", "seeds=[0,1,2]"])
    (out / "eval").mkdir(parents=True)
    dev = out / "eval" / "dev.jsonl"
    dev.write_text('{"id": "p0"}\n{"id": "p1"}\n')
    # sft seed 0: trained and evaluated on these dev problems; seed 1: its evaluation used other settings
    run = arm_dir(cfg, "sft", 0)
    _trained(run, 2, train_s=120.0)
    identity = _eval_identity(cfg, str(run / "final"), dev, 0)
    write_json(run / "eval-dev.json", {"identity": identity, "metrics": {"accuracy": 0.5, "n": 2}})
    run = arm_dir(cfg, "sft", 1)
    _trained(run, 2)
    write_json(run / "eval-dev.json", {"identity": {"model": "other"}, "metrics": {"accuracy": 1.0, "n": 2}})
    # kd seed 0: its first stage (1 of the 2 steps) at step 1, checkpointed; the second not begun
    stage = arm_dir(cfg, "kd", 0) / "stages" / "1-warm"
    (stage / "checkpoints" / "step-000001").mkdir(parents=True)
    (stage / "metrics.jsonl").write_text('{"loss": 1.0, "step": 1}\n')
    # kd seed 1: the first stage done, the second at step 1 with no checkpoint yet
    run = arm_dir(cfg, "kd", 1)
    write_json(run / "stages" / "1-warm" / "done.json", {"steps": 1})
    (run / "stages" / "2-kd").mkdir(parents=True)
    (run / "stages" / "2-kd" / "metrics.jsonl").write_text('{"step": 1}\n')
    write_json(run / "timing.json", {"train_s": 60.0, "eval_s": {}, "sitting_start": 1796559000.0})  # not closed
    # sft seed 2 stands in for a TRL arm: HF Trainer's checkpoint-<step> folders, no metrics.jsonl of ours
    # (checkpoint-2 is cut short: no trainer_state.json, so a resume would not start from it)
    write_json(arm_dir(cfg, "sft", 2) / "trl" / "checkpoint-1" / "trainer_state.json", {"global_step": 1})
    (arm_dir(cfg, "sft", 2) / "trl" / "checkpoint-2").mkdir()
    (arm_dir(cfg, "sft", 2) / "trl" / "checkpoint-tmp").mkdir()
    before = sorted(p for p in tmp_path.rglob("*"))

    assert main(["compare", str(path), f"out={out}", "seeds=[0,1,2]", "--status"]) == 0
    text = capsys.readouterr().out
    rows = {
        tuple(c.strip() for c in ln.strip("|").split("|")[:2]): ln for ln in text.splitlines() if ln.startswith("| ")
    }
    assert "done, 2 steps, 2 min" in rows[("sft", "0")] and "50.0% (n=2)" in rows[("sft", "0")]
    assert "stale" in rows[("sft", "1")]
    assert "step 1 of 2 (newest checkpoint: 1-warm step-000001)" in rows[("kd", "0")]
    assert "step 2 of 2 (newest checkpoint: none), 1 min" in rows[("kd", "1")]
    assert "sitting begun 2026-12-06 12:10 UTC, running or killed" in rows[("kd", "1")]
    assert "step 1 of 2 (newest checkpoint: trl checkpoint-1)" in rows[("sft", "2")]
    assert "sitting" not in rows[("kd", "0")] + rows[("sft", "0")]
    assert "—" in rows[("reference student", "")] and "—" in rows[("reference teacher", "")]
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, nothing run
    # the disk: free space, what the trained students hold (sft seeds 0 and 1: config.json "{}", 2 bytes each)
    disk = next(ln for ln in text.splitlines() if ln.startswith("disk: "))
    assert "GiB free; 2 trained students' final/ hold 0.0 GiB (up to 0.0 GiB each): room for ~" in disk


def test_the_disk_line_says_when_the_next_student_may_not_fit():
    from reasonkd.pipeline.compare_status import _disk_line

    gib = 2**30
    line = _disk_line({"free": 3 * gib, "students": 4, "held": int(9.6 * gib), "largest": int(2.4 * gib)})
    assert line.startswith("disk: 3.0 GiB free; 4 trained students' final/ hold 9.6 GiB (up to 2.4 GiB each)")
    assert "room for ~1 more (each evaluation may also cache an OpenVINO conversion" in line
    assert _disk_line({"free": 30 * gib, "students": 0, "held": 0, "largest": 0}) == "disk: 30.0 GiB free"
    assert "conversion" not in _disk_line({"free": 30 * gib, "students": 4, "held": gib, "largest": gib})


def test_time_left_prices_each_job_by_its_own_arm(setup, tmp_path):
    from reasonkd.pipeline.compare import _eta, job_order, time_left
    from reasonkd.pipeline.compare_config import arm_dir, load_compare_config

    _, path, _ = setup
    cfg = load_compare_config(str(path), [f"out={tmp_path / 'out'}", "seeds=[0,1,2]"])
    # sft seed 0: trained in 120 s, evaluated on dev in 30 s; seed 1 trained in 100 s, not evaluated;
    # kd: nothing finished yet (seed 0's sitting is open: its time is not a finished run's)
    _trained(arm_dir(cfg, "sft", 0), 2, train_s=120.0)
    write_json(arm_dir(cfg, "sft", 0) / "timing.json", {"train_s": 120.0, "eval_s": {"dev": 30.0}})
    write_json(arm_dir(cfg, "sft", 0) / "eval-dev.json", {})
    _trained(arm_dir(cfg, "sft", 1), 2, train_s=100.0)
    write_json(arm_dir(cfg, "kd", 0) / "timing.json", {"train_s": 9.0, "eval_s": {}, "sitting_start": 1.0})
    jobs = job_order(cfg.arms, cfg.seeds)

    # sft 1: evaluation only (30); sft 2: mean training (110) + evaluation (30); kd 0-2: no figure yet
    assert time_left(cfg, jobs, "dev") == (170.0, 3)
    assert _eta(cfg, jobs, "dev") == "; ETA ~3 min for 2 more, 3 more not yet timed (no run of their arm has finished)"
    assert time_left(cfg, jobs, "heldout") == (0.0, 6)  # no evaluation on held-out timed yet
    write_json(arm_dir(cfg, "kd", 0) / "eval-dev.json", {})
    for seed in (1, 2):
        write_json(arm_dir(cfg, "sft", seed) / "eval-dev.json", {})
        write_json(arm_dir(cfg, "kd", seed) / "eval-dev.json", {})
    assert _eta(cfg, jobs, "dev") == ""
