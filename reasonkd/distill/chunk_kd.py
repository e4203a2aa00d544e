"""On-policy distillation across tokenizers: the student's sample scored chunk by chunk by the teacher.

The student samples a completion; both models read the SAME text, each with its own tokenizer.
`chunk_groups` cuts the completion into the shortest character spans on which both tokenizations
agree (a multi-token word on one side may be one token on the other), and `chunk_policy_loss` pushes
the student's log-likelihood of each chunk toward the teacher's:

    s_group, t_group, n = chunk_groups(student_offsets, teacher_offsets)
    out = chunk_policy_loss(student_token_logprobs, teacher_token_logprobs, s_group, t_group, n, clip=5.0)
    out["loss"].backward()

With A_g = clip(log p_T(chunk g) - log p_S(chunk g)) treated as a constant, the loss
-sum_g A_g log p_S(chunk g) has the gradient of the per-chunk reverse KL KL(p_S || p_T) estimated on
the student's own sample (the REINFORCE form, discount 0: each chunk is credited with its own
log-ratio only). This is the on-policy distillation objective of Agarwal et al. (GKD, 2024) and
Thinking Machines' "On-Policy Distillation" (2025), computed on aligned text chunks instead of
tokens so that it works when the vocabularies differ (likelihood matching over chunks as in ALM,
2025). When the tokenizers are the same every chunk is one token and it is the usual per-token
sampled reverse KL.

Clipping A_g (`clip`) bounds the push from outlier tokens (a chunk the teacher finds very unlikely,
e.g. a number split differently); special tokens and the chat template never enter a chunk (the
offsets cover the completion text only); the end-of-turn tokens form their own final chunk when the
student's sample ended by itself, so the student learns when to stop from the teacher's own stop
probability (a sample cut at max_new_tokens never sampled its end, and that chunk is not scored).

The loss term `onpolicy_rkl` (registered in `terms.LOSSES`; the on_policy stage's default) is
`onpolicy_term` below: per aligned chunk across tokenizers (mode chunk), or the full-distribution
per-token reverse KL when both models share a vocabulary (mode full), plus an optional cross-entropy
anchor on the verified traces of the same micro-batch (`anchor_ce`). Its inputs: `chunk_ids` /
`teacher_chunk_ids` in the batch (written by `onpolicy.Rollout`), the teacher's log-prob of each of
its completion tokens (`teacher_token_logprobs`, run by `forward.teacher_forward`) and the student's
logits on the anchor traces (`anchor_logits`). Tests: tests/distill/test_chunk_kd.py,
tests/distill/test_onpolicy_term.py.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from reasonkd.distill import losses as L
from reasonkd.distill.align import Span, align_tokens, truncate_to_common_vocab
from reasonkd.errors import ConfigError, ReasonkdError

ONPOLICY_MODES = ("auto", "chunk", "full")
ONPOLICY_OPTIONS = {
    "mode": "auto",
    "clip": 5.0,
    "anchor_ce": 0.0,
    "source": "online",
    "divergence": "reverse_kl",
    "divergence_options": {},
}
"""Options of the onpolicy_rkl term and their defaults (docs/distill.md, "On-policy stage")."""


def chunk_groups(student_offsets: list[Span], teacher_offsets: list[Span]) -> tuple[list[int], list[int], int]:
    """Chunk id of every completion token on each side.

    student_offsets / teacher_offsets: (start, end) character spans of each side's completion tokens
    in the same text (fast-tokenizer offsets). Returns (student_group, teacher_group, n_chunks): one
    chunk id per token, chunks numbered 0..n_chunks-1 in text order, each chunk covering the same
    characters on both sides (reasonkd.distill.align.align_tokens).
    """
    s_group = [-1] * len(student_offsets)
    t_group = [-1] * len(teacher_offsets)
    groups = align_tokens(student_offsets, teacher_offsets)
    for g, ((s0, s1), (t0, t1)) in enumerate(groups):
        for i in range(s0, s1):
            s_group[i] = g
        for j in range(t0, t1):
            t_group[j] = g
    return s_group, t_group, len(groups)


def token_logprobs(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """log p(target) under each row of logits.

    logits: (N, V) the rows that predict each target (already shifted); targets: (N,) token ids.
    Returns (N,) float32. The log-softmax runs over the full vocabulary.
    """
    return L.target_logprobs(L.logprobs(logits), targets)


def chunk_sums(values: torch.Tensor, group: torch.Tensor, n_chunks: int) -> torch.Tensor:
    """Sum of `values` (N,) per chunk id in `group` (N,) (ids < 0 are skipped) -> (n_chunks,)."""
    keep = group >= 0
    out = values.new_zeros(n_chunks)
    return out.index_add(0, group[keep].long(), values[keep])


def chunk_policy_loss(
    student_logprobs: torch.Tensor,
    teacher_logprobs: torch.Tensor,
    student_group: torch.Tensor,
    teacher_group: torch.Tensor,
    n_chunks: int,
    clip: float = 5.0,
) -> dict[str, torch.Tensor]:
    """Per-chunk sampled reverse KL of the student to the teacher on the student's own sample.

    student_logprobs: (Ns,) log p_S of each sampled student token (requires grad);
    teacher_logprobs: (Nt,) log p_T of the teacher's tokens of the same text (no grad needed);
    student_group / teacher_group: (Ns,) / (Nt,) chunk ids (chunk_groups; -1 = not scored);
    n_chunks: number of chunks; clip: |advantage| bound per chunk (<= 0: no clipping).

    Returns {"loss": scalar (normalised by the number of scored student tokens), "reverse_kl": the
    estimate sum_g (log p_S - log p_T) / tokens (no grad), "teacher_logprob": mean teacher log-prob per
    scored student token (no grad), "clipped": share of chunks whose advantage was clipped}.
    A sequence with no scored tokens gives a zero loss that still has a grad_fn.
    """
    ls = chunk_sums(student_logprobs.float(), student_group, n_chunks)
    lt = chunk_sums(teacher_logprobs.float().detach(), teacher_group, n_chunks)
    # a chunk is scored when both sides have tokens in it (a side cut off by max_length has none)
    has_s = torch.zeros(n_chunks, dtype=torch.bool, device=ls.device)
    has_s[student_group[student_group >= 0].long()] = True
    has_t = torch.zeros_like(has_s)
    has_t[teacher_group[teacher_group >= 0].long()] = True
    scored = has_s & has_t
    n_tok = (student_group >= 0).sum().clamp(min=1).float()
    adv = lt - ls.detach()
    clipped = torch.zeros_like(adv, dtype=torch.bool)
    if clip > 0:
        clipped = adv.abs() > clip
        adv = adv.clamp(-clip, clip)
    adv = torch.where(scored, adv, torch.zeros_like(adv))
    loss = -(adv * ls).sum() / n_tok
    with torch.no_grad():
        rkl = torch.where(scored, ls - lt, torch.zeros_like(ls)).sum() / n_tok
        t_mean = torch.where(scored, lt, torch.zeros_like(lt)).sum() / n_tok
        frac = (clipped & scored).float().sum() / scored.float().sum().clamp(min=1)
    return {"loss": loss, "reverse_kl": rkl, "teacher_logprob": t_mean, "clipped": frac}


# ---- the loss term onpolicy_rkl -------------------------------------------------------------


def onpolicy_options(options: dict, relation: str | None = None) -> tuple[str, float, float]:
    """(mode, clip, anchor_ce) of an onpolicy_rkl spec, checked; with `relation` the mode is resolved:
    auto -> full when both models share the vocabulary (same / same_padded), chunk when they differ."""
    unknown = sorted(set(options) - set(ONPOLICY_OPTIONS))
    if unknown:
        raise ConfigError(f"onpolicy_rkl: unknown option {unknown[0]!r}; known: {', '.join(ONPOLICY_OPTIONS)}")
    opts = {**ONPOLICY_OPTIONS, **options}
    mode, clip, anchor = opts["mode"], float(opts["clip"]), float(opts["anchor_ce"])
    if mode not in ONPOLICY_MODES:
        raise ConfigError(f"onpolicy_rkl: options.mode must be one of {', '.join(ONPOLICY_MODES)}, got {mode!r}")
    if not (clip >= 0 and anchor >= 0):
        raise ConfigError(f"onpolicy_rkl: options.clip and options.anchor_ce must be >= 0, got {clip}, {anchor}")
    if opts["source"] != "online":
        raise ConfigError("onpolicy_rkl: the teacher scores the student's own samples, so options.source is online")
    onpolicy_divergence(opts)
    if relation is not None:
        if mode == "auto":
            mode = "chunk" if relation == "different" else "full"
        if mode == "full" and relation == "different":
            raise ConfigError(
                "onpolicy_rkl: mode full compares whole distributions over one vocabulary; this "
                "pair's tokenizers differ: use mode chunk (or auto)"
            )
        if mode == "chunk" and opts["divergence"] != "reverse_kl":
            raise ConfigError(
                f"onpolicy_rkl: options.divergence {opts['divergence']} needs mode full (one vocabulary "
                "on both sides); mode chunk estimates the reverse KL per aligned chunk"
            )
    return mode, clip, anchor


def onpolicy_divergence(options: dict):
    """The per-row divergence of mode full, (s_logp (N, V), t_logp (N, V)) -> (N,): options.divergence names one
    of reasonkd.distill.losses.DIVERGENCES (default reverse_kl, GKD's on-policy choice; forward_kl or
    generalized_jsd with divergence_options {beta: ...} for the mode-covering side), with its options."""
    opts = {**ONPOLICY_OPTIONS, **options}
    name, extra = opts["divergence"], opts["divergence_options"] or {}
    if name not in L.DIVERGENCES:
        raise ConfigError(
            f"onpolicy_rkl: options.divergence must be one of {', '.join(sorted(L.DIVERGENCES))}, got {name!r}"
        )
    if not isinstance(extra, dict):
        raise ConfigError(f"onpolicy_rkl: options.divergence_options must be a mapping, got {extra!r}")
    fn = L.DIVERGENCES[name]
    try:
        fn(torch.zeros(1, 2), torch.zeros(1, 2), **extra)  # checks the option names and values now, not mid-run
    except TypeError as e:
        raise ConfigError(f"onpolicy_rkl: options.divergence_options {extra} do not fit {name}: {e}") from None
    except ReasonkdError as e:
        raise ConfigError(f"onpolicy_rkl: options.divergence_options: {e}") from None
    return functools.partial(fn, **extra)


def shifted_chunks(chunk_ids: torch.Tensor) -> torch.Tensor:
    """(B, L) chunk id of each token -> (B, L) chunk id of the token each OUTPUT position predicts (-1 pad)."""
    return F.pad(chunk_ids[:, 1:], (0, 1), value=-1)


def teacher_token_rows(batch: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teacher's output positions that predict a scored completion token.

    Returns (mask (B, Lt) bool, targets (Nt,) the predicted teacher tokens, chunk (Nt,) their chunk ids).
    """
    chunks = shifted_chunks(batch["teacher_chunk_ids"])
    mask = chunks >= 0
    targets = F.pad(batch["teacher_input_ids"][:, 1:], (0, 1))[mask]
    return mask, targets, chunks[mask]


