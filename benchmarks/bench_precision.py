"""Precision on this CPU: fp32 vs bf16 matmuls and generation, the demo ETA's reference figures.

    python benchmarks/bench_precision.py                  # writes BENCHMARKS.md "Precision"
    python benchmarks/bench_precision.py --rates          # instead: the probe + rates behind the demo ETA
    python benchmarks/bench_precision.py --rates --write-eta   # ... and make them the ETA's reference
    python benchmarks/bench_precision.py --no-record      # print only

Measures, side by side in one run: 1024x1024 matmul GFLOP/s in fp32 and bf16 at one and two threads;
batched greedy generation of smollm2-135m in fp32 and bf16 (every sequence forced to the same length);
what `dtype: auto` picks here and why; the ETA probe (reasonkd.pipeline.eta.measure_here). --rates
measures the probe together with the rates the demo ETA divides by (reasonkd.pipeline.eta.RATES):
batched and batch-1 generation, training and frozen-forward tokens/s of the student and the teacher
in the precision `auto` picks.
Timings are the best wall time of the repeats (the machine may be shared).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch
from common import git_rev, machine, record_section

from reasonkd.models import load_model
from reasonkd.models.generation import apply_chat
from reasonkd.models.engines import make_engine, resolve_engine
from reasonkd.pipeline.eta import PROBE_QUESTION, best_seconds, engine_tps, measure_here
from reasonkd.utils import hardware

ETA_PY = Path(__file__).resolve().parent.parent / "reasonkd" / "pipeline" / "eta.py"


def matmul_table(n: int = 1024) -> list[dict]:
    rows = []
    for threads in (1, 2):
        for dtype in ("float32", "bfloat16"):
            g = hardware.matmul_gflops(dtype, n=n, budget_s=1.0, threads=threads)
            rows.append({"threads": threads, "dtype": dtype, "gflops": round(g, 2)})
            print(rows[-1], flush=True)
    return rows


def generation_tps(model, tok, prompts: list[str], new_tokens: int, batch: int, repeats: int = 1) -> float:
    """Tokens/s of greedy generation, `batch` prompts at a time, every sequence run to `new_tokens`."""
    total = 0.0
    for i in range(0, len(prompts), batch):
        enc = tok(
            prompts[i : i + batch],
            add_special_tokens=False,
            padding=True,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        with torch.inference_mode():
            total += best_seconds(
                lambda enc=enc: model.generate(
                    **enc,
                    max_new_tokens=new_tokens,
                    min_new_tokens=new_tokens,
                    do_sample=False,
                    pad_token_id=tok.pad_token_id,
                ),
                repeats,
            )
    return len(prompts) * new_tokens / total


def generation_table(model_name: str, n_prompts: int, new_tokens: int, repeats: int = 2) -> list[dict]:
    """fp32 and bf16 side by side: both loaded, their runs alternated, the best of `repeats` each (a
    shared machine's load then weighs on both alike)."""
    models = {d: load_model(model_name, dtype=d) for d in ("float32", "bfloat16")}
    best = {d: 0.0 for d in models}
    for _ in range(repeats):
        for d, (model, tok) in models.items():
            prompts = [apply_chat(tok, PROBE_QUESTION.format(n=10 + 3 * i)) for i in range(n_prompts)]
            generation_tps(model, tok, prompts[:2], 2, 2)  # warm-up
            best[d] = max(best[d], generation_tps(model, tok, prompts, new_tokens, n_prompts))
    rows = [
        {"model": model_name, "dtype": d, "prompts": n_prompts, "new_tokens": new_tokens, "tok_s": round(v, 1)}
        for d, v in best.items()
    ]
    print(rows, flush=True)
    return rows


def rates(model_name: str, dtype, autocast: bool, engine: str, gen_prompts: int = 16, gen_tokens: int = 32) -> dict:
    """The RATES entry of one model here: gen (batch 16) and lat (batch 1, 32 tokens) through the demo's
    generation engine, train (batch 4 x 120 tokens, forward + backward + AdamW step), fwd (no grad)."""
    gen_engine = make_engine(engine, model_name, dtype=hardware.dtype_name(dtype), device="cpu")
    try:
        gen = engine_tps(gen_engine, gen_prompts, gen_tokens, 16)
        lat = engine_tps(gen_engine, 1, 32, 1)
    finally:
        gen_engine.close()
    model, _ = load_model(model_name, dtype="float32")
    vocab = model.get_input_embeddings().weight.shape[0]
    ids = torch.randint(0, vocab, (4, 120), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        model(input_ids=ids[:1, :8])
        fwd = ids.numel() / best_seconds(lambda: model(input_ids=ids), 2)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up (optimizer state allocation)
    train = ids.numel() / best_seconds(step)
    out = {"gen": round(gen, 1), "lat": round(lat, 1), "train": round(train, 1), "fwd": round(fwd, 1)}
    print(model_name, out, flush=True)
    return out


def write_eta(data: dict, path: Path = ETA_PY) -> None:
    """Write a --rates measurement into reasonkd/pipeline/eta.py as its RATES and REFERENCE (the figures
    the demo ETA scales from). qwen2.5-coder-1.5b is not measured: the 0.5b rates / 3 (3x the parameters)."""

    def fmt(d):
        return "{" + ", ".join(f'"{k}": {float(v):.1f}' for k, v in d.items()) + "}"

    r = data["rates"]
    big = {k: round(v / 3, 1) for k, v in r["qwen2.5-coder-0.5b"].items()}
    machine = data["machine"].split(", torch")[0]
    block = (
        f"# Tokens/s on the reference machine: {machine};\n# {data['engine']} engine, {data['dtype']} weights, "
        f"bf16 autocast {'on' if data['autocast'] else 'off'}; measured {time.strftime('%Y-%m-%d')} by\n"
        "# `python benchmarks/bench_precision.py --rates --write-eta`.\n"
        "# gen: batched greedy generation (batch 16); lat: batch 1; train: student training (AdamW);\n"
        "# fwd: frozen teacher forward. A distillation step pays train + fwd.\n"
        f'RATES = {{\n    "smollm2-135m": {fmt(r["smollm2-135m"])},\n'
        f'    "qwen2.5-coder-0.5b": {fmt(r["qwen2.5-coder-0.5b"])},\n'
        "    # not measured: the 0.5b rates / 3 (3x the parameters)\n"
        f'    "qwen2.5-coder-1.5b": {fmt(big)},\n}}\n'
        "# what `measure_here` gives for smollm2-135m on the machine of RATES (tokens/s); None = not measured\n"
        "# there, and then the rates are used unscaled\n"
        f'REFERENCE = {{"machine": "{machine}, {data["engine"]} engine, {data["dtype"]}",\n'
        f'             "gen": {data["probe"]["gen"]:.1f}, "train": {data["probe"]["train"]:.1f}}}\n'
    )
    text = path.read_text()
    start, end = text.index("# Tokens/s on the reference machine"), text.index("GPU_SPEEDUP = ")
    path.write_text(text[:start] + block + text[end:])
    print(block)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument(
        "--rates",
        action="store_true",
        help="instead: the ETA probe and the demo ETA's RATES (student + teacher), measured together",
    )
    ap.add_argument("--rate-tokens", type=int, default=96, help="new tokens per sequence for the gen rate")
    ap.add_argument("--teacher", default="qwen2.5-coder-0.5b")
    ap.add_argument("--engine", default="auto", help="generation engine of the rates (the demo's: auto)")
    ap.add_argument("--no-record", action="store_true")
    ap.add_argument("--write-eta", action="store_true", help="with --rates: make them the demo ETA's reference")
    args = ap.parse_args()
    m = hardware.probe()
    dtype, why = hardware.resolve_dtype("auto")
    autocast, _ = hardware.resolve_autocast("auto")
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores at the start"
    if args.rates:  # the probe and the rates in one run, so their ratio holds whatever the load
        engine = resolve_engine(args.engine, "cpu", args.model)
        probe = measure_here(args.model, "cpu", dtype, autocast, engine)
        print("ETA probe", engine, probe, flush=True)
        out = {
            name: rates(name, dtype, autocast, engine, gen_tokens=args.rate_tokens)
            for name in (args.model, args.teacher)
        }
        data = {
            "engine": engine,
            "dtype": hardware.dtype_name(dtype),
            "autocast": autocast,
            "probe": probe,
            "rates": out,
            "machine": m.summary(),
            "load": load,
        }
        print(json.dumps(data))
        if args.write_eta:
            write_eta(data)
        return
    mm = matmul_table()
    gen = generation_table(args.model, args.prompts, args.new_tokens)
    probe = measure_here(args.model, "cpu", dtype, autocast)
    print("ETA probe", probe, flush=True)
    f32 = {(r["threads"], r["dtype"]): r["gflops"] for r in mm}
    lines = [
        "Command: `python benchmarks/bench_precision.py`  ",
        f"Machine: {machine()}, {torch.get_num_threads()} torch threads; {load}; commit {git_rev()}; "
        f"{time.strftime('%Y-%m-%d')}",
        "",
        f"`dtype: auto` picks **{hardware.dtype_name(dtype)}** here, `bf16_autocast: auto` **"
        f"{'on' if autocast else 'off'}**: {why}.",
        "",
        "| 1024x1024 matmul | fp32 GFLOP/s | bf16 GFLOP/s | fp32 / bf16 |",
        "|---|---|---|---|",
    ]
    for t in (1, 2):
        a, b = f32[(t, "float32")], f32[(t, "bfloat16")]
        lines.append(f"| {t} thread{'s' if t > 1 else ''} | {a:.1f} | {b:.2f} | {a / b:.0f}x |")
    lines += [
        "",
        f"| {args.model} batched greedy ({args.prompts} prompts x {args.new_tokens} new tokens, one batch) | tok/s |",
        "|---|---|",
    ]
    lines += [f"| {r['dtype']} | {r['tok_s']:.1f} |" for r in gen]
    lines += [
        "",
        f"ETA probe (`reasonkd demo --plan` measures the same here): {args.model} "
        f"{hardware.dtype_name(dtype)} generation {probe['gen']:.0f} tok/s, training step "
        f"{probe['train']:.0f} tok/s.",
    ]
    body = "\n".join(lines)
    print(body)
    print(json.dumps({"matmul": mm, "generation": gen, "probe": probe, "machine": m.summary()}))
    if not args.no_record:
        record_section("Precision", body)


if __name__ == "__main__":
    main()
