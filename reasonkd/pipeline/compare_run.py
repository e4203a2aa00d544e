"""One run of `reasonkd compare`: train (or resume, or skip) an arm-seed, evaluate a model on a split with its
verdicts cached, and the bookkeeping both need (training sittings and wall time, the evaluation's identity,
teacher tokens). reasonkd/pipeline/compare.py chains these jobs over arms, seeds and references.
"""

from __future__ import annotations

import json
import shutil
import time
from functools import lru_cache
from pathlib import Path

from reasonkd.config import save_config
from reasonkd.distill.recipe import needs_teacher_online
from reasonkd.distill.stages import run_recipe
from reasonkd.pipeline.compare_config import ArmConfig, CompareConfig, arm_dir, arm_recipe
from reasonkd.pipeline.eta import resolve_device
from reasonkd.utils.io import sha256_file, write_json


# ------------------------------------------------------------------ training and evaluation of one run


def is_trained(run_dir: Path) -> bool:
    """A finished distillation run: its final/ student and summary.json written (run_recipe writes them last)."""
    return (run_dir / "final" / "config.json").is_file() and (run_dir / "summary.json").is_file()


def read_timing(folder: Path) -> dict:
    """A run's timing.json: train_s (every sitting's kept work), eval_s per split, sitting_start while open."""
    f = folder / "timing.json"
    return json.loads(f.read_text()) if f.is_file() else {"train_s": 0.0, "eval_s": {}}


def _kept_work_until(run_dir: Path) -> float:
    """Wall-clock time (epoch s) of the newest checkpoint or finished stage in a run: where the work a killed
    sitting leaves behind ends (what came after it is redone by the next sitting)."""
    marks = [
        *run_dir.glob("stages/*/checkpoints/step-*"),
        *run_dir.glob("stages/*/done.json"),
        *run_dir.glob("trl/checkpoint-*"),
    ]
    return max((p.stat().st_mtime for p in marks), default=0.0)


def _open_sitting(run_dir: Path) -> None:
    """Start a training sitting in timing.json. An earlier sitting that never closed (the process was killed)
    is counted up to its newest checkpoint first, so `train_s` is the wall time of every sitting's kept work
    however often a long arm was stopped and resumed."""
    timing = read_timing(run_dir)
    start = timing.pop("sitting_start", None)
    if start is not None:
        timing["train_s"] = round(timing["train_s"] + max(0.0, _kept_work_until(run_dir) - start), 1)
    timing["sitting_start"] = time.time()
    write_json(run_dir / "timing.json", timing)


def _close_sitting(run_dir: Path) -> None:
    timing = read_timing(run_dir)
    timing["train_s"] = round(timing["train_s"] + time.time() - timing.pop("sitting_start"), 1)
    write_json(run_dir / "timing.json", timing)


def train_arm(cfg: CompareConfig, arm: ArmConfig, seed: int, teacher: str | None, progress: bool) -> Path:
    """Train (or resume, or skip) one arm and seed; returns its final/ folder. An arm that starts from
    another arm's student trains that one first when it is missing."""
    if arm.start_from:
        train_arm(cfg, _arm(cfg, arm.start_from), seed, None, progress)
    recipe = arm_recipe(cfg, arm, seed, teacher=teacher)
    run_dir = Path(recipe.output_dir)
    final = run_dir / "final"
    if is_trained(run_dir):
        return final
    _open_sitting(run_dir)
    if arm.runner == "trl-gkd":
        from reasonkd.pipeline.trl_arm import train_trl_arm

        save_config(recipe, run_dir, "config.yaml")
        train_trl_arm(recipe, arm.trl, cfg.steps + arm.extra_steps, progress=progress)
    else:
        run_recipe(recipe, resume=True, progress=progress)
    _close_sitting(run_dir)
    for stage in sorted((run_dir / "stages").glob("*")):  # final/ holds the result: stage copies are dead weight
        for sub in ("student", "checkpoints"):
            shutil.rmtree(stage / sub, ignore_errors=True)
    shutil.rmtree(run_dir / "trl", ignore_errors=True)  # a trl-gkd arm's checkpoints
    return final


@lru_cache(maxsize=8)
def _problems_sha(path: str, mtime_ns: int, size: int) -> str:
    """SHA-256 of an eval set, hashed once per version of the file (`--status` asks once per row)."""
    return sha256_file(path)


def _eval_identity(cfg: CompareConfig, model: str, eval_file: Path, seed: int) -> dict:
    """What an evaluation's verdicts depend on: a cached one is reused only when all of it matches."""
    e, st = cfg.eval, Path(eval_file).stat()
    identity = {
        "model": str(model),
        "problems": _problems_sha(str(eval_file), st.st_mtime_ns, st.st_size),
        "task": e.task,
        "template": e.template,
        "max_new_tokens": e.max_new_tokens,
        "dtype": e.dtype,
        "seed": seed,
    }
    if e.engine != "hf":  # the identity of evaluations cached before engines existed stays valid
        identity["engine"] = e.engine
    if (e.temperature, e.top_p) != (0.0, 1.0):  # greedy: the identity of evaluations cached before sampling
        identity.update(temperature=e.temperature, top_p=e.top_p)
    return identity


