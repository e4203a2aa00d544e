"""The teacher/student pair of a run: how their tokenizers relate, and the teacher's view of each example.

    pair = encode_for_pair(recipe, examples, student_tok)   # -> TokenizerPair (relation computed once)
    pair.encoded            # list[distill.data.Encoded], teacher view filled when tokenizers differ
    pair.encode(rows)       # the same encoding for new rows (on-policy completions)

Relations (align.tokenizer_relation):
    same         one tokenisation, shared ids, identity alignment (the usual same-family KD)
    same_padded  shared ids; logits widths differ (151,936 vs 152,064): compared on the common
                 vocabulary (align.truncate_to_common_vocab), with a warning
    different    each model reads the text in its own chat template and tokenizer
                 (`PairEncoder`); `teacher_index` says which teacher position sits at the same
                 character boundary as each student position, and the losses compare the models
                 only there (logit terms through the shared-token buckets or ULD, feature terms at
                 the aligned rows; docs/cross_tokenizer.md)

Why the aligned positions: logits at position i predict what follows the text read so far. Where
student token i and teacher token j END at the same character, both models have read exactly the
same text, so both distributions describe the continuation from that character, and the hidden
states there encode the same prefix. Tests: tests/distill/test_crosstok.py (`-m slow` adds the
real SmolLM2 / Qwen2.5 pair).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

from transformers import AutoConfig

from reasonkd.distill.align import (
    VocabMap,
    aligned_positions,
    build_vocab_map,
    char_offsets,
    check_token_ids,
    tokenizer_relation,
)
from reasonkd.distill.data import Encoded, encode_all
from reasonkd.distill.recipe import DistillRecipe, needs_teacher_online
from reasonkd.models import load_tokenizer, resolve
from reasonkd.models.encoding import encode_example, end_of_turn, prompt_text

log = logging.getLogger(__name__)


class PairEncoder:
    """Encode (prompt, trace) for a student and a teacher whose tokenizers differ.

    Each side is `models.encoding.encode_example` with its own chat template and tokenizer (and
    system prompt, when given); `teacher_index` pairs positions that end at the same character.
    """

    def __init__(
        self,
        student_tok,
        teacher_tok,
        student_vocab_size: int,
        teacher_vocab_size: int,
        max_length: int = 512,
        student_system: str | None = None,
        teacher_system: str | None = None,
    ):
        self.student_tok, self.teacher_tok = student_tok, teacher_tok
        self.vocab_sizes = {"student": student_vocab_size, "teacher": teacher_vocab_size}
        self.systems = {"student": student_system, "teacher": teacher_system}
        self.max_length = max_length

    def _side(self, who: str, prompt: str, trace: str, system: str | None):
        """(ids cut to max_length, prompt length, trace-relative character offsets of the trace tokens)."""
        tok = self.student_tok if who == "student" else self.teacher_tok
        system = self.systems[who] if system is None else system
        ids, n_prompt = encode_example(tok, prompt, trace, system)
        check_token_ids(
            ids, tok, who, prompt_text(tok, prompt, system) + trace + end_of_turn(tok), self.vocab_sizes[who]
        )
        return ids[: self.max_length], n_prompt, char_offsets(tok, trace)

    def encode(self, prompt: str, trace: str, system: str | None = None, id: str = "") -> Encoded:
        """Student ids, teacher ids and teacher_index (len = student length): the teacher position ending
        at the same trace character, or -1. `system` replaces both sides' default system prompt."""
        s_ids, s_np, s_off = self._side("student", prompt, trace, system)
        t_ids, t_np, t_off = self._side("teacher", prompt, trace, system)
        align = [-1] * len(s_ids)
        if s_np and t_np and s_np <= len(s_ids):
            align[s_np - 1] = t_np - 1  # both end just before the trace: they predict its first token
        for k, j in enumerate(aligned_positions(s_off, t_off)):
            if j >= 0 and s_np + k < len(s_ids):
                align[s_np + k] = t_np + j
        align = [j if j < len(t_ids) else -1 for j in align]  # partner cut off by the teacher's truncation
        return Encoded(id, s_ids, s_np, teacher_input_ids=t_ids, teacher_index=align)


@dataclass
class TokenizerPair:
    """What a run needs to know about its teacher/student pair (stages.run_recipe -> RunContext)."""

    encoded: list[Encoded]
    """The traces, encoded for this pair."""
    encode: Callable[[list[dict]], list[Encoded]]
    """rows -> Encoded with the same path (on-policy stages re-encode the student's completions)."""
    relation: str = "same"
    """same | same_padded | different (align.tokenizer_relation)."""
    vocab_map: VocabMap | None = field(default=None, repr=False)
    """Shared token strings (relation "different"): the cross-vocabulary logit terms."""
    teacher_pad_id: int | None = None
    """The teacher tokenizer's pad id (relation "different"); None = the student's."""


def _vocab_size(name: str, tokenizer) -> int:
    """Logits width of a model from its config without loading weights (len(tokenizer) when unknown)."""
    r = resolve(name)
    if r.kind in ("alias", "folder"):
        cfg = AutoConfig.from_pretrained(r.path)
        cfg = getattr(cfg, "text_config", None) or cfg
        if getattr(cfg, "vocab_size", None):
            return int(cfg.vocab_size)
    return len(tokenizer)


def encode_for_pair(recipe: DistillRecipe, examples: list[dict], student_tok) -> TokenizerPair:
    """Tokenise the traces for this teacher/student pair and say which path the run takes (module doc)."""

    def same(rows):
        return encode_all(rows, student_tok, recipe.max_length)

    if not recipe.teacher or not any(needs_teacher_online(s, recipe) for s in recipe.stages):
        return TokenizerPair(same(examples), same)  # the teacher model is never run
    teacher_tok = load_tokenizer(recipe.teacher)
    s_vocab, t_vocab = _vocab_size(recipe.student, student_tok), _vocab_size(recipe.teacher, teacher_tok)
    relation = tokenizer_relation(student_tok, teacher_tok, s_vocab, t_vocab)
    if relation == "same_padded":
        log.warning(
            "student and teacher share the tokenizer but not the logits width (%d vs %d): logits are "
            "compared on the common vocabulary",
            s_vocab,
            t_vocab,
        )
    if relation != "different":
        log.info("tokenizer relation: %s (student vocab %d, teacher vocab %d)", relation, s_vocab, t_vocab)
        return TokenizerPair(same(examples), same, relation)
    encoder = PairEncoder(student_tok, teacher_tok, s_vocab, t_vocab, max_length=recipe.max_length)

    def cross(rows):
        return encode_all(rows, student_tok, recipe.max_length, pair=encoder)

    encoded = cross(examples)
    vocab_map = build_vocab_map(student_tok, teacher_tok, s_vocab, t_vocab)
    aligned = sum(sum(j >= 0 for j in e.teacher_index[e.prompt_len :]) for e in encoded)
    total = sum(len(e.input_ids) - e.prompt_len for e in encoded)
    log.warning(
        "cross-tokenizer path: student vocab %d vs teacher vocab %d; %d shared token strings; %.1f%% of "
        "trace tokens have a character-aligned teacher position",
        s_vocab,
        t_vocab,
        len(vocab_map),
        100.0 * aligned / max(total, 1),
    )
    pad = teacher_tok.pad_token_id if teacher_tok.pad_token_id is not None else teacher_tok.eos_token_id
    return TokenizerPair(encoded, cross, relation, vocab_map, int(pad or 0))
