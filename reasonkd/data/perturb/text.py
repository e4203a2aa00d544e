"""Free-text perturbations (paraphrase, distractor insertion) and the "cannot be determined" grader.

These work on the question text alone, so they apply both to the data engine's
items and to a plain GSM8K-format file (a question and its final number):
neither changes what is asked, so the answer stays the reference.

    from reasonkd.data.perturb.text import paraphrase_text, insert_distractor, states_undeterminable
    paraphrase_text("Ava buys 3 pens. How many pens does Ava have?")
    # 'How many pens does Ava have? Here is what is known: Ava purchases 3 pens.'
    states_undeterminable("Without the price the answer cannot be determined.")   # True
"""

from __future__ import annotations

import re
from random import Random

from reasonkd.data.augment import distractor_sentence

UNDETERMINABLE = "cannot be determined"
"""The expected answer of a critical-thinking item (a needed fact is missing)."""

# Sentence ends, but not after "Ms." / "Mr." / "Dr." and not inside "4.5" (no space there).
_SENTENCE_END = re.compile(r"(?<!\bMs\.)(?<!\bMr\.)(?<!\bDr\.)(?<=[.?!])\s+(?=[A-Z$\"'])")

# Word swaps that keep the meaning in every family template and in typical GSM8K text
# (each checked against the sentences it can meet: "costs $5" / "Fencing costs $2 per meter" ...).
_SWAPS = (
    (r"\bbuys\b", "purchases"),
    (r"\bbought\b", "purchased"),
    (r"\bwants\b", "would like"),
    (r"\bcosts\b", "is priced at"),
    (r"\bThe rest\b", "The remaining ones"),
    (r"\bTogether\b", "In total,"),
    (r"\bevery day\b", "each day"),
    (r"\bHow much\b", "What amount of"),
    (r"\bearns\b", "makes"),
    (r"\bbegins\b", "starts"),
    (r"\bstarted\b", "began"),
)

_UNDETERMINABLE_RE = re.compile(
    r"(?:can ?not|can't|cannot|could not|couldn't|impossible to|unable to)\s+(?:be\s+)?"
    r"(?:determined?|calculated?|computed?|known?|found|answered?|tell|say|solved?)"
    r"|not\s+(?:enough|sufficient)\s+information|insufficient\s+information|information\s+is\s+missing"
    r"|missing\s+(?:information|a\s+(?:number|quantity|value))|(?:is|are)\s+not\s+(?:given|stated|specified|provided)"
    r"|undeterminable|indeterminate|not\s+determinable",
    re.IGNORECASE,
)
# A committed numeric final answer: "#### 12", "\boxed{12}", "the answer is 12".
_COMMITTED_RE = re.compile(
    r"####\s*\$?\s*-?\d|\\boxed\s*\{\s*\$?-?\d|answer\s*(?:is|:|=)\s*:?\s*\$?-?\d", re.IGNORECASE
)


def split_sentences(text: str) -> list[str]:
    """Sentences of a word problem, in order (the last one is usually the question)."""
    return [s for s in _SENTENCE_END.split(text.strip()) if s]


def paraphrase_text(question: str) -> str | None:
    """The same problem in other words: the question first, then the facts, a few verbs swapped.

    Every number stays exactly as written, so the answer is unchanged. None when
    the text does not change (a one-sentence problem with none of the swapped words).
    """
    sents = split_sentences(question)
    if len(sents) >= 2 and sents[-1].endswith("?"):
        facts = " ".join(sents[:-1])
        text = f"{sents[-1]} Here is what is known: {facts}"
    else:
        text = " ".join(sents)
    for pat, new in _SWAPS:
        text = re.sub(pat, new, text)
    return text if text != question else None


def insert_distractor(question: str, rng: Random) -> tuple[str, str]:
    """(question with an irrelevant sentence holding a number, that sentence).

    Reuses the data engine's distractor sentences (reasonkd.data.augment) and puts one after
    the first sentence (found by split_sentences, so "Ms. Zoe's class" stays whole)."""
    sentence = distractor_sentence(rng, question)
    sents = split_sentences(question)
    return " ".join(sents[:1] + [sentence] + sents[1:]) if len(sents) > 1 else f"{sentence} {question}", sentence


def states_undeterminable(completion: str) -> bool:
    """Grader for critical-thinking items: does the answer clearly say it cannot be determined?

    True when the text (after the last `</think>`) states that the answer cannot be
    determined / there is not enough information, and does not commit to a number
    AFTER that statement ("#### 12", "\\boxed{12}", "the answer is 12"). A boxed
    "\\boxed{cannot be determined}" counts as the statement.
    """
    text = completion or ""
    if "</think>" in text and text.rsplit("</think>", 1)[1].strip():
        text = text.rsplit("</think>", 1)[1]
    said = list(_UNDETERMINABLE_RE.finditer(text))
    if not said:
        return False
    committed = list(_COMMITTED_RE.finditer(text))
    return not committed or said[-1].start() > committed[-1].start()
