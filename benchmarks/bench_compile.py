"""Is torch.compile worth it for a training step on this CPU? Step times of a LoRA student, eager vs compiled.

    .venv/bin/python benchmarks/bench_compile.py smollm2-135m eager-fp32 4 256
    .venv/bin/python benchmarks/bench_compile.py smollm2-135m eager-bf16 4 256
    .venv/bin/python benchmarks/bench_compile.py smollm2-135m compile-bf16 4 256

Arguments: model, mode (eager | compile, then -fp32 or -bf16 autocast), batch, sequence length. The
student gets LoRA r16 on every linear layer (as bench_distill.py); one step is a forward over random ids,
the lm_head on 256 rows, CE and backward. Four steps, the length alternating by 8 tokens (so dynamic
shapes are exercised); the first compiled step includes the compile time. compile mode compiles each
decoder layer in place with dynamic shapes, as reasonkd.distill.compile does. The break-even step count
is compile overhead / per-step saving (recipe key compile_min_steps).
"""

import sys
import time

import torch
from peft import LoraConfig, get_peft_model

from reasonkd.models import load_model

torch.set_num_threads(2)
name, mode, B, L = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
model, tok = load_model(name, dtype="float32")
model = get_peft_model(
    model,
    LoraConfig(
        r=16,
        lora_alpha=32,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
    ),
)
model.train()
base = model.get_base_model()
dec = base.get_decoder()
if mode.startswith("compile"):
    for layer in dec.layers:
        layer.compile(dynamic=True)
autocast = mode.endswith("bf16")


def step(ids):
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        h = dec(input_ids=ids, use_cache=False).last_hidden_state
        logits = base.get_output_embeddings()(h[:, :-1].reshape(-1, h.shape[-1])[:256])
    loss = torch.nn.functional.cross_entropy(logits.float(), ids[:, 1:].reshape(-1)[:256])
    loss.backward()
    return float(loss.detach())


ts = []
for i in range(4):
    ids = torch.randint(0, 1000, (B, L - (i % 2) * 8))
    t0 = time.perf_counter()
    step(ids)
    ts.append(time.perf_counter() - t0)
    print(mode, i, round(ts[-1], 2), flush=True)
print("RESULT", name, mode, B, L, "first", round(ts[0], 2), "rest", [round(t, 2) for t in ts[1:]])
