"""`reasonkd demo`: the whole story in one resumable job.

    reasonkd demo --quick                         # <= 8 min on 2 CPU cores (recipes/demo/quick.yaml)
    reasonkd demo --out runs/demo n_traces=800    # the default preset (recipes/demo/default.yaml)
    reasonkd demo --config recipes/demo/qwen-1.5b-to-0.5b.yaml
    from reasonkd.pipeline.demo import run_demo; run_demo(load_demo_config(quick=True))

Steps (each cached in OUT/state.json; a rerun skips finished ones, and each
step resumes its own partial work: built data, per-model eval files, teacher
shards, training checkpoints):

    data         math dataset -> OUT/data; eval files OUT/eval/heldout.jsonl (val originals: trained
                 families, new numbers) and OUT/eval/unseen.jsonl (test originals: unseen families)
    eval_before  student and teacher on both files -> OUT/eval/<label>.<set>.json
    traces       teacher traces on train problems, verified -> OUT/traces/, OUT/train_traces.jsonl
    correct      (teacher_correction.steps >= 1) the teacher's LoRA pass on those traces ->
                 OUT/teacher-corrected/final, the teacher of the distill step
    distill      the config's `distill` recipe (default: feature -> logic -> output) -> OUT/distill/final
    sft          same traces, ce only, same steps / batch / peak lr -> OUT/sft/final (the baseline)
    eval_after   distilled and SFT students on both files
    report       OUT/report/index.html (+ report.md, results.json), OUT/report/demo.md + demo.json,
                 OUT/timings.md

docs/demo.md explains the numbers and the presets; reasonkd.pipeline.eta the time estimates.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
import sys
from functools import partial
from pathlib import Path

import torch

from reasonkd.config import save_config, to_dict
from reasonkd.data import build_dataset, load_items
from reasonkd.distill.recipe import DistillRecipe, LossSpec, StageConfig
from reasonkd.distill.stages import run_recipe
from reasonkd.errors import ReasonkdError
from reasonkd.eval.runner import evaluate_model
from reasonkd.pipeline.config import DemoConfig
from reasonkd.pipeline.correct import correct_teacher
from reasonkd.pipeline.demo_traces import hash_order, prompt_template, step_traces
from reasonkd.pipeline.eta import machine_estimate, resolve_device
from reasonkd.pipeline.report import eval_file, eval_sets, load_summary, step_report, write_timings
from reasonkd.pipeline.steps import Step, StepRunner
from reasonkd.utils.hardware import probe
from reasonkd.utils.io import write_json, write_jsonl

log = logging.getLogger(__name__)

ROLES = {"before": "student-before", "sft": "sft-only", "distilled": "distilled", "teacher": "teacher"}


def fingerprint(cfg: DemoConfig) -> dict:
    """The resolved config minus `out`, flattened to dotted keys (list items by index) so a refusal names
    the key, e.g. distill.stages.1.steps."""

    def flat(d, prefix=""):
        out = {}
        for k, v in d.items() if isinstance(d, dict) else enumerate(d):
            if isinstance(v, dict) or (isinstance(v, list) and v and all(isinstance(x, dict) for x in v)):
                out.update(flat(v, f"{prefix}{k}."))
            else:
                out[f"{prefix}{k}"] = v
        return out

    return {k: v for k, v in flat(to_dict(cfg)).items() if k not in ("out", "isolate")}  # results: the same


# ------------------------------------------------------------------ step 1: data


def step_data(cfg: DemoConfig, out: Path) -> dict:
    data = out / "data"
    if not (data / "stats.json").is_file():  # built into place atomically: present means complete
        build_dataset(cfg.data, data)
    result = {}
    for name, split, n, key in (("heldout", "val", cfg.n_test, "n_test"), ("unseen", "test", cfg.n_unseen, "n_unseen")):
        if n == 0:
            continue
        rows = [r for r in load_items(data, split=split) if r["domain"] == "math" and r["kind"] == "original"]
        if len(rows) < n:
            raise ReasonkdError(
                f"{key}={n} but the {split} split of {data} holds only {len(rows)} math originals; lower {key} "
                "or raise data.math.per_family"
                + (
                    " / data.split.val_fraction"
                    if split == "val"
                    else " / list more families in data.split.test_templates"
                )
            )
        write_jsonl(out / "eval" / f"{name}.jsonl", hash_order(rows)[:n])
        result[name] = n
    return result


# ------------------------------------------------------------------ steps 2 and 6: evaluation


def evaluate(cfg: DemoConfig, out: Path, model: str, label: str) -> None:
    """One model on every eval set; each result saved as JSON (skipped when already there)."""
    for which in eval_sets(cfg):
        path = eval_file(out, label, which)
        if path.is_file():
            log.info("%s: already evaluated (%s)", label, path)
            continue
        first = which == "heldout"  # latency and the qualitative cases once per model
        if which == "robustness":  # the perturbation types of the unseen-template problems (docs/robustness.md)
            task = dict(tasks=["robustness"], data=str(out / "data"), limit=None, per_type=cfg.n_robust)
        else:
            task = dict(
                tasks=["gsm8k"], data=str(out / "eval" / f"{which}.jsonl"), limit=cfg.n_test if first else cfg.n_unseen
            )
        result = evaluate_model(
            model,
            **task,
            label=f"{label}.{which}",
            out_dir=out / "eval" / "runs",
            batch_size=cfg.eval_batch_size,
            max_new_tokens=cfg.eval_max_new_tokens,
            dtype=cfg.dtype,
            engine=cfg.engine,
            device=resolve_device(cfg.device),
            cases=first,
            case_tokens=cfg.case_tokens,
            template=prompt_template(cfg, out),
            latency_problems=cfg.latency_problems if first else 0,
            seed=cfg.seed,
        )
        result["label"] = label
        write_json(path, result)


def step_eval(cfg: DemoConfig, out: Path, models: list[tuple[str, str]]) -> dict:
    for model, role in models:
        evaluate(cfg, out, model, ROLES[role])
    return {ROLES[role]: model for model, role in models}


# step 3, teacher traces: reasonkd/pipeline/demo_traces.py (step_traces)

# ------------------------------------------------------------------ steps 4 and 5: training


def distill_recipe(cfg: DemoConfig, out: Path, sft: bool = False) -> DistillRecipe:
    """The recipe of the distillation run (cfg.distill, into OUT/distill) or of the SFT baseline (OUT/sft):
    the same recipe with one ce-only stage of the same total steps at the stages' peak lr and longest
    warm-up, and no teacher."""
    stages = cfg.distill.stages
    if sft:
        total = cfg.train_steps
        stages = [
            StageConfig(
                name="sft",
                kind="logic",
                steps=total,
                lr=max(s.lr for s in stages),
                warmup=min(total, max(s.warmup for s in stages)),
                losses=[LossSpec("ce")],
            )
        ]
    recipe = dataclasses.replace(
        cfg.distill,
        teacher="" if sft else (corrected_teacher(cfg, out) or cfg.distill.teacher),
        stages=stages,
        data=dataclasses.replace(cfg.distill.data, path=str(out / "train_traces.jsonl")),
        output_dir=str(out / ("sft" if sft else "distill")),
        bf16_autocast=cfg.distill.asked["bf16_autocast"],
    )  # "auto": with its reason
    return recipe


def corrected_teacher(cfg: DemoConfig, out: Path) -> str | None:
    """OUT/teacher-corrected/final when the demo corrects its teacher (teacher_correction.steps >= 1)."""
    return str(out / "teacher-corrected" / "final") if cfg.teacher_correction.steps else None


def step_correct(cfg: DemoConfig, out: Path) -> dict:
    """Teacher correction: the teacher's LoRA pass on the verified traces the student trains on (resumable)."""
    final = correct_teacher(
        cfg.teacher,
        str(out / "train_traces.jsonl"),
        out / "teacher-corrected",
        cfg.teacher_correction,
        seed=cfg.seed,
        device=cfg.device,
    )
    return {"final": str(final)}


