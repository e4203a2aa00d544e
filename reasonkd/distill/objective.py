"""A stage's objective: what the student and teacher forwards return, and each loss term from them.

    student = DistillStudent(model, projector, hidden_pairs)   # one nn.Module, so DDP sees one graph
    objective = Objective(stage, recipe, student_cfg, teacher_cfg, heads)
    rows = token_rows(batch)                                    # trace positions, shifted targets
    s_out = student(batch["input_ids"], batch["attention_mask"], rows.mask, output_attentions=...)
    s_out["logits"] = project_logits(model, s_out.pop("trace_hidden"))   # (N, V), bf16 under autocast
    t_out = teacher_forward(teacher, batch, rows, objective)    # online teacher, no_grad
    terms = objective.terms(s_out, t_out, batch, rows, temperature)   # {"kd": ..., "kd.kl": ..., ...}

Logits are only projected at the positions that predict trace tokens (the
prompt and padding never carry a logit loss), as (N, V) rows; logit terms are
then computed `chunk_rows` rows at a time under activation checkpointing, so
the fp32 softmax intermediates of a 150k vocabulary never exist for all rows
at once. The maths is the pure functions of `reasonkd.distill.losses`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from reasonkd.distill import losses as L
from reasonkd.distill.recipe import FEATURE_LOSSES, LOGIT_LOSSES, DistillRecipe, StageConfig, soft_source
from reasonkd.errors import ConfigError, ReasonkdError


def hf_model(model):
    """The transformers CausalLM inside a peft wrapper (LoRA layers are injected in place)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


@dataclass
class Rows:
    """Token rows of a batch that carry logit losses: output positions predicting a trace token."""

    mask: torch.Tensor
    """(B, L) bool over output positions."""
    targets: torch.Tensor
    """(N,) the trace token each row predicts."""
    batch_index: torch.Tensor
    """(N,) batch row of each row."""


def token_rows(batch: dict) -> Rows:
    labels = batch["labels"]
    shifted = F.pad(labels[:, 1:], (0, 1), value=L.IGNORE_INDEX)  # position p predicts token p + 1
    mask = shifted != L.IGNORE_INDEX
    return Rows(mask, shifted[mask], mask.nonzero()[:, 0])


class DistillStudent(nn.Module):
    """The student plus this stage's projectors. Returns only what the stage's losses need."""

    def __init__(self, model, projector: nn.Module | None = None, hidden_pairs=()):
        super().__init__()
        self.model = model
        self.projector = projector
        self.hidden_pairs = list(hidden_pairs)

    def forward(self, input_ids, attention_mask, logit_rows=None, output_attentions: bool = False) -> dict:
        """{"trace_hidden": (N, H) final hidden states at `logit_rows`, "hidden": [(B, L, Ht) projected per
        layer pair], "attentions": {layer: (B, H, L, L)}}, each only when asked for.

        The lm_head is applied by the caller (`project_logits`): accelerate upcasts whatever forward
        returns to fp32, and an (N, V) fp32 copy of the logits (plus its gradient) would be the largest
        tensor of the step at V ~ 150k.
        """
        base = hf_model(self.model)
        out = base.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                                 output_hidden_states=bool(self.hidden_pairs), output_attentions=output_attentions)
        result = {}
        if logit_rows is not None:
            result["trace_hidden"] = out.last_hidden_state[logit_rows]
        if self.hidden_pairs:
            hs = out.hidden_states  # index 0 = embeddings, block i's output = i + 1
            result["hidden"] = [self.projector(hs[i + 1], layer=k) for k, (i, _) in enumerate(self.hidden_pairs)]
        if output_attentions:
            from reasonkd.distill.heads import attentions_by_layer

            result["attentions"] = attentions_by_layer(base, out.attentions)
        return result


def project_logits(model, trace_hidden: torch.Tensor) -> torch.Tensor:
    """Student logits (N, V) from final hidden states (N, H); call under the autocast context."""
    return hf_model(model).get_output_embeddings()(trace_hidden)


def _align(t: torch.Tensor, batch: dict) -> torch.Tensor:
    """Teacher (B, Lt, ...) -> student positions (B, L, ...) through teacher_index (identity: as is)."""
    if batch.get("teacher_identity", False):
        return t
    idx = batch["teacher_index"].clamp_min(0)
    return t[torch.arange(t.shape[0], device=t.device)[:, None], idx]


