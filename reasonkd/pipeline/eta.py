"""How long each `reasonkd demo` step will take on this machine: the ETA printed at start and `--plan`.

    secs, source = machine_estimate(cfg)     # {"data": s, "eval_before": s, ...}, and which figures it used
    secs = estimate(cfg, cuda=False)          # the same from the reference machine's rates alone
    print_plan(cfg)                           # `reasonkd demo --plan`: the same, printed; runs nothing

Estimates are work (tokens, from the config sizes) divided by rates. RATES were measured on one reference
machine; a machine differs from it by its CPU (vector units, bf16 or not), threads and precision, so a few
seconds of measured throughput HERE rescale them: a short batched generation and one training step of the
actual student, in the precision `auto` picks here (reasonkd.utils.hardware). Those figures are cached
per machine, student and precision (REASONKD_HOME/hardware/eta-*.json). Update RATES and REFERENCE from a
run's `timings.md` when the reference machine changes (docs/demo.md, "ETA").
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.pipeline.config import DemoConfig
from reasonkd.utils import hardware
from reasonkd.utils.io import write_json

log = logging.getLogger(__name__)

# Tokens/s on the reference machine: AMD EPYC (AVX2 only; flags: avx2 fma), 2 cores;
# openvino engine, float32 weights, bf16 autocast off; measured 2026-11-30 by
# `python benchmarks/bench_precision.py --rates --write-eta`.
# gen: batched greedy generation (batch 16); lat: batch 1; train: student training (AdamW);
# fwd: frozen teacher forward. A distillation step pays train + fwd.
RATES = {
    "smollm2-135m": {"gen": 205.9, "lat": 37.7, "train": 94.1, "fwd": 509.5},
    "qwen2.5-coder-0.5b": {"gen": 74.0, "lat": 10.6, "train": 26.3, "fwd": 137.5},
    # not measured: the 0.5b rates / 3 (3x the parameters)
    "qwen2.5-coder-1.5b": {"gen": 24.7, "lat": 3.5, "train": 8.8, "fwd": 45.8},
}
# what `measure_here` gives for smollm2-135m on the machine of RATES (tokens/s); None = not measured
# there, and then the rates are used unscaled
REFERENCE = {
    "machine": "AMD EPYC (AVX2 only; flags: avx2 fma), 2 cores, openvino engine, float32",
    "gen": 115.6,
    "train": 133.7,
}
GPU_SPEEDUP = 20.0  # rough, used only when nothing could be measured on a GPU machine
# mean answer length as a fraction of max_new_tokens (measured): an untrained student and the teacher
# mostly run long; trained students stop after their "#### n" line; teacher traces (1 worked example)
EVAL_FILL, EVAL_FILL_TRAINED, TRACE_FILL = 0.7, 0.3, 0.85
ROBUST_PROMPTS = 9.5  # prompts per n_robust problem (originals + perturbed): 1,902 at --per-type 200
TRAIN_TOKENS = 120  # mean prompt + trace tokens per training example (capped by max_length)
PROBE = {"prompts": 8, "new_tokens": 24, "train_batch": 2, "train_len": 128, "version": 2}
PROBE_QUESTION = (
    "A farmer has {n} sheep and buys 7 more each week for 5 weeks. How many sheep does he have? "
    'Answer with brief numbered steps, then the final line "#### <number>".'
)


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when torch sees a GPU, else "cpu"; anything else as given."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _rate(model: str, kind: str, scale: dict[str, float]) -> float:
    r = RATES.get(model, RATES["smollm2-135m"])[kind]
    return r * scale.get("gen" if kind in ("gen", "lat") else "train", 1.0)


def estimate(cfg: DemoConfig, cuda: bool = False, scale: dict[str, float] | None = None) -> dict[str, float]:
    """Seconds per demo step from the config sizes and RATES, times `scale` ({"gen": x, "train": y}: this
    machine's throughput over the reference's; None = the reference machine, or GPU_SPEEDUP on a GPU)."""
    if scale is None:
        scale = {"gen": GPU_SPEEDUP, "train": GPU_SPEEDUP} if cuda else {}

    def eval_s(model: str, fill: float = EVAL_FILL) -> float:
        prompts = cfg.n_test + cfg.n_unseen + ROBUST_PROMPTS * cfg.n_robust
        batched = prompts * fill * cfg.eval_max_new_tokens / _rate(model, "gen", scale)
        single = (64 * cfg.latency_problems + cfg.case_tokens) / _rate(model, "lat", scale)
        return 10.0 + batched + single  # + loading the model

    d = cfg.distill  # the training recipe: its stages' steps, batch and length
    tok = cfg.train_steps * d.batch_size * d.grad_accum * min(TRAIN_TOKENS, d.max_length)
    eta = {
        "data": 15.0,
        "eval_before": eval_s(cfg.student) + eval_s(cfg.teacher),
        "traces": cfg.n_traces * TRACE_FILL * cfg.teacher_max_new_tokens / _rate(cfg.teacher, "gen", scale),
    }
    tc = cfg.teacher_correction  # the teacher's LoRA pass on those traces, when the demo corrects it
    if tc.steps:
        eta["correct"] = (
            tc.steps * tc.batch_size * min(TRAIN_TOKENS, tc.max_length) / _rate(cfg.teacher, "train", scale)
        )
    return eta | {
        "distill": tok / _rate(cfg.student, "train", scale) + tok / _rate(cfg.teacher, "fwd", scale),
        "sft": tok / _rate(cfg.student, "train", scale),
        "eval_after": 2 * eval_s(cfg.student, EVAL_FILL_TRAINED),
        "report": 10.0,
    }


# ------------------------------------------------------------------ measured figures of this machine


def _engine(cfg: DemoConfig, device: str) -> str:
    """The generation engine the demo's steps will use here (hf when the config names none)."""
    from reasonkd.models.engines import resolve_engine

    try:
        return resolve_engine(getattr(cfg, "engine", "hf"), device, cfg.student)
    except Exception:  # noqa: BLE001 -- an unresolvable student is reported by machine_figures
        return "hf"


