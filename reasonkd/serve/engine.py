"""Token-by-token decoding for the server: streaming, stop strings, seeds and log-probs.

    engine = Engine(model, tokenizer)
    for step in engine.stream(prompt_ids, GenParams(max_new_tokens=64, temperature=0.7, n=2, logprobs=3)):
        for ev in step:              # one TokenEvent per still-running choice
            print(ev.index, ev.text, ev.finish_reason)

A plain KV-cache loop rather than `model.generate`, because the server needs
per-token events as they happen, log-probs of the RAW distribution (OpenAI's
`logprobs` are before temperature / top-p), a seed per request (a private
`torch.Generator`, safe with concurrent requests) and stop strings that are
cut out of the text. `n` choices decode together as one batch of the same
prompt, so no padding is needed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Iterator

import torch

from reasonkd.models.generation import Sampling, _stop_ids
from reasonkd.serve.scoring import score_rows
from reasonkd.models.window import prefill


@dataclass(kw_only=True)
class GenParams(Sampling):
    """One request's settings: the shared sampling settings (OpenAI's defaults here: temperature 1, 16 tokens;
    the API's `max_tokens` is max_new_tokens) plus what only the server has."""

    temperature: float = 1.0
    max_new_tokens: int = 16
    n: int = 1
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: int | None = None
    """None: no log-probs; 0: the chosen token's only; k: plus the top k alternatives."""
    token_ids_as_strings: bool = False
    """vLLM's `return_tokens_as_token_ids`: log-prob entries name tokens as 'token_id:N' (unambiguous)."""


@dataclass
class TokenEvent:
    index: int
    """Which choice (0..n-1)."""
    text: str
    """New text since the last event (may be '' while a stop string or a UTF-8 char is pending)."""
    token: dict | None = None
    """{'token', 'logprob', 'bytes', 'top_logprobs': [...]}, when log-probs were asked for."""
    finish_reason: str | None = None
    """'stop' | 'length' on the last event of a choice."""
    counted: bool = True
    """False for the end-of-sequence token, which is not part of the completion."""


class _Choice:
    """Text bookkeeping of one choice: incremental decoding and stop strings."""

    def __init__(self, tokenizer, stop: list[str]):
        self.tok, self.stop = tokenizer, stop
        self.ids: list[int] = []
        self.emitted = 0  # characters of the decoded text already sent
        self.hold = max((len(s) for s in stop), default=1) - 1
        self.done = False
        self.text = ""
        self.stop_id: int | None = None
        """The end-of-sequence token the choice stopped on (not part of its text or ids)."""

    def add(self, token_id: int) -> tuple[str, bool]:
        """Append a token; return (text that is now safe to send, hit a stop string)."""
        self.ids.append(token_id)
        text = self.tok.decode(self.ids, skip_special_tokens=True)
        hits = [i for i in (text.find(s, max(0, self.emitted - len(s))) for s in self.stop) if i >= 0]
        if hits:
            self.text = text[: min(hits)]
            return self._flush(), True
        self.text = text
        # hold back an incomplete UTF-8 character and a possible stop-string prefix
        safe = len(text) - (1 if text.endswith("\ufffd") else 0) - self.hold
        if safe <= self.emitted:
            return "", False
        out, self.emitted = text[self.emitted : safe], safe
        return out, False

    def _flush(self) -> str:
        out, self.emitted = self.text[self.emitted :], len(self.text)
        return out

    def finish(self) -> str:
        return self._flush()


