"""Peak memory of building the logit caches of two teachers vs the larger teacher alone.

    .venv/bin/python benchmarks/bench_multi_teacher_rss.py \\
        [--teachers smollm2-135m,qwen2.5-coder-0.5b | --random 512x8,768x12] [--traces 16] [--k 20]

`reasonkd teacher logits --teacher A --teacher B` builds one cache per teacher,
one teacher in memory at a time; the peer is the same command with the larger
teacher alone, same traces, same k. Each command runs in its own process (so
the peaks are separate), which reports its own peak RSS (ru_maxrss) when done.
Target: two teachers <= the larger alone + 10%. The traces are short synthetic
math traces (what matters here is the weights in memory, not the data).
Writes the "Multi-teacher memory" section of BENCHMARKS.md.
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
from common import git_rev, machine, peak_rss_mb, record_section  # noqa: E402


def _traces(path: Path, n: int) -> Path:
    rows = []
    for i in range(n):
        a, b = 12 + 7 * i, 5 + 3 * i
        rows.append(
            {
                "id": f"p{i}",
                "sample_idx": 0,
                "prompt": f"Sam has {a} apples and buys {b} more. How many?",
                "trace": f"Sam starts with {a} apples. He buys {b} more, so {a} + {b} = {a + b}.\n#### {a + b}",
            }
        )
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _random_teachers(root: Path, sizes: str) -> str:
    """Random Llama teachers (hidden x layers each, the shipped smollm2 tokenizer) saved under root: for a
    measurement without the real weights. Returns their folders, comma-separated, in the order given."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from reasonkd.models import load_tokenizer

    tok = load_tokenizer("smollm2-135m")
    folders = []
    for spec in sizes.split(","):
        hidden, layers = (int(x) for x in spec.split("x"))
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=hidden,
            intermediate_size=hidden * 8 // 3,
            num_hidden_layers=layers,
            num_attention_heads=hidden // 64,
            num_key_value_heads=hidden // 64,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
        )
        model = LlamaForCausalLM(cfg)
        folder = root / f"random-{spec}-{sum(p.numel() for p in model.parameters()) / 1e6:.0f}M"
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        folders.append(str(folder))
    return ",".join(folders)


def _child(args) -> None:
    from reasonkd.cli import main

    t0 = time.perf_counter()
    argv = [
        "teacher",
        "logits",
        "--traces",
        args.traces_file,
        "--out",
        args.out,
        "--k",
        str(args.k),
        "--dtype",
        "float32",
        "--batch-size",
        "4",
    ]
    for t in args.teachers.split(","):
        argv += ["--teacher", t]
    rc = main(argv)
    print(json.dumps({"rc": rc, "peak_rss_mb": round(peak_rss_mb(), 1), "seconds": round(time.perf_counter() - t0, 1)}))


def _measure(teachers: str, traces: Path, out: Path, k: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        "--teachers",
        teachers,
        "--traces-file",
        str(traces),
        "--out",
        str(out),
        "--k",
        str(k),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--teachers",
        default="smollm2-135m,qwen2.5-coder-0.5b",
        help="comma-separated; the LAST one is the larger teacher, measured alone as the peer",
    )
    ap.add_argument("--traces", type=int, default=16)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument(
        "--random",
        default=None,
        metavar="HxL,HxL",
        help="instead of --teachers: random Llama teachers of these sizes (e.g. 512x8,768x12)",
    )
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--traces-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return _child(args)
    with tempfile.TemporaryDirectory() as tmp:
        shown = args.teachers
        if args.random:
            args.teachers = _random_teachers(Path(tmp), args.random)
            shown = ",".join(Path(f).name for f in args.teachers.split(","))  # random-<H>x<L>-<params>
        larger = args.teachers.split(",")[-1]
        traces = _traces(Path(tmp) / "traces.jsonl", args.traces)
        alone = _measure(larger, traces, Path(tmp) / "alone", args.k)
        both = _measure(args.teachers, traces, Path(tmp) / "both", args.k)
    ratio = both["peak_rss_mb"] / alone["peak_rss_mb"]
    verdict = "within" if ratio <= 1.10 else "OVER"
    names, larger = " + ".join(shown.split(",")), shown.split(",")[-1]
    what = (
        "random Llama models (hidden x layers, the smollm2 tokenizer), not trained weights: memory depends "
        "only on the sizes"
        if args.random
        else "the shipped models installed on this machine"
    )
    repro = f"--random {args.random}" if args.random else f"--teachers {args.teachers}"
    body = f"""\
Peak RSS of `reasonkd teacher logits --teacher A --teacher B` (one cache per teacher, built one teacher at a
time) vs the larger teacher alone, each command in its own process, {args.traces} short math traces, k =
{args.k}, float32, CPU.

| command | teachers | peak RSS (MB) | wall (s) |
|---|---|---|---|
| larger teacher alone (peer) | {larger} | {alone["peak_rss_mb"]:.0f} | {alone["seconds"]:.1f} |
| two teachers, one at a time | {names} | {both["peak_rss_mb"]:.0f} | {both["seconds"]:.1f} |

Two teachers / larger alone: **{ratio:.3f}** ({verdict} the +10% target). The teachers measured are
{what}.

The accuracy of fused vs single teachers is in "Multi-teacher" (benchmarks/bench_multi_teacher.py).

Reproduce this table: `.venv/bin/python benchmarks/bench_multi_teacher_rss.py {repro} --traces {args.traces}
--k {args.k}` (commit {git_rev()}; {machine()}).
"""
    record_section("Multi-teacher memory", body)
    print(body)


if __name__ == "__main__":
    main()
