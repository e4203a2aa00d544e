"""`reasonkd compare ARMS.yaml --status`: what a long comparison has done and what is left, read from its
output folder without loading a model or touching a file (docs/compare.md).

    rows = compare_status(cfg)        # one row per reference, teacher correction, arm and seed
    print(status_markdown(cfg, rows))

A row's training is `done` (final/ and summary.json written), `step K of N` (the newest metrics line;
a resume starts again from the newest checkpoint, shown next to it, and a sitting that has not closed is
named with its start: the run is going on, or was killed) or `not started`; its dev and
held-out columns hold the accuracy of the cached evaluation, `stale` when it was made with other
problems or settings (a rerun evaluates it again), `—` when there is none yet.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reasonkd.pipeline.compare_run import cached_eval, is_trained
from reasonkd.pipeline.compare_config import SPLITS, CompareConfig, arm_dir, arm_recipe, corrected_dir
from reasonkd.pipeline.trl_arm import newest_checkpoint
from reasonkd.utils.io import free_bytes


def _last_step(metrics: Path) -> int:
    """The step of the last line of a stage's metrics.jsonl (0 when there is none)."""
    if not metrics.is_file():
        return 0
    lines = [ln for ln in metrics.read_text().splitlines() if ln.strip()]
    try:
        return int(json.loads(lines[-1]).get("step", 0)) if lines else 0
    except ValueError:
        return 0


def _training(run: Path, stage_steps: list[int]) -> dict:
    """How far the training in `run` went: state, steps done of the total, newest checkpoint, seconds."""
    from reasonkd.distill.checkpoint import latest_checkpoint

    total = sum(stage_steps)
    timing = json.loads((run / "timing.json").read_text()) if (run / "timing.json").is_file() else {}
    train_s, since = timing.get("train_s", 0.0), timing.get("sitting_start")
    if is_trained(run):
        summary = json.loads((run / "summary.json").read_text())
        steps = summary.get("total", {}).get("steps", total)
        return {"state": "done", "steps": steps, "total": total, "checkpoint": None, "train_s": train_s}
    stages = sorted((run / "stages").glob("*")) if (run / "stages").is_dir() else []
    steps, checkpoint = 0, None
    for stage in stages:
        if (stage / "done.json").is_file():
            steps += json.loads((stage / "done.json").read_text()).get("steps", 0)
            continue
        steps += _last_step(stage / "metrics.jsonl")
        ckpt = latest_checkpoint(stage)
        checkpoint = f"{stage.name} {ckpt.name}" if ckpt else "none"
        break
    trl = newest_checkpoint(run / "trl")
    if trl:  # a TRL arm: its trainer's own checkpoints, the one a resume starts from
        checkpoint, steps = "trl " + trl[0].name, max(steps, trl[1])
    state = "not started" if steps == 0 and checkpoint in (None, "none") else "running or stopped"
    return {
        "state": state,
        "steps": steps,
        "total": total,
        "checkpoint": checkpoint,
        "train_s": train_s,
        "since": since,
    }


def _accuracy(cfg: CompareConfig, model: str, folder: Path, split: str, seed: int) -> str:
    path, eval_file = folder / f"eval-{split}.json", Path(cfg.out) / "eval" / f"{split}.jsonl"
    if not path.is_file():
        return "—"
    saved = cached_eval(cfg, model, folder, split, eval_file, seed) if eval_file.is_file() else None
    if saved is None:
        return "stale"
    m = saved["metrics"]
    return f"{100 * m['accuracy']:.1f}% (n={m['n']})"


def compare_status(cfg: CompareConfig) -> list[dict]:
    """One row per reference model, the teacher correction (when used) and every arm x seed of `cfg`."""
    out, rows = Path(cfg.out), []
    corrected = corrected_dir(cfg)
    models = {"student": cfg.student, "teacher": cfg.teacher, "teacher-corrected": str(corrected / "final")}
    for name in cfg.references:
        folder = out / "references" / name
        accs = {s: _accuracy(cfg, models[name], folder, s, cfg.seeds[0]) for s in SPLITS}
        rows.append({"run": f"reference {name}", "seed": "", "training": "—", **accs})
    if "teacher-corrected" in cfg.references or any(a.corrected_teacher for a in cfg.arms):
        t = _training(corrected, [cfg.teacher_correction.steps])
        rows.append({"run": "teacher correction", "seed": "", "training": _describe(t), **dict.fromkeys(SPLITS, "")})
    for arm in cfg.arms:
        for seed in cfg.seeds:
            run = arm_dir(cfg, arm.name, seed)
            recipe = arm_recipe(cfg, arm, seed, teacher=str(corrected / "final") if arm.corrected_teacher else None)
            t = _training(run, [st.steps for st in recipe.stages])
            final = str(run / "final")
            accs = {s: _accuracy(cfg, final, run, s, seed) for s in SPLITS}
            rows.append({"run": arm.name, "seed": seed, "training": _describe(t), **accs})
    return rows


def _describe(t: dict) -> str:
    minutes = f", {t['train_s'] / 60:.0f} min" if t["train_s"] else ""
    if t["state"] == "done":
        return f"done, {t['steps']} steps{minutes}"
    if t["state"] == "not started":
        return f"not started ({t['total']} steps)"
    since = ""
    if t.get("since"):  # a sitting that has not closed: the run is going on now, or was killed
        since = f"; sitting begun {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(t['since']))}, running or killed"
    return f"step {t['steps']} of {t['total']} (newest checkpoint: {t['checkpoint']}){minutes}{since}"


def disk_use(cfg: CompareConfig) -> dict:
    """Bytes free where the comparison writes, and what its trained students' final/ folders hold: a long
    comparison keeps one student per arm and seed (a 0.5b in fp32 is 2.4 GB), so the disk, not the time,
    can be what stops it. {"free", "students", "held", "largest"}."""
    out = Path(cfg.out)
    sizes = []
    for final in sorted(out.glob("arms/*/seed-*/final")):
        if is_trained(final.parent):
            sizes.append(sum(f.stat().st_size for f in final.rglob("*") if f.is_file()))
    return {
        "free": free_bytes(out),
        "students": len(sizes),
        "held": sum(sizes),
        "largest": max(sizes, default=0),
    }


def _disk_line(d: dict) -> str:
    gib = 2**30
    line = f"disk: {d['free'] / gib:.1f} GiB free"
    if not d["students"]:
        return line
    room = int(d["free"] // d["largest"]) if d["largest"] else 0
    line += (
        f"; {d['students']} trained students' final/ hold {d['held'] / gib:.1f} GiB (up to {d['largest'] / gib:.1f} "
        f"GiB each): room for ~{room} more"
    )
    if room < 2:
        line += (
            " (each evaluation may also cache an OpenVINO conversion of that size under REASONKD_HOME/engines, "
            "rebuilt on demand: free those, or lower REASONKD_ENGINE_CACHE_GB)"
        )
    return line


def status_markdown(cfg: CompareConfig, rows: list[dict], disk: dict | None = None) -> str:
    lines = [
        f"reasonkd compare status: {cfg.out} (seeds {list(cfg.seeds)})",
        "",
        "| run | seed | training | dev | held-out |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['run']} | {r['seed']} | {r['training']} | {r['dev']} | {r['heldout']} |" for r in rows]
    if disk is not None:
        lines += ["", _disk_line(disk)]
    return "\n".join(lines)
