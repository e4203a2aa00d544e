"""Generation engines side by side: tokens/s (conversion included) and verdict parity with the hf engine.

    .venv/bin/python benchmarks/bench_generation.py \
        [--models smollm2-135m,qwen2.5-coder-0.5b] [--arms hf,openvino,optimum] [--problems 200] \
        [--max-new-tokens 200] [--results runs/bench-generation/results.json] [--max-minutes 9]

Greedy generation of the demo's prompt (reasonkd.pipeline.config.DEMO_MATH_PROMPT)
over the demo's held-out math problems (data-engine val originals, the same
200 `reasonkd demo` evaluates), graded by reasonkd's gsm8k grader. Arms:

- `hf`: transformers generate (reasonkd.models.generation), batch 16
  length-sorted, in the precision `auto` picks on this machine (fp32 where the
  CPU has no native bf16); `hf-bf16`: the same in bf16 (`--arm-limit` prompts).
- `openvino`: the openvino engine (OpenVINO GenAI continuous batching, fp32
  weights and compute), its conversion forced and counted.
- `optimum`: optimum-intel's OVModelForCausalLM (fp32 IR, reasonkd export's
  fp32 runtime settings) under the same transformers generate loop, batch 16,
  its export counted; the alternative the openvino engine was chosen over.

tokens/s = generated tokens / (load + conversion + generation seconds). Each
arm saves after every chunk of prompts to --results, so a run cut by
--max-minutes (or killed) resumes where it stopped; load and conversion are
counted once, from the arm's first invocation. Once every arm of a model is
complete, the "Generation" section of BENCHMARKS.md is rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, git_rev, machine, peak_rss_mb, record_section  # noqa: E402

CHUNK = 32


def cpu_flags() -> str:
    try:
        flags = next(ln for ln in Path("/proc/cpuinfo").read_text().splitlines() if ln.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    keep = [f for f in flags.split(":", 1)[1].split() if f.startswith(("avx", "amx", "fma"))]
    return " ".join(sorted(keep)) or "no AVX"


def problems(work: Path, n: int):
    """The demo's held-out problems and prompt template (built once into `work`)."""
    from reasonkd.eval.tasks import get_task
    from reasonkd.pipeline.config import load_demo_config
    from reasonkd.pipeline.demo import step_data
    from reasonkd.pipeline.demo_traces import prompt_template

    cfg = load_demo_config(overrides=[f"n_test={n}"])
    if not (work / "eval" / "heldout.jsonl").is_file():
        step_data(cfg, work)
    return get_task("gsm8k", data=str(work / "eval" / "heldout.jsonl"), limit=n, template=prompt_template(cfg, work))


def make_arm(arm: str, model: str, scratch: Path, first: bool = True):
    """(engine, load seconds including any conversion) for one arm; `first`: the arm's first invocation,
    whose conversion is forced (and counted); a resumed one reads the cache."""
    from reasonkd.models.engines import make_engine
    from reasonkd.models.engines.hf import HFEngine

    t0 = time.perf_counter()
    if arm == "hf":
        engine = make_engine("hf", model, dtype="auto")  # fp32 where the CPU has no native bf16
    elif arm == "hf-bf16":
        engine = make_engine("hf", model, dtype="bfloat16")
    elif arm == "openvino":
        engine = make_engine("openvino", model, rebuild=first)  # conversion counted, not read from the cache
    elif arm == "optimum":
        from reasonkd.export.openvino import RUNTIME_FP32, export_openvino, load_openvino
        from reasonkd.models import resolve
        from reasonkd.models.loader import tokenizer_from

        folder = scratch / f"optimum-{model.replace('/', '_')}"
        export_openvino(resolve(model).path, folder, int8=False)
        from reasonkd.export.runtime import ExportedLM

        lm = ExportedLM(load_openvino(folder, RUNTIME_FP32), {"format": "openvino", "num_parameters": 1}, folder)
        engine = HFEngine.wrap(lm, tokenizer_from(resolve(model).path))
        engine.name = "optimum"
    else:
        raise SystemExit(f"unknown arm {arm!r}")
    return engine, time.perf_counter() - t0


