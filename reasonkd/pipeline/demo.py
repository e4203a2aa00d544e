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
import hashlib
import logging
import os
import platform
import sys
from collections import Counter
from pathlib import Path

import torch
import yaml

from reasonkd.config import save_config, to_dict
from reasonkd.data import build_dataset, load_items, solution_text
from reasonkd.data.prompts import load_template, render
from reasonkd.data.verify import reference_answer
from reasonkd.distill.recipe import DistillRecipe, LossSpec, StageConfig
from reasonkd.distill.stages import run_recipe
from reasonkd.errors import ReasonkdError
from reasonkd.eval.runner import evaluate_model
from reasonkd.pipeline.config import DemoConfig
from reasonkd.pipeline.correct import correct_teacher
from reasonkd.pipeline.eta import machine_estimate, resolve_device
from reasonkd.pipeline.report import eval_file, eval_sets, load_summary, step_report, write_timings
from reasonkd.pipeline.steps import Step, StepRunner
from reasonkd.teacher.generate import GenerateSettings, generate_traces, select_items
from reasonkd.utils.hardware import probe
from reasonkd.utils.io import atomic_write, read_jsonl, write_json, write_jsonl

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

    return {k: v for k, v in flat(to_dict(cfg)).items() if k != "out"}


# ------------------------------------------------------------------ step 1: data


def _hash_order(rows: list[dict]) -> list[dict]:
    # a stable order that mixes the families (sorting by id would take the first families only)
    return sorted(rows, key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())