@torch.no_grad()
def teacher_forward(teacher, batch: dict, rows: Rows, objective: "Objective") -> dict:
    """One frozen teacher pass: logits at the aligned rows, hidden states and attention maps as needed."""
    base = hf_model(teacher)
    out = base.get_decoder()(input_ids=batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"],
                             use_cache=False, output_hidden_states=bool(objective.hidden_pairs),
                             output_attentions=bool(objective.attn_pairs))
    result = {}
    if objective.online_logits:
        t_pos = batch["teacher_index"][rows.mask]
        result["valid"] = t_pos >= 0
        hidden = out.last_hidden_state[rows.batch_index, t_pos.clamp_min(0)]
        head = base.get_output_embeddings()
        if objective.teacher_shared_only:  # cross-tokenizer "shared" terms read only the shared tokens' logits
            ids = objective.vocab_map.teacher_ids.to(hidden.device)
            bias = None if head.bias is None else head.bias[ids]
            result["logits"] = F.linear(hidden, head.weight[ids], bias)
        else:
            result["logits"] = head(hidden)
    if objective.hidden_pairs:
        result["hidden"] = [_align(out.hidden_states[j + 1], batch) for _, j in objective.hidden_pairs]
    if objective.attn_pairs:
        from reasonkd.distill.heads import attentions_by_layer

        result["attentions"] = attentions_by_layer(base, out.attentions)
    return result


def _row_sums(fn, chunk: int, *rows: torch.Tensor) -> torch.Tensor:
    """sum over row chunks of fn(*chunk_rows) -> 1-D tensor of partial sums; checkpointed under autograd."""
    n = rows[0].shape[0]
    if chunk <= 0 or n <= chunk:
        return fn(*rows)
    use_ckpt = torch.is_grad_enabled() and rows[0].requires_grad
    total = None
    for s in range(0, n, chunk):
        part = [r[s:s + chunk] for r in rows]
        value = checkpoint(fn, *part, use_reentrant=False) if use_ckpt else fn(*part)
        total = value if total is None else total + value
    return total


def load_heads(spec, top_k: int) -> dict[int, list[int]] | None:
    """{teacher_layer: [heads]} from a heads.json path or a list of [layer, head] pairs; None = all heads."""
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        from reasonkd.distill.heads import load_head_selection

        return load_head_selection(spec, top_k)
    out: dict[int, list[int]] = {}
    for item in spec:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise ConfigError(f"heads: entries must be [teacher_layer, head] pairs, got {item!r}")
        out.setdefault(int(item[0]), []).append(int(item[1]))
    return {k: sorted(v) for k, v in sorted(out.items())}