def step_train(cfg: DemoConfig, out: Path, sft: bool) -> dict:
    recipe = distill_recipe(cfg, out, sft)
    save_config(recipe, out, "sft.yaml" if sft else "distill.yaml")  # for `reasonkd distill FILE` by hand
    # resume=True on a fresh folder just starts; on a half-done one it continues exactly
    final = run_recipe(recipe, resume=True)
    return {"final": str(final)}


# ------------------------------------------------------------------ the job


def run_demo(cfg: DemoConfig, command: str = "reasonkd demo", log_fn=print) -> dict:
    """Run (or resume) the demo described by `cfg`; returns demo.json's content."""
    out = Path(cfg.out)
    runner = StepRunner(out, fingerprint(cfg), defaults=fingerprint(DemoConfig()), isolate=cfg.isolate)
    save_config(cfg, out)
    cuda = resolve_device(cfg.device) == "cuda"
    eta, figures = machine_estimate(cfg)  # reference rates scaled by a few seconds measured here
    steps = [
        Step("data", lambda: step_data(cfg, out), eta["data"], "build the math dataset and eval files"),
        Step(
            "eval_before",
            partial(step_eval, cfg, out, [(cfg.student, "before"), (cfg.teacher, "teacher")]),
            eta["eval_before"],
            "evaluate student and teacher",
            heavy=True,
        ),
        Step("traces", partial(step_traces, cfg, out), eta["traces"], "teacher traces (verified)", heavy=True),
        *(
            [
                Step(
                    "correct",
                    partial(step_correct, cfg, out),
                    eta["correct"],
                    "teacher correction (on those traces)",
                    heavy=True,
                )
            ]
            if cfg.teacher_correction.steps
            else []
        ),
        Step(
            "distill",
            partial(step_train, cfg, out, sft=False),
            eta["distill"],
            f"distill ({' -> '.join(st.name for st in cfg.distill.stages)})",
            heavy=True,
        ),
        Step(
            "sft",
            partial(step_train, cfg, out, sft=True),
            eta["sft"],
            "SFT baseline (same traces, ce only)",
            heavy=True,
        ),
        Step(
            "eval_after",
            partial(
                step_eval,
                cfg,
                out,
                [(str(out / "distill" / "final"), "distilled"), (str(out / "sft" / "final"), "sft")],
            ),
            eta["eval_after"],
            "evaluate distilled and SFT students",
            heavy=True,
        ),
        Step("report", lambda: step_report(cfg, out, runner), eta["report"], "report"),
    ]
    log_fn(f"reasonkd demo: {cfg.student} <- {cfg.teacher}, out {out} ({'cuda' if cuda else 'cpu'})")
    for s in steps:
        mark = "done" if runner.done(s.name) else f"~{s.eta_s / 60:.1f} min"
        log_fn(f"  {s.name:<12} {mark}")
    log_fn(
        f"  ETA (remaining steps): ~{runner.eta(steps) / 60:.0f} min (reference RATES in reasonkd/pipeline/eta.py "
        "scaled by this machine's figures:)"
    )
    for line in figures:
        log_fn(f"    {line}")
    runner.run(steps, log=log_fn)
    write_timings(runner.state, out / "timings.md", machine_line(), command)
    summary = load_summary(out)
    log_fn("\n" + summary["table"] + "\n")
    log_fn(f"summary: {out / 'report' / 'demo.md'}   timings: {out / 'timings.md'}")
    log_fn(f"report: {out / 'report' / 'index.html'}")
    return summary


def machine_line() -> str:
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (
        f"{probe().summary()}; {platform.platform()}, {os.cpu_count()} CPU cores, {gpu}, "
        f"python {sys.version.split()[0]}, torch {torch.__version__}"
    )