@torch.no_grad()
def teacher_token_logprobs(model, hidden: torch.Tensor, batch: dict, chunk_rows: int = 1024) -> torch.Tensor:
    """log p_T of each scored teacher completion token (Nt,), from the teacher's final hidden states
    (B, Lt, H); the lm_head runs `chunk_rows` rows at a time (the (Nt, V) logits are never all alive)."""
    mask, targets, _ = teacher_token_rows(batch)
    rows = hidden[mask]
    head = model.get_output_embeddings()
    size = chunk_rows if chunk_rows > 0 else max(rows.shape[0], 1)
    parts = [token_logprobs(head(rows[s : s + size]), targets[s : s + size]) for s in range(0, rows.shape[0], size)]
    return torch.cat(parts) if parts else rows.new_zeros(0, dtype=torch.float32)


def _sampled_rows(s, y):
    """Student rows (n, V), sampled tokens (n,) -> (n, 2): [log p_S(token), entropy (no grad)]."""
    logp = L.logprobs(s)
    entropy = -(logp.exp() * logp).sum(-1).detach()
    return torch.stack([L.target_logprobs(logp, y), entropy], -1)


def _full_rows(div, s, t, y):
    """Student rows (n, V), teacher rows (n, V), sampled tokens -> (n, 3): [div(p_S, p_T) (reverse KL by
    default), log p_T(token), student entropy]; the teacher side is a constant."""
    s_logp, t_logp = L.logprobs(s), L.logprobs(t).detach()
    entropy = -(s_logp.exp() * s_logp).sum(-1).detach()
    return torch.stack([div(s_logp, t_logp), L.target_logprobs(t_logp, y), entropy], -1)