class Objective:
    """The loss terms of one stage and what they need from the forwards."""

    relation = "same"
    vocab_map = None
    teacher_shared_only = False

    def __init__(self, stage: StageConfig, recipe: DistillRecipe, student_cfg, teacher_cfg=None, chunk_rows=1024,
                 relation: str = "same", vocab_map=None):
        self.specs = stage.losses
        self.chunk_rows = chunk_rows
        self.relation = relation
        self.vocab_map = vocab_map
        # cross-tokenizer terms that all use options.cross=shared need the teacher's shared-token logits only
        self.teacher_shared_only = relation == "different" and all(
            s.options.get("cross", "shared") in ("shared", "topk") for s in self.specs if s.name in LOGIT_LOSSES)
        self.sources = {i: soft_source(s, recipe) for i, s in enumerate(self.specs) if s.name in LOGIT_LOSSES}
        self.negatives = {s.name for s in self.specs} & {"unlikelihood", "preference"}
        self.logits = any(s.name in ("ce", "preference") or s.name in LOGIT_LOSSES for s in self.specs)
        self.online_logits = "online" in self.sources.values()
        self.cache_logits = "cache" in self.sources.values()
        names = {s.name for s in self.specs}
        if relation == "different":
            if "attention_kl" in names:
                raise ConfigError(f"stage {stage.name}: attention_kl compares attention maps key by key and needs "
                                  "a shared tokenizer; this pair's tokenizers differ: drop it (hidden_mse / "
                                  "hidden_cosine work across tokenizers, at character-aligned positions)")
            if self.cache_logits:
                raise ConfigError(f"stage {stage.name}: a logit cache holds the teacher's top-k in ITS vocabulary; "
                                  "with different tokenizers use online soft targets (options.source: online)")
        self.hidden_pairs: list[tuple[int, int]] = []
        self.attn_pairs: list[tuple[int, int]] = []
        self.heads = None
        if names & set(FEATURE_LOSSES):
            if teacher_cfg is None:
                raise ReasonkdError(f"stage {stage.name}: feature losses need the teacher")
            pairs = L.layer_map(student_cfg.num_hidden_layers, teacher_cfg.num_hidden_layers, stage.layer_map)
            if names & {"hidden_mse", "hidden_cosine"}:
                self.hidden_pairs = pairs
            if "attention_kl" in names:
                self.heads = load_heads(stage.heads, stage.heads_top_k)
                self.attn_pairs = [(i, j) for i, j in pairs if self.heads is None or j in self.heads]
                if not self.attn_pairs:
                    raise ConfigError(f"stage {stage.name}: no teacher layer of layer_map {pairs} holds a selected "
                                      f"head ({self.heads}); map student layers to those teacher layers")
                self.head_map = L.head_map(student_cfg.num_attention_heads, teacher_cfg.num_attention_heads,
                                           getattr(student_cfg, "num_key_value_heads", None),
                                           getattr(teacher_cfg, "num_key_value_heads", None))

    @property
    def needs_teacher(self) -> bool:
        return self.online_logits or bool(self.hidden_pairs) or bool(self.attn_pairs)

    # ---- the terms --------------------------------------------------------------------------

    def terms(self, s_out: dict, t_out: dict | None, batch: dict, rows: Rows, temperature: float) -> dict:
        """{spec name: scalar} plus diagnostics ("kd.kl", "kd.ce"); every value is a 0-dim tensor."""
        out: dict[str, torch.Tensor] = {}
        for i, spec in enumerate(self.specs):
            opts = dict(spec.options)
            opts.pop("source", None)
            if spec.name == "ce":
                out["ce"] = self._ce(s_out["logits"], rows)
            elif spec.name in LOGIT_LOSSES:
                teacher = self._soft_targets(self.sources[i], t_out, batch, rows)
                out.update(self._logit_term(spec.name, s_out["logits"], teacher, rows, temperature, opts))
            elif spec.name in ("unlikelihood", "preference"):
                out.update(self._negative(spec.name, s_out, batch, rows, opts))
            elif spec.name in ("hidden_mse", "hidden_cosine"):
                out[spec.name] = self._hidden(spec.name, s_out, t_out, batch, opts)
            else:
                out[spec.name] = self._attention(s_out, t_out, batch, opts)
        return out

    def _ce(self, logits: torch.Tensor, rows: Rows) -> torch.Tensor:
        def fn(s, y):
            return F.cross_entropy(s.float(), y, reduction="sum").reshape(1)

        return _row_sums(fn, self.chunk_rows, logits, rows.targets)[0] / max(rows.targets.numel(), 1)

    def _soft_targets(self, source: str, t_out, batch, rows: Rows) -> dict:
        if source == "online":
            return {"logits": t_out["logits"], "valid": t_out["valid"]}
        return {"ids": batch["teacher_topk_ids"][rows.mask], "logprobs": batch["teacher_topk_logprobs"][rows.mask],
                "valid": batch["soft_mask"][rows.mask]}

    def _logit_term(self, name, s_logits, teacher, rows: Rows, T: float, opts: dict) -> dict:
        valid = teacher["valid"]
        n_valid = int(valid.sum())
        zero = s_logits.sum() * 0.0
        if n_valid == 0:  # e.g. a batch whose examples are all missing from the cache
            return {name: zero} if name != "kd" else {"kd": zero, "kd.kl": zero.detach(), "kd.ce": zero.detach()}
        dense = "logits" in teacher
        t_src = teacher["logits"] if dense else teacher["ids"]
        cross_opts = {k: opts.pop(k) for k in ("cross", "k") if k in opts}  # only read across tokenizers
        if self.relation == "different":
            return self._cross_vocab_term(name, s_logits, t_src, rows, valid, n_valid, T, {**opts, **cross_opts})
        if dense and t_src.shape[-1] != s_logits.shape[-1]:  # same tokenizer, padded embeddings
            from reasonkd.distill.align import truncate_to_common_vocab

            s_logits, t_src = truncate_to_common_vocab(s_logits, t_src)
        extra = (t_src,) if dense else (t_src, teacher["logprobs"])
        if name == "kd":
            alpha = float(opts.get("alpha", 0.7))

            def fn(s, y, m, *t):
                if dense:
                    r = L.distillation_loss_terms(s[None], t[0][None], y[None], T, alpha, m[None], reduction="sum")
                else:
                    r = L.sparse_distillation_loss_terms(s[None], t[0][None], t[1][None], y[None], T, alpha,
                                                         m[None], reduction="sum")
                return torch.stack([r["kl"], r["ce"]])

            sums = _row_sums(fn, self.chunk_rows, s_logits, rows.targets, valid, *extra)
            kl, ce = sums[0] / n_valid, sums[1] / n_valid
            return {"kd": alpha * T * T * kl + (1 - alpha) * ce, "kd.kl": kl.detach(), "kd.ce": ce.detach()}
        scale = T * T if opts.pop("t2", False) else 1.0
        div = L.get_divergence(name) if dense else None

        def fn(s, m, *t):
            if dense:
                v = div(s[None], t[0][None], mask=m[None], temperature=T, reduction="sum", **opts)
            else:
                v = L.sparse_divergence(name, s[None], t[0][None], t[1][None], mask=m[None], temperature=T,
                                        reduction="sum", **opts)
            return v.reshape(1)

        return {name: scale * _row_sums(fn, self.chunk_rows, s_logits, valid, *extra)[0] / n_valid}

    def _negative(self, name: str, s_out: dict, batch: dict, rows: Rows, opts: dict) -> dict:
        from reasonkd.distill.negatives import negative_terms

        neg = s_out["neg_rows"]
        return negative_terms({name}, s_out["logits"], rows.targets, rows.batch_index, s_out["neg_logits"],
                              neg.targets, neg.batch_index, s_out["neg_wrong"], batch["has_neg"],
                              beta=float(opts.get("beta", 0.1)))

    def _cross_vocab_term(self, name, s_logits, t_logits, rows: Rows, valid, n_valid: int, T: float,
                          opts: dict) -> dict:
        """A logit term across vocabularies (docs/cross_tokenizer.md): rows are already the aligned
        positions (the teacher row sits where the teacher has read the same text).

        options.cross: "shared" (default; the divergence between both distributions conditioned on the
        token strings both vocabularies hold, losses.cross_vocab_rows(other_bucket=False)), "topk" (the
        teacher's k most likely shared tokens + one "other" bucket, options.k = 20;
        losses.cross_vocab_topk_rows: the safe choice at high temperature), "buckets"
        (shared tokens + one "other" bucket per side; forward_kl there = losses.cross_vocab_kl) or
        "uld" (sorted-probability distance, losses.uld_rows; any divergence name then means ULD).
        kd = alpha * T^2 * (that divergence) + (1 - alpha) * CE on the student's own tokens.
        """
        cross = opts.pop("cross", "shared")
        if cross not in ("shared", "topk", "buckets", "uld"):
            raise ConfigError(f"loss {name}: options.cross must be shared, topk, buckets or uld, got {cross!r}")
        k = int(opts.pop("k", 20))
        alpha = float(opts.pop("alpha", 0.7)) if name == "kd" else None
        scale = T * T if opts.pop("t2", False) else 1.0
        div = "forward_kl" if name == "kd" else name

        def fn(s, t, m, y):
            if cross == "uld":
                d = L.uld_rows(s, t, T)
            elif cross == "topk":
                if not self.teacher_shared_only:
                    t = t.index_select(-1, self.vocab_map.teacher_ids.to(t.device))
                d = L.cross_vocab_topk_rows(div, s, t, self.vocab_map, k, T, **opts)
            else:
                d = L.cross_vocab_rows(div, s, t, self.vocab_map, T, other_bucket=cross == "buckets",
                                       teacher_is_shared=self.teacher_shared_only, **opts)
            d = (d * m).sum()
            if alpha is None:
                return d.reshape(1)
            ce = F.cross_entropy(s.float(), y, reduction="sum")  # every trace token, partner or not
            return torch.stack([d, ce])

        sums = _row_sums(fn, self.chunk_rows, s_logits, t_logits, valid.to(s_logits.dtype), rows.targets)
        if alpha is None:
            return {name: scale * sums[0] / n_valid}
        kl, ce = sums[0] / n_valid, sums[1] / max(rows.targets.numel(), 1)
        return {"kd": alpha * T * T * kl + (1 - alpha) * ce, "kd.kl": kl.detach(), "kd.ce": ce.detach()}

    def _feature_mask(self, batch: dict, opts: dict) -> torch.Tensor:
        mask = batch["attention_mask"].bool() & (batch["teacher_index"] >= 0)
        positions = opts.get("positions", "all")
        if positions == "trace":
            mask = mask & (batch["labels"] != L.IGNORE_INDEX)
        elif positions != "all":
            raise ConfigError(f"options.positions must be all or trace, got {positions!r}")
        return mask

    def _hidden(self, name, s_out, t_out, batch, opts) -> torch.Tensor:
        mask = self._feature_mask(batch, opts)
        kind = "mse" if name == "hidden_mse" else "cosine"
        normalize = bool(opts.get("normalize", False))
        parts = [L.hidden_state_loss(s, t, mask=mask, kind=kind, normalize=normalize)
                 for s, t in zip(s_out["hidden"], t_out["hidden"])]
        return torch.stack(parts).mean()

    def _attention(self, s_out, t_out, batch, opts) -> torch.Tensor:
        if not batch.get("teacher_identity", False):
            raise ReasonkdError("attention_kl needs teacher and student to share the tokenizer (key positions "
                                "must match); drop it for a cross-tokenizer pair")
        mask = self._feature_mask(batch, opts)
        parts = [L.attention_loss(s_out["attentions"][i], t_out["attentions"][j], head_map=self.head_map,
                                  heads=None if self.heads is None else self.heads[j], mask=mask)
                 for i, j in self.attn_pairs]
        return torch.stack(parts).mean()
