"""The BENCHMARKS.md section of bench_distill.py: the command, the machine, the table of runners (tokens/s,
s/step, peak RSS, the ratios to TRL, achieved FLOP/s), the acceptance target and the notes under it.

    text = report(args, results, results["matmul"], flops)   # args: bench_distill's parsed arguments
    record_section(BENCH_MD, "...", text)                    # common.record_section, as bench_distill.main does
"""

from __future__ import annotations

import os
import time


def report(args, res: dict, peak: dict, flops: dict) -> str:
    import platform

    import torch

    lines = [
        f"Command: `.venv/bin/python benchmarks/bench_distill.py {' '.join(args.shown)}`  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, {args.threads} threads, "
        f"torch {torch.__version__}, Python {platform.python_version()}; {time.strftime('%Y-%m-%d')}",
        "",
        f"Logit KD, teacher `{args.teacher}` (bf16, frozen) -> student `{args.student}` "
        f"({'LoRA r16 on all linear layers' if args.lora else 'full fine-tuning'}, fp32 weights, bf16 autocast), "
        f"forward KL at T = 1 on trace tokens, batch {args.batch}, sequences of {args.seq - 16}-{args.seq} tokens, "
        f"AdamW 1e-4; {args.steps} timed steps after {args.warmup_steps} warm-up step(s), each runner in its "
        "own process (peak RSS includes loading the models). TRL: `trl.experimental.gkd.GKDTrainer` "
        "(lmbda = 0: no on-policy generation; beta = 0: forward KL), same models passed in, same LoRA.",
        "",
        "Where the differences come from: reasonkd projects the lm_head only at the positions that predict "
        "trace tokens and computes the loss on those (N, V) rows in chunks under activation checkpointing "
        "(`chunk_rows`), keeps the logits bf16 (accelerate would upcast a forward's outputs to fp32), and under "
        "LoRA stores the frozen base linears in bf16 (bit-identical logits and gradients under autocast, "
        "tested; adapters merged into the fp32 weights at the end). Offline mode also loads no teacher and "
        "runs no teacher forward; its KL is over the top-k + 'other' buckets instead of the full vocabulary.",
        "",
        "| runner | student tok/s | s/step (timed steps) | peak RSS MiB | tok/s vs TRL | RSS vs TRL | model TFLOP/s | % of bf16 peak |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = res["trl-gkd"]
    base_tps = base["tokens"] / base["seconds"]
    for mode in args.modes.split(","):
        r = res[mode]
        tps = r["tokens"] / r["seconds"]
        f = flops[mode.partition("@")[0]] * tps
        lines.append(
            f"| {label(mode, args)} | {tps:.1f} | {', '.join(f'{x:.2f}' for x in r['step_s'])} "
            f"| {r['peak_rss_mb']:.0f} | {tps / base_tps:.2f}x | {r['peak_rss_mb'] / base['peak_rss_mb']:.2f}x "
            f"| {f / 1e12:.3f} | {100 * f / peak['bf16']:.1f}% |"
        )
    lines += ["", *acceptance(args, res)]
    c = res["cache"]
    saves = ", ".join(
        f"{label(m, args)} {res[m]['peak_rss_with_save_mb']:.0f} MiB"
        for m in args.modes.split(",")
        if "peak_rss_with_save_mb" in res[m]
    )
    lines += [
        "",
        "Peak RSS is `ru_maxrss` after loading and training (TRL: after `trainer.train()`, which saves "
        f"nothing here). Whole reasonkd processes, including merging LoRA into fp32 weights and writing "
        f"final/: {saves}.",
        "",
        f"Measured matmul peak ({peak['threads']} threads, 2048^3): bf16 {peak['bf16'] / 1e12:.3f} TFLOP/s, "
        f"fp32 {peak['fp32'] / 1e12:.3f} TFLOP/s. Model FLOPs per student token: student 2 passes (forward + "
        "input-gradient backward; LoRA needs no weight gradient of frozen weights) + teacher 1 forward pass "
        "(online only), each 2 x linear parameters (lm_head included) + causal attention scores "
        "(`model_flops_per_token`). reasonkd projects logits only at trace positions, so it does fewer FLOPs "
        "than this count; the column is work done per second on one common scale.",
        "",
        f"Building the logit cache (teacher bf16, top-{args.k}, float16) for the {args.examples} examples took "
        f"{c['seconds']:.1f} s ({c['tok_s']:.0f} teacher tok/s, {c['bytes'] / 1024:.0f} KiB on disk, peak RSS "
        f"{c['peak_rss_mb']:.0f} MiB); it is paid once and read by every epoch and stage.",
        "",
        "First / last training loss: "
        + ", ".join(f"{label(m, args)} {_fl(res[m]['loss'])}" for m in args.modes.split(","))
        + f" (offline: KL over the top-{args.k} + 'other' buckets). "
        + (
            "Teacher and student start identical, so the KL starts near 0 and the few steps move the student away; "
            if args.teacher == args.student
            else ""
        )
        + "the figures are about speed and memory.",
        "",
    ]
    return "\n".join(lines)


def acceptance(args, res: dict) -> list[str]:
    """The target: offline >= 2x TRL tokens/s at <= 0.6x its peak RSS, for each offline runner."""
    out = []
    for ref in ("trl-gkd", "trl-gkd-nogc"):
        if ref not in res:
            continue
        b = res[ref]
        for mode in args.modes.split(","):
            if not mode.startswith("ours-offline"):
                continue
            r = res[mode]
            speed = (r["tokens"] / r["seconds"]) / (b["tokens"] / b["seconds"])
            rss = r["peak_rss_mb"] / b["peak_rss_mb"]
            verdict = "met" if speed >= 2 and rss <= 0.6 else "NOT met"
            out.append(
                f"Target (offline >= 2x tok/s at <= 0.6x peak RSS) vs {label(ref, args)}: "
                f"{label(mode, args)} {speed:.2f}x at {rss:.3f}x: **{verdict}**.  "
            )
    return out


def label(mode: str, args) -> str:
    name, _, chunk = mode.partition("@")
    text = {
        "trl-gkd": "TRL GKDTrainer, its defaults (gradient checkpointing on)",
        "trl-gkd-nogc": "TRL GKDTrainer, gradient checkpointing off",
        "ours-online": "reasonkd, online teacher",
        "ours-offline": "reasonkd, offline top-k cache",
    }[name]
    return f"{text}, chunk_rows {chunk or args.chunk_rows}" if name.startswith("ours") else text


def _fl(xs):
    return f"{xs[0]:.4f} / {xs[-1]:.4f}" if xs else "-"
