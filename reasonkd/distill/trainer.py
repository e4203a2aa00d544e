"""One distillation stage on `accelerate`: the training loop, resumable checkpoints, metrics.

    summary = train_stage(ctx, index, stage, stage_dir, init_from)   # called by stages.run_recipe

The step (`_micro_step`) reads top to bottom: batch -> teacher forward under
no_grad (online) or the cached top-k already in the batch (offline) -> student
forward -> `Objective.loss` (every loss term computed, weighted and summed) ->
backward of that same loss, whose value is what metrics.jsonl logs.
Accelerate owns devices, DDP (gloo on CPU, `accelerate launch --multi_gpu
--num_processes 2` or torchrun), and bf16 autocast around the student's
forward (fp32 master weights). Gradient accumulation is explicit: `no_sync` on
all but the last micro-batch.

Data: `Batches` (reasonkd.distill.context, with the run's `RunContext`): micro-batch
m of a stage is always the same data, so the global step is the data position.

Checkpoints (every `save_every` steps, reasonkd.distill.checkpoint) go to
stage_dir/checkpoints/step-NNNNNN, atomically; a resumed stage loads the newest
one and trims metrics.jsonl back to its step, so an interrupted + resumed stage
logs and computes exactly what an uninterrupted one does.
`run_recipe(..., stop_after=N)` stops with `StopRequested` at the first
checkpoint after N steps of this call (a clean "kill", for tests).
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import resource
import shutil
import time
from pathlib import Path

import torch
from accelerate.utils import set_seed
from safetensors.torch import save_file
from tqdm.auto import tqdm

from reasonkd.config import to_dict
from reasonkd.distill.balance import LossBalancer
from reasonkd.distill.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, trim_metrics
from reasonkd.distill.compile import compile_student
from reasonkd.distill.context import Batches, RunContext, stage_steps
from reasonkd.distill.fsdp import gathered_student, is_fsdp, prepare_fsdp
from reasonkd.distill.forward import DistillStudent, hf_model, project_logits, teacher_forward, token_rows
from reasonkd.distill.heads import use_eager_attention_only_in
from reasonkd.distill.losses import FeatureProjector
from reasonkd.distill.objective import Objective
from reasonkd.distill.onpolicy import Rollout
from reasonkd.distill.recipe import StageConfig
from reasonkd.distill.schedules import lr_factor, temperature_at
from reasonkd.distill.student import load_student, merged_student, trained_student
from reasonkd.distill.tracking import Tracking
from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import atomic_dir, write_json

log = logging.getLogger(__name__)


class StopRequested(ReasonkdError):
    """The run stopped on request after writing a checkpoint (run_recipe's stop_after)."""


# ---------------------------------------------------------------- the stage


def _setup_attention(objective: Objective, student, teacher) -> None:
    """Eager attention (maps) only in the layers whose maps are distilled; sdpa elsewhere."""
    if objective.attn_pairs:
        use_eager_attention_only_in(hf_model(student), [i for i, _ in objective.attn_pairs])
    if teacher is not None:
        use_eager_attention_only_in(hf_model(teacher), [j for _, j in objective.attn_pairs])


def _stage_student(ctx: RunContext, index: int, stage: StageConfig, init_from: str):
    """(student, objective, projector, DistillStudent module) of a stage, attention kernels set."""
    r = ctx.recipe
    set_seed(r.seed + index)
    student = load_student(r, init_from, r.seed + index)
    teacher_cfg = hf_model(ctx.teacher).config if ctx.teacher is not None else None
    objective = Objective(
        stage, r, hf_model(student).config, teacher_cfg, r.chunk_rows, relation=ctx.relation, vocab_map=ctx.vocab_map
    )
    if objective.needs_teacher and ctx.teacher is None:
        raise ReasonkdError(f"stage {stage.name} needs the teacher online but none is loaded")
    _setup_attention(objective, student, ctx.teacher if objective.needs_teacher else None)
    projector = None
    if objective.hidden_pairs:
        projector = FeatureProjector(
            hf_model(student).config.hidden_size, teacher_cfg.hidden_size, n_layers=len(objective.hidden_pairs)
        )
    return student, objective, projector, DistillStudent(student, projector, objective.hidden_pairs)


def train_stage(ctx: RunContext, index: int, stage: StageConfig, stage_dir: Path, init_from: str) -> dict:
    """Train one stage from `init_from` (model name or folder); writes stage_dir/student and done.json."""
    r, acc = ctx.recipe, ctx.accelerator
    student, objective, projector, module = _stage_student(ctx, index, stage, init_from)
    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=stage.lr, weight_decay=stage.weight_decay)
    batches = Batches(ctx, stage)
    total = stage_steps(stage, batches, r.grad_accum)
    compile_student(student, r.compile, total, r.compile_min_steps)  # in place; off unless it pays (compile.py)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, stage.warmup, stage.lr_schedule, stage.min_lr_ratio)
    )
    if acc.ddp_handler is not None:  # a stage without logit losses leaves an untied lm_head unused
        acc.ddp_handler.find_unused_parameters = not objective.logits
    prepare_fsdp(acc, student)  # no-op unless launched with an FSDP accelerate config
    model, optimizer = acc.prepare(module, optimizer)
    balancer = LossBalancer(r.balance_losses)

    if ctx.tracking is None:
        ctx.tracking = Tracking(r.report_to, r.output_dir, to_dict(r), acc.is_main_process)
    metrics_path = stage_dir / "metrics.jsonl"
    state = _resume(ctx, stage, stage_dir, (model, optimizer, scheduler), balancer, total)

    step_fn = _StepRunner(ctx, model, objective, balancer, stage, total, index)
    bar = tqdm(
        total=total,
        initial=state["step"],
        desc=f"stage {index + 1}/{len(r.stages)} {stage.name}",
        unit="step",
        disable=not (ctx.progress and acc.is_main_process),
        dynamic_ncols=True,
    )
    metrics = open(metrics_path, "a", encoding="utf-8") if acc.is_main_process else None
    try:
        for step in range(state["step"], total):
            t0 = time.perf_counter()
            row = step_fn.optimizer_step(step, batches, optimizer, scheduler)
            dt = time.perf_counter() - t0
            state["step"], state["tokens"], state["seconds"] = (
                step + 1,
                state["tokens"] + row["tokens"],
                state["seconds"] + dt,
            )
            row.update(step=step + 1, seconds=round(dt, 4), tok_s=round(row["tokens"] / dt, 1))
            if metrics is not None:
                metrics.write(json.dumps(row) + "\n")
                metrics.flush()
                ctx.tracking.log_step(stage_dir.name, row)
            bar.update(1)
            if (step + 1) % r.log_every == 0 or step + 1 == total:
                bar.set_postfix(loss=f"{row['loss']:.4f}", T=f"{row['temperature']:.2f}", tok_s=f"{row['tok_s']:.0f}")
            ctx.steps_this_run += 1
            if r.save_every and (step + 1) % r.save_every == 0 and step + 1 < total:
                _checkpoint(ctx, stage_dir, stage, step + 1, total, state, balancer, (model, optimizer, scheduler))
    finally:
        bar.close()
        if metrics is not None:
            metrics.close()
    state["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)  # load + train
    # keep only what is saved, and free the training objects before a LoRA merge reloads fp32 weights
    trained, projector_state = _trained_weights(acc, model, projector, init_from)
    del model, module, student, projector, optimizer, scheduler, step_fn
    acc.free_memory()
    gc.collect()
    summary = _finish_stage(ctx, index, stage, stage_dir, trained, projector_state, state, total, init_from)
    ctx.tracking.log_stage_end(stage_dir.name, summary, total)
    return summary


def _checkpoint(
    ctx: RunContext,
    stage_dir: Path,
    stage: StageConfig,
    step: int,
    total: int,
    state: dict,
    balancer: LossBalancer,
    objects,
) -> None:
    """Save the checkpoint after `step` steps (objects: model, optimizer, scheduler); once this call has run
    `stop_after` steps, stop there (StopRequested)."""
    save_checkpoint(
        ctx,
        stage_dir,
        step,
        *objects,
        {
            **state,
            "total_steps": total,
            "stage": stage.name,
            "world_size": ctx.accelerator.num_processes,
            "balancer": balancer.state_dict(),
        },
    )
    if ctx.stop_after is not None and ctx.steps_this_run >= ctx.stop_after:
        raise StopRequested(
            f"stopped on request after step {step} of stage {stage.name}; rerun with --resume to continue"
        )


def _trained_weights(acc, model, projector, init_from: str) -> tuple:
    """(trained student, projector state dict or None) to save, on CPU."""
    if is_fsdp(acc):  # sharded: gather the full weights (collective) into a plain model on the main process
        return gathered_student(model, init_from, acc.is_main_process)
    trained = trained_student(acc.unwrap_model(model).model)
    projector_state = (
        None if projector is None else {k: v.detach().cpu().contiguous() for k, v in projector.state_dict().items()}
    )
    return trained, projector_state


def _resume(ctx: RunContext, stage: StageConfig, stage_dir: Path, objects, balancer: LossBalancer, total: int) -> dict:
    """The stage's state at its newest checkpoint (loaded into model, optimizer, scheduler), or a fresh one;
    metrics.jsonl trimmed back to that step."""
    acc = ctx.accelerator
    state = {"step": 0, "tokens": 0, "seconds": 0.0}
    ckpt = latest_checkpoint(stage_dir)
    if ckpt is not None:
        state = load_checkpoint(ctx, ckpt, *objects)
        balancer.load_state_dict(state.get("balancer", {}))
        log.info("stage %s: resuming from %s (step %d of %d)", stage.name, ckpt, state["step"], total)
    if acc.is_main_process:
        stage_dir.mkdir(parents=True, exist_ok=True)
        for tmp in (stage_dir / "checkpoints").glob(".step-*.tmp"):
            shutil.rmtree(tmp, ignore_errors=True)
        trim_metrics(stage_dir / "metrics.jsonl", state["step"])
    acc.wait_for_everyone()
    return state


class _StepRunner:
    """One optimizer step = grad_accum micro-steps (the loop's body, kept apart for reading)."""

    def __init__(
        self,
        ctx: RunContext,
        model,
        objective: Objective,
        balancer: LossBalancer,
        stage: StageConfig,
        total: int,
        stage_index: int = 0,
    ):
        self.ctx, self.model, self.objective, self.balancer = ctx, model, objective, balancer
        self.stage, self.total = stage, total
        self.acc = ctx.accelerator
        self.student = self.acc.unwrap_model(model).model
        self.online = objective.needs_teacher
        self.attn = bool(objective.attn_pairs)
        self.rollout = None
        if stage.kind == "on_policy":
            self.rollout = Rollout(ctx, self.student, stage, stage_index, anchor=objective.anchor)

    def optimizer_step(self, step: int, batches: Batches, optimizer, scheduler) -> dict:
        r, acc = self.ctx.recipe, self.acc
        temperature = temperature_at(self.stage.temperature, step, self.total)
        sums: dict[str, float] = {}
        tokens = trace_tokens = on_policy = 0
        for micro in range(r.grad_accum):
            m = step * r.grad_accum + micro
            items = batches.items(m)
            if self.rollout is not None:  # on-policy: the student's own completions replace the traces
                batch = self.rollout.batch(items, m, batches.collate)
                on_policy += self.rollout.last_on_policy
            else:
                batch = batches.collate(items, with_cache=self.objective.cache_logits)
            sync = micro == r.grad_accum - 1
            with contextlib.nullcontext() if sync else acc.no_sync(self.model):
                values = self._micro_step(batch, temperature)
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v / r.grad_accum
            tokens += int(batch["attention_mask"].sum())
            trace_tokens += int((batch["labels"] != -100).sum())
        if r.max_grad_norm:
            grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), r.max_grad_norm))
        else:
            grad_norm = float("nan")
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        self.balancer.update({s.name: sums[s.name] for s in self.stage.losses})
        counts = acc.reduce(torch.tensor([tokens, trace_tokens], dtype=torch.float64, device=acc.device), "sum")
        row = {
            "loss": sums.pop("loss"),
            "terms": sums,
            "lr": lr,
            "temperature": temperature,
            "grad_norm": grad_norm,
            "tokens": int(counts[0]),
            "trace_tokens": int(counts[1]),
        }
        if self.rollout is not None:  # eos_rate, mean_length, rollout_sha of the student's samples
            row.update(on_policy_share=on_policy / r.grad_accum, **self.rollout.pop_stats())
        return row

    def _micro_step(self, batch: dict, temperature: float) -> dict[str, float]:
        """batch -> teacher (no_grad, or the cached top-k in the batch) -> student -> Objective.loss -> backward."""
        acc = self.acc
        batch = {k: v.to(acc.device) if torch.is_tensor(v) else v for k, v in batch.items()}
        rows = token_rows(batch)
        teacher_out = None
        if self.online:
            with acc.autocast():
                teacher_out = teacher_forward(self.ctx.teacher, batch, rows, self.objective)
        student_out = self.model(
            batch["input_ids"],
            batch["attention_mask"],
            rows.mask if self.objective.logits else None,
            output_attentions=self.attn,
            position_ids=batch.get("position_ids"),
        )
        if self.objective.logits:
            with acc.autocast():  # outside forward: accelerate would upcast (N, V) logits to fp32
                student_out["logits"] = project_logits(self.student, student_out.pop("trace_hidden"))
        if self.objective.negatives:  # the wrong trace of the same prompt, through the same student
            student_out["neg_logits"], neg_rows = self._trace_logits(batch, "neg_")
            student_out["neg_rows"] = neg_rows
            student_out["neg_wrong"] = torch.nn.functional.pad(batch["neg_wrong"][:, 1:], (0, 1))[neg_rows.mask]
        if self.objective.anchor:  # on-policy: the verified traces of the same prompts (cross-entropy anchor)
            student_out["anchor_logits"], anchor_rows = self._trace_logits(batch, "anchor_")
            student_out["anchor_targets"] = anchor_rows.targets
        loss, logged = self.objective.loss(
            student_out, teacher_out, batch, rows, temperature, self.balancer, lambda t: acc.reduce(t, "mean")
        )
        # free the teacher's and the student's (N, V) logits before backward: they would peak its memory (what
        # backward needs of them autograd holds itself; the fused losses keep only their gradient)
        del teacher_out, student_out
        acc.backward(loss / self.ctx.recipe.grad_accum)
        return logged

    def _trace_logits(self, batch: dict, prefix: str):
        """(student logits (N, V) at the trace rows, Rows) of a second sequence in the batch (`prefix`input_ids)."""
        rows = token_rows({"labels": batch[f"{prefix}labels"]})
        out = self.model(batch[f"{prefix}input_ids"], batch[f"{prefix}attention_mask"], rows.mask)
        with self.acc.autocast():
            return project_logits(self.student, out.pop("trace_hidden")), rows