class Engine:
    def __init__(self, model, tokenizer, window: int | None = None, sinks: int = 4):
        self.model, self.tok = model, tokenizer
        self.stop_ids = set(_stop_ids(model, tokenizer))
        self.device = next(model.parameters()).device
        self.max_len = int(getattr(model.config, "max_position_embeddings", 0) or 0) or None
        self.window, self.sinks = window, sinks
        self._bytes: dict[int, bytes] | None = None
        if window:  # sliding-window attention (reasonkd.models.window): no context limit
            self.max_len = None

    def chat_ids(self, messages: list[dict]) -> list[int]:
        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:  # base models: plain "role: text" turns
            text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def text_ids(self, prompt: str) -> list[int]:
        return self.tok(prompt, add_special_tokens=True)["input_ids"]

    def token_entry(self, tid: int, lp: float, as_ids: bool = False) -> dict:
        """One log-prob entry: the token's text (or 'token_id:N'), its log-prob and its exact UTF-8 bytes (a byte
        token that is part of a character has its own byte, not the replacement character's)."""
        if self._bytes is None:
            from reasonkd.distill.align import normalized_vocab

            self._bytes = normalized_vocab(self.tok)
        raw = self._bytes.get(tid)
        text = self.tok.decode([tid])
        return {
            "token": f"token_id:{tid}" if as_ids else text,
            "logprob": lp,
            "bytes": list(raw if raw is not None else text.encode("utf-8")),
        }

    def _token_info(self, logp: torch.Tensor, token_id: int, k: int, as_ids: bool = False) -> dict:
        info = self.token_entry(token_id, float(logp[token_id]), as_ids)
        if k:
            vals, ids = torch.topk(logp, k)
            info["top_logprobs"] = [
                self.token_entry(int(i), float(v), as_ids) for v, i in zip(vals.tolist(), ids.tolist())
            ]
        else:
            info["top_logprobs"] = []
        return info

    def row_info(self, tid: int, row: tuple, as_ids: bool = False) -> dict:
        """A `score` row as a log-prob entry with its top-k alternatives (reasonkd.serve.server's shapes)."""
        info = self.token_entry(tid, row[0], as_ids)
        info["top_logprobs"] = [self.token_entry(t, lp, as_ids) for t, lp in zip(row[2], row[3])]
        return info

    @torch.inference_mode()
    def score(self, ids: list[int], k: int, chunk: int = 256) -> list[tuple[float, int, list, list] | None]:
        """Teacher forcing over `ids`: per position i >= 1, (log-prob of ids[i], its rank (1 = most likely),
        top-k ids, top-k log-probs) of the distribution after ids[:i], at temperature 1 (raw logits);
        None at position 0, which nothing predicts (vLLM's prompt_logprobs)."""
        x = torch.tensor([ids], device=self.device)
        hidden = self.model.get_decoder()(input_ids=x, use_cache=False).last_hidden_state[0]
        head = self.model.get_output_embeddings()
        out: list = [None]
        for c in range(0, len(ids) - 1, chunk):  # (T, V) at V ~ 150k would dominate memory: a chunk at a time
            logp = torch.log_softmax(head(hidden[c : min(c + chunk, len(ids) - 1)]).float(), dim=-1)
            out += score_rows(logp, ids[c + 1 : c + 1 + chunk], k)
        return out

    @torch.inference_mode()
    def stream(
        self, prompt_ids: list[int], p: GenParams, cancel: threading.Event | None = None
    ) -> Iterator[list[TokenEvent]]:
        """Yield, after every decoding step, the events of the choices still running."""
        gen = torch.Generator(device=self.device)
        gen.manual_seed(p.seed if p.seed is not None else int(torch.randint(0, 2**62, (1,)).item()))
        choices = [_Choice(self.tok, p.stop) for _ in range(p.n)]
        cur = torch.tensor([prompt_ids] * p.n, device=self.device)
        past = None
        if self.window and cur.shape[1] > 1:  # read the prompt in windowed chunks; the cache then slides
            past, _ = prefill(self.model, cur[:, :-1], self.window, self.sinks)
            cur = cur[:, -1:]
        for step in range(p.max_new_tokens):
            if cancel is not None and cancel.is_set():
                return
            out = self.model(input_ids=cur, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)
            if p.temperature == 0:
                nxt = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits / p.temperature, dim=-1)
                if p.top_p < 1.0:
                    sp, si = probs.sort(dim=-1, descending=True)
                    # drop tokens once the mass BEFORE them reaches top_p (the top token always stays)
                    sp[(sp.cumsum(-1) - sp) >= p.top_p] = 0
                    probs = torch.zeros_like(probs).scatter(-1, si, sp)
                nxt = torch.multinomial(probs, 1, generator=gen).squeeze(-1)
            events = []
            last = step == p.max_new_tokens - 1
            for i, c in enumerate(choices):
                if c.done:
                    continue
                tid = int(nxt[i])
                info = (
                    self._token_info(logp[i], tid, p.logprobs, p.token_ids_as_strings)
                    if p.logprobs is not None
                    else None
                )
                if tid in self.stop_ids:  # its log-prob entry goes out too, as vLLM's does: a distillation
                    c.done = True  # client reads the teacher's end-of-turn distribution from it
                    events.append(TokenEvent(i, c.finish(), info, "stop", counted=False))
                    continue
                text, hit = c.add(tid)
                if hit:
                    c.done = True
                    events.append(TokenEvent(i, text, info, "stop"))
                elif last:
                    events.append(TokenEvent(i, text + c.finish(), info, "length"))
                else:
                    events.append(TokenEvent(i, text, info))
            yield events
            if all(c.done for c in choices):
                return
            cur = nxt.unsqueeze(-1)

    def complete(self, prompt_ids: list[int], p: GenParams) -> list[dict]:
        """Run to the end; per choice: text, finish_reason, completion_tokens, token log-prob entries."""
        res = [{"text": "", "finish_reason": "length", "completion_tokens": 0, "tokens": []} for _ in range(p.n)]
        for events in self.stream(prompt_ids, p):
            for ev in events:
                r = res[ev.index]
                r["text"] += ev.text
                if ev.token is not None:
                    r["tokens"].append(ev.token)
                r["completion_tokens"] += ev.counted
                if ev.finish_reason:
                    r["finish_reason"] = ev.finish_reason
        return res


