"""On-policy distillation (stage kind `on_policy`): the student writes, the teacher scores its tokens.

    stages:
      - {name: warmup, kind: logic, steps: 20, losses: [{name: ce}]}          # SFT warm-up first
      - name: on_policy
        kind: on_policy
        steps: 20
        rollout: {fraction: 1.0, max_new_tokens: 128, temperature: 1.0}
        losses: [{name: onpolicy_rkl, options: {anchor_ce: 0.1, clip: 5.0}}]   # the default of the kind

With probability `fraction` (GKD's lambda) a micro-batch's traces are replaced by
completions the CURRENT student samples for the same prompts (T = 1 by
default). The teacher reads prompt + student completion in its own chat
template and tokenizer (the cross-tokenizer path of `crosstok.encode_for_pair`)
and the loss pushes the student toward the teacher's likelihood of what the
student wrote: `onpolicy_rkl` (reasonkd/distill/chunk_kd.py) scores each aligned
text chunk when the tokenizers differ (ALM-style chunk likelihoods, REINFORCE
form of the reverse KL, discount 0, clipped) and each token over the whole
vocabulary when they match, plus a cross-entropy anchor on the verified
traces of the same micro-batch. Any online logit loss (generalized_jsd,
reverse_kl, ...) also works here, on the aligned positions only.

This module makes the batch of an on_policy micro-step (`Rollout.batch`): the
sampled completions re-encoded for the pair, `chunk_ids` / `teacher_chunk_ids`
(which chunk each completion token belongs to: -1 for the template, the
prompt, special tokens and an end of turn the student never sampled), and the
`anchor_*` tensors of the original traces. `Rollout.pop_stats` gives what a
step logs about the samples: eos_rate, mean_length (student tokens) and
rollout_sha (a digest of the completions, so two runs can be compared).

Why not `trl.experimental.gkd.GKDTrainer` (or trl's DistillationTrainer): both
run their own HF Trainer loop with a single tokenizer, so they could not use
reasonkd's stage schedule, resumable checkpoints or the cross-tokenizer
alignment. We follow their formulation (lambda, beta, temperature; the
`benchmarks/bench_distill.py` peer is GKDTrainer) and generate with
`reasonkd.models.generation.generate_batch`.

Determinism: the sampling seed and the on/off-policy draw depend only on
(recipe seed, stage, global micro-batch index), so a resumed stage makes the
same choices (tests/distill/test_onpolicy_resume.py kills a run with -9 and
compares the completions' digests). Rollouts run in eval mode without gradients.
"""

from __future__ import annotations

import hashlib
import random

import torch

from reasonkd.distill.align import char_offsets
from reasonkd.distill.chunk_kd import chunk_groups
from reasonkd.distill.data import Encoded, prompt_text
from reasonkd.distill.forward import hf_model
from reasonkd.errors import ReasonkdError
from reasonkd.models import generation, load_tokenizer
from reasonkd.models.encoding import end_of_turn_ids


def completion_chunks(
    text: str, e: Encoded, student_tok, teacher_tok=None, finished: bool = True
) -> tuple[list[int], list[int] | None]:
    """Chunk id of every token of an encoded example (student side, teacher side; None = same tokenizer).

    `text` is the completion (the trace) of `e`. Completion tokens get the chunk ids of
    chunk_kd.chunk_groups (one token per chunk when teacher_tok is None); the end-of-turn tokens are
    one last chunk when `finished` (the sample ended by itself), else -1; the prompt is -1. A chunk
    that max_length cut on either side is -1 on both.
    """
    s_off = char_offsets(student_tok, text)
    if teacher_tok is None:
        s_group, t_group, n = list(range(len(s_off))), None, len(s_off)
    else:
        s_group, t_group, n = chunk_groups(s_off, char_offsets(teacher_tok, text))
    end = n if finished else -1
    s = [-1] * e.prompt_len + s_group + [end] * len(end_of_turn_ids(student_tok))
    if len(s) < len(e.input_ids):
        raise ReasonkdError(
            f"example {e.id!r}: {len(e.input_ids)} student tokens but the completion accounts "
            f"for {len(s)}; the trace was encoded with another tokenizer"
        )
    t = None
    if t_group is not None:
        t_prompt = e.teacher_index[e.prompt_len - 1] + 1 if e.teacher_index and e.prompt_len else 0
        if t_prompt <= 0:  # the teacher's prompt was cut: nothing of this completion can be scored
            return [-1] * len(e.input_ids), [-1] * len(e.teacher_input_ids)
        t = [-1] * t_prompt + t_group + [end] * len(end_of_turn_ids(teacher_tok))
    cut = set(s[len(e.input_ids) :]) | (set(t[len(e.teacher_input_ids) :]) if t is not None else set())
    cut.discard(-1)
    s = [-1 if g in cut else g for g in s[: len(e.input_ids)]]
    if t is not None:
        t = [-1 if g in cut else g for g in t[: len(e.teacher_input_ids)]]
    return s, t


