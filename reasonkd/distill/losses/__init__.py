"""Distillation losses: pure tensor functions on rows, shapes and maths in each docstring.

A row is one token position that carries a loss; the trainer gathers them as
(N, V) logits. Divergences compare log-probabilities row by row and return (N,):

    from reasonkd.distill import losses as L
    values = L.forward_kl(L.logprobs(student_logits, T), L.logprobs(teacher_logits, T))   # (N,)
    values = L.forward_kl(*L.topk_logprobs(student_logits, topk_ids, topk_logprobs, T))   # top-k teacher
    values = L.forward_kl(*L.shared_logprobs(student_logits, teacher_logits, vocab_map, T))  # other tokenizer
    loss = L.kd(values.mean(), L.ce(student_logits, targets).mean(), alpha=0.7, temperature=T)

    logit.py        divergences (forward/reverse KL, generalised JSD, skew KL, TVD), DIVERGENCES, ce, kd;
                    the one function for each shared step: `tempered` (logits / T), `soft_scaled` (T^2),
                    `kl_sum` (the KL sum), `target_logprobs` (a target token's log-prob)
    sparse.py       top-k teacher (logit cache) + one tail bucket with the teacher's exact leftover mass
    cross_vocab.py  different tokenizers: shared-token distributions, ULD, the GOLD-style hybrid
    feature.py      hidden-state and attention losses, projector, layer and head maps
    fused.py        CE and forward KL (full or top-k) with the gradient computed in the forward (no (N, V) graph)
    _common.py      constants, checks, `chunked_sum` / `chunked_rows` (rows a chunk at a time under checkpointing)

fp32 maths whatever the input dtype. Tests: tests/distill/test_losses*.py.
"""

from reasonkd.distill.losses._common import BUCKET_FLOOR, IGNORE_INDEX, chunked_rows, chunked_sum
from reasonkd.distill.losses.cross_vocab import gold, shared_logprobs, shared_topk_logprobs, uld
from reasonkd.distill.losses.fused import fused_ce, fused_forward_kl, fused_ok, fused_topk_forward_kl
from reasonkd.distill.losses.feature import FeatureProjector, attention_loss, head_map, hidden_state_loss, layer_map
from reasonkd.distill.losses.logit import (
    DIVERGENCES,
    ce,
    divergence,
    forward_kl,
    generalized_jsd,
    kd,
    kl_sum,
    logprobs,
    reverse_kl,
    skew_kl,
    skew_reverse_kl,
    soft_scaled,
    target_logprobs,
    tempered,
    tvd,
)
from reasonkd.distill.losses.sparse import bucket_logprobs, topk_logprobs

__all__ = [
    "BUCKET_FLOOR",
    "IGNORE_INDEX",
    "chunked_sum",
    "chunked_rows",
    "fused_ce",
    "fused_forward_kl",
    "fused_topk_forward_kl",
    "fused_ok",
    "DIVERGENCES",
    "divergence",
    "tempered",
    "logprobs",
    "soft_scaled",
    "kl_sum",
    "target_logprobs",
    "ce",
    "kd",
    "forward_kl",
    "reverse_kl",
    "generalized_jsd",
    "skew_kl",
    "skew_reverse_kl",
    "tvd",
    "bucket_logprobs",
    "topk_logprobs",
    "shared_logprobs",
    "shared_topk_logprobs",
    "uld",
    "gold",
    "hidden_state_loss",
    "FeatureProjector",
    "layer_map",
    "attention_loss",
    "head_map",
]
