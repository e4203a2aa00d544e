"""Greedy accuracy in bf16 vs fp32 on the demo's held-out problems, paired, with the generation time of each.

    python benchmarks/bench_precision_parity.py --demo runs/demo          # after `make demo`; writes the section
    python benchmarks/bench_precision_parity.py --demo runs/demo --no-record

For the demo's teacher and student (its config.yaml), the same problems (eval/heldout.jsonl), prompt
(prompt.yaml), token budget and batch as the demo, on the OpenVINO engine (the demo's engine on a CPU):
once with fp32 compute and an fp32 KV cache, once with bf16 compute and a bf16 KV cache
(reasonkd.models.engines.ov_settings). Reports each accuracy, the paired difference with its bootstrap
CI and exact McNemar p, the discordant problems, and the wall-time ratio. bf16 runs only where the CPU
has native bf16; elsewhere the benchmark says so and prints this command for a machine that has it.
Writes BENCHMARKS.md "Precision parity".
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import git_rev, record_section

from reasonkd.config import load_config
from reasonkd.eval import evaluate_model
from reasonkd.eval.metrics import mcnemar_exact, paired_diff_ci
from reasonkd.pipeline.config import DemoConfig
from reasonkd.utils import hardware

COMMAND = "python benchmarks/bench_precision_parity.py --demo runs/demo"


def run(cfg: DemoConfig, demo: Path, model: str, dtype: str, out: Path) -> tuple[dict, float]:
    t0 = time.perf_counter()
    r = evaluate_model(
        model,
        ["gsm8k"],
        data=str(demo / "eval" / "heldout.jsonl"),
        limit=cfg.n_test,
        label=f"{Path(model).name}.{dtype}",
        out_dir=out,
        batch_size=cfg.eval_batch_size,
        max_new_tokens=cfg.eval_max_new_tokens,
        dtype=dtype,
        engine="openvino",
        template=str(demo / "prompt.yaml"),
        latency_problems=0,
        cases=False,
        seed=cfg.seed,
    )
    seconds = time.perf_counter() - t0
    return {s["id"]: int(bool(s["verdict"])) for s in r["tasks"]["gsm8k"]["samples"]}, seconds


def compare(cfg: DemoConfig, demo: Path, model: str, out: Path) -> dict:
    f32, t32 = run(cfg, demo, model, "float32", out)
    b16, t16 = run(cfg, demo, model, "bfloat16", out)
    ids = sorted(f32)
    a, b = [float(b16[i]) for i in ids], [float(f32[i]) for i in ids]
    d = paired_diff_ci(a, b)
    return {
        "model": model,
        "n": len(ids),
        "fp32": sum(b) / len(ids),
        "bf16": sum(a) / len(ids),
        "diff": d,
        "p": mcnemar_exact(a, b)["p_value"],
        "bf16_only": sum(x and not y for x, y in zip(a, b)),
        "fp32_only": sum(y and not x for x, y in zip(a, b)),
        "t32": t32,
        "t16": t16,
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| model | n | fp32 acc | bf16 acc | bf16 − fp32 (95% CI) | McNemar p | discordant (bf16 only / fp32 only) "
        "| fp32 s | bf16 s | bf16 speed-up |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        d = r["diff"]
        lines.append(
            f"| {r['model']} | {r['n']} | {100 * r['fp32']:.1f}% | {100 * r['bf16']:.1f}% | "
            f"{100 * d['diff']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] | {r['p']:.2f} | "
            f"{r['bf16_only']} / {r['fp32_only']} | {r['t32']:.0f} | {r['t16']:.0f} | "
            f"{r['t32'] / r['t16']:.2f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default="runs/demo", help="a finished `reasonkd demo` folder")
    ap.add_argument("--out", default="runs/bench-precision-parity", help="evaluation samples go here")
    ap.add_argument("--no-record", action="store_true", help="print only; leave BENCHMARKS.md alone")
    args = ap.parse_args()
    demo = Path(args.demo)
    cfg = load_config(DemoConfig, demo / "config.yaml")
    m = hardware.probe()
    if not m.native_bf16:
        print(
            f"this CPU ({m.isa}) has no native bf16: the bf16 side cannot be measured here; run `{COMMAND}` "
            "on a CPU with AVX-512-BF16 or AMX"
        )
        return
    rows = [compare(cfg, demo, model, Path(args.out)) for model in (cfg.teacher, cfg.student)]
    body = (
        f"`{COMMAND}` (commit {git_rev()}): the demo's {cfg.n_test} held-out problems, its prompt, "
        f"{cfg.eval_max_new_tokens} new tokens, batch {cfg.eval_batch_size}, greedy, OpenVINO engine; "
        "fp32 = fp32 compute + fp32 KV cache, bf16 = bf16 compute + bf16 KV cache "
        "(reasonkd/models/engines/ov_settings.py). Times include the engine's compile, not the one-off "
        f"conversion.\n\n{table(rows)}\n\nCPU: {m.summary()}\n"
    )
    print(body)
    if not args.no_record:
        record_section("Precision parity", body)


if __name__ == "__main__":
    main()