def run_arm(state: dict, key: str, arm: str, model: str, task, args, save) -> None:
    from reasonkd.models.generation import apply_chat

    rec = state.setdefault(key, {"model": model, "arm": arm, "rows": {}, "gen_seconds": 0.0, "load_seconds": None})
    examples = task.examples()[: args.arm_limit if arm == "hf-bf16" else args.limit.get(key)]
    todo = [ex for ex in examples if str(ex["idx"]) not in rec["rows"]]
    if not todo:
        return
    if time.monotonic() > args.deadline - 300:  # loading (and converting) alone can take minutes
        print(f"{key}: less than 5 minutes left of --max-minutes; not starting it", flush=True)
        return
    engine, load_s = make_arm(arm, model, Path(args.scratch), first=rec["load_seconds"] is None)
    if rec["load_seconds"] is None:
        rec["load_seconds"] = load_s
        rec["conversion"] = {k: v for k, v in (getattr(engine, "conversion", None) or {}).items() if k != "files"}
    rec["precision"] = engine.precision
    prompts = {ex["idx"]: apply_chat(engine.tokenizer, task.prompt(ex), task.system()) for ex in todo}
    # hf batches by length over each call: sort globally so chunking keeps the batches of a single call
    todo.sort(key=lambda ex: -len(engine.tokenizer(prompts[ex["idx"]], add_special_tokens=False)["input_ids"]))
    # hf / optimum: chunks of whole batches; openvino: chunks of 64 prompts, its max_num_seqs in flight
    size = CHUNK if arm.startswith(("hf", "optimum")) else 64
    for start in range(0, len(todo), size):
        if time.monotonic() > args.deadline:
            print(f"{key}: stopping for --max-minutes; {len(rec['rows'])}/{len(examples)} done", flush=True)
            return
        part = todo[start : start + size]
        t0 = time.perf_counter()
        outs = engine.generate(
            [prompts[ex["idx"]] for ex in part],
            max_new_tokens=args.max_new_tokens,
            batch_size=16,
            progress=True,
            desc=key,
        )
        rec["gen_seconds"] += time.perf_counter() - t0
        scored = task.score_many(part, [o.text for o in outs])
        for ex, o, s in zip(part, outs, scored):
            rec["rows"][str(ex["idx"])] = {"text": o.text, "new_tokens": o.new_tokens, "verdict": bool(s["verdict"])}
        rec["peak_rss_mb"] = peak_rss_mb()
        save()
        print(
            f"{key}: {len(rec['rows'])}/{len(examples)} prompts, "
            f"{sum(r['new_tokens'] for r in rec['rows'].values()) / rec['gen_seconds']:.1f} tok/s generation",
            flush=True,
        )
    engine.close()


def summarize(rec: dict) -> dict:
    rows = rec["rows"]
    new = sum(r["new_tokens"] for r in rows.values())
    total = rec["gen_seconds"] + (rec["load_seconds"] or 0)
    return {
        "n": len(rows),
        "new_tokens": new,
        "tok_s_gen": new / max(rec["gen_seconds"], 1e-9),
        "tok_s_all": new / max(total, 1e-9),
        "correct": sum(r["verdict"] for r in rows.values()),
    }


def parity(rec: dict, ref: dict) -> str:
    common = [k for k in rec["rows"] if k in ref["rows"]]
    if not common:
        return "-"
    agree = sum(rec["rows"][k]["verdict"] == ref["rows"][k]["verdict"] for k in common)
    same = sum(rec["rows"][k]["text"] == ref["rows"][k]["text"] for k in common)
    return f"{agree}/{len(common)} ({100 * agree / len(common):.1f}%); identical text {same}/{len(common)}"