def _global_ids(local: torch.Tensor, batch_index: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Per-example chunk ids -> ids unique across the batch (example b's chunks after those of b - 1)."""
    offsets = torch.cumsum(counts, 0) - counts
    return torch.where(local >= 0, local + offsets[batch_index], local)


def _chunk_mode(obj, step, s_rows, s_chunk, clip: float) -> dict:
    """Per aligned chunk: REINFORCE with A_g = clip(log p_T(g) - log p_S(g)) (chunk_policy_loss)."""
    t_lp = step.teacher.get("token_logprobs") if step.teacher else None
    if t_lp is None:
        raise ReasonkdError(
            "onpolicy_rkl (mode chunk) needs the teacher's log-probs of its completion tokens; "
            "the on_policy stage computes them (is the loss in a stage of kind on_policy?)"
        )
    t_mask, _, t_chunk = teacher_token_rows(step.batch)
    t_b = t_mask.nonzero()[:, 0]
    s_b = step.rows.batch_index
    n_ex = step.batch["teacher_chunk_ids"].shape[0]
    counts = torch.zeros(n_ex, dtype=torch.long, device=s_chunk.device)
    counts = counts.scatter_reduce(0, s_b, s_chunk + 1, "amax").scatter_reduce(0, t_b, t_chunk + 1, "amax")
    out = chunk_policy_loss(
        s_rows[:, 0],
        t_lp,
        _global_ids(s_chunk, s_b, counts),
        _global_ids(t_chunk, t_b, counts),
        int(counts.sum()),
        clip,
    )
    # the value logged (and balanced) is the reverse-KL estimate; the gradient is the surrogate's
    value = out["loss"] - out["loss"].detach() + out["reverse_kl"]
    return {"value": value, "teacher_logprob": out["teacher_logprob"], "clipped": out["clipped"]}


def _full_mode(obj, step, s_logits, targets, scored, clip: float, div) -> dict:
    """Per token, over the whole vocabulary: div(p_S, p_T), by default KL(p_S || p_T) (GKD's on-policy reverse
    KL); rows above `clip` are scaled down to it (their gradient shrinks by the same factor)."""
    t_logits, valid = step.teacher["logits"], step.teacher["valid"]
    if t_logits.shape[-1] != s_logits.shape[-1]:
        s_logits, t_logits = truncate_to_common_vocab(s_logits, t_logits)
    per_row = L.chunked_rows(functools.partial(_full_rows, div), obj.chunk_rows, s_logits, t_logits, targets)
    mask = (scored & valid).to(per_row.dtype)
    n = mask.sum().clamp(min=1)
    rkl = per_row[:, 0]
    big = (rkl.detach() > clip) if clip > 0 else torch.zeros_like(mask, dtype=torch.bool)
    bounded = torch.where(big, rkl * (clip / rkl.detach().clamp_min(1e-12)), rkl)
    return {
        "value": (bounded * mask).sum() / n,
        "teacher_logprob": (per_row[:, 1] * mask).sum() / n,
        "clipped": (big.to(mask.dtype) * mask).sum() / n,
        "entropy_rows": per_row[:, 2],
    }


def onpolicy_term(obj, spec, step) -> dict:
    """The on_policy stage's term: {"onpolicy_rkl": value, "onpolicy_rkl.<diagnostic>": ...}.

    value = reverse KL of the student to the teacher on the student's own sample (chunk mode: per
    aligned chunk, REINFORCE form; full mode: per token over the whole vocabulary) + anchor_ce * the
    cross-entropy on the verified traces of the same micro-batch. Diagnostics (no grad):
    teacher_logprob (mean teacher log-prob per scored student token in chunk mode, per scored row in
    full mode), student_entropy (mean over scored rows, nats), clipped (share of clipped chunks / rows),
    anchor_ce. Rows whose chunk id is -1 (template, an end of turn the student never sampled, a chunk
    cut by max_length) are not scored; a batch without chunk ids scores every trace row.
    """
    mode, clip, w_anchor = onpolicy_options(spec.options, obj.relation)
    s_logits, rows = step.student["logits"], step.rows
    if "chunk_ids" in step.batch:
        s_chunk = shifted_chunks(step.batch["chunk_ids"])[rows.mask]
    else:
        s_chunk = torch.arange(rows.targets.shape[0], device=s_logits.device)
    scored = s_chunk >= 0
    if mode == "chunk":
        s_rows = L.chunked_rows(_sampled_rows, obj.chunk_rows, s_logits, rows.targets)
        part, entropy = _chunk_mode(obj, step, s_rows, s_chunk, clip), s_rows[:, 1]
    else:
        part = _full_mode(obj, step, s_logits, rows.targets, scored, clip, onpolicy_divergence(spec.options))
        entropy = part["entropy_rows"]
    n = scored.sum().clamp(min=1)
    out = {
        "onpolicy_rkl": part["value"],
        "onpolicy_rkl.teacher_logprob": part["teacher_logprob"].detach(),
        "onpolicy_rkl.student_entropy": (entropy * scored).sum().detach() / n,
        "onpolicy_rkl.clipped": part["clipped"].detach(),
    }
    if w_anchor > 0:
        if "anchor_logits" not in step.student:
            raise ReasonkdError(
                "onpolicy_rkl: anchor_ce needs the student's logits on the verified traces "
                "(the on_policy stage's anchor forward)"
            )
        a_logits, a_targets = step.student["anchor_logits"], step.student["anchor_targets"]
        ce = L.chunked_sum(lambda s, y: L.ce(s, y, reduction="sum").reshape(1), obj.chunk_rows, a_logits, a_targets)[
            0
        ] / max(a_targets.numel(), 1)
        out["onpolicy_rkl"] = out["onpolicy_rkl"] + w_anchor * ce
        out["onpolicy_rkl.anchor_ce"] = ce.detach()
    return out
