"""Deployment speed and INT8 accuracy: PyTorch eager fp32 vs ONNX Runtime fp32 vs OpenVINO INT8, one run.

    .venv/bin/python benchmarks/bench_export.py \
        [--model smollm2-135m] [--batch-sizes 1,8] [--new-tokens 64] [--repeats 3] \
        [--problems 100] [--accuracy-tokens 256]

1. `reasonkd export` the model to ONNX (fp32; greedy-parity checked against
   PyTorch) and to OpenVINO INT8 (accuracy checked on the held-out math set).
2. Load all three in this process and time greedy generation of exactly
   --new-tokens tokens per sequence on the same prompts, at each batch size;
   the repeats interleave the backends (after a warm-up) so load from other
   processes on the shared CPU hits all of them alike. Median tokens/s.
3. Held-out math set: the test split (templates never trained on) of a
   data-engine build of recipes/data/quick.yaml with more problems per family,
   prompted and graded like `reasonkd eval --tasks gsm8k`.
Writes the "Export" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, git_rev, machine, peak_rss_mb, record_section  # noqa: E402


def peak_rss_alone(model: str, batch: int, out: Path) -> float:
    """Peak RSS (MiB) of a separate `reasonkd bench` process that loads `model` and generates at `batch`:
    in this process the three backends share one address space, so their memory cannot be told apart."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "reasonkd",
            "bench",
            "--model",
            model,
            "--batch-sizes",
            str(batch),
            "--new-tokens",
            "16",
            "--repeats",
            "1",
            "--json",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    return json.loads(out.read_text())[0]["peak_rss_mb"]