def _pad(rows: list[list[int]], width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), -1, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


class Rollout:
    """The batches of an on_policy stage: the student's own completions (with probability `fraction`)."""

    def __init__(self, ctx, student, stage, stage_index: int, anchor: bool = False):
        self.ctx, self.student, self.cfg = ctx, student, stage.rollout
        self.seed = ctx.recipe.seed * 1_000_003 + stage_index * 7919
        self.tokenizer = ctx.student_tok
        self.teacher_tok = load_tokenizer(ctx.recipe.teacher) if ctx.relation == "different" else None
        self.anchor = anchor
        self.last_on_policy = False
        self._stats = {"finished": 0.0, "length": 0.0, "n": 0.0}
        self._texts: list[str] = []

    def batch(self, items: list[Encoded], micro_index: int, collate) -> dict:
        """Micro-batch `micro_index` of the stage: items (the traces' Encoded) -> the collated batch of the
        student's completions, or of the traces themselves for an off-policy micro-batch, with
        chunk_ids / teacher_chunk_ids and (anchor) anchor_input_ids / anchor_attention_mask / anchor_labels.
        collate: (items, with_cache) -> batch dict (context.Batches.collate)."""
        rng = random.Random(self.seed + micro_index)
        self.last_on_policy = rng.random() < self.cfg.fraction
        examples = [self.ctx.examples[e.id] for e in items]
        texts, finished, encoded = [ex["trace"] for ex in examples], [True] * len(items), items
        if self.last_on_policy:
            outs = self._sample(examples, micro_index)
            sampled = self.ctx.encode([{**ex, "trace": o.text} for ex, o in zip(examples, outs)])
            if len(sampled) == len(items):  # encode drops only prompts that fill max_length: they were kept before
                texts, finished, encoded = [o.text for o in outs], [o.finished for o in outs], sampled
                self._record(outs)
            else:
                self.last_on_policy = False
        batch = collate(encoded, False)
        chunks = [
            completion_chunks(t, e, self.tokenizer, self.teacher_tok, f) for t, e, f in zip(texts, encoded, finished)
        ]
        batch["chunk_ids"] = _pad([s for s, _ in chunks], batch["input_ids"].shape[1])
        if self.teacher_tok is None:
            batch["teacher_chunk_ids"] = batch["chunk_ids"]
        else:
            batch["teacher_chunk_ids"] = _pad([t for _, t in chunks], batch["teacher_input_ids"].shape[1])
        if self.anchor:  # the verified traces of the same prompts: the cross-entropy anchor
            traces = collate(items, False)
            batch.update({f"anchor_{k}": traces[k] for k in ("input_ids", "attention_mask", "labels")})
        return batch

    def _sample(self, examples: list[dict], micro_index: int) -> list:
        prompts = [prompt_text(self.tokenizer, ex["prompt"], ex.get("system")) for ex in examples]
        model = hf_model(self.student)
        was_training, use_cache = model.training, model.config.use_cache
        model.eval()
        model.config.use_cache = True  # off for training (student.load_student); the KV cache makes sampling fast
        try:
            # the training step's autocast: under LoRA with bf16 autocast the frozen base linears are stored
            # in bf16 (student.bf16_frozen_base) and take bf16 inputs only under it
            with torch.no_grad(), self.ctx.accelerator.autocast():
                return generation.generate_batch(
                    model,
                    self.tokenizer,
                    prompts,
                    max_new_tokens=self.cfg.max_new_tokens,
                    temperature=self.cfg.temperature,
                    top_p=self.cfg.top_p,
                    batch_size=len(prompts),
                    seed=self.seed + micro_index,
                    progress=False,
                )
        finally:
            model.train(was_training)
            model.config.use_cache = use_cache

    def _record(self, outs: list) -> None:
        self._stats["finished"] += sum(o.finished for o in outs)
        self._stats["length"] += sum(o.new_tokens for o in outs)
        self._stats["n"] += len(outs)
        self._texts.extend(o.text for o in outs)

    def pop_stats(self) -> dict:
        """What this optimizer step's samples looked like, then reset: eos_rate (share that ended by
        themselves), mean_length (sampled student tokens), summed over processes; rollout_sha (this
        process's completions). Empty when no micro-batch of the step was on-policy. Every process calls it."""
        acc = self.ctx.accelerator
        s = self._stats
        total = acc.reduce(
            torch.tensor([s["finished"], s["length"], s["n"]], dtype=torch.float64, device=acc.device), "sum"
        ).tolist()
        texts, self._texts = self._texts, []
        self._stats = {"finished": 0.0, "length": 0.0, "n": 0.0}
        if total[2] == 0:
            return {}
        digest = hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()[:16]
        return {"eos_rate": total[0] / total[2], "mean_length": total[1] / total[2], "rollout_sha": digest}
