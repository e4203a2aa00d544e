"""Where one distillation training step spends its time: torch.profiler over the real trainer step.

    .venv/bin/python benchmarks/bench_step_profile.py --student smollm2-135m --teacher smollm2-135m \
        --mode offline --steps 3 [--set data.packing=true] [--set compile=true] [--write-benchmarks]

Runs `reasonkd.distill.stages.run_recipe` on synthetic traces (bench_distill.make_traces, lengths spread
over [seq/2, seq] so padding is realistic when --spread is given), profiles optimizer step `--profile-step`
(after warm-up: compile and allocator warm-up excluded) and prints the operators that take the most CPU
time, grouped into matmul / attention / loss / optimizer / other, plus the tok/s of every step.
--set KEY=VALUE passes recipe overrides (dotted keys), so the same command gives the before / after.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_distill import make_traces
from common import cpu_line

GROUPS = [
    ("matmul (linear / LoRA)", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul")),
    ("attention (sdpa)", ("scaled_dot_product", "_flash_attention", "aten::_efficient")),
    ("loss (softmax / KL / CE)", ("log_softmax", "softmax", "nll_loss", "logsumexp", "kl_div", "xlogy")),
    ("optimizer (AdamW)", ("Optimizer.step", "_foreach", "adamw")),
    ("copies / casts", ("aten::copy_", "aten::to", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    (
        "elementwise / norms",
        (
            "aten::mul",
            "aten::add",
            "aten::silu",
            "aten::rsqrt",
            "aten::pow",
            "aten::mean",
            "aten::neg",
            "aten::cat",
            "aten::sum",
            "aten::div",
            "aten::where",
        ),
    ),
]


def grouped(events) -> dict[str, float]:
    """Self CPU seconds per group (an op counts in the first group whose pattern it contains)."""
    out: dict[str, float] = {g: 0.0 for g, _ in GROUPS}
    out["other"] = 0.0
    for e in events:
        t = e.self_cpu_time_total / 1e6
        for g, pats in GROUPS:
            if any(p.lower() in e.key.lower() for p in pats):
                out[g] += t
                break
        else:
            out["other"] += t
    return out


def _recipe(args, work: Path):
    """The profiled run's recipe: synthetic traces (and, offline, their logit cache) under `work`."""
    from reasonkd.config import load_config
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.models import load_model, load_tokenizer
    from reasonkd.models.logit_writer import write_logit_cache
    from reasonkd.utils.io import write_jsonl

    n = (args.steps + args.profile_step) * args.batch
    tok = load_tokenizer(args.student)
    rows = make_traces(tok, n, args.seq)
    if args.spread:  # realistic lengths: cut each trace to a random share of its steps
        rng = random.Random(0)
        for r in rows:
            lines = r["trace"].split("\n")
            r["trace"] = "\n".join(lines[: max(1, int(len(lines) * rng.uniform(0.3, 1.0)))])
    write_jsonl(work / "traces.jsonl", rows)
    if args.mode == "offline" and not (work / "cache" / "done.json").exists():
        teacher, ttok = load_model(args.teacher, dtype="bfloat16")
        write_logit_cache(teacher, ttok, rows, work / "cache", k=20, batch_size=args.batch, progress=False)
        del teacher
    overrides = [
        f"student={args.student}",
        f"teacher={args.teacher}",
        f"data.path={work / 'traces.jsonl'}",
        f"output_dir={work / 'run'}",
        f"max_length={args.seq}",
        f"batch_size={args.batch}",
        "save_every=0",
        "bf16_autocast=true",
        "teacher_dtype=bfloat16",
        f"chunk_rows={args.chunk_rows}",
        "data.bucket=false",
        *args.set,
    ]
    if args.mode == "offline":
        overrides.append(f"data.logit_cache={work / 'cache'}")
    recipe_path = work / "recipe.yaml"
    recipe_path.write_text(
        "lora: {enabled: true, r: 16, alpha: 32}\nstages:\n"
        f"  - {{name: kd, kind: output, steps: {args.steps + args.profile_step}, lr: 0.0001, "
        "lr_schedule: constant, losses: [{name: forward_kl}]}\n"
    )
    recipe = load_config(DistillRecipe, recipe_path, overrides)
    return recipe


def run(args) -> dict:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from reasonkd.distill import trainer
    from reasonkd.distill.stages import run_recipe

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    recipe = _recipe(args, work)
    import shutil

    shutil.rmtree(work / "run", ignore_errors=True)
    step_fn = trainer._StepRunner.optimizer_step
    seen = {"n": 0}
    prof_holder = {}

    def profiled(self, step, *a, **k):
        seen["n"] += 1
        if seen["n"] != args.profile_step + 1:
            return step_fn(self, step, *a, **k)
        with profile(activities=[ProfilerActivity.CPU], record_shapes=args.shapes) as prof:
            row = step_fn(self, step, *a, **k)
        prof_holder["prof"] = prof
        return row

    trainer._StepRunner.optimizer_step = profiled
    t0 = time.perf_counter()
    run_recipe(recipe, progress=False)
    wall = time.perf_counter() - t0
    metrics = [json.loads(x) for x in (work / "run" / "stages" / "1-kd" / "metrics.jsonl").read_text().splitlines()]
    events = prof_holder["prof"].key_averages()
    table = events.table(sort_by="self_cpu_time_total", row_limit=args.top)
    if args.shapes:  # the same operators split by input shape: which call of an op is the heavy one
        by_shape = prof_holder["prof"].key_averages(group_by_input_shape=True)
        table += "\n" + by_shape.table(sort_by="self_cpu_time_total", row_limit=args.top)
    groups = grouped(events)
    prof_row = metrics[args.profile_step]
    return {
        "wall_s": wall,
        "steps": [
            {"step": m["step"], "seconds": m["seconds"], "tok_s": m["tok_s"], "tokens": m["tokens"], "loss": m["loss"]}
            for m in metrics
        ],
        "groups": groups,
        "profiled_seconds": prof_row["seconds"],
        "table": table,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="smollm2-135m")
    p.add_argument("--teacher", default="smollm2-135m")
    p.add_argument("--mode", choices=["offline", "online"], default="offline")
    p.add_argument("--steps", type=int, default=3, help="steps after the profiled one")
    p.add_argument("--profile-step", type=int, default=1, help="steps before the profiled one (warm-up)")
    p.add_argument("--shapes", action="store_true", help="also list the operators by input shape")
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--spread", action="store_true", help="trace lengths spread over ~[0.3, 1] x seq")
    p.add_argument("--chunk-rows", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--set", action="append", default=[], help="recipe override KEY=VALUE (repeatable)")
    p.add_argument("--label", default="", help="name of this run in BENCHMARKS.md")
    p.add_argument("--work", default="/tmp/reasonkd-bench-profile")
    p.add_argument("--json", default=None, help="also write the result here")
    args = p.parse_args()
    res = run(args)
    print(res["table"])
    total = sum(res["groups"].values())
    print(f"profiled step: {res['profiled_seconds']:.2f} s; self CPU by group (s, share):")
    for g, t in sorted(res["groups"].items(), key=lambda kv: -kv[1]):
        print(f"  {g:28s} {t:7.2f}  {100 * t / max(total, 1e-9):5.1f}%")
    print("steps:", json.dumps(res["steps"]))
    print(cpu_line())
    if args.json:
        Path(args.json).write_text(json.dumps({k: v for k, v in res.items() if k != "table"}, indent=1))


if __name__ == "__main__":
    main()
