"""The loss terms a recipe can name: one registry, one function per kind of term.

    LOSSES["forward_kl"].fn(objective, spec, step)   # -> {"forward_kl": 0-dim tensor}
    LOSSES["kd"].needs                              # frozenset({"logits", "soft_targets"})

Each term reads one `Step` (what the forwards returned) and returns
{name: scalar} plus diagnostics ("kd.kl", "kd.ce"). `needs` says what the
step must carry, so the objective runs only the forwards its terms use:

    logits        student logits at the trace rows (N, V)
    soft_targets  the teacher's distribution at those rows: online logits, or the cached top-k
    hidden        projected student and aligned teacher hidden states (online teacher)
    attentions    student and teacher attention maps (online teacher, same tokenizer)
    negatives     the student's logits on a wrong trace of the same prompt (data.negatives)
    teacher_tokens  the student's own samples scored by the online teacher (on_policy stages: chunk_kd.py)

The maths is `reasonkd.distill.losses`; here are only the choice of rows and
the reductions: every logit term is a per-token mean over the rows that have a
teacher row, computed `chunk_rows` rows at a time (`losses.chunked_sum`). CE and a plain forward KL
take the fused forms of `losses.fused` under recipe.fused_loss (the default).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable

import torch

from reasonkd.distill import losses as L
from reasonkd.distill.align import truncate_to_common_vocab
from reasonkd.distill.chunk_kd import onpolicy_term
from reasonkd.distill.negatives import negative_terms
from reasonkd.errors import ConfigError, ReasonkdError

CROSS_MODES = ("shared", "topk", "topk_exact", "buckets", "uld", "gold")
_TERM_OPTIONS = ("source", "cross", "k", "alpha", "t2", "uld_weight")
"""Options read by the term itself; any other option goes to the divergence (beta, skew)."""


@dataclass
class Step:
    """What one micro-step's forwards returned, as the terms read it."""

    student: dict
    """logits (N, V), hidden [...], attentions {layer: ...}, neg_logits / neg_rows / neg_wrong."""
    teacher: dict | None
    """Online teacher: logits (N, Vt or M) and valid (N,), hidden [...], attentions {...}."""
    batch: dict
    rows: object
    """forward.Rows: the trace rows (mask, targets, batch_index)."""
    temperature: float


@dataclass(frozen=True)
class LossTerm:
    fn: Callable[..., dict]
    """(objective, spec, step) -> {name: 0-dim tensor, ...}."""
    needs: frozenset
    """What the step must carry (module doc)."""


# ---- logit terms ----------------------------------------------------------------------------


def _soft_targets(obj, spec, step: Step) -> tuple[tuple, torch.Tensor]:
    """The teacher's rows for this term, and (N,) bool: the rows that have one."""
    if obj.sources[spec.name] == "online":
        return (step.teacher["logits"],), step.teacher["valid"]
    m = step.rows.mask
    batch = step.batch
    return (batch["teacher_topk_ids"][m], batch["teacher_topk_logprobs"][m]), batch["soft_mask"][m]


def fused_kl(obj, spec) -> bool:
    """Whether this term's rows take the fused forward KL (losses.fused: gradient computed in the forward, no
    recompute under checkpointing): recipe.fused_loss, a plain forward KL (or kd), a cached top-k teacher or
    an online teacher of the same vocabulary."""
    plain = spec.name in ("forward_kl", "kd") and not any(k not in _TERM_OPTIONS for k in spec.options)
    return obj.fused and plain and (obj.sources[spec.name] == "cache" or obj.relation != "different")


def _fused_kl_rows(obj, spec, T: float, s: torch.Tensor, *teacher: torch.Tensor) -> torch.Tensor:
    """Per-row forward KL (N,) by losses.fused, `chunk_rows` rows at a time (the cases of fused_kl)."""
    if obj.sources[spec.name] == "cache":
        return L.fused_topk_forward_kl(s, *teacher, T, chunk=obj.chunk_rows)
    return L.fused_forward_kl(s, *teacher, T, chunk=obj.chunk_rows)


