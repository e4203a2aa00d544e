"""Traces -> token batches for distillation: loss on the trace only, length buckets, teacher view.

    examples = load_traces("runs/traces")                 # reasonkd.teacher.traces
    encoded = encode_all(examples, student_tok, max_length=512)          # or pair=PairEncoder(...)
    order = batch_order([len(e.input_ids) for e in encoded], batch_size=4, seed=0, epoch=0)
    batch = collate([encoded[i] for i in order[0]], pad_id, cache=LogitCache(dir))

One example is the student's chat prompt (its own chat template, generation
prompt included) followed by the teacher's trace and the end-of-turn token
(`reasonkd.models.encoding.encode_example`, also what the logit-cache writer
uses, so a cache made with the same tokenizer lines up token for token).
`labels` are -100 on the prompt and padding, so every loss counts trace tokens
only.

Teacher side of a batch. The batch carries the student tensors and,
separately, `teacher_input_ids` / `teacher_attention_mask` plus
`teacher_index` (B, L): for each student position, the teacher position that
has read exactly the same text (-1 = none). With the same tokenizer this is
the identity and `teacher_input_ids` is the student's tensor; a
cross-tokenizer teacher (its own tokenisation of the same text, positions
matched by character offsets: `crosstok.PairEncoder`) fills the same fields,
so the training loop does not change.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass

import torch

from reasonkd.errors import ConfigError, ReasonkdError

# encode_example / prompt_text are part of this module's API (the on-policy rollout reads prompts here)
from reasonkd.models.encoding import encode_example, prompt_text  # noqa: F401

log = logging.getLogger(__name__)
IGNORE_INDEX = -100


@dataclass
class DataConfig:
    path: str = ""
    """Teacher traces: a JSONL (rows with `prompt` and `trace`; optional `id`, `answer`, `system`) or a
    `reasonkd teacher generate` folder holding traces.jsonl."""
    logit_cache: str | None = None
    """Folder written by `reasonkd teacher logits` (top-k soft targets); None = no offline soft targets."""
    limit: int | None = None
    """Use only the first N traces."""
    negatives: str | None = None
    """Wrong traces for the unlikelihood / preference losses: a teacher negatives.jsonl (rejected samples)
    or a data-engine JSONL (kind=negative rows); paired with the traces by problem id. None = off."""
    bucket: bool = True
    """Group examples of similar length into batches (less padding); order still shuffled per epoch."""
    packing: bool = False
    """Pack each micro-batch's traces end to end into rows of pack_length tokens, attention kept within each
    trace (reasonkd/distill/packing.py): same examples and per-token losses, fewer pad tokens. Stages whose
    terms need a row per trace (attention_kl, negatives, on_policy) run padded."""
    pack_length: int = 0
    """Tokens per packed row (0 = max_length)."""

    def __post_init__(self):
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit must be >= 1, got {self.limit}")
        if self.pack_length < 0:
            raise ConfigError(f"data.pack_length must be >= 0 (0 = max_length), got {self.pack_length}")


@dataclass
class Encoded:
    """One tokenised example. teacher_input_ids / teacher_index None = the identity (same tokenizer)."""

    id: str
    input_ids: list[int]
    prompt_len: int
    teacher_input_ids: list[int] | None = None
    teacher_index: list[int] | None = None
    neg_input_ids: list[int] | None = None
    """A wrong trace for the same prompt (student tokens; recipe data.negatives), else None."""
    neg_prompt_len: int = 0
    neg_start: int = 0
    """First token of the wrong step in neg_input_ids (negatives.divergence_char)."""


def encode_all(examples: list[dict], tokenizer, max_length: int, pair=None) -> list[Encoded]:
    """Encode every example; ones whose prompt leaves no trace token within max_length are dropped.

    pair: a crosstok.PairEncoder when the teacher reads its own tokens (different tokenizers), else None.
    """
    out, dropped = [], 0
    for n, ex in enumerate(examples):
        eid = ex.get("id", f"example{n}")
        if pair is not None:
            e = pair.encode(ex["prompt"], ex["trace"], ex.get("system"), id=eid)
        else:
            e = Encoded(eid, *encode_example(tokenizer, ex["prompt"], ex["trace"], ex.get("system"), max_length))
        if len(e.input_ids) <= e.prompt_len:
            dropped += 1
            continue
        out.append(e)
    if dropped:
        log.warning("%d example(s) dropped: the prompt alone fills max_length=%d", dropped, max_length)
    if not out:
        raise ReasonkdError(f"no example keeps a trace token within max_length={max_length}; raise max_length")
    return out


def batch_order(
    lengths: list[int], batch_size: int, seed: int, epoch: int, bucket: bool = True, megabatch: int = 32
) -> list[list[int]]:
    """Example indices cut into batches for one epoch, deterministic in (seed, epoch).

    bucket=True: shuffle, sort within windows of `megabatch` batches by length (so a batch holds
    similar lengths: little padding), then shuffle the batch order. The last batch may be smaller.
    """
    rng = random.Random(seed * 1_000_003 + epoch)
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    if bucket:
        win = batch_size * megabatch
        idx = [i for s in range(0, len(idx), win) for i in sorted(idx[s : s + win], key=lambda i: -lengths[i])]
    batches = [idx[s : s + batch_size] for s in range(0, len(idx), batch_size)]
    if bucket:
        rng.shuffle(batches)
    return batches


def _pad(rows: list[list[int]], value: int, width: int) -> torch.Tensor:
    out = torch.full((len(rows), width), value, dtype=torch.long)
    for r, row in enumerate(rows):
        out[r, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def collate(items: list[Encoded], pad_id: int, cache=None, teacher_pad_id: int | None = None) -> dict:
    """Right-padded batch dict (see module docstring); with a LogitCache also the top-k soft targets.

    input_ids, attention_mask, labels: (B, L), padded with pad_id (the student's). teacher_input_ids
    (padded with teacher_pad_id, default pad_id: the teacher's own pad token when tokenizers differ),
    teacher_attention_mask: (B, Lt);
    teacher_index: (B, L) long. With `cache`: teacher_topk_ids (B, L, K) int32,
    teacher_topk_logprobs (B, L, K) float32 and soft_mask (B, L) bool, stored at the OUTPUT
    position that predicts each trace token (position p holds the distribution of token p + 1).
    """
    width = max(len(e.input_ids) for e in items)
    input_ids = _pad([e.input_ids for e in items], pad_id, width)
    attention_mask = _pad([[1] * len(e.input_ids) for e in items], 0, width)
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for r, e in enumerate(items):
        labels[r, e.prompt_len : len(e.input_ids)] = input_ids[r, e.prompt_len : len(e.input_ids)]
    batch = {"ids": [e.id for e in items], "input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    if all(e.teacher_input_ids is None for e in items):
        batch["teacher_input_ids"], batch["teacher_attention_mask"] = input_ids, attention_mask
        batch["teacher_index"] = torch.arange(width).expand(len(items), width).clone()
        batch["teacher_identity"] = True
    else:
        t_rows = [e.teacher_input_ids if e.teacher_input_ids is not None else e.input_ids for e in items]
        t_width = max(len(t) for t in t_rows)
        batch["teacher_input_ids"] = _pad(t_rows, pad_id if teacher_pad_id is None else teacher_pad_id, t_width)
        batch["teacher_attention_mask"] = _pad([[1] * len(t) for t in t_rows], 0, t_width)
        idx = [e.teacher_index if e.teacher_index is not None else list(range(len(e.input_ids))) for e in items]
        batch["teacher_index"] = _pad(idx, -1, width)
        batch["teacher_identity"] = False
    if cache is not None:
        add_soft_targets(batch, items, cache, width)
    if any(e.neg_input_ids is not None for e in items):
        _add_negatives(batch, items, pad_id)
    return batch


def _add_negatives(batch: dict, items: list[Encoded], pad_id: int) -> None:
    """neg_input_ids / neg_attention_mask / neg_labels (B, Ln) (-100 outside the wrong trace),
    neg_wrong (B, Ln) bool on the wrong step's tokens (label positions), has_neg (B,) bool."""
    rows = [e.neg_input_ids or [pad_id] for e in items]
    width = max(len(r) for r in rows)
    batch["neg_input_ids"] = _pad(rows, pad_id, width)
    batch["neg_attention_mask"] = _pad([[1] * len(r) for r in rows], 0, width)
    labels = torch.full_like(batch["neg_input_ids"], IGNORE_INDEX)
    wrong = torch.zeros_like(labels, dtype=torch.bool)
    for r, e in enumerate(items):
        if e.neg_input_ids is not None:
            n = len(e.neg_input_ids)
            labels[r, e.neg_prompt_len : n] = batch["neg_input_ids"][r, e.neg_prompt_len : n]
            wrong[r, e.neg_start : n] = True
    batch["neg_labels"], batch["neg_wrong"] = labels, wrong
    batch["has_neg"] = torch.tensor([e.neg_input_ids is not None for e in items])


def add_soft_targets(batch: dict, items: list[Encoded], cache, width: int, places=None, n_rows=None) -> None:
    """The cached top-k of each item at its output positions. places: (row, first token) of each item in
    the batch (default: item i alone in row i, from 0); n_rows: rows of the batch (default len(items))."""
    k = cache.k
    places = places or [(r, 0) for r in range(len(items))]
    n_rows = len(items) if n_rows is None else n_rows
    ids = torch.zeros((n_rows, width, k), dtype=torch.int32)
    logprobs = torch.zeros((n_rows, width, k), dtype=torch.float32)
    soft = torch.zeros((n_rows, width), dtype=torch.bool)
    for (r, offset), e in zip(places, items):
        entry = cache.get(e.id, default=None)
        if entry is None:  # no soft targets for this example: its rows train on the hard labels only
            continue
        trace = e.input_ids[e.prompt_len :]
        n = min(len(trace), entry.topk_ids.shape[0])
        cached_trace = entry.token_ids[entry.trace_start : entry.trace_start + n].tolist()
        if cached_trace != trace[:n]:
            raise ReasonkdError(
                f"logit cache {cache.path}: example {e.id!r} was cached with other trace tokens "
                "than the student's; rebuild the cache with this tokenizer and data"
            )
        start = offset + e.prompt_len - 1  # output position predicting the first trace token
        ids[r, start : start + n] = entry.topk_ids[:n].to(torch.int32)
        logprobs[r, start : start + n] = entry.topk_logprobs[:n].float()
        soft[r, start : start + n] = True
        if getattr(entry, "row_mask", None) is not None:  # several teachers fused: rows none of them covers
            soft[r, start : start + n] &= entry.row_mask[:n]
    batch["teacher_topk_ids"], batch["teacher_topk_logprobs"], batch["soft_mask"] = ids, logprobs, soft