def _cache_path(cfg: DemoConfig, device: str, dtype: str, autocast: bool, engine: str = "hf"):
    import torch

    m = hardware.probe()
    key = hardware.machine_key(m.cpu_model, m.flags, m.gpu, m.torch)
    student = re.sub(r"[^A-Za-z0-9._-]+", "_", cfg.student)[-60:]
    name = (
        f"eta-{key}-{student}-{device}-{engine}-{dtype}-{'autocast' if autocast else 'noautocast'}"
        f"-t{torch.get_num_threads()}-v{PROBE['version']}.json"
    )
    return hardware.cache_dir() / name


def best_seconds(fn, repeats: int = 1) -> float:
    """The shortest wall time of `repeats` calls of `fn()` (other processes only ever slow a call down)."""
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return max(best, 1e-6)


def engine_tps(engine, n_prompts: int, new_tokens: int, batch_size: int, repeats: int = 1) -> float:
    """Tokens/s of greedy generation through a generation engine (reasonkd.models.engines): `n_prompts`
    math prompts, up to `new_tokens` each; the best of `repeats` runs after a short warm-up."""
    from reasonkd.models.generation import apply_chat

    prompts = [apply_chat(engine.tokenizer, PROBE_QUESTION.format(n=10 + 3 * i)) for i in range(n_prompts)]
    engine.generate(prompts[:2], max_new_tokens=2, batch_size=2)  # first-call allocations are not throughput
    best = 0.0
    for _ in range(repeats):
        t0 = time.perf_counter()
        outs = engine.generate(prompts, max_new_tokens=new_tokens, batch_size=batch_size)
        best = max(best, sum(o.new_tokens for o in outs) / max(time.perf_counter() - t0, 1e-6))
    return best


