"""Speed and size of a model: batch-1 latency, batched throughput inputs, parameters, peak RSS.

    from reasonkd.eval.measure import measure_latency
    lat = measure_latency(model, tok, prompts[:5], max_new_tokens=64)
    lat = engine_latency(engine, prompts[:5], max_new_tokens=64)   # the same numbers from a generation engine
    # {'ttft_ms': {'p50', 'p95'}, 'ms_per_token': ..., 'latency_ms': {'p50', 'p95'}, 'tokens_per_s': ...}

Latency is measured at batch 1, greedy, one problem at a time (what one user
waits for). A stopping-criteria hook timestamps every decoding step, so time
to first token (prefill + first step) and the per-token decode time come from
the same run instead of two.
"""

from __future__ import annotations

import os
import resource
import time

import torch

from reasonkd.eval.metrics import percentiles
from reasonkd.models.engines.base import Engine


def reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter (Linux >= 4.0); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_mb(field: str) -> float | None:
    """A memory line of /proc/self/status ("VmRSS", "VmHWM") in MiB; None where /proc is missing."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def rss_mb() -> float:
    """Resident memory of this process now, in MiB (0.0 where /proc is missing)."""
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process since the last reset_peak_rss(), in MiB."""
    peak = _status_mb("VmHWM")
    return peak if peak is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _StepClock:
    """StoppingCriteria that never stops, only records when each new token was produced."""

    def __init__(self):
        self.times: list[float] = []

    def __call__(self, input_ids, scores, **kwargs):
        self.times.append(time.perf_counter())
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


@torch.inference_mode()
def measure_latency(model, tokenizer, prompts: list[str], max_new_tokens: int = 64, warmup: int = 1) -> dict:
    """Batch-1 greedy latency over `prompts` (already chat-formatted)."""
    from transformers import StoppingCriteriaList

    from reasonkd.models.generation import _stop_ids

    stop = _stop_ids(model, tokenizer)
    device = next(model.parameters()).device
    ttft, per_token, totals, new_tokens = [], [], [], []
    for i, prompt in enumerate(([prompts[0]] * warmup if prompts else []) + list(prompts)):
        enc = tokenizer(prompt, add_special_tokens=False, return_tensors="pt").to(device)
        enc = {k: enc[k] for k in ("input_ids", "attention_mask")}
        clock = _StepClock()
        t0 = time.perf_counter()
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=stop,
            stopping_criteria=StoppingCriteriaList([clock]),
        )
        total = time.perf_counter() - t0
        if i < warmup or not clock.times:
            continue
        n = out.shape[1] - enc["input_ids"].shape[1]
        ttft.append((clock.times[0] - t0) * 1000)
        if len(clock.times) > 1:
            per_token.append((clock.times[-1] - clock.times[0]) * 1000 / (len(clock.times) - 1))
        totals.append(total * 1000)
        new_tokens.append(int(n))
    seconds = sum(totals) / 1000
    return {
        "problems": len(totals),
        "max_new_tokens": max_new_tokens,
        "ttft_ms": percentiles(ttft),
        "latency_ms": percentiles(totals),
        "ms_per_token": (sum(per_token) / len(per_token)) if per_token else float("nan"),
        "new_tokens": sum(new_tokens),
        "tokens_per_s": sum(new_tokens) / seconds if seconds else float("nan"),
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }


def engine_latency(gen: Engine, prompts: list[str], max_new_tokens: int) -> dict:
    """measure_latency's numbers for an engine without a torch model (openvino, vllm)."""
    raw = gen.latency(prompts, max_new_tokens)
    seconds = sum(raw["total_s"])
    return {
        "problems": len(raw["total_s"]),
        "max_new_tokens": max_new_tokens,
        "ttft_ms": percentiles([t * 1000 for t in raw["ttft_s"]]),
        "latency_ms": percentiles([t * 1000 for t in raw["total_s"]]),
        "ms_per_token": (1000 * sum(raw["per_token_s"]) / len(raw["per_token_s"]))
        if raw["per_token_s"]
        else float("nan"),
        "new_tokens": sum(raw["new_tokens"]),
        "tokens_per_s": sum(raw["new_tokens"]) / seconds if seconds else float("nan"),
        "threads": None,
        "cpu_count": os.cpu_count(),
        "engine": gen.name,
    }
