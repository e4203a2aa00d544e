"""Sequence packing: a micro-batch's traces laid end to end in rows, attention kept within each trace.

    rows = pack_rows([len(e.input_ids) for e in items], pack_length=512)   # [[2, 0], [1, 3]]: items per row
    batch = pack_collate(items, pad_id, pack_length=512, cache=cache)      # same keys as data.collate

Recipe key `data.packing: true` (data.pack_length, default max_length). The micro-batch holds the same
examples as without packing (so the data order, resume and every per-token loss are unchanged); they only
share rows instead of each taking a padded row of its own, so the step computes fewer pad tokens.

Isolation: `position_ids` restart at 0 for every trace and the model gets no 2-D attention mask, so
transformers (masking_utils.find_packed_sequence_indices, sdpa and eager) builds a block-diagonal causal
mask: a token attends only to earlier tokens of its own trace. The pad tail of a row is a sequence of its
own (positions 0, 1, ...), attention_mask 0 there, labels -100. Labels of each trace's prompt are -100,
so the output position at a trace's last token (which "predicts" the next trace's first token) carries no
loss. Offline soft targets sit at each trace's own output positions (offset by where it starts).

Packing supports what reads token rows or per-position features of a same-tokenizer pair: logit terms
(online or cached soft targets), ce, hidden_mse / hidden_cosine. A stage with any other term runs
padded (`stage_packs`).
"""

from __future__ import annotations

import logging

import torch

from reasonkd.distill.data import IGNORE_INDEX, Encoded, add_soft_targets
from reasonkd.errors import ReasonkdError

log = logging.getLogger(__name__)
UNSUPPORTED_LOSSES = ("attention_kl", "unlikelihood", "preference", "onpolicy_rkl")
"""Terms that need a trace in a row of its own (attention maps over keys, a second sequence per row)."""


def pack_rows(lengths: list[int], pack_length: int) -> list[list[int]]:
    """Item indices per row: first-fit decreasing into rows of at most pack_length tokens (deterministic;
    ties keep the original order). An item longer than pack_length gets a row of its own."""
    rows: list[list[int]] = []
    fill: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda i: (-lengths[i], i)):
        for r, used in enumerate(fill):
            if used + lengths[i] <= pack_length:
                rows[r].append(i)
                fill[r] += lengths[i]
                break
        else:
            rows.append([i])
            fill.append(lengths[i])
    return rows


def pack_collate(items: list[Encoded], pad_id: int, pack_length: int, cache=None) -> dict:
    """A packed batch: the keys of data.collate (input_ids, attention_mask, labels (R, W), teacher view as
    the identity, soft targets with `cache`) plus position_ids (R, W), restarting at 0 for every trace."""
    for e in items:
        if e.teacher_input_ids is not None or e.neg_input_ids is not None:
            raise ReasonkdError(
                f"example {e.id!r}: packing needs a same-tokenizer pair without negatives; set data.packing: false"
            )
        if e.prompt_len < 1:  # the -100 prompt label is what stops a loss across the trace boundary
            raise ReasonkdError(f"example {e.id!r}: packing needs a non-empty prompt")
    layout = pack_rows([len(e.input_ids) for e in items], pack_length)
    width = max(sum(len(items[i].input_ids) for i in row) for row in layout)
    input_ids = torch.full((len(layout), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros_like(input_ids)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    position_ids = torch.zeros_like(input_ids)
    places = [(0, 0)] * len(items)
    for r, row in enumerate(layout):
        start = 0
        for i in row:
            e = items[i]
            n = len(e.input_ids)
            ids = torch.tensor(e.input_ids, dtype=torch.long)
            input_ids[r, start : start + n] = ids
            attention_mask[r, start : start + n] = 1
            labels[r, start + e.prompt_len : start + n] = ids[e.prompt_len :]
            position_ids[r, start : start + n] = torch.arange(n)
            places[i] = (r, start)
            start += n
        position_ids[r, start:] = torch.arange(width - start)  # the pad tail: a sequence of its own
    batch = {
        "ids": [e.id for e in items],
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "labels": labels,
        "position_ids": position_ids,
        "teacher_input_ids": input_ids,
        "teacher_attention_mask": attention_mask,
        "teacher_index": torch.arange(width).expand(len(layout), width).clone(),
        "teacher_identity": True,
    }
    if cache is not None:
        add_soft_targets(batch, items, cache, width, places=places, n_rows=len(layout))
    return batch


def stage_packs(recipe, stage) -> bool:
    """True when this stage trains on packed rows: data.packing is on and none of its terms needs each trace
    in a row of its own (UNSUPPORTED_LOSSES, on_policy stages, data.negatives); such a stage runs padded."""
    if not recipe.data.packing or recipe.data.negatives or stage.kind == "on_policy":
        return False
    return not any(n in UNSUPPORTED_LOSSES for n in stage.loss_names)


def pack_length_for(recipe, stage, encoded: list[Encoded]) -> int:
    """Row length of this stage's packed batches, 0 = padded rows (packing off, or a stage / pair it cannot
    carry: a cross-tokenizer teacher reads its own tokens, which a student row's positions do not index)."""
    if not stage_packs(recipe, stage):
        return 0
    if any(e.teacher_input_ids is not None or e.neg_input_ids is not None for e in encoded):
        log.warning("data.packing: stage %s runs padded: the teacher reads its own tokenisation", stage.name)
        return 0
    return recipe.data.pack_length or recipe.max_length