def report(state: dict, args, models: list[str], arms: list[str]) -> None:
    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_generation.py "
        f"--models {','.join(models)} --arms {','.join(arms)} --problems {args.problems} --max-new-tokens "
        f"{args.max_new_tokens}{''.join(f' --limit {k}={n}' for k, n in args.limit.items())} "
        f"--max-minutes {args.max_minutes:g}` (rerun until every arm is complete: each run resumes)  ",
        f"Machine: {machine()}; CPU flags: {cpu_flags()}; commit {git_rev()}; {time.strftime('%Y-%m-%d')}",
        "",
        f"Greedy, <= {args.max_new_tokens} new tokens, the demo's prompt over its {args.problems} held-out "
        "math problems, gsm8k grader. tokens/s overall = generated tokens / (load + conversion + generation). "
        "Verdict agreement and identical text are against the hf arm of the same model (same precision: "
        "fp32).",
        "",
        "| model | engine | precision | problems | load + conversion s | generation s | tokens/s generation "
        "| **tokens/s overall** | vs hf (overall) | vs hf-bf16 (overall) | accuracy | verdicts agree with hf |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model in models:
        ref = state.get(f"{model}:hf")
        base = summarize(ref)["tok_s_all"] if ref and ref["rows"] else None
        bf16 = state.get(f"{model}:hf-bf16")  # the bf16 path the demo took before `dtype: auto`
        base16 = summarize(bf16)["tok_s_all"] if bf16 and bf16["rows"] else None
        for arm in arms:
            rec = state.get(f"{model}:{arm}")
            if not rec or not rec["rows"]:
                continue
            s = summarize(rec)
            ratio = f"{s['tok_s_all'] / base:.2f}x" if base else "-"
            ratio16 = f"{s['tok_s_all'] / base16:.2f}x" if base16 else "-"
            lines.append(
                f"| {model} | {arm} | {rec.get('precision')} | {s['n']} | {rec['load_seconds']:.1f} | "
                f"{rec['gen_seconds']:.1f} | {s['tok_s_gen']:.1f} | **{s['tok_s_all']:.1f}** | {ratio} | "
                f"{ratio16} | "
                f"{100 * s['correct'] / s['n']:.1f}% ({s['correct']}/{s['n']}) | "
                f"{parity(rec, ref) if ref and arm != 'hf' else '-'} |"
            )
    conv = [
        f"{k}: converted in {v['conversion'].get('convert_seconds')} s, weights {v['conversion'].get('weights')} "
        f"({', '.join(f'{t} {n}' for t, n in (v['conversion'].get('weight_types') or {}).items())})"
        for k, v in state.items()
        if v.get("conversion")
    ]
    if conv:
        lines += ["", "OpenVINO IR conversions (part of the load column): " + "; ".join(conv) + "."]
    body = "\n".join(lines) + ("\n\n" + args.note if args.note else "")
    if args.no_record:
        print(body)
    else:
        record_section("Generation", body)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default="smollm2-135m,qwen2.5-coder-0.5b")
    ap.add_argument("--arms", default="hf,openvino,optimum")
    ap.add_argument("--problems", type=int, default=200)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--arm-limit", type=int, default=8, help="problems for the slow hf-bf16 arm")
    ap.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="MODEL:ARM=N",
        help="run only the first N problems of one arm (a slow baseline), e.g. qwen2.5-coder-0.5b:hf=96",
    )
    ap.add_argument("--results", default=str(ROOT / "runs" / "bench-generation" / "results.json"))
    ap.add_argument("--max-minutes", type=float, default=1e9, help="stop (resumable) after this long")
    ap.add_argument("--report-only", action="store_true", help="rewrite BENCHMARKS.md from --results")
    ap.add_argument("--no-record", action="store_true", help="print the table instead of writing BENCHMARKS.md")
    ap.add_argument("--note", default="", help="a paragraph appended to the section")
    args = ap.parse_args()
    args.deadline = time.monotonic() + 60 * args.max_minutes
    args.limit = {k: int(n) for k, _, n in (x.rpartition("=") for x in args.limit)}
    args.scratch = tempfile.mkdtemp(prefix="bench-generation-")
    models, arms = args.models.split(","), args.arms.split(",")
    results = Path(args.results)
    state = json.loads(results.read_text()) if results.is_file() else {}

    def save():
        from reasonkd.utils.io import write_json

        write_json(results, state)

    if not args.report_only:
        task = problems(results.parent / "demo-data", args.problems)
        for model in models:
            for arm in arms:
                if time.monotonic() > args.deadline:
                    break
                run_arm(state, f"{model}:{arm}", arm, model, task, args, save)
    report(state, args, models, arms)
    print(f"results: {results}")


if __name__ == "__main__":
    main()