def cached_eval(cfg: CompareConfig, model: str, folder: Path, split: str, eval_file: Path, seed: int) -> dict | None:
    """folder/eval-<split>.json when it holds this very evaluation (same model, problems and settings)."""
    path = folder / f"eval-{split}.json"
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    return saved if saved.get("identity") == _eval_identity(cfg, model, eval_file, seed) else None


def evaluate(
    cfg: CompareConfig, model: str, folder: Path, split: str, eval_file: Path, seed: int, progress: bool
) -> dict:
    """Per-problem verdicts of `model` on one eval set, cached in folder/eval-<split>.json."""
    from reasonkd.eval import evaluate_model

    saved = cached_eval(cfg, model, folder, split, eval_file, seed)
    if saved is not None:
        return saved
    e = cfg.eval
    identity = _eval_identity(cfg, model, eval_file, seed)
    t0 = time.perf_counter()
    result = evaluate_model(
        model,
        [e.task],
        data=str(eval_file),
        label=f"{folder.name}.{split}",
        out_dir=folder / "eval-runs",
        batch_size=e.batch_size,
        max_new_tokens=e.max_new_tokens,
        temperature=e.temperature,
        top_p=e.top_p,
        dtype=e.dtype,
        device=resolve_device(cfg.recipe.get("device", "auto")),
        template=e.template,
        latency_problems=0,
        cases=False,
        seed=seed,
        progress=progress,
        engine=e.engine,
    )
    seconds = round(time.perf_counter() - t0, 1)
    samples = result["tasks"][e.task]["samples"]
    saved = {
        "identity": identity,
        "verdicts": {s["id"]: int(bool(s["verdict"])) for s in samples},
        "metrics": {k: v for k, v in result["tasks"][e.task]["metrics"].items() if k != "styles"},
        "seconds": seconds,
    }
    write_json(folder / f"eval-{split}.json", saved)
    timing = read_timing(folder)
    timing["eval_s"][split] = seconds
    write_json(folder / "timing.json", timing)
    return saved


def teacher_tokens(cfg: CompareConfig, traces: str) -> int | None:
    """Teacher tokens spent generating `traces`: the key teacher_tokens, else the stats.json of the
    `reasonkd teacher generate` folder the traces come from (the folder, or next to / under the file)."""
    if cfg.teacher_tokens is not None and traces == cfg.traces:
        return cfg.teacher_tokens
    p = Path(traces)
    for stats in (p / "stats.json",) if p.is_dir() else (p.parent / "stats.json", p.parent / "traces" / "stats.json"):
        if stats.is_file():
            s = json.loads(stats.read_text())
            return (s.get("selection") or {}).get("teacher_tokens") or s.get("generation", {}).get("new_tokens")
    return None


def _arm(cfg: CompareConfig, name: str) -> ArmConfig:
    return next(a for a in cfg.arms if a.name == name)


def run_info(cfg: CompareConfig, arm: ArmConfig, seed: int, teacher: str | None) -> dict:
    """Steps, training time and teacher tokens of one arm and seed, those of the arm it starts from included."""
    recipe = arm_recipe(cfg, arm, seed, teacher=teacher)
    run_dir = Path(recipe.output_dir)
    summary = json.loads((run_dir / "summary.json").read_text())
    read = sum(
        s.get("tokens", 0)
        for s, st in zip(summary["stages"], recipe.stages)
        if arm.runner == "trl-gkd" or needs_teacher_online(st, recipe)
    )  # GKD scores every batch online
    info = {
        "timing": read_timing(run_dir),
        "teacher_read_tokens": read,
        "steps": summary["total"]["steps"],
        "teacher_tokens": teacher_tokens(cfg, arm.traces or cfg.traces),
    }
    if arm.start_from:
        first = run_info(cfg, _arm(cfg, arm.start_from), seed, None)
        info["timing"]["train_s"] = round(info["timing"]["train_s"] + first["timing"]["train_s"], 1)
        info["teacher_read_tokens"] += first["teacher_read_tokens"]
        info["steps"] += first["steps"]
    return info


def job_done(cfg: CompareConfig, arm: ArmConfig, seed: int, split: str, eval_file: Path) -> bool:
    """Is this arm-seed trained and evaluated on `split` with the current settings?"""
    run_dir = arm_dir(cfg, arm.name, seed)
    return is_trained(run_dir) and cached_eval(cfg, str(run_dir / "final"), run_dir, split, eval_file, seed) is not None


def train_and_evaluate(
    cfg: CompareConfig, arm: ArmConfig, seed: int, teacher: str | None, split: str, eval_file: Path, progress: bool
) -> dict:
    """One job: train (or resume, or skip) an arm-seed, then evaluate it on `split` (cached)."""
    final = train_arm(cfg, arm, seed, teacher, progress)
    return evaluate(cfg, str(final), arm_dir(cfg, arm.name, seed), split, eval_file, seed, progress)