def measure_here(student: str, device: str, dtype, autocast: bool, engine: str = "hf") -> dict[str, float]:
    """A few seconds of throughput of `student` here: {"gen": tok/s of a short batched greedy generation
    through the demo's generation `engine` (PROBE sizes), "train": tok/s of one training step}."""
    import torch  # lazy, like the model imports: `--plan` from the cache needs neither

    from reasonkd.models import load_model
    from reasonkd.models.engines import make_engine

    gen_engine = make_engine(engine, student, dtype=hardware.dtype_name(dtype), device=device)
    try:
        gen = engine_tps(gen_engine, PROBE["prompts"], PROBE["new_tokens"], PROBE["prompts"], repeats=2)
    finally:
        gen_engine.close()
    # training: fp32 master weights (as reasonkd.distill trains), autocast as chosen, forward + backward
    model, _ = load_model(student, dtype="float32", device=device)
    model.train()
    vocab = model.get_input_embeddings().weight.shape[0]
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (PROBE["train_batch"], PROBE["train_len"]), generator=g).to(device)
    kind = "cuda" if device.startswith("cuda") else "cpu"

    def step(x):
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=autocast):
            loss = model(input_ids=x, labels=x).loss
        loss.backward()
        model.zero_grad(set_to_none=True)

    step(ids[:1, :16])  # warm-up
    train = ids.numel() / best_seconds(lambda: step(ids))
    return {"gen": round(gen, 2), "train": round(train, 2)}