def row_values(obj, spec, T: float, s: torch.Tensor, *teacher: torch.Tensor) -> torch.Tensor:
    """Per-row divergence (N,) of this term at temperature T between the student's rows s (N, V) and the
    teacher's rows: online logits (N, Vt) -> the same vocabulary, or across tokenizers by options.cross;
    or the cached top-k (ids (N, K), log-probs (N, K))."""
    opts = {k: v for k, v in spec.options.items() if k not in _TERM_OPTIONS}
    div_name = "forward_kl" if spec.name == "kd" else spec.name
    div = L.divergence(div_name)
    if obj.sources[spec.name] == "cache":  # fused caches of other tokenizers: in student ids already
        ids, lp = teacher
        return div(*L.topk_logprobs(s, ids, lp, T), **opts)
    (t,) = teacher
    if obj.relation != "different":
        return div(L.logprobs(s, T), L.logprobs(t, T), **opts)
    cross, k, vmap = spec.options.get("cross", "shared"), int(spec.options.get("k", 20)), obj.vocab_map
    if cross == "uld":
        return L.uld(s, t, T)
    if cross == "gold":
        return L.gold(s, t, vmap, T, div_name, float(spec.options.get("uld_weight", 1.0)), **opts)
    if cross == "topk_exact":
        return div(*L.shared_topk_logprobs(s, t, vmap, k, T, exact_tail=True), **opts)
    if cross == "topk":
        shared = t if obj.teacher_shared_only else t.index_select(-1, vmap.teacher_ids.to(t.device))
        return div(*L.shared_topk_logprobs(s, shared, vmap, k, T), **opts)
    return div(
        *L.shared_logprobs(s, t, vmap, T, other_bucket=cross == "buckets", teacher_is_shared=obj.teacher_shared_only),
        **opts,
    )


def logit_term(obj, spec, step: Step) -> dict:
    """A divergence to the teacher's soft targets (per-token mean over rows with a teacher row), or kd:
    alpha * T^2 * that forward KL + (1 - alpha) * CE on every trace row."""
    name, T = spec.name, step.temperature
    s_logits = step.student["logits"]
    teacher, valid = _soft_targets(obj, spec, step)
    n_valid = int(valid.sum())
    if n_valid == 0:  # e.g. a batch whose examples are all missing from the cache
        zero = s_logits.sum() * 0.0
        return {name: zero} if name != "kd" else {"kd": zero, "kd.kl": zero.detach(), "kd.ce": zero.detach()}
    if obj.relation != "different" and len(teacher) == 1 and teacher[0].shape[-1] != s_logits.shape[-1]:
        s_logits, t = truncate_to_common_vocab(s_logits, teacher[0])  # same tokenizer, padded embeddings
        teacher = (t,)
    values = functools.partial(row_values, obj, spec, T)
    mask = valid.to(s_logits.dtype)
    targets = step.rows.targets
    if name == "kd":

        def kl_and_ce(s, y, m, *t):
            return torch.stack([(values(s, *t) * m).sum(), L.ce(s, y, reduction="sum")])

        if fused_kl(obj, spec) and L.fused_ok(targets):
            kl_sum = (_fused_kl_rows(obj, spec, T, s_logits, *teacher) * mask).sum()
            sums = (kl_sum, L.fused_ce(s_logits, targets, chunk=obj.chunk_rows).sum())
        else:
            sums = L.chunked_sum(kl_and_ce, obj.chunk_rows, s_logits, targets, mask, *teacher)
        kl, ce = sums[0] / n_valid, sums[1] / max(targets.numel(), 1)
        return {
            "kd": L.kd(kl, ce, float(spec.options.get("alpha", 0.7)), T),
            "kd.kl": kl.detach(),
            "kd.ce": ce.detach(),
        }

    def masked(s, m, *t):
        return (values(s, *t) * m).sum().reshape(1)

    if fused_kl(obj, spec):
        total = (_fused_kl_rows(obj, spec, T, s_logits, *teacher) * mask).sum()
    else:
        total = L.chunked_sum(masked, obj.chunk_rows, s_logits, mask, *teacher)[0]
    return {name: (L.soft_scaled(total, T) if spec.options.get("t2", False) else total) / n_valid}