class OVServeEngine(Engine):
    """The same decoding interface over the openvino generation engine (reasonkd.models.engines.openvino).

    OpenVINO GenAI decodes (continuous batching: concurrent requests share its scheduler steps); stop
    strings, incremental text and finish reasons are this module's, so both engines answer alike.
    Log-probs come from a teacher-forced pass over the same IR (reasonkd.serve.ov_score), after decoding."""

    def __init__(self, ov_engine):
        self.ov = ov_engine
        self.model, self.tok = None, ov_engine.tokenizer
        self.stop_ids = set(ov_engine.stop_ids)
        self.device = "cpu"
        self.max_len = ov_engine.max_len
        self._bytes, self._scorer, self._scorer_lock = None, None, threading.Lock()
        self.window = None

    def score(self, ids: list[int], k: int, chunk: int = 256) -> list:
        """As Engine.score, by one forward pass of the same IR (reasonkd.serve.ov_score says why)."""
        with self._scorer_lock:
            if self._scorer is None:
                from reasonkd.serve.ov_score import OVScorer

                self._scorer = OVScorer(self.ov)
        return self._scorer.score(ids, k, chunk)

    def stream(
        self, prompt_ids: list[int], p: GenParams, cancel: threading.Event | None = None
    ) -> Iterator[list[TokenEvent]]:
        choices = [_Choice(self.tok, p.stop) for _ in range(p.n)]
        if p.logprobs is None:
            yield from self._decode(prompt_ids, p, cancel, choices)
            return
        # GenAI gives the chosen tokens only: decode first, then one teacher-forced pass per choice gives the
        # raw log-probs and top-k of each (vLLM's values); the events then come together, with their log-probs
        steps = [ev for step in self._decode(prompt_ids, p, cancel, choices) for ev in step]
        if cancel is not None and cancel.is_set():
            return
        for i, c in enumerate(choices):
            ids = c.ids + ([c.stop_id] if c.stop_id is not None else [])
            rows = self.score(prompt_ids + ids, p.logprobs)[len(prompt_ids) :]
            scored = [ev for ev in steps if ev.index == i and (ev.counted or ev.finish_reason == "stop")]
            for ev, tid, row in zip(scored, ids, rows):
                ev.token = self.row_info(tid, row, p.token_ids_as_strings)
        yield steps

    def _decode(self, prompt_ids: list[int], p: GenParams, cancel, choices) -> Iterator[list[TokenEvent]]:
        import random

        base = p.seed if p.seed is not None else random.randrange(2**31)
        streams = [
            self.ov.stream_ids(
                prompt_ids, self.ov.config_for(p.max_new_tokens, p.temperature, p.top_p, base + i, None), cancel
            )
            for i in range(p.n)
        ]
        counts = [0] * p.n
        try:
            while not all(c.done for c in choices):
                events = []
                for i, (c, s) in enumerate(zip(choices, streams)):
                    if not c.done:
                        events += self._advance(i, c, s, counts, p.max_new_tokens)
                if cancel is not None and cancel.is_set():
                    return
                yield events
        finally:
            for s in streams:
                s.close()  # cancels the GenAI request of a choice that stopped early

    def _advance(self, i: int, c: _Choice, stream, counts: list[int], max_tokens: int) -> list[TokenEvent]:
        """The events of choice i for its next chunk of tokens (usually one)."""
        ids = next(stream, None)
        if ids is None:  # GenAI finished the request: max tokens reached
            c.done = True
            return [TokenEvent(i, c.finish(), None, "length", counted=False)]
        events = []
        for tid in ids:
            if tid in self.stop_ids:
                c.done, c.stop_id = True, tid
                events.append(TokenEvent(i, c.finish(), None, "stop", counted=False))
                break
            counts[i] += 1
            text, hit = c.add(tid)
            if hit:
                c.done = True
                events.append(TokenEvent(i, text, None, "stop"))
                break
            if counts[i] >= max_tokens:
                c.done = True
                events.append(TokenEvent(i, text + c.finish(), None, "length"))
                break
            events.append(TokenEvent(i, text))
        return events
