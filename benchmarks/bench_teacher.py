"""Teacher trace throughput: our `hf` backend vs plain transformers `generate` at batch 1.

    .venv/bin/python benchmarks/bench_teacher.py \\
        [--model smollm2-135m] [--problems 16] [--max-new-tokens 128] [--repeats 3]

Same model, same problems (math items of the quick data recipe, the teacher's
default prompt template and the model's chat template), same greedy decoding
and token cap. Peer: the loop a user would write first, one problem at a time,
`model.generate` in the default float32. A third row (batch 1 in bf16) splits
the gain into "bf16" and "batching + length sorting". Throughput counts
generated tokens up to end-of-sequence only (padding steps after a sequence
finishes are not counted). Writes the "Teacher" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import git_rev, machine, peak_rss_mb, record_section  # noqa: E402


def _plain_generate(model_dir: str, dtype, prompts: list[str], max_new_tokens: int):
    """A runner that answers one problem at a time with transformers' generate -> (new tokens, texts)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).eval()
    eos = [t for t in {tok.eos_token_id, tok.convert_tokens_to_ids("<|im_end|>")} if t is not None]

    def run(limit: int | None = None):
        total, texts = 0, []
        for p in prompts[:limit]:
            ids = tok(p, return_tensors="pt", add_special_tokens=False)
            with torch.inference_mode():
                out = model.generate(
                    **ids,
                    max_new_tokens=max_new_tokens,
                    do_sample=False,
                    temperature=None,
                    top_p=None,
                    top_k=None,
                    eos_token_id=eos,
                    pad_token_id=tok.eos_token_id,
                )
            new = out[0, ids["input_ids"].shape[1] :].tolist()
            n = next((i for i, t in enumerate(new) if t in eos), len(new))
            total += n
            texts.append(tok.decode(new[:n], skip_special_tokens=True))
        return total, texts

    return run


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    import torch

    from reasonkd.data import build_dataset
    from reasonkd.data.prompts import DEFAULT_TEMPLATE, render
    from reasonkd.data.verify import verify_item
    from reasonkd.models import resolve
    from reasonkd.models.generation import apply_chat
    from reasonkd.teacher.backends import HFBackend, Request, Sampling, request_key
    from reasonkd.teacher.generate import select_items

    data = build_dataset("recipes/data/quick.yaml", tempfile.mkdtemp(prefix="bench-teacher-") + "/quick")
    items = select_items(str(data), "train", "math", args.problems)
    sampling = Sampling(temperature=0.0, top_p=1.0, max_new_tokens=args.max_new_tokens)
    reqs = []
    for it in items:
        system, user = render(DEFAULT_TEMPLATE, it)
        reqs.append(Request(request_key(args.model, system, user, sampling, 0), system, user))
    model_dir = resolve(args.model).path

    backend = HFBackend(args.model, batch_size=args.batch_size, dtype="auto")
    prompts = [apply_chat(backend.tokenizer, r.user, r.system) for r in reqs]

    def ours(limit: int | None = None):
        sub = reqs[:limit]
        res = [r for group in backend.generate(sub, sampling) for r in group]
        by_key = {r.key: r for r in res}
        return sum(r.new_tokens for r in res), [by_key[q.key].text for q in sub]

    rows = [
        (f"reasonkd hf backend (batch {args.batch_size}, length-sorted, {backend.dtype})", ours),
        (
            "plain HF generate, batch 1, float32",
            _plain_generate(model_dir, torch.float32, prompts, args.max_new_tokens),
        ),
        (
            "plain HF generate, batch 1, bfloat16",
            _plain_generate(model_dir, torch.bfloat16, prompts, args.max_new_tokens),
        ),
    ]
    for _, fn in rows:  # warm-up (kernel selection, allocator) outside the timings
        fn(1)
    # rounds interleave the three runners, so load from other jobs on the machine hits all alike
    speeds = {name: [] for name, _ in rows}
    outs = {}
    for _ in range(args.repeats):
        for name, fn in rows:
            t0 = time.perf_counter()
            outs[name] = fn()
            speeds[name].append(outs[name][0] / (time.perf_counter() - t0))
            print(f"{name}: {speeds[name][-1]:.1f} tok/s", flush=True)
    results = []
    for name, _ in rows:
        tokens, texts = outs[name]
        ok = sum(verify_item(it, t) for it, t in zip(items, texts))
        results.append((name, statistics.median(speeds[name]), speeds[name], tokens, ok))
    peer = results[1][1]
    record_section("Teacher", _section(args, len(items), results, peer))
    print(f"ours / plain HF batch 1: {results[0][1] / peer:.1f}x")


def _section(args, n_items: int, results: list[tuple], peer: float) -> str:
    """The BENCHMARKS.md "Teacher" section: command, machine, and one table row per runner."""
    table = "\n".join(
        f"| {n} | {m:.1f} ({', '.join(f'{s:.1f}' for s in sp)}) | {tok} | {ok}/{n_items} | {m / peer:.1f}x |"
        for n, m, sp, tok, ok in results
    )
    cmd = (
        f".venv/bin/python benchmarks/bench_teacher.py --model {args.model} "
        f"--problems {args.problems} --max-new-tokens {args.max_new_tokens} --batch-size {args.batch_size} "
        f"--repeats {args.repeats}"
    )
    return (
        f"Command: `{cmd}`  \nMachine: {machine()}; commit {git_rev()}; {time.strftime('%Y-%m-%d')}; "
        f"peak RSS {peak_rss_mb():.0f} MB\n\n"
        f"Trace generation throughput, {args.model}, {n_items} math problems (quick recipe, train), "
        f"greedy, max {args.max_new_tokens} new tokens, default teacher template; tokens/s counts generated "
        f"tokens up to EOS, median of {args.repeats} runs (all runs in brackets; the rounds interleave the "
        "three runners, after a warm-up).\n\n"
        "| generation | tok/s median (runs) | tokens | verified | vs plain HF b=1 fp32 |\n"
        "|---|---|---|---|---|\n" + table
    )


if __name__ == "__main__":
    main()
