"""How long each `reasonkd demo` step will take on this machine: the ETA printed at start and `--plan`.

    secs = estimate(cfg, cuda=False)     # {"data": s, "eval_before": s, ...}, one entry per demo step
    print_plan(cfg)                       # `reasonkd demo --plan`: the same, printed; runs nothing

Estimates are work (tokens, from the config sizes) divided by measured rates. Update RATES and the
fills from a run's `timings.md` when the reference machine changes (docs/demo.md, "ETA").
"""

from __future__ import annotations

from reasonkd.pipeline.config import DemoConfig

# Tokens/s on the 2-core reference CPU (AMD EPYC), bf16 generation weights, calibrated on the default
# demo of 2026-11-28 (batched eval: smollm2 96 tok/s, qwen 0.5b 72; estimate 28 min vs 27.2 measured).
# gen: batched greedy generation, padding included; lat: batch-1 generation (latency column, qualitative
# cases); train: fp32-master + bf16-autocast training; fwd: frozen teacher forward. A distillation
# step pays train + fwd.
RATES = {
    "smollm2-135m": {"gen": 100.0, "lat": 45.0, "train": 220.0, "fwd": 1500.0},
    "qwen2.5-coder-0.5b": {"gen": 75.0, "lat": 19.0, "train": 60.0, "fwd": 500.0},
    "qwen2.5-coder-1.5b": {"gen": 30.0, "lat": 7.0, "train": 20.0, "fwd": 170.0},
}
GPU_SPEEDUP = 20.0  # rough: every rate above on one CUDA GPU (not measured: no GPU was available)
# mean answer length as a fraction of max_new_tokens (measured): an untrained student and the teacher
# mostly run long; trained students stop after their "#### n" line; teacher traces (1 worked example)
EVAL_FILL, EVAL_FILL_TRAINED, TRACE_FILL = 0.7, 0.3, 0.85
TRAIN_TOKENS = 120  # mean prompt + trace tokens per training example (capped by max_length)


def resolve_device(device: str) -> str:
    """"auto" -> "cuda" when torch sees a GPU, else "cpu"; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _rate(model: str, kind: str, cuda: bool) -> float:
    r = RATES.get(model, RATES["smollm2-135m"])[kind]
    return r * (GPU_SPEEDUP if cuda else 1.0)


def estimate(cfg: DemoConfig, cuda: bool) -> dict[str, float]:
    """Seconds per demo step from the config sizes and RATES."""
    def eval_s(model: str, fill: float = EVAL_FILL) -> float:
        batched = (cfg.n_test + cfg.n_unseen) * fill * cfg.eval_max_new_tokens / _rate(model, "gen", cuda)
        single = (64 * cfg.latency_problems + cfg.case_tokens) / _rate(model, "lat", cuda)
        return 10.0 + batched + single  # + loading the model

    steps = cfg.feature_steps + cfg.logic_steps + cfg.output_steps
    tok = steps * cfg.batch_size * cfg.grad_accum * min(TRAIN_TOKENS, cfg.max_length)
    return {
        "data": 15.0,
        "eval_before": eval_s(cfg.student) + eval_s(cfg.teacher),
        "traces": cfg.n_traces * TRACE_FILL * cfg.teacher_max_new_tokens / _rate(cfg.teacher, "gen", cuda),
        "distill": tok / _rate(cfg.student, "train", cuda) + tok / _rate(cfg.teacher, "fwd", cuda),
        "sft": tok / _rate(cfg.student, "train", cuda),
        "eval_after": 2 * eval_s(cfg.student, EVAL_FILL_TRAINED),
        "report": 10.0,
    }


def print_plan(cfg: DemoConfig, log_fn=print) -> dict[str, float]:
    """`reasonkd demo --plan`: the per-step estimate here; touches nothing (not even `cfg.out`)."""
    cuda = resolve_device(cfg.device) == "cuda"
    eta = estimate(cfg, cuda)
    log_fn(f"reasonkd demo plan: {cfg.student} <- {cfg.teacher} ({'cuda' if cuda else 'cpu'})")
    for name, sec in eta.items():
        log_fn(f"  {name:<12} ~{sec / 60:.1f} min")
    log_fn(f"  total        ~{sum(eta.values()) / 60:.0f} min (estimates from RATES in reasonkd/pipeline/eta.py)")
    return eta
