"""`reasonkd bench`: generation speed of one model on one backend, in the table shape of docs/design.md §5.

    from reasonkd.export.bench import bench_model, format_table
    rows = bench_model(model, tok, batch_sizes=(1, 8), new_tokens=64, repeats=3)
    print(format_table(rows))

Every batch generates exactly `new_tokens` greedy tokens per sequence (EOS is
masked), so all backends do the same amount of work whatever they answer.
Per batch size: generated tokens/s over the whole prompt set, time to first
token (prefill + first step) and ms per decoding step, timed inside generate()
by a stopping-criteria clock; medians over `repeats` after one warm-up.
"""

from __future__ import annotations

import os
import statistics
import time

import torch
from transformers import StoppingCriteriaList

from reasonkd.export.parity import DEFAULT_PROBLEMS
from reasonkd.models.generation import apply_chat


class _StepClock:
    """StoppingCriteria that never stops generation, only timestamps each decoding step."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool)


def bench_prompts(tok, n: int = 8) -> list[str]:
    """`n` chat-formatted math questions (the parity set's, repeated if n > 20)."""
    return [apply_chat(tok, DEFAULT_PROBLEMS[i % len(DEFAULT_PROBLEMS)][0]) for i in range(n)]


@torch.inference_mode()
def time_generate(model, tok, prompts: list[str], batch_size: int, new_tokens: int) -> dict:
    """One pass over `prompts` in batches of `batch_size`: seconds, tokens, per-batch TTFT and step times."""
    tok.padding_side = "left"
    total_s, tokens, ttft, step = 0.0, 0, [], []
    for start in range(0, len(prompts), batch_size):
        enc = tok(
            prompts[start : start + batch_size],
            add_special_tokens=False,
            padding=True,
            return_token_type_ids=False,
            return_tensors="pt",
        )
        clock = _StepClock()
        t0 = time.perf_counter()
        out = model.generate(
            **enc,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tok.pad_token_id,
            stopping_criteria=StoppingCriteriaList([clock]),
        )
        total_s += time.perf_counter() - t0
        tokens += (out.shape[1] - enc["input_ids"].shape[1]) * out.shape[0]
        ttft.append((clock.times[0] - t0) * 1000)
        if len(clock.times) > 1:
            step.append((clock.times[-1] - clock.times[0]) * 1000 / (len(clock.times) - 1))
    return {
        "seconds": total_s,
        "tokens": tokens,
        "ttft_ms": statistics.median(ttft),
        "ms_per_token": statistics.median(step) if step else float("nan"),
    }


def summarize(runs: list[dict], **meta) -> dict:
    """Median row over repeats of time_generate (all tokens/s kept for the record)."""
    tps = [r["tokens"] / r["seconds"] for r in runs]
    return {
        **meta,
        "tokens_per_s": statistics.median(tps),
        "tokens_per_s_all": tps,
        "ttft_ms": statistics.median(r["ttft_ms"] for r in runs),
        "ms_per_token": statistics.median(r["ms_per_token"] for r in runs),
        "repeats": len(runs),
    }


def bench_model(
    model,
    tok,
    batch_sizes=(1, 8),
    new_tokens: int = 64,
    repeats: int = 3,
    n_prompts: int | None = None,
    meta: dict | None = None,
) -> list[dict]:
    """One row per batch size (see module doc); `meta` (backend, precision, ...) is copied into each row."""
    prompts = bench_prompts(tok, n_prompts or max(batch_sizes))
    time_generate(model, tok, prompts[: max(batch_sizes)], max(batch_sizes), 4)  # warm-up: allocations, kernels
    rows = []
    for bs in batch_sizes:
        runs = [time_generate(model, tok, prompts, bs, new_tokens) for _ in range(repeats)]
        rows.append(summarize(runs, **(meta or {}), batch_size=bs, new_tokens=new_tokens, prompts=len(prompts)))
    return rows


def hardware() -> str:
    """'<CPU model>, N threads' for the table's hardware-target column."""
    cpu = "CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    return f"{cpu}, {len(os.sched_getaffinity(0))} threads"


def backend_label(backend: str) -> str:
    return {"torch": "PyTorch eager", "onnx": "ONNX Runtime", "openvino": "OpenVINO"}.get(backend, backend)


def format_table(rows: list[dict]) -> str:
    """Markdown table: hardware target | backend | precision | batch | tokens/s | TTFT | ms/token | peak RSS."""
    head = (
        "| hardware target | backend | precision | batch | tokens/s | TTFT ms | ms/token | peak RSS MiB |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    body = ""
    for r in rows:
        rss = f"{r['peak_rss_mb']:.0f}" if r.get("peak_rss_mb") is not None else "-"
        body += (
            f"| {r.get('hardware') or hardware()} | {backend_label(r.get('backend', '?'))} | "
            f"{r.get('precision', '?')} | {r['batch_size']} | {r['tokens_per_s']:.1f} | {r['ttft_ms']:.0f} | "
            f"{r['ms_per_token']:.1f} | {rss} |\n"
        )
    return head + body
