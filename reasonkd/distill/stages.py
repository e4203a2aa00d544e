"""Run a whole distillation recipe: stages in order, each from the previous stage's student.

    from reasonkd.distill.stages import run_recipe
    final_dir = run_recipe("recipes/distill/default.yaml", overrides=["student=smollm2-135m"])
    final_dir = run_recipe(recipe, resume=True)          # continue an interrupted run exactly

Run folder (recipe.output_dir):

    config.yaml                    the resolved recipe (a resumed run must match it)
    stages/<i>-<name>/metrics.jsonl    one line per optimizer step: loss, each term, lr, temperature, tok/s
    stages/<i>-<name>/checkpoints/step-NNNNNN/   resumable mid-stage state (newest kept)
    stages/<i>-<name>/student/     the stage's student (LoRA merged), save_pretrained format
    stages/<i>-<name>/projectors.safetensors     feature projectors (inspection only)
    stages/<i>-<name>/done.json    stage summary, written last: the stage is complete
    final/                         the last stage's student + tokenizer (hard links where the disk allows:
                                   one copy of the weights) + README.md model card
    summary.json                   per-stage summaries and totals

Under `accelerate launch` every process runs this; the main one writes files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import DistributedDataParallelKwargs

from reasonkd.config import load_config, save_config, to_dict
from reasonkd.distill.context import RunContext
from reasonkd.distill.crosstok import encode_for_pair
from reasonkd.distill.modelcard import write_model_card
from reasonkd.distill.negatives import attach_negatives, load_negatives
from reasonkd.distill.fused_cache import one_teacher_cache, open_fused_cache
from reasonkd.distill.recipe import LOGIT_LOSSES, DistillRecipe, fused_caches, needs_teacher_online, soft_source
from reasonkd.distill.trainer import train_stage
from reasonkd.errors import ReasonkdError
from reasonkd.models import load_model, load_tokenizer
from reasonkd.teacher.traces import load_traces
from reasonkd.utils.io import atomic_dir, link_or_copy, write_json

log = logging.getLogger(__name__)
# keys that may change between an interrupted run and its resume (they do not change the maths)
RESUMABLE_CHANGES = {
    "save_every",
    "log_every",
    "keep_checkpoints",
    "prune_finished_checkpoints",
    "gradient_checkpointing",
}
"""Keys a resumed run may change: how often it saves and logs, and memory for time (activation recompute gives
the same values, so a run that ran out of memory can continue with it on)."""
# keys whose default changes the numerics: a run saved before the key existed resumes with the value it ran with
LEGACY_VALUES = {"fused_loss": False}


def make_accelerator(recipe: DistillRecipe):
    """An Accelerator for this recipe: bf16 autocast (fp32 master weights), CPU when there is no GPU;
    each stage sets DDP's find_unused_parameters (a feature-only stage never touches lm_head)."""
    cpu = recipe.device == "cpu" or (recipe.device == "auto" and not torch.cuda.is_available())
    # the mixed-precision setting lives in a process-wide singleton; a second run in one
    # process (tests, notebooks) may ask for another one
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(
        cpu=cpu,
        mixed_precision="bf16" if recipe.bf16_autocast else "no",
        kwargs_handlers=[DistributedDataParallelKwargs()],
    )


def _with_new_defaults(old: dict) -> dict:
    """A saved config with the keys added since it was written (e.g. data.packing) at their defaults, so a
    run started by an older version resumes unless a key it knew changed."""
    defaults = to_dict(DistillRecipe())
    out = {**{k: v for k, v in defaults.items() if k not in old}, **old}
    for k, v in defaults.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = {**{kk: vv for kk, vv in v.items() if kk not in out[k]}, **out[k]}
    return out


def _check_output_dir(out: Path, recipe: DistillRecipe, resume: bool) -> None:
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    if not resume:
        raise ReasonkdError(
            f"output_dir {out} already holds a run; pass --resume to continue it (or choose another output_dir)"
        )
    raw = yaml.safe_load(saved.read_text())
    for key, value in LEGACY_VALUES.items():
        if key not in raw and getattr(recipe, key) != value:
            log.info("%s was started before `%s` existed: it resumes with %s: %s (its numerics)", out, key, key, value)
            setattr(recipe, key, value)
    old, new = _with_new_defaults({**LEGACY_VALUES, **raw}), to_dict(recipe)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        raise ReasonkdError(
            f"--resume: the recipe differs from the run in {out} in {', '.join(diff)}; resume with "
            f"the same recipe (only {', '.join(sorted(RESUMABLE_CHANGES))} may change) or use "
            "another output_dir"
        )


