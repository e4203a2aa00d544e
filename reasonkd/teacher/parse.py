"""Split a teacher's output into its reasoning and its final answer (R1-aware).

    from reasonkd.teacher.parse import parse_output
    p = parse_output("<think>2 + 3 = 5</think>\n\nThe answer is 5.")
    p.reasoning, p.final   # '2 + 3 = 5', 'The answer is 5.'
    p.trace                # '<think>\n2 + 3 = 5\n</think>\n\nThe answer is 5.' (one training target)
    parse_output("The answer is 5.", reasoning_content="2 + 3 = 5")   # OpenAI-compatible R1 endpoints

Three shapes of output reach us:
- R1 style inline: `<think>...</think>` then the answer. R1 chat templates put the
  opening `<think>` into the prompt, so the completion often holds only `</think>`.
- R1 style split: an OpenAI-compatible R1 endpoint returns the reasoning in a
  separate `reasoning_content` field and only the answer in `content`.
- Plain "think step by step" text (every non-R1 model): the last answer line
  ("#### 42", "\\boxed{42}", "The answer is 42", a final code block) is the final
  answer and everything before it is the reasoning.

`ThinkSplitter` does the same split incrementally on a token stream (the
server's R1 reasoning parser).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_CODE_FENCE = re.compile(r"```[^\n]*\n.*?```", re.DOTALL)
# Lines that state the answer, strongest first; the LAST such line starts the final answer.
_ANSWER_LINE = [
    re.compile(p, re.IGNORECASE | re.MULTILINE)
    for p in (r"^.*####.*$", r"^.*\\boxed\s*\{.*$", r"^.*\b(?:final answer|the answer is|answer\s*:).*$")
]


@dataclass
class ParsedOutput:
    reasoning: str
    """The chain of thought (think-block contents, or the text before the answer line)."""
    final: str
    """The final answer part: text after </think>, or the answer line(s) onwards."""
    r1: bool
    """True when the output was R1-style (think block or reasoning_content)."""
    think_closed: bool = True
    """False when a think block was opened and never closed (reasoning cut off)."""
    text: str = ""
    """A plain output as the model wrote it (outer whitespace stripped): its training target."""

    @property
    def trace(self) -> str:
        """Reasoning + final answer as one training target (R1 outputs keep their think tags). A plain output
        is its own text, verbatim but for the outer whitespace: the tokens the teacher generated, so the
        log-probs it returned with them (`teacher generate --logprobs`) cover every trace token."""
        if not self.r1 and self.text:
            return self.text
        if self.r1:
            body = f"{THINK_OPEN}\n{self.reasoning}\n"
            return body + (f"{THINK_CLOSE}\n\n{self.final}" if self.think_closed else "")
        if self.reasoning and self.final:
            return f"{self.reasoning}\n{self.final}"
        return self.reasoning or self.final


def _split_plain(text: str) -> tuple[str, str]:
    """(reasoning, final) of a non-R1 answer: the last answer line or code block starts `final`."""
    starts = []
    for pat in _ANSWER_LINE:
        hits = list(pat.finditer(text))
        if hits:
            starts.append(hits[-1].start())
            break
    blocks = list(_CODE_FENCE.finditer(text))
    if blocks:  # code answers end with their solution block
        starts.append(blocks[-1].start())
    if not starts:
        return text.strip(), ""
    cut = max(starts)
    return text[:cut].strip(), text[cut:].strip()


def parse_output(content: str | None, reasoning_content: str | None = None) -> ParsedOutput:
    """Split one completion into reasoning and final answer. See the module doc."""
    content = content or ""
    if reasoning_content and reasoning_content.strip():
        # the endpoint already separated them; stray tags in content are noise
        final = content.replace(THINK_OPEN, "").split(THINK_CLOSE)[-1].strip()
        return ParsedOutput(reasoning_content.strip(), final, r1=True)
    if THINK_CLOSE in content:
        head, final = content.rsplit(THINK_CLOSE, 1)
        # several think blocks (rare) are one chain of thought: drop the tags, keep the text
        reasoning = re.sub(r"\s*</?think>\s*", "\n", head).strip()
        return ParsedOutput(reasoning, final.strip(), r1=True)
    if THINK_OPEN in content:  # opened, never closed: the reasoning was cut off
        before, after = content.split(THINK_OPEN, 1)
        reasoning = (before.strip() + "\n" + after.strip()).strip()
        return ParsedOutput(reasoning, "", r1=True, think_closed=False)
    reasoning, final = _split_plain(content)
    return ParsedOutput(reasoning, final, r1=False, text=content.strip())


class ThinkSplitter:
    """Route streamed text deltas to (reasoning_delta, content_delta), R1 style.

    `starts_in_think=True` when the prompt already opened the think block (R1
    chat templates). Tags split across deltas are held back until complete.
    """

    def __init__(self, starts_in_think: bool = False):
        self.in_think = starts_in_think
        self._buf = ""
        self._lstrip = False  # drop the blank lines between </think> and the answer

    def feed(self, delta: str, final: bool = False) -> tuple[str, str]:
        self._buf += delta
        reasoning, content = [], []
        while self._buf:
            tag = THINK_CLOSE if self.in_think else THINK_OPEN
            i = self._buf.find(tag)
            if i >= 0:
                (reasoning if self.in_think else content).append(self._buf[:i])
                self._buf = self._buf[i + len(tag) :]
                self._lstrip = self.in_think
                self.in_think = not self.in_think
                continue
            # keep a possible partial tag at the end for the next delta
            keep = (
                0
                if final
                else next(
                    (k for k in range(min(len(tag) - 1, len(self._buf)), 0, -1) if tag.startswith(self._buf[-k:])), 0
                )
            )
            out = self._buf[: len(self._buf) - keep]
            if not self.in_think and self._lstrip:
                out = out.lstrip()
                self._lstrip = not out
            (reasoning if self.in_think else content).append(out)
            self._buf = self._buf[len(self._buf) - keep :]
            break
        return "".join(reasoning), "".join(content)