def ce_term(obj, spec, step: Step) -> dict:
    """Token cross-entropy on every trace row (T = 1)."""

    def summed(s, y):
        return L.ce(s, y, reduction="sum").reshape(1)

    targets, s_logits = step.rows.targets, step.student["logits"]
    if obj.fused and L.fused_ok(targets):
        total = L.fused_ce(s_logits, targets, chunk=obj.chunk_rows).sum()
    else:
        total = L.chunked_sum(summed, obj.chunk_rows, s_logits, targets)[0]
    return {"ce": total / max(targets.numel(), 1)}


# ---- feature and negative terms -----------------------------------------------------------


def _feature_mask(batch: dict, opts: dict) -> torch.Tensor:
    mask = batch["attention_mask"].bool() & (batch["teacher_index"] >= 0)
    positions = opts.get("positions", "all")
    if positions == "trace":
        mask = mask & (batch["labels"] != L.IGNORE_INDEX)
    elif positions != "all":
        raise ConfigError(f"options.positions must be all or trace, got {positions!r}")
    return mask


def hidden_term(obj, spec, step: Step) -> dict:
    """Projected student vs aligned teacher hidden states over the layer map, mean over layer pairs."""
    mask = _feature_mask(step.batch, spec.options)
    kind = "mse" if spec.name == "hidden_mse" else "cosine"
    normalize = bool(spec.options.get("normalize", False))
    parts = [
        L.hidden_state_loss(s, t, mask=mask, kind=kind, normalize=normalize)
        for s, t in zip(step.student["hidden"], step.teacher["hidden"])
    ]
    return {spec.name: torch.stack(parts).mean()}


def attention_term(obj, spec, step: Step) -> dict:
    """KL of attention rows over the layer map (head map, optional selected heads), mean over pairs."""
    if not step.batch.get("teacher_identity", False):
        raise ReasonkdError(
            "attention_kl needs teacher and student to share the tokenizer (key positions "
            "must match); drop it for a cross-tokenizer pair"
        )
    mask = _feature_mask(step.batch, spec.options)
    parts = [
        L.attention_loss(
            step.student["attentions"][i],
            step.teacher["attentions"][j],
            head_map=obj.head_map,
            heads=None if obj.heads is None else obj.heads[j],
            mask=mask,
        )
        for i, j in obj.attn_pairs
    ]
    return {"attention_kl": torch.stack(parts).mean()}


def negative_term(obj, spec, step: Step) -> dict:
    """unlikelihood / preference against the wrong trace of the same prompt (negatives.py)."""
    s = step.student
    neg = s["neg_rows"]
    return negative_terms(
        {spec.name},
        s.get("logits"),
        step.rows.targets,
        step.rows.batch_index,
        s["neg_logits"],
        neg.targets,
        neg.batch_index,
        s["neg_wrong"],
        step.batch["has_neg"],
        beta=float(spec.options.get("beta", 0.1)),
    )


_SOFT = frozenset({"logits", "soft_targets"})
LOSSES: dict[str, LossTerm] = {
    "ce": LossTerm(ce_term, frozenset({"logits"})),
    "kd": LossTerm(logit_term, _SOFT),
    **{name: LossTerm(logit_term, _SOFT) for name in L.DIVERGENCES},
    "hidden_mse": LossTerm(hidden_term, frozenset({"hidden"})),
    "hidden_cosine": LossTerm(hidden_term, frozenset({"hidden"})),
    "attention_kl": LossTerm(attention_term, frozenset({"attentions"})),
    "unlikelihood": LossTerm(negative_term, frozenset({"negatives"})),
    "preference": LossTerm(negative_term, frozenset({"logits", "negatives"})),
    # on-policy distillation (stage kind on_policy): the teacher scores the student's own samples (chunk_kd.py)
    "onpolicy_rkl": LossTerm(onpolicy_term, frozenset({"logits", "teacher_tokens"})),
}


def names_needing(what: str) -> tuple[str, ...]:
    """Loss names whose term needs `what` (e.g. "soft_targets": the logit terms)."""
    return tuple(name for name, term in LOSSES.items() if what in term.needs)