def _finish_stage(
    ctx: RunContext,
    index: int,
    stage: StageConfig,
    stage_dir: Path,
    trained,
    projector_state,
    state: dict,
    total: int,
    init_from: str,
) -> dict:
    """Save the stage's student (LoRA merged) and projectors, then done.json (written last: the commit)."""
    acc = ctx.accelerator
    summary = {
        "stage": stage.name,
        "kind": stage.kind,
        "index": index + 1,
        "steps": total,
        "losses": [{"name": s.name, "weight": s.weight, "options": s.options} for s in stage.losses],
        "tokens": state["tokens"],
        "seconds": round(state["seconds"], 2),
        "tok_s": round(state["tokens"] / state["seconds"], 1) if state["seconds"] else None,
        "peak_rss_mb": state["peak_rss_mb"],
    }
    summary.update(_loss_summary(stage_dir / "metrics.jsonl") if acc.is_main_process else {})
    acc.wait_for_everyone()
    if acc.is_main_process:
        student = merged_student(trained, init_from)
        student.config.use_cache = True  # switched off for training only
        with atomic_dir(stage_dir / "student") as tmp:
            student.save_pretrained(tmp, safe_serialization=True)
            ctx.student_tok.save_pretrained(tmp)
        if projector_state is not None:  # kept for inspection; never part of the student
            _save_tensors(projector_state, stage_dir / "projectors.safetensors")
        write_json(stage_dir / "done.json", summary)
        if ctx.recipe.prune_finished_checkpoints:  # after done.json: a crash in between leaves them, harmlessly
            shutil.rmtree(stage_dir / "checkpoints", ignore_errors=True)
    acc.wait_for_everyone()
    return summary


def _save_tensors(tensors: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path)


def _loss_summary(metrics_path: Path) -> dict:
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    if not rows:
        return {}
    k = max(1, len(rows) // 10)
    first, last = rows[:k], rows[-k:]
    return {
        "first_loss": rows[0]["loss"],
        "final_loss": rows[-1]["loss"],
        "first_loss_mean": sum(r["loss"] for r in first) / k,
        "final_loss_mean": sum(r["loss"] for r in last) / k,
        "final_terms": rows[-1]["terms"],
        "final_temperature": rows[-1]["temperature"],
    }
