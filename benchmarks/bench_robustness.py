"""Robustness per perturbation type (GSM-Plus types) -> BENCHMARKS.md "Robustness".

Full measurement, on a finished default demo (`make demo` -> runs/demo):

    reasonkd data build recipes/compare/transfer-data.yaml --out runs/robustness-data math.per_family=220
    python benchmarks/bench_robustness.py --demo runs/demo --data runs/robustness-data --per-type 200

  1. the demo's four models (student-before, SFT-only, distilled, teacher) answer the `robustness`
     task (the same code path as `reasonkd eval --tasks robustness`) on the first N original problems of
     the demo data's unseen-template test split, each asked as written and in every type it takes,
     with the demo's prompt, engine and token budget;
  2. an adversarial arm: every train problem the demo's teacher was asked gets one perturbed variant of
     a TRAINED type (recipes/data/adversarial.yaml `adversarial.types`; its `held_out` types never enter
     training), the teacher traces the variants as it traced the originals (the demo's worked examples,
     its token budget) and the verified traces join the demo's; the demo's
     distill recipe (runs/demo/distill.yaml) trains a student on that mix with the same steps, batch and
     stages as the demo's distilled student (= the "without" arm);
  3. per model: accuracy on originals and per type with the drop and its paired CI; and the adversarial
     student minus the demo's distilled student per type, paired on the same perturbed problems, the
     held-out types marked.

Every model's samples are cached under --out (identity-checked), the variant traces and the training
run resume, so an interrupted run continues where it stopped. Smoke mode (no --demo):

    python benchmarks/bench_robustness.py --limit 3

builds recipes/data/quick.yaml and runs one model on `--limit` originals (a check that the path runs).
"""

from __future__ import annotations

import argparse
from collections import Counter
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, machine, record_section  # noqa: E402

from reasonkd.config import load_config  # noqa: E402
from reasonkd.data import build_dataset, load_items  # noqa: E402
from reasonkd.data.perturb import as_item, has_program, training_items  # noqa: E402
from reasonkd.data.recipe import DataRecipe  # noqa: E402
from reasonkd.distill.recipe import DistillRecipe  # noqa: E402
from reasonkd.distill.stages import run_recipe  # noqa: E402
from reasonkd.errors import ReasonkdError  # noqa: E402
from reasonkd.eval.metrics import mcnemar_exact, paired_diff_ci  # noqa: E402
from reasonkd.eval.runner import evaluate_model  # noqa: E402
from reasonkd.pipeline.config import DemoConfig  # noqa: E402
from reasonkd.pipeline.demo_traces import student_rows, with_shots  # noqa: E402
from reasonkd.teacher.generate import GenerateSettings, generate_traces, select_items  # noqa: E402
from reasonkd.utils.io import read_json, read_jsonl, write_json, write_jsonl  # noqa: E402

ADVERSARIAL = ROOT / "recipes" / "data" / "adversarial.yaml"


def pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def ci(c) -> str:
    return f"[{c[0] * 100:+.1f}, {c[1] * 100:+.1f}]"


def type_table(s: dict) -> list[str]:
    lines = [
        "| Perturbation | n | Original acc | Perturbed acc | Drop (pts) | 95% paired CI |",
        "|---|---|---|---|---|---|",
    ]
    for t, v in s["types"].items():
        lines.append(
            f"| {t} | {v['n']} | {pct(v['original'])} | {pct(v['perturbed'])} | "
            f"{v['drop'] * 100:+.1f} | {ci(v['ci'])} |"
        )
    return lines


# ------------------------------------------------------------------ smoke mode


