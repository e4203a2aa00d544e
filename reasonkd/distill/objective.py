"""A stage's objective: which loss terms it sums, and what they need from the forwards.

    objective = Objective(stage, recipe, student_cfg, teacher_cfg, chunk_rows, relation, vocab_map)
    objective.needs_teacher, objective.hidden_pairs, objective.attn_pairs   # what to run and keep
    loss, logged = objective.loss(s_out, t_out, batch, rows, temperature, balancer, reduce)

`Objective.loss` is where a batch's loss is written: for each loss of the
stage it calls the term function the registry `terms.LOSSES` holds for its
name (the maths is the row functions of `reasonkd.distill.losses`), then sums
weight * balance scale * term. The forwards are `reasonkd.distill.forward`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from reasonkd.distill import losses as L
from reasonkd.distill.balance import LossBalancer
from reasonkd.distill.chunk_kd import onpolicy_options
from reasonkd.distill.heads import load_head_selection
from reasonkd.distill.recipe import FEATURE_LOSSES, LOGIT_LOSSES, DistillRecipe, StageConfig, fused_caches, soft_source
from reasonkd.distill.terms import CROSS_MODES, LOSSES, Step
from reasonkd.errors import ConfigError, ReasonkdError


def load_heads(spec, top_k: int) -> dict[int, list[int]] | None:
    """{teacher_layer: [heads]} from a heads.json path or a list of [layer, head] pairs; None = all heads."""
    if spec is None:
        return None
    if isinstance(spec, (str, Path)):
        return load_head_selection(spec, top_k)
    out: dict[int, list[int]] = {}
    for item in spec:
        if not (isinstance(item, (list, tuple)) and len(item) == 2):
            raise ConfigError(f"heads: entries must be [teacher_layer, head] pairs, got {item!r}")
        out.setdefault(int(item[0]), []).append(int(item[1]))
    return {k: sorted(v) for k, v in sorted(out.items())}


class Objective:
    """The loss terms of one stage and what they need from the forwards."""

    def __init__(
        self,
        stage: StageConfig,
        recipe: DistillRecipe,
        student_cfg,
        teacher_cfg=None,
        chunk_rows=1024,
        relation: str = "same",
        vocab_map=None,
    ):
        self.specs = stage.losses
        self.chunk_rows = chunk_rows
        self.fused = recipe is not None and recipe.fused_loss  # no recipe (a bare objective): the plain losses
        self.relation = relation
        self.vocab_map = vocab_map
        names = {s.name for s in self.specs}
        needs = set().union(*(LOSSES[n].needs for n in names))
        logit_specs = [s for s in self.specs if s.name in LOGIT_LOSSES]
        for s in logit_specs:
            if s.options.get("cross", "shared") not in CROSS_MODES:
                raise ConfigError(
                    f"loss {s.name}: options.cross must be one of {', '.join(CROSS_MODES)}, got {s.options['cross']!r}"
                )
        # cross-tokenizer terms that all compare shared tokens only need the teacher's shared-token logits
        self.teacher_shared_only = relation == "different" and all(
            s.options.get("cross", "shared") in ("shared", "topk") for s in logit_specs
        )
        self.sources = {s.name: soft_source(s, recipe) for s in logit_specs}
        self.negatives = bool(needs & {"negatives"})
        self.logits = "logits" in needs
        self.online_logits = "online" in self.sources.values()
        self.cache_logits = "cache" in self.sources.values()
        if relation == "different":
            if "attention_kl" in names:
                raise ConfigError(
                    f"stage {stage.name}: attention_kl compares attention maps key by key and needs "
                    "a shared tokenizer; this pair's tokenizers differ: drop it (hidden_mse / "
                    "hidden_cosine work across tokenizers, at character-aligned positions)"
                )
            if self.cache_logits and not fused_caches(recipe):  # several teachers' caches: in student ids
                raise ConfigError(
                    f"stage {stage.name}: a logit cache holds the teacher's top-k in ITS vocabulary; "
                    "with different tokenizers use online soft targets (options.source: online)"
                )
        # on-policy (onpolicy_rkl): per-chunk scoring needs the teacher's log-prob of each of its completion
        # tokens, full mode the teacher's logits at the rows; anchor_ce a student pass on the verified traces
        on_policy = [s for s in self.specs if "teacher_tokens" in LOSSES[s.name].needs]
        mode, _, anchor = onpolicy_options(on_policy[0].options, relation) if on_policy else (None, 0.0, 0.0)
        self.teacher_tokens, self.anchor = mode == "chunk", anchor > 0
        self.online_logits = self.online_logits or mode == "full"
        self.hidden_pairs: list[tuple[int, int]] = []
        self.attn_pairs: list[tuple[int, int]] = []
        self.heads = self.head_map = None
        if names & set(FEATURE_LOSSES):
            if teacher_cfg is None:
                raise ReasonkdError(f"stage {stage.name}: feature losses need the teacher")
            pairs = L.layer_map(student_cfg.num_hidden_layers, teacher_cfg.num_hidden_layers, stage.layer_map)
            if "hidden" in needs:
                self.hidden_pairs = pairs
            if "attentions" in needs:
                self._select_heads(stage, pairs, student_cfg, teacher_cfg)

    def _select_heads(self, stage: StageConfig, pairs, student_cfg, teacher_cfg) -> None:
        self.heads = load_heads(stage.heads, stage.heads_top_k)
        self.attn_pairs = [(i, j) for i, j in pairs if self.heads is None or j in self.heads]
        if not self.attn_pairs:
            raise ConfigError(
                f"stage {stage.name}: no teacher layer of layer_map {pairs} holds a selected "
                f"head ({self.heads}); map student layers to those teacher layers"
            )
        self.head_map = L.head_map(
            student_cfg.num_attention_heads,
            teacher_cfg.num_attention_heads,
            getattr(student_cfg, "num_key_value_heads", None),
            getattr(teacher_cfg, "num_key_value_heads", None),
        )

    @property
    def needs_teacher(self) -> bool:
        return self.online_logits or self.teacher_tokens or bool(self.hidden_pairs) or bool(self.attn_pairs)

    def loss(
        self, s_out: dict, t_out: dict | None, batch: dict, rows, temperature: float, balancer: LossBalancer, reduce
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The batch's loss: every term of the stage computed, weighted and summed.

        s_out / t_out: what the student's and the teacher's forwards returned (forward.py); rows: the trace
        rows (forward.Rows); reduce: (K,) tensor -> its mean over processes (accelerator.reduce).
        Returns (loss, logged): `loss` is the tensor to backpropagate; `logged` holds each term and its
        diagnostics ("kd.kl", "kd.ce", ...), the balance scales when balancing, and "loss": that same
        tensor's value, each a mean over processes.
        """
        step = Step(s_out, t_out, batch, rows, temperature)
        terms: dict[str, torch.Tensor] = {}
        for spec in self.specs:  # {name: 0-dim tensor, "name.diagnostic": detached, ...}
            terms.update(LOSSES[spec.name].fn(self, spec, step))
        # the same numbers on every process, so balancing scales agree across DDP ranks
        names = list(terms)
        logged = dict(zip(names, reduce(torch.stack([terms[k].detach().float() for k in names])).tolist()))
        scales = balancer.scales({spec.name: logged[spec.name] for spec in self.specs})
        loss = None
        for spec in self.specs:
            value = spec.weight * scales[spec.name] * terms[spec.name]
            loss = value if loss is None else loss + value
        logged["loss"] = float(reduce(loss.detach().float().reshape(1))[0])
        if balancer.enabled:
            logged.update({f"scale.{k}": v for k, v in scales.items()})
        return loss, logged