def held_out_math(folder: Path, problems: int) -> Path:
    """A data-engine build whose test split holds >= `problems` math items (3 held-out templates)."""
    from reasonkd.data import build_dataset

    per_family = -(-problems // 3)
    return build_dataset(
        ROOT / "recipes" / "data" / "quick.yaml",
        folder / "heldout",
        overrides=[f"math.per_family={per_family}", "logic.zebra=0", "logic.sudoku=0"],
    )


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--batch-sizes", default="1,8")
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--problems", type=int, default=100)
    ap.add_argument("--accuracy-tokens", type=int, default=256)
    ap.add_argument("--template", help="prompt template YAML for the accuracy check (e.g. runs/demo/prompt.yaml)")
    ap.add_argument("--exports", help="keep the export folders here (default: a temp folder)")
    return ap.parse_args()


def export_both(args, scratch: Path, data: Path) -> dict:
    """ONNX fp32 and OpenVINO INT8 (with its held-out accuracy check) exports of args.model, timed."""
    from reasonkd.export.build import export_model

    t = time.perf_counter()
    onnx = export_model(args.model, "onnx", scratch / "onnx", progress=False)
    onnx_s = time.perf_counter() - t
    t = time.perf_counter()
    ov8 = export_model(
        args.model,
        "openvino",
        scratch / "ov-int8",
        int8=True,
        parity_data=str(data),
        parity_limit=args.problems,
        accuracy_tokens=args.accuracy_tokens,
        batch_size=16,
        progress=True,
        template=args.template,
    )
    return {"onnx": onnx, "onnx_s": onnx_s, "ov8": ov8, "ov8_s": time.perf_counter() - t}


def measure(args, scratch: Path, sizes: list[int]) -> tuple[dict, list, dict]:
    """(backends, prompts, rows): each backend loaded, warmed up and timed at every batch size in
    `args.repeats` interleaved repeats; rows[backend][batch] is the summary of its runs."""
    from reasonkd.export.bench import bench_prompts, summarize, time_generate
    from reasonkd.models import load_model

    backends = {}
    for key, path, label, precision in [
        ("torch", args.model, "PyTorch eager", "fp32"),
        ("onnx", scratch / "onnx", "ONNX Runtime", "fp32"),
        ("ov8", scratch / "ov-int8", "OpenVINO", "INT8 weights"),
    ]:
        rss = peak_rss_alone(str(path), max(sizes), scratch / f"mem-{key}.json")
        model, tok = load_model(str(path))
        backends[key] = {
            "model": model,
            "tok": tok,
            "label": label,
            "precision": precision,
            "rss_mb": rss,
            "runs": {bs: [] for bs in sizes},
        }
    prompts = bench_prompts(backends["torch"]["tok"], max(sizes))
    for b in backends.values():  # warm-up: first-call allocations and kernel selection are not measured
        time_generate(b["model"], b["tok"], prompts, max(sizes), 4)
    for rep in range(args.repeats):
        for bs in sizes:
            for b in backends.values():
                b["runs"][bs].append(time_generate(b["model"], b["tok"], prompts, bs, args.new_tokens))
        print(
            f"repeat {rep + 1}: "
            + ", ".join(
                f"{k} b{bs} {b['runs'][bs][-1]['tokens'] / b['runs'][bs][-1]['seconds']:.1f} tok/s"
                for k, b in backends.items()
                for bs in sizes
            ),
            flush=True,
        )
    rows = {k: {bs: summarize(b["runs"][bs]) for bs in sizes} for k, b in backends.items()}
    return backends, prompts, rows


def speed_table(args, backends: dict, rows: dict, sizes: list[int], exports: dict) -> str:
    """The markdown table: one line per backend and batch size."""
    from reasonkd.export.bench import hardware
    from reasonkd.models import resolve

    hw = hardware()
    table = (
        "| hardware target | backend | precision | batch | tokens/s median (runs) | vs PyTorch eager | "
        "TTFT ms | ms/token | model files MB | peak RSS MiB, alone |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n"
    )
    src = Path(resolve(args.model).path)
    sizes_mb = {
        "torch": sum(p.stat().st_size for p in src.glob("*.safetensors")) / 1e6,
        "onnx": exports["onnx"]["total_bytes"] / 1e6,
        "ov8": exports["ov8"]["total_bytes"] / 1e6,
    }
    for k, b in backends.items():
        for bs in sizes:
            r, base = rows[k][bs], rows["torch"][bs]
            files = f"{sizes_mb[k]:.0f}" + (" (safetensors)" if k == "torch" else "")
            table += (
                f"| {hw} | {b['label']} | {b['precision']} | {bs} | {r['tokens_per_s']:.1f} "
                f"({', '.join(f'{x:.1f}' for x in r['tokens_per_s_all'])}) | "
                f"**{r['tokens_per_s'] / base['tokens_per_s']:.2f}x** | {r['ttft_ms']:.0f} | "
                f"{r['ms_per_token']:.1f} | {files} | {b['rss_mb']:.0f} |\n"
            )
    return table


def accuracy_text(args, acc: dict) -> str:
    """The held-out accuracy paragraph and table of fp32 vs INT8."""
    prompt = f"the prompt of {args.template}" if args.template else "gsm8k prompt"
    return (
        f"Held-out math accuracy ({acc['n']} problems: test split of a data-engine build of "
        f"recipes/data/quick.yaml with math.per_family={-(-args.problems // 3)}, 3 templates never used for "
        f"training; {prompt} and gsm8k grader; greedy, <= {args.accuracy_tokens} new tokens, batch 16):\n\n"
        "| model | correct | accuracy |\n|---|---|---|\n"
        f"| {args.model} PyTorch fp32 | {acc['torch_fp32_correct']}/{acc['n']} | "
        f"{100 * acc['torch_fp32_accuracy']:.1f}% |\n"
        f"| {args.model} OpenVINO INT8 | {acc['int8_correct']}/{acc['n']} | {100 * acc['int8_accuracy']:.1f}% |\n\n"
        f"**Accuracy drop: {acc['drop_points']:.1f} points** (target <= 1: "
        f"{'met' if acc['drop_points'] <= 1 else 'NOT met'}); paired bootstrap 95% interval of the drop "
        f"[{acc['drop_ci95_points'][0]:.1f}, {acc['drop_ci95_points'][1]:.1f}] points, p = "
        f"{acc['drop_p_value']:.2f}: {acc['fp32_only_correct']} problems right only in fp32, "
        f"{acc['int8_only_correct']} only in INT8; same verdict on {acc['same_verdict']}/{acc['n']}, "
        f"identical completion on {acc['same_completion']}/{acc['n']}. At accuracies this low, "
        f"{acc['n']} problems resolve only a few points.\n\n"
    )


def main() -> None:
    args = parse_args()
    import torch

    sizes = [int(x) for x in args.batch_sizes.split(",")]
    scratch = Path(args.exports or tempfile.mkdtemp(prefix="bench-export-"))
    exports = export_both(args, scratch, held_out_math(scratch, args.problems))
    backends, prompts, rows = measure(args, scratch, sizes)

    cmd = (
        f".venv/bin/python benchmarks/bench_export.py --model {args.model} "
        f"--batch-sizes {args.batch_sizes} --new-tokens {args.new_tokens} --repeats {args.repeats} "
        f"--problems {args.problems} --accuracy-tokens {args.accuracy_tokens}"
        + (f" --template {args.template}" if args.template else "")
    )
    ratio = {bs: rows["ov8"][bs]["tokens_per_s"] / rows["torch"][bs]["tokens_per_s"] for bs in sizes}
    ok_speed = all(v >= 2 for v in ratio.values())
    t = exports["onnx"]["parity"]["tokens"]
    body = (
        f"Command: `{cmd}`  \n"
        f"Machine: {machine()}, {torch.get_num_threads()} torch threads; commit {git_rev()}; "
        f"{time.strftime('%Y-%m-%d')}; peak RSS {peak_rss_mb():.0f} MiB (all three backends in one process)\n\n"
        f"{args.model}, greedy, exactly {args.new_tokens} new tokens per sequence (EOS masked), the same "
        f"{len(prompts)} chat-formatted math prompts for every backend; tokens/s = generated tokens / wall "
        f"time over the set, median of {args.repeats} interleaved repeats (all runs in brackets) after a "
        f"warm-up. TTFT = prefill + first token of each batch; ms/token = one decoding step; peak RSS, "
        f"alone = peak resident memory of a separate `reasonkd bench` process (load + batch {max(sizes)} x 16 "
        f"tokens). Exports: ONNX "
        f"fp32 in {exports['onnx_s']:.0f} s (greedy tokens identical to PyTorch on {t['identical_prompts']}/"
        f"{t['prompts']} prompts x {t['new_tokens']} tokens), OpenVINO INT8 (NNCF weight-only int8_asym, "
        f"per channel; run with fp32 compute and the CPU plugin's default KV cache and dynamic activation "
        f"quantization) in {exports['ov8_s']:.0f} s including its accuracy check.\n\n"
        f"{speed_table(args, backends, rows, sizes, exports)}\n"
        f"**OpenVINO INT8 vs PyTorch eager fp32: "
        f"{', '.join(f'{v:.2f}x at batch {bs}' for bs, v in ratio.items())}** (target >= 2x: "
        f"{'met' if ok_speed else 'NOT met'}).\n\n"
        + accuracy_text(args, exports["ov8"]["parity"]["accuracy"])
        + "Reference targets (docs/design.md §5), other hardware: A100 120 tok/s; T4 + ONNX Runtime 85; "
        "Core i7 + OpenVINO INT8 30."
    )
    print(body)
    record_section("Export", body)


if __name__ == "__main__":
    main()
