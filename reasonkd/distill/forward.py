"""What the student and teacher forwards return for a step: logits at trace rows, hidden states, attention maps.

    rows = token_rows(batch)                                    # trace positions, shifted targets
    student = DistillStudent(model, projector, hidden_pairs)   # one nn.Module, so DDP sees one graph
    s_out = student(batch["input_ids"], batch["attention_mask"], rows.mask, output_attentions=...)
    s_out["logits"] = project_logits(model, s_out.pop("trace_hidden"))   # (N, V), bf16 under autocast
    t_out = teacher_forward(teacher, batch, rows, objective)    # online teacher, no_grad

Logits are only projected at the positions that predict trace tokens (the
prompt and padding never carry a logit loss), as (N, V) rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from reasonkd.distill.chunk_kd import teacher_token_logprobs
from reasonkd.distill.heads import attentions_by_layer
from reasonkd.distill.losses import IGNORE_INDEX


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
    shifted = F.pad(labels[:, 1:], (0, 1), value=IGNORE_INDEX)  # position p predicts token p + 1
    mask = shifted != IGNORE_INDEX
    return Rows(mask, shifted[mask], mask.nonzero()[:, 0])


class DistillStudent(nn.Module):
    """The student plus this stage's projectors. Returns only what the stage's losses need."""

    def __init__(self, model, projector: nn.Module | None = None, hidden_pairs=()):
        super().__init__()
        self.model = model
        self.projector = projector
        self.hidden_pairs = list(hidden_pairs)

    def forward(
        self, input_ids, attention_mask, logit_rows=None, output_attentions: bool = False, position_ids=None
    ) -> dict:
        """{"trace_hidden": (N, H) final hidden states at `logit_rows`, "hidden": [(B, L, Ht) projected per
        layer pair], "attentions": {layer: (B, H, L, L)}}, each only when asked for.

        position_ids (B, L): a packed batch (reasonkd.distill.packing); attention then stays within each trace.

        The lm_head is applied by the caller (`project_logits`): accelerate upcasts whatever forward
        returns to fp32, and an (N, V) fp32 copy of the logits (plus its gradient) would be the largest
        tensor of the step at V ~ 150k.
        """
        base = hf_model(self.model)
        out = base.get_decoder()(
            input_ids=input_ids,
            use_cache=False,
            **attention_inputs(attention_mask, position_ids),
            output_hidden_states=bool(self.hidden_pairs),
            output_attentions=output_attentions,
        )
        result = {}
        if logit_rows is not None:
            result["trace_hidden"] = out.last_hidden_state[logit_rows]
        if self.hidden_pairs:
            hs = out.hidden_states  # index 0 = embeddings, block i's output = i + 1
            result["hidden"] = [self.projector(hs[i + 1], layer=k) for k, (i, _) in enumerate(self.hidden_pairs)]
        if output_attentions:
            result["attentions"] = attentions_by_layer(base, out.attentions)
        return result


def attention_inputs(attention_mask, position_ids=None) -> dict:
    """Decoder keyword arguments: the 2-D padding mask, or for a packed batch its position ids and no mask
    (transformers then builds the block-diagonal causal mask from where the positions restart)."""
    if position_ids is None:
        return {"attention_mask": attention_mask}
    return {"attention_mask": None, "position_ids": position_ids}


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
def teacher_forward(teacher, batch: dict, rows: Rows, objective) -> dict:
    """One frozen teacher pass: logits at the aligned rows, hidden states and attention maps as needed."""
    base = hf_model(teacher)
    out = base.get_decoder()(
        input_ids=batch["teacher_input_ids"],
        use_cache=False,
        **attention_inputs(batch["teacher_attention_mask"], batch.get("position_ids")),
        output_hidden_states=bool(objective.hidden_pairs),
        output_attentions=bool(objective.attn_pairs),
    )
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
    if objective.teacher_tokens:  # on-policy chunk scoring: log p_T of each of the teacher's completion tokens
        result["token_logprobs"] = teacher_token_logprobs(base, out.last_hidden_state, batch, objective.chunk_rows)
    if objective.hidden_pairs:
        result["hidden"] = [_align(out.hidden_states[j + 1], batch) for _, j in objective.hidden_pairs]
    if objective.attn_pairs:
        result["attentions"] = attentions_by_layer(base, out.attentions)
    return result
