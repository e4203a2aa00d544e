"""On-policy distillation (stage kind `on_policy`): the student writes, the teacher scores its tokens.

    stages:
      - name: on_policy
        kind: on_policy
        steps: 50
        rollout: {fraction: 1.0, max_new_tokens: 128, temperature: 1.0}
        losses: [{name: generalized_jsd, options: {beta: 0.5}}]     # the default of the kind

This is GKD (Agarwal et al. 2024, "On-policy distillation of language models"):
with probability `fraction` (GKD's lambda) a micro-batch's traces are replaced by
completions the CURRENT student samples for the same prompts; the teacher then
reads prompt + student completion (its own tokenisation of the same text when
the tokenizers differ: the cross-tokenizer path of `stages.encode_for_pair`),
and the student minimises the chosen divergence to the teacher on every
position of its own completion (generalized JSD, beta 0.5 by default; any
logit loss name works). The other micro-batches train on the teacher's
verified traces (supervised KD), as GKD's mix does.

Why not `trl.experimental.gkd.GKDTrainer` (or trl's DistillationTrainer): both
run their own HF Trainer loop with a single tokenizer, so they could not use
reasonkd's stage schedule, resumable checkpoints or the cross-tokenizer
alignment. We follow their formulation (lambda, beta, temperature; the
`benchmarks/bench_distill.py` peer is GKDTrainer) and generate with
`reasonkd.models.generation.generate_batch`.

Determinism: the sampling seed and the on/off-policy draw depend only on
(recipe seed, stage, global micro-batch index), so a resumed stage makes the
same choices. Rollouts run in eval mode without gradients.
"""

from __future__ import annotations

import random

import torch

from reasonkd.distill.data import prompt_text


class Rollout:
    """Replace a micro-batch's traces with the student's own completions (with probability `fraction`)."""

    def __init__(self, ctx, student, stage, stage_index: int):
        self.ctx, self.student, self.cfg = ctx, student, stage.rollout
        self.seed = ctx.recipe.seed * 1_000_003 + stage_index * 7919
        self.tokenizer = ctx.student_tok
        self.last_on_policy = False

    def __call__(self, items: list, micro_index: int) -> list:
        """items: distill.data.Encoded of one micro-batch -> the same examples re-encoded with the
        student's completions as traces (or unchanged for an off-policy micro-batch)."""
        rng = random.Random(self.seed + micro_index)
        self.last_on_policy = rng.random() < self.cfg.fraction
        if not self.last_on_policy:
            return items
        from reasonkd.distill.objective import hf_model
        from reasonkd.models.generation import generate_batch

        examples = [self.ctx.examples[e.id] for e in items]
        prompts = [prompt_text(self.tokenizer, ex["prompt"], ex.get("system")) for ex in examples]
        model = hf_model(self.student)
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                outs = generate_batch(model, self.tokenizer, prompts, max_new_tokens=self.cfg.max_new_tokens,
                                      temperature=self.cfg.temperature, top_p=self.cfg.top_p,
                                      batch_size=len(prompts), seed=self.seed + micro_index, progress=False)
        finally:
            model.train(was_training)
        rollouts = [{**ex, "trace": out.text if out.text.strip() else "..."} for ex, out in zip(examples, outs)]
        encoded = self.ctx.encode(rollouts)
        if len(encoded) != len(items):  # encode drops only prompts that fill max_length: they were kept before
            return items
        return encoded
