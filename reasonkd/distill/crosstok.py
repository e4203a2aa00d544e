"""Cross-tokenizer batches: one (prompt, trace) pair, tokenised by BOTH models, plus the alignment.

The trainer's same-tokenizer path feeds one id sequence to both models. When the teacher and the
student tokenise differently (S1: R1 vocab 129,280 vs Qwen2 152,064), each model gets the text
in its own chat template and tokenizer, and `align_index` says which teacher position sits at the
same character boundary as each student position. The losses compare the models only there.

    enc = PairEncoder(student_tok, teacher_tok, student.config.vocab_size, teacher.config.vocab_size)
    rows = [enc.encode(prompt, trace) for prompt, trace in examples]
    batch = collate(rows, student_tok.pad_token_id, teacher_tok.pad_token_id)
    s_out = student(batch["student_input_ids"], attention_mask=batch["student_attention_mask"])
    with torch.no_grad():
        t_out = teacher(batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"])
    kd = cross_tokenizer_logit_loss(s_out.logits, t_out.logits, batch, vocab_map, kind="cross_vocab_kl")

Why the aligned positions: logits at position i predict what follows the text read so far. Where
student token i and teacher token j END at the same character, both models have read exactly the
same text, so both distributions describe the continuation from that character (the next
student and teacher tokens may cover different amounts of text; cross_vocab_kl compares only the
shared token strings plus one "other" bucket, ULD only the sorted probabilities). Hidden states
there encode the same prefix, so the feature loss compares them too. Tests:
tests/distill/test_crosstok.py (`-m slow` adds the real SmolLM2 / Qwen2.5 pair); docs/cross_tokenizer.md.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from reasonkd.distill.align import aligned_positions, check_token_ids, tokenizer_relation
from reasonkd.distill.losses import IGNORE_INDEX, cross_vocab_kl, hidden_state_loss, uld_loss
from reasonkd.errors import ReasonkdError
from reasonkd.models.generation import apply_chat

log = logging.getLogger(__name__)

_SENTINEL = "\x00REASONKD_TRACE\x00"


def end_of_turn(tokenizer) -> str:
    """The string the chat template writes after an assistant turn ("<|im_end|>", "<|eot_id|>", ...).

    Read from the template rather than `eos_token`: GGUF-converted tokenizers often name the wrong
    eos (SmolLM2's says "<|im_start|>", Qwen2.5's "<|endoftext|>"), and the student must learn to
    emit the token its template stops on. Falls back to eos_token without a template.
    """
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": _SENTINEL}]
        text = tokenizer.apply_chat_template(msgs, tokenize=False)
        if _SENTINEL in text:
            tail = text.split(_SENTINEL, 1)[1].strip()
            if tail:
                return tail.split()[0]  # drop whatever the template writes after the turn
    return tokenizer.eos_token or ""


@dataclass
class _Side:
    who: str
    tok: object
    vocab_size: int
    system: str | None
    end: str


class PairEncoder:
    """Encode (prompt, trace) for a student and a teacher that may use different tokenizers.

    Relations (align.tokenizer_relation): "same" and "same_padded" (same vocabulary, embedding
    sizes differ; compare logits after align.truncate_to_common_vocab) format and tokenise once
    with the student's template and system prompt, so teacher ids == student ids and align_index
    is the identity. "different" tokenises each side with its own template and tokenizer.
    """

    def __init__(self, student_tok, teacher_tok, student_vocab_size: int, teacher_vocab_size: int,
                 max_length: int = 512, student_system: str | None = None, teacher_system: str | None = None):
        self.relation = tokenizer_relation(student_tok, teacher_tok, student_vocab_size, teacher_vocab_size)
        self.max_length = max_length
        self.student = _Side("student", student_tok, student_vocab_size, student_system, end_of_turn(student_tok))
        self.teacher = _Side("teacher", teacher_tok, teacher_vocab_size, teacher_system, end_of_turn(teacher_tok))
        if self.relation == "different":
            log.info("cross-tokenizer distillation: student vocab %d, teacher vocab %d differ; each side uses "
                     "its own chat template, losses compare character-aligned positions",
                     student_vocab_size, teacher_vocab_size)
        elif self.relation == "same_padded":
            log.warning("student and teacher share a tokenizer but their logits differ in width (%d vs %d): "
                        "shared ids, identity alignment; truncate logits with truncate_to_common_vocab",
                        student_vocab_size, teacher_vocab_size)
        else:
            log.info("same tokenizer for student and teacher (vocab %d): shared ids, identity alignment",
                     student_vocab_size)

    def _ids(self, side: _Side, text: str, offsets: bool = False):
        """Raw tokenisation (no BOS/EOS added: the chat template already wrote them)."""
        enc = side.tok(text, add_special_tokens=False, return_offsets_mapping=offsets)
        return (enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]) if offsets else enc["input_ids"]

    def _side(self, side: _Side, prompt: str, trace: str, system: str | None = None):
        """ids, labels, number of prompt tokens, trace-relative offsets of the trace tokens.

        Prompt, trace and end-of-turn are tokenised separately and concatenated, so the prompt
        tokens are exactly those the model sees at generation time and the trace offsets start at 0.
        """
        head = apply_chat(side.tok, prompt, side.system if system is None else system)
        p_ids = self._ids(side, head)
        t_ids, t_off = self._ids(side, trace, offsets=True)
        e_ids = self._ids(side, side.end) if side.end else []
        ids = p_ids + t_ids + e_ids
        check_token_ids(ids, side.tok, side.who, head + trace + side.end, side.vocab_size)
        labels = [IGNORE_INDEX] * len(p_ids) + t_ids + e_ids
        return ids[:self.max_length], labels[:self.max_length], len(p_ids), t_off

    def encode(self, prompt: str, trace: str, system: str | None = None) -> dict:
        """Python lists: student_/teacher_ input_ids and labels (-100 on the prompt, unshifted), and
        align_index (len = student length): teacher position ending at the same trace character, or -1.
        `system` (e.g. the trace row's own system prompt) replaces both sides' default system prompt."""
        if self.relation != "different":
            ids, labels, _, _ = self._side(self.student, prompt, trace, system)
            check_token_ids(ids, self.teacher.tok, "teacher", vocab_size=self.teacher.vocab_size)
            return dict(student_input_ids=ids, student_labels=labels, teacher_input_ids=list(ids),
                        teacher_labels=list(labels), align_index=list(range(len(ids))))
        s_ids, s_labels, s_np, s_off = self._side(self.student, prompt, trace, system)
        t_ids, t_labels, t_np, t_off = self._side(self.teacher, prompt, trace, system)
        align = [-1] * len(s_ids)
        if s_np and t_np and s_np <= len(s_ids):
            align[s_np - 1] = t_np - 1  # both end just before the trace: they predict its first token
        for k, j in enumerate(aligned_positions(s_off, t_off)):
            if j >= 0 and s_np + k < len(s_ids):
                align[s_np + k] = t_np + j
        align = [j if j < len(t_ids) else -1 for j in align]  # partner cut off by the teacher's truncation
        return dict(student_input_ids=s_ids, student_labels=s_labels, teacher_input_ids=t_ids,
                    teacher_labels=t_labels, align_index=align)


def encode_for_trainer(examples: list[dict], encoder: PairEncoder) -> list:
    """Trace rows {"id", "prompt", "trace", "system"} -> distill.data.Encoded with the teacher view.

    input_ids / prompt_len are the student's; teacher_input_ids are the teacher's own tokens of the
    same text; teacher_index is align_index (the trainer's name for it). Rows left with no trace
    token inside max_length are dropped, as in distill.data.encode_all.
    """
    from reasonkd.distill.data import Encoded

    out, dropped = [], 0
    for ex in examples:
        row = encoder.encode(ex["prompt"], ex["trace"], ex.get("system"))
        labels = row["student_labels"]
        prompt_len = next((k for k, y in enumerate(labels) if y != IGNORE_INDEX), len(labels))
        if prompt_len >= len(labels):
            dropped += 1
            continue
        out.append(Encoded(ex["id"], row["student_input_ids"], prompt_len, row["teacher_input_ids"],
                           row["align_index"]))
    if dropped:
        log.warning("%d example(s) dropped: the prompt alone fills max_length=%d", dropped, encoder.max_length)
    if not out:
        raise ReasonkdError(f"no example keeps a trace token within max_length={encoder.max_length}; raise max_length")
    return out


def collate(rows: list[dict], pad_id_student: int, pad_id_teacher: int) -> dict:
    """Right-pad encoded rows into tensors: *_input_ids, *_attention_mask, *_labels (-100 padded),
    align_index (B, Ls) long (-1 padded)."""
    def pad(key, value):
        width = max(len(r[key]) for r in rows)
        return torch.tensor([r[key] + [value] * (width - len(r[key])) for r in rows], dtype=torch.long)

    batch = {"align_index": pad("align_index", -1)}
    for who, pad_id in (("student", pad_id_student), ("teacher", pad_id_teacher)):
        batch[f"{who}_input_ids"] = pad(f"{who}_input_ids", pad_id)
        batch[f"{who}_labels"] = pad(f"{who}_labels", IGNORE_INDEX)
        lengths = torch.tensor([len(r[f"{who}_input_ids"]) for r in rows])
        width = batch[f"{who}_input_ids"].shape[1]
        batch[f"{who}_attention_mask"] = (torch.arange(width)[None, :] < lengths[:, None]).long()
    return batch


def gather_aligned(teacher_tensor: torch.Tensor, align_index: torch.Tensor) -> torch.Tensor:
    """teacher_tensor (B, Lt, ...) -> (B, Ls, ...): row i is teacher row align_index[b, i], zeros where -1."""
    keep = align_index >= 0
    b = torch.arange(align_index.shape[0], device=align_index.device)[:, None]
    out = teacher_tensor[b, align_index.clamp_min(0)]
    return out.masked_fill(~keep.view(*keep.shape, *[1] * (out.dim() - 2)), 0)


def aligned_mask(student_labels: torch.Tensor, align_index: torch.Tensor) -> torch.Tensor:
    """(B, Ls) bool: position i predicts a trace token (student_labels[:, i + 1] != -100) AND has a
    teacher partner at the same character boundary. For the same tokenizer this is the usual
    shifted-label mask."""
    mask = torch.zeros_like(align_index, dtype=torch.bool)
    mask[:, :-1] = (student_labels[:, 1:] != IGNORE_INDEX) & (align_index[:, :-1] >= 0)
    return mask


def _aligned_pairs(batch: dict, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(b, i, j) index vectors of the compared positions: student (b, i) <-> teacher (b, j)."""
    align = batch["align_index"].to(device)
    b, i = aligned_mask(batch["student_labels"].to(device), align).nonzero(as_tuple=True)
    return b, i, align[b, i]


def cross_tokenizer_logit_loss(student_logits, teacher_logits, batch: dict, vocab_map=None,
                               kind: str = "cross_vocab_kl", temperature: float = 1.0) -> torch.Tensor:
    """Mean cross_vocab_kl / uld_loss over the aligned trace positions (see aligned_mask).

    student_logits: (B, Ls, Vs); teacher_logits: (B, Lt, Vt), detached here (the teacher is
    frozen); batch: from `collate`; vocab_map: align.VocabMap (cross_vocab_kl only). Only the N
    compared rows are gathered, never a (B, Ls, Vt) copy of the teacher logits. No T^2 factor.
    """
    if kind not in ("cross_vocab_kl", "uld"):
        raise ReasonkdError(f"cross-tokenizer logit loss kind must be 'cross_vocab_kl' or 'uld', got {kind!r}")
    b, i, j = _aligned_pairs(batch, student_logits.device)
    s = student_logits[b, i].unsqueeze(0)                                         # (1, N, Vs)
    t = teacher_logits.detach()[b.to(teacher_logits.device), j.to(teacher_logits.device)].unsqueeze(0)
    t = t.to(student_logits.device)                                               # (1, N, Vt)
    if kind == "uld":
        return uld_loss(s, t, temperature=temperature)
    if vocab_map is None:
        raise ReasonkdError("kind='cross_vocab_kl' needs a vocab_map (align.build_vocab_map); or use kind='uld'")
    return cross_vocab_kl(s, t, vocab_map, temperature=temperature)


def aligned_hidden_loss(student_hidden, teacher_hidden, batch: dict, projector=None, kind: str = "mse",
                        normalize: bool = False) -> torch.Tensor:
    """hidden_state_loss between student (B, Ls, Hs) and teacher (B, Lt, Ht) hidden states at the
    aligned positions; teacher detached; projector Hs -> Ht (e.g. FeatureProjector or .at(layer))."""
    b, i, j = _aligned_pairs(batch, student_hidden.device)
    s = student_hidden[b, i].unsqueeze(0)
    t = teacher_hidden.detach()[b.to(teacher_hidden.device), j.to(teacher_hidden.device)]
    return hidden_state_loss(s, t.to(student_hidden.device).unsqueeze(0), projector, kind=kind, normalize=normalize)
