"""FLOP accounting for the training benchmarks: model FLOPs per token and this CPU's measured matmul peak.

f = model_flops_per_token(AutoConfig.from_pretrained(path), seq=256, passes=2)
peak = measure_matmul_peak()          # {"bf16": FLOP/s, "fp32": FLOP/s, "threads": n}
"""

from __future__ import annotations

import time


def model_flops_per_token(config, seq: int, passes: float) -> float:
    """Model FLOPs per token: passes x (2 x matmul parameters + causal attention scores).

    matmul parameters = every linear layer incl. lm_head (embedding lookups are free); attention
    scores QK^T and AV = 2 x 2 x layers x (seq / 2) x heads x head_dim per token (causal average).
    passes: 1 = forward, 2 = forward + input-gradient backward (LoRA: frozen weights need no weight
    gradient), 3 = full fine-tuning.
    """
    c = config
    d, layers, inter, vocab = c.hidden_size, c.num_hidden_layers, c.intermediate_size, c.vocab_size
    head_dim = getattr(c, "head_dim", None) or d // c.num_attention_heads
    q = c.num_attention_heads * head_dim
    kv = c.num_key_value_heads * head_dim
    per_layer = d * q + 2 * d * kv + q * d + 3 * d * inter
    linear = layers * per_layer + vocab * d
    attn = 2 * 2 * layers * (seq / 2) * q
    return passes * (2 * linear + attn)


def measure_matmul_peak(n: int = 2048, repeats: int = 8) -> dict:
    import torch

    out = {}
    for name, dtype in (("bf16", torch.bfloat16), ("fp32", torch.float32)):
        a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
        a @ b
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t0)
        out[name] = 2 * n**3 / best
    out["threads"] = torch.get_num_threads()
    return out
