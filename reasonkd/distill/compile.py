"""torch.compile (inductor) of the student's decoder layers for one training stage, when it pays.

    compiled = compile_student(student, setting=recipe.compile, steps=total, min_steps=recipe.compile_min_steps)

Recipe keys `compile: auto | true | false` and `compile_min_steps`. Compiling costs a fixed time at the
first steps (and again for each new sequence-length regime until dynamic shapes kick in); it pays only when
the stage runs enough steps to earn it back, so `auto` compiles a stage of at least `compile_min_steps`
steps. The default comes from measuring compile time against the per-step saving on CPU
(BENCHMARKS.md "Training step profile"). Each decoder layer is compiled in place (`nn.Module.compile`):
parameter names, LoRA adapters, state dicts and checkpoints are unchanged, and the numerics are the
same kernels fused (tested to float tolerance, not bit for bit).
"""

from __future__ import annotations

import logging

from reasonkd.errors import ConfigError

log = logging.getLogger(__name__)
COMPILE_SETTINGS = (True, False, "auto")


def check_setting(setting) -> None:
    if setting not in COMPILE_SETTINGS:
        raise ConfigError(f"compile must be true, false or auto, got {setting!r}")


def should_compile(setting, steps: int, min_steps: int) -> bool:
    """true: always; false: never; auto: when the stage runs at least min_steps steps (0 = never)."""
    check_setting(setting)
    if setting == "auto":
        return min_steps > 0 and steps >= min_steps
    return bool(setting)


def compile_student(model, setting, steps: int, min_steps: int) -> bool:
    """Compile the decoder layers of `model` (a CausalLM or its peft wrapper) in place; True if compiled."""
    if not should_compile(setting, steps, min_steps):
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        log.warning("compile: %s has no decoder layers list; running eager", type(base).__name__)
        return False
    for layer in layers:
        layer.compile(dynamic=True)
    log.info("compile: %d decoder layers compiled with inductor (%s, %d steps)", len(layers), setting, steps)
    return True
