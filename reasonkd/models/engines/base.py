"""The one interface every generation engine offers, and the pieces they share.

    engine = make_engine("auto", "smollm2-135m")               # reasonkd.models.engines
    outs = engine.generate(prompts, max_new_tokens=256, temperature=0.0, seed=0, stop=["\\n\\n"])
    engine.stats   # {'engine', 'precision', 'load_seconds', 'new_tokens', 'seconds', 'tokens_per_s', ...}

Prompts arrive already chat-formatted (reasonkd.models.generation.apply_chat)
and are tokenized WITHOUT special tokens, as in the hf engine. Results come
back in input order as `Completion`s. Stop strings are cut out of the text
(the completion ends just before the first one, `finished` is True); greedy
when temperature == 0; a fixed seed makes sampling reproducible.
"""

from __future__ import annotations

import time
from types import SimpleNamespace

from reasonkd.errors import ReasonkdError
from reasonkd.models.generation import Completion, _stop_ids

EXPORT_FIX = "pip install 'reasonkd[export]'"


def cut_at_stop(text: str, stop: list[str] | None) -> tuple[str, bool]:
    """(text before the first stop string, whether one was found)."""
    hits = [i for i in (text.find(s) for s in stop or [] if s) if i >= 0]
    return (text[: min(hits)], True) if hits else (text, False)


def stop_token_ids(tokenizer, generation_config=None) -> list[int]:
    """End-of-turn token ids, the same set the hf engine stops on (reasonkd.models.generation)."""
    gc = generation_config or SimpleNamespace(eos_token_id=None)
    return _stop_ids(SimpleNamespace(generation_config=gc), tokenizer)


def check_sampling(max_new_tokens: int, temperature: float, top_p: float, batch_size: int) -> None:
    if max_new_tokens < 1:
        raise ReasonkdError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
    if temperature < 0:
        raise ReasonkdError(f"temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise ReasonkdError(f"top_p must be in (0, 1], got {top_p}")
    if batch_size < 1:
        raise ReasonkdError(f"batch_size must be >= 1, got {batch_size}")


class Engine:
    """Base of the adapters: `generate` times the call and records `stats`; subclasses implement `_generate`."""

    name = "base"
    precision = "fp32"

    def __init__(self):
        self.tokenizer = None
        self.load_seconds = 0.0
        """Seconds spent making the engine ready (loading, and for openvino converting + compiling)."""
        self.stats: dict = {}

    def generate(
        self,
        prompts: list[str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int | None = None,
        stop: list[str] | None = None,
        batch_size: int = 16,
        progress: bool = False,
        desc: str = "generate",
    ) -> list[Completion]:
        """One completion per prompt (already chat-formatted), in input order. See the module doc."""
        check_sampling(max_new_tokens, temperature, top_p, batch_size)
        t0 = time.perf_counter()
        outs = self._generate(
            list(prompts),
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_p=top_p,
            seed=seed,
            stop=list(stop or []),
            batch_size=batch_size,
            progress=progress,
            desc=desc,
        )
        dt = time.perf_counter() - t0
        new = sum(o.new_tokens for o in outs)
        self.stats = {
            "engine": self.name,
            "precision": self.precision,
            "load_seconds": round(self.load_seconds, 3),
            "new_tokens": new,
            "seconds": dt,
            "tokens_per_s": new / max(dt, 1e-9),
            "sequences": len(outs),
            "batch_size": batch_size,
        }
        return outs

    def _generate(self, prompts, **kw) -> list[Completion]:  # pragma: no cover - abstract
        raise NotImplementedError

    def num_parameters(self) -> int | None:
        """Parameter count of the model (None where the runtime does not say)."""
        return None

    def latency(self, prompts: list[str], max_new_tokens: int = 64, warmup: int = 1) -> dict:
        """Batch-1 greedy timings per prompt: {'ttft_s', 'total_s', 'per_token_s', 'new_tokens'} lists.
        Engines that stream tokens override this to time the first token; here it is the whole answer."""
        raw: dict = {"ttft_s": [], "total_s": [], "per_token_s": [], "new_tokens": []}
        for i, p in enumerate([prompts[0]] * warmup + list(prompts) if prompts else []):
            t0 = time.perf_counter()
            out = self._generate(
                [p],
                max_new_tokens=max_new_tokens,
                temperature=0.0,
                top_p=1.0,
                seed=None,
                stop=[],
                batch_size=1,
                progress=False,
                desc="latency",
            )[0]
            if i >= warmup:
                raw["total_s"].append(time.perf_counter() - t0)
                raw["new_tokens"].append(out.new_tokens)
        return raw

    def close(self) -> None:
        """Free the model (engines hold GBs; callers that evaluate several models in turn call this)."""