def smoke(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = build_dataset(ROOT / "recipes" / "data" / "quick.yaml", Path(tmp) / "data", ["parquet=false"])
        t0 = time.perf_counter()
        r = evaluate_model(
            args.model,
            ["robustness"],
            data=str(data),
            limit=args.limit,
            label=args.model,
            max_new_tokens=args.max_new_tokens,
            batch_size=args.batch_size,
            dtype="float32",
            latency_problems=0,
            cases=False,
        )
        secs = time.perf_counter() - t0
    m = r["tasks"]["robustness"]["metrics"]
    s = m["robustness"]
    tp = r["throughput"]["robustness"]
    lines = [
        f"Small-n smoke (n = {s['original']['n']} original problems; intervals are wide and no difference "
        "below is meaningful): it shows that `reasonkd eval --tasks robustness` runs end to end on a real model. "
        "The full table (`python benchmarks/bench_robustness.py --demo runs/demo --data runs/robustness-data --per-type 200`: the demo's "
        "four models and a student distilled with vs without the adversarial mix) is not here yet.",
        "",
        f"Command: `reasonkd data build recipes/data/quick.yaml --out runs/data-quick && reasonkd eval --model "
        f"{args.model} --tasks robustness --data runs/data-quick --limit {args.limit} --max-new-tokens "
        f"{args.max_new_tokens} --batch-size {args.batch_size} --dtype float32 --latency-problems 0 --no-cases` "
        f"(recorded by `benchmarks/bench_robustness.py --limit {args.limit}`). Baseline for every type: the same "
        "model on the original problems (paired).",
        "",
        f"Model {args.model}, fp32, greedy, <= {args.max_new_tokens} new tokens; {m['n']} prompts in "
        f"{secs / 60:.1f} min ({tp['new_tokens']} new tokens, {tp['tokens_per_s']:.1f} tokens/s batched).",
        "",
        f"Originals: {pct(s['original']['accuracy'])} (n = {s['original']['n']}); all variants: "
        f"{pct(m['accuracy'])} [{m['ci'][0] * 100:.1f}, {m['ci'][1] * 100:.1f}] (n = {m['n']}); "
        f"{s['robust_originals']} of {s['solved_originals']} solved originals also solved in every perturbation.",
        "",
        *type_table(s),
        "",
        f"Machine: {machine()}.",
    ]
    finish(args, lines)


# ------------------------------------------------------------------ full mode: the adversarial arm


def adversarial_traces(demo: Path, cfg: DemoConfig, out: Path, types: list[str]) -> tuple[Path, dict]:
    """OUT/adv/train_traces.jsonl: the demo's traces + the teacher's verified traces of one perturbed
    variant (of a trained type) of every train problem the demo's teacher was asked, prompted as the
    demo prompts its teacher (its worked examples) and kept with the zero-shot prompt the student
    trains on. Returns (path, stats)."""
    adv = out / "adv"
    path = adv / "train_traces.jsonl"
    traces = read_jsonl(demo / "train_traces.jsonl")
    train = [r for r in load_items(demo / "data", split="train") if r["domain"] == "math" and r["kind"] != "negative"]
    asked = {r["id"] for r in select_items(str(demo / "teacher_problems.jsonl"), "train", "math", cfg.n_traces)}
    variants = [
        v.to_dict()
        for r in train
        if r["id"] in asked and has_program(as_item(r))
        for v in training_items(as_item(r), types, seed=cfg.seed, k=1, negatives=0.0)
        if v.kind == "variant"
    ]
    if not variants:
        raise ReasonkdError(
            f"{demo}: no perturbed variant could be made of the {len(asked)} problems its teacher was asked"
        )
    write_jsonl(adv / "teacher_problems.jsonl", with_shots(variants, train, cfg.teacher_shots))
    stats = generate_traces(
        GenerateSettings(
            teacher=cfg.teacher,
            data=str(adv / "teacher_problems.jsonl"),
            out=str(adv / "traces"),
            split=None,
            domain="math",
            max_new_tokens=cfg.teacher_max_new_tokens,
            batch_size=cfg.teacher_batch_size,
            dtype=cfg.dtype,
            template=str(demo / "teacher_prompt.yaml"),
            engine=cfg.engine,
        )
    )
    accepted = read_jsonl(adv / "traces" / "traces.jsonl") if (adv / "traces" / "traces.jsonl").is_file() else []
    by_id = {v["id"]: v for v in variants}
    # the student's zero-shot prompt, as in the demo's traces, each row marked with its perturbation type
    rows = [
        {**r, "perturbation": by_id[r["id"]]["meta"].get("perturbation")}
        for r in student_rows(accepted, by_id, str(demo / "prompt.yaml"))
    ]
    by_type = Counter(r["perturbation"] for r in rows)
    write_jsonl(path, traces + rows)
    return path, {
        "demo_traces": len(traces),
        "variants": len(variants),
        "accepted": len(accepted),
        "by_type": dict(sorted(by_type.items())),
        "acceptance_rate": stats["overall"]["acceptance_rate"],
    }


def train_adversarial(demo: Path, traces: Path, out: Path) -> Path:
    """The demo's distill recipe (same stages, steps, batch) on the adversarial traces."""
    recipe = load_config(
        DistillRecipe, demo / "distill.yaml", [f"data.path={traces}", f"output_dir={out / 'adv' / 'distill'}"]
    )
    return run_recipe(recipe, resume=True)


# ------------------------------------------------------------------ full mode: evaluation and tables


def evaluate(label: str, model: str, demo: Path, cfg: DemoConfig, out: Path, args, data: Path) -> dict:
    """The robustness task on one model; the result JSON cached as OUT/eval/<label>.json (reused only for
    the same model, problems and quota)."""
    path = out / "eval" / f"{label}.json"
    setting = {"model": model, "data": str(data), "originals": args.originals, "per_type": args.per_type}
    if path.is_file():
        r = read_json(path, "robustness result")
        if r.get("bench_setting") == setting:
            return r
    t0 = time.perf_counter()
    r = evaluate_model(
        model,
        ["robustness"],
        data=str(data),
        limit=args.originals,
        label=label,
        out_dir=out / "eval" / "runs",
        batch_size=cfg.eval_batch_size,
        max_new_tokens=cfg.eval_max_new_tokens,
        dtype=cfg.dtype,
        engine=cfg.engine,
        template=str(demo / "prompt.yaml"),
        latency_problems=0,
        cases=False,
        seed=cfg.seed,
        per_type=args.per_type,
    )
    r["wall_seconds"] = time.perf_counter() - t0
    r["bench_setting"] = setting
    write_json(path, r)
    return r


def verdicts(result: dict) -> dict[tuple[str, str], bool]:
    return {(s["group"], s["perturbation"]): bool(s["verdict"]) for s in result["tasks"]["robustness"]["samples"]}


def adversarial_rows(adv: dict, base: dict, held_out: list[str]) -> list[str]:
    """Adversarial student minus the demo's distilled student, per type, paired on the same problems."""
    a, b = verdicts(adv), verdicts(base)
    lines = [
        "| Perturbation | trained on? | n | without (distilled) | with adversarial mix | with - without "
        "(pts) | 95% paired CI | McNemar p (only with / only without right) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for t in ["original"] + list(adv["tasks"]["robustness"]["metrics"]["robustness"]["types"]):
        keys = sorted(k for k in a if k[1] == t and k in b)
        d = paired_diff_ci([a[k] for k in keys], [b[k] for k in keys])
        m = mcnemar_exact([a[k] for k in keys], [b[k] for k in keys])
        role = "-" if t == "original" else ("no (held out)" if t in held_out else "yes")
        lines.append(
            f"| {t} | {role} | {len(keys)} | {pct(sum(b[k] for k in keys) / len(keys))} | "
            f"{pct(sum(a[k] for k in keys) / len(keys))} | {d['diff'] * 100:+.1f} | "
            f"[{d['lo'] * 100:+.1f}, {d['hi'] * 100:+.1f}] | {m['p_value']:.3f} ({m['a_only']} / {m['b_only']}) |"
        )
    return lines


def full(args) -> None:
    demo, out = Path(args.demo), Path(args.out)
    cfg = load_config(DemoConfig, demo / "config.yaml")
    models = {
        "student-before": cfg.student,
        "SFT-only": str(demo / "sft" / "final"),
        "distilled": str(demo / "distill" / "final"),
        "teacher": cfg.teacher,
    }
    for label, m in models.items():
        if label in ("SFT-only", "distilled") and not (Path(m) / "config.json").is_file():
            raise ReasonkdError(f"{m}: no trained model; run `reasonkd demo --out {demo}` to the end first")
    adv_cfg = load_config(DataRecipe, ADVERSARIAL).adversarial
    adv_stats, times = None, {}
    if not args.no_adversarial:
        # wall seconds summed over every run of a phase (a resumed or cached phase adds what it took now)
        wall = out / "adv" / "wall.json"
        times = read_json(wall, "wall times") if wall.is_file() else {}
        t0 = time.perf_counter()
        traces, adv_stats = adversarial_traces(demo, cfg, out, adv_cfg.types)
        times["adversarial traces"] = times.get("adversarial traces", 0.0) + time.perf_counter() - t0
        t0 = time.perf_counter()
        models["adversarial"] = str(train_adversarial(demo, traces, out))
        times["adversarial training"] = times.get("adversarial training", 0.0) + time.perf_counter() - t0
        write_json(wall, times)
    data = Path(args.data) if args.data else demo / "data"
    results = {label: evaluate(label, m, demo, cfg, out, args, data) for label, m in models.items()}
    finish(args, _report_lines(args, models, results, adv_cfg, adv_stats, times))


def _report_lines(args, models: dict, results: dict, adv_cfg, adv_stats: dict | None, times: dict) -> list[str]:
    """The BENCHMARKS.md section of a full run: the setup, one row and one per-type table per model and,
    with the adversarial mix, the with / without comparison."""
    n_prompts = results["distilled"]["tasks"]["robustness"]["metrics"]["n"]
    split = f"test split of {args.data}" if args.data else "demo data's test split"
    scope = (
        f"each perturbation type asked on the first {args.per_type} original problems of the {split} that "
        "take it, and those originals as written"
        if args.per_type
        else f"the first {args.originals} original problems of the {split}, each asked as written and in every "
        "perturbation type it takes"
    )
    lines = [
        f"Command: `python benchmarks/bench_robustness.py --demo {args.demo}"
        + (f" --per-type {args.per_type}" if args.per_type else f" --originals {args.originals}")
        + (f" --data {args.data}" if args.data else "")
        + "` on a finished default demo (`make demo`). Problems: "
        f"{scope} (unseen templates zoo_tickets, leaky_tank, garden_fence; no model trained on them; "
        f"{n_prompts} prompts per model); the "
        "demo's prompt, engine and token budget; greedy. Drop = original - perturbed on the same problems "
        "(positive = worse when perturbed), paired bootstrap 95% CI.",
        "",
    ]
    lines.append(
        "| Model | originals | all variants | consistency (solved originals solved in every type asked of them) | wall |"
    )
    lines.append("|---|---|---|---|---|")
    for label, r in results.items():
        m = r["tasks"]["robustness"]["metrics"]
        s = m["robustness"]
        lines.append(
            f"| {label} | {pct(s['original']['accuracy'])} (n = {s['original']['n']}) | {pct(m['accuracy'])} "
            f"| {s['robust_originals']} / {s['solved_originals']} | "
            f"{r.get('wall_seconds', float('nan')) / 60:.1f} min |"
        )
    for label, r in results.items():
        lines += [
            "",
            f"**{label}** (`{models[label]}`)",
            "",
            *type_table(r["tasks"]["robustness"]["metrics"]["robustness"]),
        ]
    if adv_stats:
        lines += [
            "",
            "### With vs without the adversarial mix",
            "",
            f"Trained types: {', '.join(adv_cfg.types)}; held out of training: {', '.join(adv_cfg.held_out)} "
            f"(recipes/data/adversarial.yaml). The demo's {adv_stats['demo_traces']} verified traces plus the "
            f"teacher's verified traces of {adv_stats['accepted']} of {adv_stats['variants']} perturbed variants "
            f"(one per problem the demo's teacher was asked; accepted by type: {adv_stats['by_type']}); the "
            "demo's distill recipe, same stages, "
            "steps and batch as the demo's distilled student, which is the 'without' arm. Wall: "
            + ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items())
            + ".",
            "",
            *adversarial_rows(results["adversarial"], results["distilled"], adv_cfg.held_out),
            "",
            "One seed; the mix adds traces as well as perturbations at the same step count, and the "
            "distilled student is weak (a few percent on originals), so small differences are within noise.",
        ]
    n_min = min(
        v["n"] for r in results.values() for v in r["tasks"]["robustness"]["metrics"]["robustness"]["types"].values()
    )
    if n_min < 200:
        lines.insert(
            0,
            f"**Partial run: {n_min} problems in the smallest type, below the 200 per type that resolve a "
            "drop of about 5 points; every interval below is wide.** docs/robustness.md gives the command "
            "and the cost of the full run.\n",
        )
    lines += ["", f"Machine: {machine()}."]
    return lines


def finish(args, lines: list[str]) -> None:
    body = "\n".join(lines)
    print(body)
    if not args.no_record:
        record_section("Robustness", body)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--demo", help="a finished demo folder (runs/demo): full measurement")
    ap.add_argument("--out", default="runs/robustness", help="full mode: where samples, traces and runs go")
    ap.add_argument(
        "--originals",
        type=int,
        default=None,
        help="full mode: original problems scanned, in order (~8 prompts each; default all)",
    )
    ap.add_argument(
        "--per-type",
        type=int,
        default=None,
        help="full mode: each perturbation type on the first K originals that take it (the table "
        "then has K per type at the least cost)",
    )
    ap.add_argument("--no-adversarial", action="store_true", help="full mode: only the demo's four models")
    ap.add_argument(
        "--data",
        help="full mode: another data-engine folder whose test split holds more originals "
        "of the unseen families (default: the demo's data, 357 originals)",
    )
    ap.add_argument("--model", default="smollm2-135m", help="smoke mode: the model")
    ap.add_argument("--limit", type=int, default=15, help="smoke mode: original problems")
    ap.add_argument("--max-new-tokens", type=int, default=256, help="smoke mode")
    ap.add_argument("--batch-size", type=int, default=16, help="smoke mode")
    ap.add_argument("--no-record", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    full(args) if args.demo else smoke(args)


if __name__ == "__main__":
    main()
