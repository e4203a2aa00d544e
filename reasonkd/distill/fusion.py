"""Multi-teacher logit fusion: several teachers' distributions mixed into one target in the student's vocabulary.

Pure tensor functions; the offline wiring (one logit cache per teacher) is `reasonkd.distill.fused_cache`.

    w = static_weights([1.0, 3.0])                         # (T,) normalised: [0.25, 0.75]
    w = verification_weights(w, correct)                   # correct (B, T) bool -> (B, T)
    w = confidence_weights([lp_1, lp_2], w)                # (N, T): softmax over teachers of log w - entropy
    fused = fuse_logprobs([lp_1, lp_2], w)                 # (N, Vs): log sum_t w_t p_t
    ids, lp = fuse_topk([(ids_1, lp_1), (ids_2, lp_2)], w, vocab_size=Vs, k=20)   # sparse (cache) form

The target is a MIXTURE of distributions, p(v) = sum_t w_t p_t(v), computed
as log-sum-exp of log-probs + log-weights (never an average of logits, which
is not a distribution of either teacher). A teacher of weight 0 adds exactly
nothing (log 0 = -inf), so one teacher, or one teacher plus zero-weight ones,
gives that teacher's distribution back.

Weights:
    static        the recipe's weights, normalised to sum 1
    verification  per problem: a teacher whose own answer to the problem was wrong gets weight 0, the
                  rest are renormalised; when every teacher was wrong the static weights are kept
    confidence    per token row: softmax over teachers of (log w_t - H_t), H_t the entropy of teacher
                  t's row (a sharper teacher counts more; weight 0 stays 0)

Other tokenizers: a teacher's top-k is mapped into the student's vocabulary
through `id_map` (teacher id -> student id, -1 = no student token with the
same string; from `align.build_vocab_map`) by `sparse_to_student`; an entry
with no student token joins the tail bucket. Same tokenizer: identity
(`id_map=None`). Tests: tests/distill/test_fusion.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from reasonkd.errors import ConfigError, ReasonkdError

WEIGHTINGS = ("static", "verification", "confidence")


@dataclass
class FusionConfig:
    weighting: str = "static"
    """How the teachers' distributions are weighted per token: static | verification | confidence
    (docs/distill.md "Several teachers")."""
    verdicts: str | None = None
    """weighting=verification: the pooled traces folder of `reasonkd teacher generate --teacher A --teacher B`
    (its pool.json says which teacher solved which problem)."""
    k: int = 20
    """Top-k of the fused distribution kept per token row (offline: the student-space cache)."""

    def __post_init__(self):
        if self.weighting not in WEIGHTINGS:
            raise ConfigError(f"weighting must be one of {', '.join(WEIGHTINGS)}, got {self.weighting!r}")
        if self.k < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")


def static_weights(weights) -> torch.Tensor:
    """(T,) non-negative weights -> (T,) float64 summing to 1."""
    w = torch.as_tensor(weights, dtype=torch.float64).flatten()
    if w.numel() == 0 or bool((w < 0).any()) or not float(w.sum()) > 0:
        raise ReasonkdError(f"teacher weights must be >= 0 with a positive sum, got {w.tolist()}")
    return w / w.sum()


def verification_weights(weights: torch.Tensor, correct: torch.Tensor) -> torch.Tensor:
    """Static weights (T,) and per-problem verdicts correct (B, T) bool -> (B, T) weights, rows sum to 1.

    A wrong teacher gets 0 and the others are renormalised; a row where every teacher with weight > 0
    was wrong keeps the static weights (no teacher is better than another there).
    """
    w = static_weights(weights)
    masked = w * correct.to(torch.float64)
    total = masked.sum(-1, keepdim=True)
    return torch.where(total > 0, masked / total.clamp_min(1e-300), w.expand_as(masked))


def entropy(logp: torch.Tensor) -> torch.Tensor:
    """Entropy per row of log-probs (N, V) -> (N,) in nats; 0 log 0 = 0."""
    p = logp.float().exp()
    return -(p * torch.where(p > 0, logp.float(), torch.zeros_like(p))).sum(-1)


def confidence_weights(logps: list[torch.Tensor], weights) -> torch.Tensor:
    """Per-row weights (N, T) = softmax_t(log w_t - H(p_t)) from each teacher's row log-probs (N, V_t).

    The rows may be over different supports (full vocabularies, top-k buckets): only their entropies count.
    """
    w = static_weights(weights).to(torch.float32)
    ent = torch.stack([entropy(lp) for lp in logps], dim=-1)  # (N, T)
    return torch.softmax(w.log().to(ent.device) - ent, dim=-1)


def _log_weights(weights: torch.Tensor, n_teachers: int, n_rows: int, device) -> torch.Tensor:
    """(T,) or (N, T) weights -> (T, N, 1) log-weights (log 0 = -inf)."""
    w = torch.as_tensor(weights, dtype=torch.float64, device=device)
    if w.dim() == 1:
        w = w.expand(n_rows, n_teachers)
    if tuple(w.shape) != (n_rows, n_teachers):
        raise ReasonkdError(f"weights must be (T,) or (N, T) = ({n_rows}, {n_teachers}), got {tuple(w.shape)}")
    return w.log().to(torch.float32).T.unsqueeze(-1)


def fuse_logprobs(logps: list[torch.Tensor], weights) -> torch.Tensor:
    """Mixture log-probs log sum_t w_t p_t: T tensors (N, V) over ONE vocabulary, weights (T,) or (N, T)
    summing to 1 per row -> (N, V) fp32. Map other vocabularies first (`sparse_to_student`)."""
    if not logps:
        raise ReasonkdError("fuse_logprobs needs at least one teacher")
    stacked = torch.stack([lp.float() for lp in logps])  # (T, N, V)
    return torch.logsumexp(stacked + _log_weights(weights, len(logps), stacked.shape[1], stacked.device), dim=0)


def id_map_from(vocab_map, teacher_vocab_size: int) -> torch.Tensor:
    """align.VocabMap -> (Vt,) long: the student id of each teacher id, -1 where the student has none."""
    out = torch.full((teacher_vocab_size,), -1, dtype=torch.long)
    out[vocab_map.teacher_ids.long()] = vocab_map.student_ids.long()
    return out


def sparse_to_student(
    topk_ids: torch.Tensor, topk_logprobs: torch.Tensor, id_map: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """A top-k row set (N, K) in teacher ids -> the same in student ids; unmapped entries get log-prob -inf
    (their mass joins the tail bucket) and id 0. id_map None: unchanged."""
    ids = topk_ids.long()
    if id_map is None:
        return ids, topk_logprobs.float()
    mapped = id_map.to(ids.device)[ids]
    keep = mapped >= 0
    return mapped.clamp_min(0), torch.where(
        keep, topk_logprobs.float(), torch.full_like(topk_logprobs.float(), -math.inf)
    )


def fuse_topk(
    teachers: list[tuple[torch.Tensor, torch.Tensor]], weights, vocab_size: int, k: int = 20
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sparse mixture: T pairs (ids (N, K_t) student ids, log-probs (N, K_t)) -> (ids (N, k), log-probs (N, k)).

    Each teacher is its top-k plus a tail holding its leftover mass (ids outside its top-k count 0 for it),
    so the mixture of the top-k entries is exact and the fused tail (1 - sum of the kept probabilities,
    read by `losses.topk_logprobs`) is the mixture's exact leftover mass. The k most likely fused ids are
    kept, descending. A single teacher of weight 1 whose ids need no mapping comes back unchanged.
    Memory: one (N, vocab_size) fp32 buffer.
    """
    if not teachers:
        raise ReasonkdError("fuse_topk needs at least one teacher")
    n = teachers[0][0].shape[0]
    device = teachers[0][1].device
    logw = _log_weights(weights, len(teachers), n, device)  # (T, N, 1)
    active = [t for t in range(len(teachers)) if bool(torch.isfinite(logw[t]).any())]
    if len(active) == 1 and bool((logw[active[0]] == 0).all()):
        ids, lp = teachers[active[0]]
        if ids.shape[-1] <= k and bool(torch.isfinite(lp).all()):
            return ids.long(), lp.float()  # the single-teacher path itself, bit for bit
    dense = torch.full((n, vocab_size), -math.inf, dtype=torch.float32, device=device)
    for t in active:
        ids, lp = teachers[t]
        # amax: an unmapped entry (id 0, -inf) never overwrites a real one at the same id
        part = torch.full_like(dense, -math.inf).scatter_reduce_(-1, ids.long(), lp.float() + logw[t], "amax")
        dense = torch.logaddexp(dense, part)
    top = dense.topk(min(k, vocab_size), dim=-1)
    return top.indices, top.values
