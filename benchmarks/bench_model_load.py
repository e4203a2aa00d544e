"""Model loading: first load of a shipped alias (GGUF assemble + dequantize +
convert to safetensors) vs later loads from the cache. Peer: plain
transformers GGUF loading (`from_pretrained(..., gguf_file=...)`), which pays
the dequantization on every load.

    .venv/bin/python benchmarks/bench_model_load.py [--aliases smollm2-135m qwen2.5-coder-0.5b]

Uses a throw-away REASONKD_HOME so the first load really is a first load.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import git_rev, machine, record_section  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--aliases", nargs="+", default=["smollm2-135m", "qwen2.5-coder-0.5b"])
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ["REASONKD_HOME"] = tempfile.mkdtemp(prefix="reasonkd-bench-home-")
    from transformers import AutoModelForCausalLM

    from reasonkd.models import cache, get_spec, load_model

    rows = []
    for alias in args.aliases:
        spec = get_spec(alias)
        t = time.perf_counter()
        m, _ = load_model(alias)
        first = time.perf_counter() - t
        del m
        later = []
        for _ in range(args.repeats):
            t = time.perf_counter()
            m, _ = load_model(alias)
            later.append(time.perf_counter() - t)
            del m
        gguf = cache.gguf_path(spec)
        t = time.perf_counter()
        m = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        peer = time.perf_counter() - t
        del m
        med = sorted(later)[len(later) // 2]
        rows.append(
            f"| {alias} | {first:.1f} | {med:.2f} ({', '.join(f'{x:.2f}' for x in later)}) | "
            f"{first / med:.0f}x | {peer:.1f} | {peer / med:.0f}x |"
        )
        print(rows[-1], flush=True)
    body = (
        f"Command: `.venv/bin/python benchmarks/bench_model_load.py --aliases {' '.join(args.aliases)}`  \n"
        f"Machine: {machine()}; commit {git_rev()}; {time.strftime('%Y-%m-%d')}\n\n"
        "| alias | first load s (assemble+dequantize+convert) | later loads s, median (all) | first/later "
        "| peer: transformers GGUF load s | peer/ours |\n|---|---|---|---|---|---|\n" + "\n".join(rows)
    )
    record_section("Model loading", body)


if __name__ == "__main__":
    main()
