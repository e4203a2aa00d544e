"""Teacher correction: a short LoRA pass of the teacher on its own verified traces, before its logits are used.

    from reasonkd.pipeline.correct import CorrectionConfig, correct_teacher
    folder = correct_teacher("qwen2.5-coder-0.5b", "runs/traces", "runs/teacher-corrected",
                             CorrectionConfig(steps=20))   # -> runs/teacher-corrected/final (merged weights)

A teacher fine-tuned on the verified traces it wrote gives sharper, better
calibrated soft targets on exactly that text, and learns the prompt format
the student is trained on (Minitron's "teacher correction"; torchtune's KD
recipe fine-tunes its teacher first). The pass is reasonkd's own trainer
(`reasonkd.distill.stages.run_recipe`) with one stage of cross-entropy only
and LoRA adapters, merged into the weights at the end, so the result is a
plain model folder any recipe can name as its `teacher`. Rerunning resumes
(or returns the finished folder at once).

In `reasonkd compare` the shared `teacher_correction` key sets this up and an
arm opts in with `corrected_teacher: true` (docs/compare.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from reasonkd.config import from_dict
from reasonkd.distill.recipe import DistillRecipe
from reasonkd.distill.stages import run_recipe
from reasonkd.errors import ConfigError


@dataclass
class CorrectionConfig:
    steps: int = 0
    """Optimizer steps of the LoRA pass on the teacher's verified traces (0 = no correction)."""
    lr: float = 1e-4
    """Peak learning rate of the pass (cosine decay, 2 warm-up steps)."""
    lora_r: int = 16
    """LoRA rank (alpha = 2 r); the adapters are merged into the weights at the end."""
    batch_size: int = 4
    """Traces per optimizer step."""
    max_length: int = 384
    """Tokens per training example (prompt + trace)."""
    traces: str = ""
    """Verified teacher traces to train on ("" = the traces the arms train on)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward: less memory (without it a 1.5b teacher at batch 8 reached
    23.5 GB on a CPU), ~30% more time, the same values."""
    bf16_autocast: bool | str = False
    """bf16 autocast while training: true | false | auto (on where bf16 is native: GPUs, CPUs with AMX or
    AVX-512-BF16; keep it off on CPUs without native bf16)."""

    def __post_init__(self):
        if self.steps < 0 or self.lora_r < 1 or self.batch_size < 1:
            raise ConfigError(
                f"steps must be >= 0, lora_r and batch_size >= 1 (got {self.steps}, {self.lora_r}, {self.batch_size})"
            )
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")


def correction_recipe(
    teacher: str, traces: str, out: str | Path, cfg: CorrectionConfig, seed: int = 0, device: str = "auto"
) -> DistillRecipe:
    """The DistillRecipe of the pass: the teacher is the model being trained, ce only, LoRA on."""
    if cfg.steps < 1:
        raise ConfigError("teacher_correction.steps must be >= 1 to correct the teacher")
    return from_dict(
        DistillRecipe,
        {
            "student": teacher,
            "teacher": "",
            "data": {"path": str(traces)},
            "output_dir": str(out),
            "seed": seed,
            "stages": [
                {
                    "name": "correct",
                    "kind": "logic",
                    "steps": cfg.steps,
                    "lr": cfg.lr,
                    "warmup": min(2, cfg.steps),
                    "losses": [{"name": "ce"}],
                }
            ],
            "lora": {"enabled": True, "r": cfg.lora_r, "alpha": 2 * cfg.lora_r},
            "bf16_autocast": cfg.bf16_autocast,
            "gradient_checkpointing": cfg.gradient_checkpointing,
            "max_length": cfg.max_length,
            "batch_size": cfg.batch_size,
            "save_every": max(1, cfg.steps // 4),
            "device": device,
            "prune_finished_checkpoints": True,
        },
    )


def correct_teacher(
    teacher: str,
    traces: str,
    out: str | Path,
    cfg: CorrectionConfig,
    *,
    seed: int = 0,
    device: str = "auto",
    progress: bool = True,
) -> Path:
    """Fine-tune `teacher` (LoRA, ce only) on its verified `traces`; returns the merged model folder.

    `traces`: a traces JSONL or a `reasonkd teacher generate` folder. Resumable: rerun with the same
    arguments to continue an interrupted pass; a finished one returns at once."""
    recipe = correction_recipe(teacher, cfg.traces or traces, out, cfg, seed=seed, device=device)
    return run_recipe(recipe, resume=True, progress=progress)


def correct_teacher_with_cache(
    teacher: str,
    traces: str,
    folder: str | Path,
    cfg: CorrectionConfig,
    *,
    like_cache: str | None = None,
    device: str = "auto",
    progress: bool = True,
    log_fn=print,
) -> Path:
    """`correct_teacher` into folder/final, then, when `like_cache` names a finished teacher logit cache, the
    corrected teacher's cache into folder/logits with the same k, max length and storage dtype.

    Both halves resume: a finished pass returns at once, a finished cache (its meta.json, written last)
    is kept."""
    folder = Path(folder)
    log_fn(f"teacher correction: LoRA pass of {teacher} on its verified traces ({cfg.steps} steps) -> {folder}")
    final = correct_teacher(teacher, traces, folder, cfg, device=device, progress=progress)
    cache = folder / "logits"
    if like_cache and not (cache / "meta.json").is_file():
        from reasonkd.teacher.logits import teacher_logits

        meta = json.loads((Path(like_cache) / "meta.json").read_text())
        log_fn(f"teacher logits: the corrected teacher's top-{meta['k']} cache -> {cache}")
        teacher_logits(
            str(final),
            traces,
            cache,
            k=meta["k"],
            max_length=meta.get("max_length"),
            cache_dtype=meta.get("dtype", "float16"),
            device=device,
            progress=progress,
        )
    return final