def _load() -> float:
    """Runnable processes per core over the last minute (0 where the OS does not say)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:
        return 0.0


def _not_ready(student: str) -> str | None:
    """Why a shipped alias cannot be measured in seconds (not installed / not converted yet), else None:
    the conversion takes minutes and belongs to the run, not to its estimate."""
    from reasonkd.models import cache
    from reasonkd.models.registry import get_spec

    spec = get_spec(student)
    if spec is None:
        return None
    folder = cache.hf_dir(spec)
    if folder.exists() and cache.verify_cache(folder) is None:
        return None
    return "not in the model cache yet (the run converts it first)"


def machine_figures(cfg: DemoConfig, refresh: bool = False) -> dict:
    """This machine's figures for `cfg` (measured once, then read from the cache): {"gen", "train",
    "dtype", "autocast", "precision", "measured_at", "cache", "machine"}; {"error": why} if the student
    could not be measured (then the reference rates are used as they are)."""
    device = resolve_device(cfg.device)
    torch_dtype, reason = hardware.resolve_dtype(cfg.dtype, device)
    dtype = hardware.dtype_name(torch_dtype)
    autocast, _ = hardware.resolve_autocast(cfg.bf16_autocast, device)
    engine = _engine(cfg, device)
    path = _cache_path(cfg, device, dtype, autocast, engine)
    base = {
        "dtype": dtype,
        "autocast": autocast,
        "engine": engine,
        "precision": reason,
        "machine": hardware.probe().summary(),
        "cache": str(path),
    }
    if path.is_file() and not refresh:
        try:
            cached = json.loads(path.read_text())
            # figures taken while other work crowded the CPU are taken again once it is quieter
            if not (cached.get("load", 0) > 1.5 and _load() < cached["load"] / 2):
                return {**base, **cached, "cached": True}
        except (OSError, json.JSONDecodeError, TypeError):
            pass  # measured again below and rewritten
    not_ready = _not_ready(cfg.student)
    if not_ready:
        return {**base, "error": not_ready}
    t0 = time.perf_counter()
    try:
        figures = measure_here(cfg.student, device, torch_dtype, autocast, engine)
    except ReasonkdError:
        # the engine itself cannot run here (e.g. the plugin refuses the precision): every generation step
        # would fail the same way minutes later, so the run stops now with the error and its fix
        raise
    except Exception as e:  # noqa: BLE001 -- a failed measurement must not stop the run; say why it is unscaled
        log.warning(
            "ETA: could not measure %s here (%s: %s); using the reference machine's figures",
            cfg.student,
            type(e).__name__,
            e,
        )
        return {**base, "error": f"{type(e).__name__}: {e}"}
    figures["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    figures["load"] = round(_load(), 2)
    try:
        write_json(path, figures)
    except OSError as e:
        log.debug("ETA figures not cached (%s)", e)
    return {**base, **figures, "cached": False}


def reference_figures(student: str) -> dict[str, float]:
    """What the probe would give for `student` on the reference machine: REFERENCE (smollm2-135m's probe
    there) times the student's RATES over smollm2-135m's, both measured there. The probe here measures the
    student itself, so dividing it by smollm2-135m's figure would count the student's size twice (a 0.5b
    student's whole plan came out ~3.5x too long). A student without RATES is priced as smollm2-135m,
    scaled by its own probe."""
    own, small = RATES.get(student, RATES["smollm2-135m"]), RATES["smollm2-135m"]
    return {k: REFERENCE[k] * own[k] / small[k] for k in ("gen", "train")}


def machine_estimate(cfg: DemoConfig, refresh: bool = False) -> tuple[dict[str, float], list[str]]:
    """(seconds per step scaled to this machine, lines saying which figures were used)."""
    cuda = resolve_device(cfg.device) == "cuda"
    f = machine_figures(cfg, refresh)
    auto = f"bf16 autocast {'on' if f['autocast'] else 'off'}"
    lines = [f"precision: {f['dtype']}, {auto} ({f['precision']})", f"machine: {f['machine']}"]
    if "error" in f:
        lines.append(
            f"machine figures: none ({cfg.student} could not be measured here: {f['error']}); "
            f"estimates are the reference machine's ({REFERENCE['machine']})"
            + (f" x{GPU_SPEEDUP:.0f} for the GPU" if cuda else "")
        )
        return estimate(cfg, cuda), lines
    when = f"cached from {f['measured_at']}" if f.get("cached") else f"measured now in {f.get('seconds', 0):.0f} s"
    when += f", load {f.get('load', 0):.1f} per core"
    lines.append(
        f"machine figures: {cfg.student} {f['dtype']}: generation ({f['engine']}) {f['gen']:.0f} tok/s, "
        f"training step {f['train']:.0f} tok/s ({when}; REASONKD_HOME/hardware/{Path(f['cache']).name})"
    )
    if not (REFERENCE.get("gen") and REFERENCE.get("train")):
        lines.append(
            f"reference machine ({REFERENCE['machine']}): its figures were not measured, so its rates "
            "are used unscaled (calibrate: python benchmarks/bench_precision.py --rates --write-eta)"
        )
        return estimate(cfg, cuda), lines
    ref = reference_figures(cfg.student)
    scale = {"gen": f["gen"] / ref["gen"], "train": f["train"] / ref["train"]}
    lines.append(
        f"reference machine ({REFERENCE['machine']}): {ref['gen']:.0f} / {ref['train']:.0f} "
        f"tok/s for {cfg.student}, so its rates x{scale['gen']:.2f} (generation), x{scale['train']:.2f} (training)"
    )
    return estimate(cfg, cuda, scale), lines


def print_plan(cfg: DemoConfig, log_fn=print) -> dict[str, float]:
    """`reasonkd demo --plan`: the per-step estimate here; touches nothing but the figures cache."""
    cuda = resolve_device(cfg.device) == "cuda"
    eta, source = machine_estimate(cfg)
    log_fn(f"reasonkd demo plan: {cfg.student} <- {cfg.teacher} ({'cuda' if cuda else 'cpu'})")
    for line in source:
        log_fn(f"  {line}")
    for name, sec in eta.items():
        log_fn(f"  {name:<12} ~{sec / 60:.1f} min")
    log_fn(
        f"  total        ~{sum(eta.values()) / 60:.0f} min (reference RATES in reasonkd/pipeline/eta.py, scaled "
        "by the machine figures above)"
    )
    return eta
