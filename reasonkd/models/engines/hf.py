"""The hf engine: transformers `generate` through reasonkd.models.generation.generate_batch.

    engine = HFEngine("smollm2-135m", dtype="auto")     # or HFEngine.wrap(model, tokenizer)
    outs = engine.generate(prompts, max_new_tokens=256)

The reference the other engines are checked against: length-sorted batches,
left padding, KV cache; greedy at temperature 0.
"""

from __future__ import annotations

import time

from reasonkd.models.engines.base import Engine, cut_at_stop
from reasonkd.models.loader import load_model
from reasonkd.models.generation import Completion, generate_batch
from reasonkd.models.window import warn_context, windowed_completions
from reasonkd.utils.hardware import dtype_name, resolve_dtype


PRECISION = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


class HFEngine(Engine):
    name = "hf"
    window: int | None = None
    """Sliding-window attention over the KV cache (None = full attention); see reasonkd.models.window."""
    sinks: int = 4

    def __init__(self, model_name_or_path: str | None = None, *, dtype: str = "auto", device: str = "cpu"):
        super().__init__()
        self.model = None
        if model_name_or_path is None:
            return
        self.dtype = dtype_name(resolve_dtype(dtype or "auto", device)[0])  # auto: bf16 only where native
        t0 = time.perf_counter()
        self.model, self.tokenizer = load_model(model_name_or_path, dtype=self.dtype, device=device)
        self.load_seconds = time.perf_counter() - t0
        self.precision = getattr(self.model, "precision", None) or PRECISION.get(self.dtype, self.dtype)

    @classmethod
    def wrap(cls, model, tokenizer) -> "HFEngine":
        """An engine around an already loaded model (an ExportedLM works too)."""
        e = cls()
        e.model, e.tokenizer = model, tokenizer
        dtype = str(getattr(model, "dtype", "torch.float32")).replace("torch.", "")
        e.precision = getattr(model, "precision", None) or PRECISION.get(dtype, dtype)
        return e

    def _generate(self, prompts, *, max_new_tokens, temperature, top_p, seed, stop, batch_size, progress, desc):
        if self.window:  # one prompt at a time, chunked prefill, the cache slides (reasonkd.models.window)
            outs = windowed_completions(
                self.model,
                self.tokenizer,
                prompts,
                self.window,
                self.sinks,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                seed=seed,
                progress=progress,
                desc=desc,
            )
        else:
            warn_context(self.model, [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts])
            outs = generate_batch(
                self.model,
                self.tokenizer,
                prompts,
                max_new_tokens=max_new_tokens,
                temperature=temperature,
                top_p=top_p,
                batch_size=batch_size,
                seed=seed,
                progress=progress,
                desc=desc,
                stop_strings=stop or None,
            )
        if stop:
            for o in outs:
                o.text, hit = cut_at_stop(o.text, stop)
                o.finished = o.finished or hit
        return outs

    def num_parameters(self) -> int | None:
        return sum(p.numel() for p in self.model.parameters())

    def close(self) -> None:
        self.model = None


def completions_from_ids(tokenizer, prompts, prompt_lens, id_lists, finished, stop) -> list[Completion]:
    """Completions from generated token ids (stop tokens already removed), decoded like the hf engine.
    A completion that holds a stop string counts the tokens up to the one that completes it, where
    transformers' stop-string criterion ends a sequence, whether or not the runtime stopped there."""
    out = []
    for p, n_prompt, ids, fin in zip(prompts, prompt_lens, id_lists, finished):
        full = tokenizer.decode(ids, skip_special_tokens=True)
        text, hit = cut_at_stop(full, stop)
        n = _stop_prefix(tokenizer, ids, stop) if hit else len(ids)
        out.append(Completion(p, text, n_prompt, n, bool(fin or hit)))
    return out


def _stop_prefix(tokenizer, ids: list[int], stop: list[str]) -> int:
    """The fewest leading tokens whose text holds a stop string (bisection: the text only grows)."""
    lo, hi = 1, len(ids)
    while lo < hi:
        mid = (lo + hi) // 2
        if cut_at_stop(tokenizer.decode(ids[:mid], skip_special_tokens=True), stop)[1]:
            hi = mid
        else:
            lo = mid + 1
    return lo
