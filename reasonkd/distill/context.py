"""What every stage of a distillation run shares (`RunContext`), and a stage's micro-batch stream (`Batches`).

    ctx = RunContext(**pair_fields, recipe=recipe, accelerator=acc, student_tok=tok)   # stages.run_recipe
    batches = Batches(ctx, stage)
    items = batches.items(m)                       # micro-batch m of this process, for any m
    batch = batches.collate(items, with_cache=True)
    total = stage_steps(stage, batches, recipe.grad_accum)

Data: every process tokenises the same examples; epoch e's batch order comes
from (seed, e) and process r takes batches r, r + world, ... so micro-batch m of
a stage is always the same data: the global step is the data position
(reasonkd.distill.trainer trains on it, reasonkd.distill.onpolicy rolls out on it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from reasonkd.distill.crosstok import TokenizerPair
from reasonkd.distill.data import batch_order, collate
from reasonkd.distill.packing import pack_collate, pack_length_for
from reasonkd.distill.recipe import DistillRecipe, StageConfig
from reasonkd.errors import ReasonkdError


@dataclass(kw_only=True)
class RunContext(TokenizerPair):
    """What every stage of one run shares: the encoded pair (crosstok.TokenizerPair: encoded, encode,
    relation, vocab_map, teacher_pad_id) and the rest below."""

    recipe: DistillRecipe
    accelerator: object
    student_tok: object
    teacher: object | None = None
    cache: object | None = None
    examples: dict | None = None
    """Trace rows by id (on-policy stages re-encode them with the student's completions)."""
    stop_after: int | None = None
    steps_this_run: int = 0
    tracking: object | None = None
    """tracking.Tracking of recipe.report_to (made by the first stage; no-op when report_to is empty)."""
    progress: bool = True


class Batches:
    """Micro-batch m of a stage for this process, for any m (so a resumed stage starts mid-epoch)."""

    def __init__(self, ctx: RunContext, stage: StageConfig | None = None):
        r, acc = ctx.recipe, ctx.accelerator
        self.ctx, self.world, self.rank = ctx, acc.num_processes, acc.process_index
        lengths = [len(e.input_ids) for e in ctx.encoded]
        n_batches = math.ceil(len(lengths) / r.batch_size)
        self.per_epoch = n_batches // self.world  # equal count on every process
        if self.per_epoch == 0:
            raise ReasonkdError(
                f"{len(lengths)} examples make {n_batches} batches of {r.batch_size}: too few for "
                f"{self.world} processes; lower batch_size or add data"
            )
        self._orders: dict[int, list[list[int]]] = {}
        self.lengths = lengths
        self.pad_id = ctx.student_tok.pad_token_id if ctx.student_tok.pad_token_id is not None else 0
        self.pack_length = pack_length_for(r, stage, ctx.encoded) if stage is not None else 0  # 0 = padded

    def items(self, m: int) -> list:
        """The Encoded examples of micro-batch m on this process."""
        epoch, pos = divmod(m, self.per_epoch)
        if epoch not in self._orders:
            r = self.ctx.recipe
            self._orders = {epoch: batch_order(self.lengths, r.batch_size, r.seed, epoch, r.data.bucket)}
        return [self.ctx.encoded[i] for i in self._orders[epoch][pos * self.world + self.rank]]

    def collate(self, items: list, with_cache: bool) -> dict:
        if self.pack_length:  # data.packing: the same items, end to end in rows (packing.py)
            return pack_collate(items, self.pad_id, self.pack_length, self.ctx.cache if with_cache else None)
        return collate(items, self.pad_id, self.ctx.cache if with_cache else None, self.ctx.teacher_pad_id)


def stage_steps(stage: StageConfig, batches: Batches, grad_accum: int) -> int:
    if stage.steps:
        return stage.steps
    return max(1, round(stage.epochs * batches.per_epoch / grad_accum))
