"""How a model reads one (prompt, trace) example: its chat prompt, the trace, its end-of-turn token.

    ids, prompt_len = encode_example(tokenizer, "What is 2 + 3?", "2 + 3 = 5.\\n#### 5", max_length=512)
    end_of_turn(tokenizer)          # "<|im_end|>" for ChatML templates
    tokenizer_hash(tokenizer)       # identity of a vocabulary (a logit cache refuses other tokenizers)

One encoding serves the trainer (student and cross-tokenizer teacher views),
the teacher's logit cache, head scoring and the wrong traces of negatives, so
a cache row, a training row and a scored row name the same tokens. Prompt and
trace are tokenised separately (the template ends the prompt with a newline,
so no BPE merge crosses the boundary): the prompt tokens are exactly those the
model sees at generation time and the trace ids do not depend on the prompt.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

from reasonkd.models.generation import apply_chat

_MARKER = "\x00REASONKD_TRACE\x00"


def end_of_turn(tokenizer) -> str:
    """The string the chat template writes after an assistant turn ("<|im_end|>", "<|eot_id|>", ...).

    Read from the template rather than `eos_token`: GGUF-converted tokenizers often name the wrong
    eos (SmolLM2's says "<|im_start|>", Qwen2.5's "<|endoftext|>"), and the student must learn to
    emit the token its template stops on. Falls back to eos_token without a template.
    """
    if getattr(tokenizer, "chat_template", None):
        msgs = [{"role": "user", "content": "q"}, {"role": "assistant", "content": _MARKER}]
        text = tokenizer.apply_chat_template(msgs, tokenize=False)
        if _MARKER in text:
            tail = text.split(_MARKER, 1)[1].strip()
            if tail:
                return tail.split()[0]  # drop whatever the template writes after the turn
    return tokenizer.eos_token or ""


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids of `end_of_turn` (e.g. [<|im_end|>]); [] when the tokenizer has neither template nor eos."""
    return list(_end_ids(tokenizer))


@lru_cache(maxsize=16)  # rendering the template once per tokenizer, not once per example
def _end_ids(tokenizer) -> tuple[int, ...]:
    end = end_of_turn(tokenizer)
    return tuple(tokenizer(end, add_special_tokens=False)["input_ids"]) if end else ()


def prompt_text(tokenizer, prompt: str, system: str | None = None) -> str:
    """The user turn in the model's chat template, generation prompt included."""
    return apply_chat(tokenizer, prompt, system=system)


def encode_example(
    tokenizer, prompt: str, trace: str, system: str | None = None, max_length: int | None = None
) -> tuple[list[int], int]:
    """(input_ids, prompt_len): chat prompt + trace + end-of-turn, cut to max_length at the end.

    No BOS/EOS is added by the tokenizer call: the chat template already wrote them.
    """
    p_ids = tokenizer(prompt_text(tokenizer, prompt, system), add_special_tokens=False)["input_ids"]
    t_ids = tokenizer(trace, add_special_tokens=False)["input_ids"] + end_of_turn_ids(tokenizer)
    ids = p_ids + t_ids
    if max_length is not None:
        ids = ids[:max_length]
    return ids, len(p_ids)


def tokenizer_hash(tokenizer) -> str:
    """sha256 over the sorted vocabulary items and the special tokens (stable across processes)."""
    payload = {"vocab": sorted(tokenizer.get_vocab().items()), "special": sorted(set(tokenizer.all_special_tokens))}
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()