def prompt_template(cfg: DemoConfig, out: Path) -> str:
    """OUT/prompt.yaml: the template file (reasonkd.data.prompts format) that the teacher traces and
    every evaluation use."""
    path = out / "prompt.yaml"
    body = {"system": cfg.system_prompt or None, "math": cfg.prompt, "default": cfg.prompt}
    with atomic_write(path) as f:
        f.write(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return str(path)


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
        write_jsonl(out / "eval" / f"{name}.jsonl", _hash_order(rows)[:n])
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


# ------------------------------------------------------------------ step 3: teacher traces

TRACE_KEYS = ("id", "sample_idx", "prompt", "system", "trace")


SHOT = "Problem: {question}\nSolution:\n{solution}\n\n"
SHOT_INTRO = "Here are solved examples of this kind of problem:\n\n"
SHOT_ASK = (
    "Solve the next problem the same way: short steps, one calculation each, then the final line "
    '"#### <number>".\n\nProblem: {question}'
)


def teacher_problems(cfg: DemoConfig, out: Path) -> tuple[str, str | None]:
    """(data, template) for the teacher. teacher_shots = 0: the dataset and the demo prompt as they are.
    Else OUT/teacher_problems.jsonl: each train problem's question preceded by `teacher_shots` worked
    solutions (the data engine's verified ones) of OTHER problems of the same family, asked with the
    bare template "{question}". Only the teacher sees the examples: the training rows get the zero-shot
    prompt back (step_traces), so the student learns to answer without them (context distillation)."""
    if cfg.teacher_shots == 0:
        return str(out / "data"), prompt_template(cfg, out)
    rows = [r for r in load_items(out / "data", split="train") if r["domain"] == "math" and r["kind"] != "negative"]
    path = out / "teacher_problems.jsonl"
    write_jsonl(path, with_shots(rows, rows, cfg.teacher_shots))
    template = out / "teacher_prompt.yaml"
    with atomic_write(template) as f:
        f.write(yaml.safe_dump({"system": cfg.system_prompt or None, "math": "{question}", "default": "{question}"}))
    return str(path), str(template)


def with_shots(rows: list[dict], pool: list[dict], shots: int) -> list[dict]:
    """`rows` with each question preceded by `shots` worked solutions of OTHER originals of its family
    in `pool` (never the row itself or the original it derives from), in a stable hash order."""
    family: dict[str, list[dict]] = {}
    for r in _hash_order([r for r in pool if r["kind"] == "original"]):
        family.setdefault(r["template"], []).append(r)
    problems = []
    for r in rows:
        own = {r["id"], r.get("parent_id")}
        chosen = [x for x in family.get(r["template"], []) if x["id"] not in own][:shots]
        body = "".join(SHOT.format(question=x["question"], solution=solution_text(x)) for x in chosen)
        problems.append(
            {**r, "question": (SHOT_INTRO + body if chosen else "") + SHOT_ASK.format(question=r["question"])}
        )
    return problems


def student_rows(accepted: list[dict], items: dict[str, dict], template: str) -> list[dict]:
    """Verified teacher traces as training rows: the student is trained (and evaluated) on the zero-shot
    prompt of `template` over its problem in `items` (by id), whatever the teacher was shown."""
    zero_shot = load_template(template)
    rows = []
    for r in accepted:
        system, user = render(zero_shot, items[r["id"]])
        rows.append({**r, "prompt": user, "system": system, "source": "teacher"})
    return rows


def step_traces(cfg: DemoConfig, out: Path) -> dict:
    template = prompt_template(cfg, out)
    data, teacher_template = teacher_problems(cfg, out)
    stats = generate_traces(
        GenerateSettings(
            teacher=cfg.teacher,
            data=data,
            out=str(out / "traces"),
            split="train",
            domain="math",
            limit=cfg.n_traces,
            max_new_tokens=cfg.teacher_max_new_tokens,
            batch_size=cfg.teacher_batch_size,
            dtype=cfg.dtype,
            device=resolve_device(cfg.device),
            template=teacher_template,
            engine=cfg.engine,
        )
    )
    accepted = read_jsonl(out / "traces" / "traces.jsonl") if (out / "traces" / "traces.jsonl").is_file() else []
    for n, row in enumerate(accepted, 1):
        missing = [k for k in TRACE_KEYS if k not in row]
        if missing:
            raise ReasonkdError(
                f"{out / 'traces' / 'traces.jsonl'}:{n}: lacks {missing}; the teacher output "
                "format changed (reasonkd.teacher.traces.load_traces needs them)"
            )
    rows = student_rows(accepted, {r["id"]: r for r in load_items(out / "data", split="train")}, template)
    solved = {r["id"] for r in accepted}
    n_ref = 0
    if len(solved) < cfg.min_traces:
        if cfg.traces_fallback != "reference":
            raise ReasonkdError(
                f"the teacher {cfg.teacher} was verified on only {len(solved)} of {cfg.n_traces} problems "
                f"(min_traces={cfg.min_traces}); see {out / 'traces' / 'stats.json'}. Raise n_traces or "
                "teacher_max_new_tokens, use a stronger teacher, or set traces_fallback=reference to fill up "
                "with the data engine's reference solutions (reported as such)"
            )
        for item in select_items(str(out / "data"), "train", "math", cfg.n_traces):
            if len(solved) >= cfg.min_traces:
                break
            if item["id"] in solved:
                continue
            system, user = render(load_template(template), item)
            rows.append(
                {
                    "id": item["id"],
                    "sample_idx": 0,
                    "prompt": user,
                    "system": system,
                    "trace": solution_text(item),
                    "answer": reference_answer(item),
                    "source": "reference",
                }
            )
            solved.add(item["id"])
            n_ref += 1
        log.warning(
            "traces_fallback=reference: %d reference solutions added to %d teacher traces", n_ref, len(accepted)
        )
    write_jsonl(out / "train_traces.jsonl", rows)
    return {
        "teacher_accepted": len(accepted),
        "reference": n_ref,
        "train_rows": len(rows),
        "acceptance_rate": stats["overall"]["acceptance_rate"],
        "problems": stats["overall"]["problems"],
        "by_teacher": dict(sorted(Counter(r.get("teacher") or cfg.teacher for r in accepted).items())),
    }


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
    runner = StepRunner(out, fingerprint(cfg), defaults=fingerprint(DemoConfig()))
    save_config(cfg, out)
    cuda = resolve_device(cfg.device) == "cuda"
    eta, figures = machine_estimate(cfg)  # reference rates scaled by a few seconds measured here
    steps = [
        Step("data", lambda: step_data(cfg, out), eta["data"], "build the math dataset and eval files"),
        Step(
            "eval_before",
            lambda: step_eval(cfg, out, [(cfg.student, "before"), (cfg.teacher, "teacher")]),
            eta["eval_before"],
            "evaluate student and teacher",
        ),
        Step("traces", lambda: step_traces(cfg, out), eta["traces"], "teacher traces (verified)"),
        *(
            [Step("correct", lambda: step_correct(cfg, out), eta["correct"], "teacher correction (on those traces)")]
            if cfg.teacher_correction.steps
            else []
        ),
        Step(
            "distill",
            lambda: step_train(cfg, out, sft=False),
            eta["distill"],
            f"distill ({' -> '.join(st.name for st in cfg.distill.stages)})",
        ),
        Step("sft", lambda: step_train(cfg, out, sft=True), eta["sft"], "SFT baseline (same traces, ce only)"),
        Step(
            "eval_after",
            lambda: step_eval(
                cfg, out, [(str(out / "distill" / "final"), "distilled"), (str(out / "sft" / "final"), "sft")]
            ),
            eta["eval_after"],
            "evaluate distilled and SFT students",
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