def _load_teacher(recipe: DistillRecipe, device):
    dtype = recipe.teacher_dtype
    if dtype == "auto":
        dtype = "bfloat16" if recipe.bf16_autocast else "float32"
    teacher, tok = load_model(recipe.teacher, dtype=dtype, device=str(device))
    teacher.requires_grad_(False)
    teacher.eval()
    return teacher, tok


def run_recipe(
    recipe: DistillRecipe | str | Path,
    resume: bool = False,
    overrides: list[str] | tuple = (),
    *,
    stop_after: int | None = None,
    progress: bool = True,
) -> Path:
    """Train every stage of `recipe` (a DistillRecipe or a YAML path) and return output_dir/final.

    resume=True continues an interrupted run in the same output_dir exactly (same data order, same
    step count, same numbers). stop_after (tests): raise StopRequested at the first checkpoint once
    this many steps ran in this call.
    """
    if not isinstance(recipe, DistillRecipe):
        recipe = load_config(DistillRecipe, recipe, overrides)
    recipe.check_ready()
    out = Path(recipe.output_dir)
    acc = make_accelerator(recipe)
    _check_output_dir(out, recipe, resume)  # every process checks: an error stops all of them alike
    if (out / "final" / "config.json").is_file() and (out / "summary.json").is_file():
        log.info("%s is already complete", out / "final")
        return out / "final"
    acc.wait_for_everyone()
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(recipe, out)
    examples = load_traces(recipe.data.path, recipe.data.limit)
    student_tok = load_tokenizer(recipe.student)
    pair = encode_for_pair(recipe, examples, student_tok)
    encoded = pair.encoded
    if recipe.data.negatives:
        n_neg = attach_negatives(
            encoded,
            {ex["id"]: ex for ex in examples},
            load_negatives(recipe.data.negatives),
            student_tok,
            recipe.max_length,
        )
        log.info("negatives: %d of %d traces have a wrong trace of the same problem", n_neg, len(encoded))
    uses_cache = any(
        soft_source(s, recipe) == "cache" for st in recipe.stages for s in st.losses if s.name in LOGIT_LOSSES
    )
    cache = None
    if uses_cache and fused_caches(recipe):  # several teachers: their caches mixed in the student's vocabulary
        cache = open_fused_cache(recipe, examples, student_tok)
    elif uses_cache:  # one teacher's cache; another tokenizer's is mapped into the student's vocabulary
        cache = one_teacher_cache(recipe, examples, student_tok)
    ctx = RunContext(
        **{f.name: getattr(pair, f.name) for f in dataclasses.fields(pair)},
        recipe=recipe,
        accelerator=acc,
        student_tok=student_tok,
        cache=cache,
        examples={ex["id"]: ex for ex in examples},
        stop_after=stop_after,
        progress=progress,
    )
    needs_teacher = [needs_teacher_online(s, recipe) for s in recipe.stages]
    done = [(out / "stages" / _stage_name(i, s) / "done.json").is_file() for i, s in enumerate(recipe.stages)]
    if any(n and not d for n, d in zip(needs_teacher, done)):
        ctx.teacher, _ = _load_teacher(recipe, acc.device)

    summaries, init_from = [], recipe.student
    for i, stage in enumerate(recipe.stages):
        stage_dir = out / "stages" / _stage_name(i, stage)
        if done[i]:
            summaries.append(json.loads((stage_dir / "done.json").read_text()))
            log.info("stage %s already done", stage.name)
        else:
            summaries.append(train_stage(ctx, i, stage, stage_dir, init_from))
        init_from = str(stage_dir / "student")
        if ctx.teacher is not None and not any(n and not d for n, d in zip(needs_teacher[i + 1 :], done[i + 1 :])):
            ctx.teacher = None  # no later stage needs it: free its memory
    return _finish_run(ctx, out, Path(init_from), summaries, examples)


def _stage_name(i: int, stage) -> str:
    return f"{i + 1}-{stage.name}"


def _finish_run(ctx, out: Path, last_student: Path, summaries: list[dict], examples: list[dict]) -> Path:
    acc, recipe = ctx.accelerator, ctx.recipe
    if acc.is_main_process:
        total = {
            "steps": sum(s["steps"] for s in summaries),
            "tokens": sum(s.get("tokens", 0) for s in summaries),
            "final_loss": summaries[-1].get("final_loss"),
            "world_size": acc.num_processes,
        }
        summary = {"stages": summaries, "total": total, "n_examples": len(examples), "tokenizer_relation": ctx.relation}
        with atomic_dir(out / "final") as tmp:
            for f in last_student.iterdir():
                if f.is_file():
                    link_or_copy(f, tmp / f.name)  # written once: share the stage's bytes
            save_config(recipe, tmp, "distill_config.yaml")
            write_model_card(tmp / "README.md", recipe, summary)
        write_json(out / "summary.json", summary)
    acc.wait_for_everyone()
    return out / "final"
