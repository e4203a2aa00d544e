"""Sliding-window attention with attention sinks: generation over inputs longer than the context.

    from reasonkd.models.window import SinkWindowCache, window_generate, check_context
    ids, finished = window_generate(model, prompt_ids, window=1024, sinks=4, max_new_tokens=256, stop_ids=[2])
    reasonkd generate --model smollm2-135m --prompt "$(cat long.txt)" --window 1024 --sinks 4
    reasonkd eval --model smollm2-135m --tasks longmath --data runs/data --window 1024 --sinks 4

The KV cache keeps the first `sinks` tokens of the sequence plus the most recent
`window - sinks` ones (StreamingLLM, Xiao et al. 2024). Positions are those
inside the cache: when tokens leave the window, the keys that stay are rotated
back by the number of tokens dropped, so the model never sees a position past
`window + chunk`, whatever the input length. The prompt is read in chunks of
`chunk` tokens (windowed chunked prefill), so memory is O(window + chunk), not
O(input). It is a `transformers` Cache (a DynamicCache whose layers evict):
the model code runs unchanged, only its cache differs.

transformers 4.57 moved its `SinkCache` out of the library (to a
`custom_generate` hub repository, which needs the network), so the layer below
does the same on top of `DynamicLayer`. `generate()` cannot drive it (its
cache positions keep growing past the window), hence the small decoding loop
`window_generate`, batch 1, greedy or temperature / top-p through transformers'
own logits warpers.

While the whole sequence (prompt + answer) fits in the window nothing is ever
evicted and the result equals full attention (same greedy tokens, logits
within 1e-5; tests/models/test_window.py).
"""

from __future__ import annotations

import logging

import torch
from transformers import DynamicCache, LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper
from transformers.cache_utils import DynamicLayer

from reasonkd.errors import ReasonkdError
from reasonkd.models.generation import Completion, _stop_ids

log = logging.getLogger(__name__)
WINDOW_HINT = "pass --window W --sinks S (sliding-window attention with attention sinks, docs/long_inputs.md)"


def max_context(model) -> int | None:
    """The longest sequence the model was built for (config.max_position_embeddings), None if unknown."""
    cfg = getattr(model, "config", None)
    n = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
    return int(n) if n else None


def check_context(model, prompt_tokens: int, window: int | None = None) -> None:
    """One clear error for an input longer than the model's context under full attention."""
    limit = max_context(model)
    if window is None and limit and prompt_tokens > limit:
        raise ReasonkdError(
            f"the input is {prompt_tokens} tokens, longer than the model's maximum context of "
            f"{limit} tokens; shorten it or {WINDOW_HINT}"
        )


def warn_context(model, prompt_tokens: list[int]) -> None:
    """One warning (not an error: a batch of problems goes on) for prompts past the model's context."""
    limit = max_context(model)
    over = [n for n in prompt_tokens if limit and n > limit]
    if over:
        log.warning(
            "%d of %d inputs are longer than the model's maximum context of %d tokens (longest %d); "
            "full attention past it degrades; %s",
            len(over),
            len(prompt_tokens),
            limit,
            max(over),
            WINDOW_HINT,
        )


def check_window(window: int | None, sinks: int, model=None) -> None:
    """Validate --window / --sinks (a window must fit inside the model's context)."""
    if window is None:
        return
    if window < 2 or not 0 <= sinks < window:
        raise ReasonkdError(f"--window {window} --sinks {sinks}: need window >= 2 and 0 <= sinks < window")
    limit = max_context(model) if model is not None else None
    if limit and window > limit // 2:
        raise ReasonkdError(
            f"--window {window} must be at most half the model's context ({limit} tokens): "
            "the prompt is read in chunks of up to `window` tokens on top of the window"
        )


def _rotary(model):
    """The model's rotary embedding module (Llama, Qwen2, Mistral... keep it at model.model.rotary_emb)."""
    base = model.get_decoder() if hasattr(model, "get_decoder") else model
    rot = getattr(base, "rotary_emb", None)
    if rot is None or not hasattr(rot, "inv_freq"):
        raise ReasonkdError(f"--window needs a rotary-position model; {type(model).__name__} has no rotary_emb")
    return rot


def _rotate_back(keys: torch.Tensor, shift: int, inv_freq: torch.Tensor) -> torch.Tensor:
    """Keys rotated at position p, re-rotated to position p - shift (RoPE rotations compose)."""
    ang = -shift * inv_freq.to(torch.float32)
    emb = torch.cat([ang, ang]).to(keys.device)
    cos, sin = emb.cos().to(keys.dtype), emb.sin().to(keys.dtype)
    half = keys.shape[-1] // 2
    rot = torch.cat([-keys[..., half:], keys[..., :half]], dim=-1)  # rotate_half, as the models apply RoPE
    return keys * cos + rot * sin


class SinkWindowLayer(DynamicLayer):
    """One layer's cache: the first `sinks` tokens and the last `window - sinks` ones."""

    def __init__(self, window: int, sinks: int, inv_freq: torch.Tensor):
        super().__init__()
        self.window, self.sinks, self.inv_freq = window, sinks, inv_freq
        self.evicted = 0

    def update(self, key_states, value_states, cache_kwargs=None):
        keys, values = super().update(key_states, value_states, cache_kwargs)
        drop = keys.shape[-2] - self.window
        if drop > 0:  # the current forward still sees everything; the stored cache slides
            s = self.sinks
            kept = _rotate_back(keys[..., s + drop :, :], drop, self.inv_freq)
            self.keys = torch.cat([keys[..., :s, :], kept], dim=-2)
            self.values = torch.cat([values[..., :s, :], values[..., s + drop :, :]], dim=-2)
            self.evicted += drop
        return keys, values


class SinkWindowCache(DynamicCache):
    """A DynamicCache of SinkWindowLayers, one per decoder layer of `model`."""

    def __init__(self, model, window: int, sinks: int = 4):
        check_window(window, sinks)
        inv_freq = _rotary(model).inv_freq
        n_layers = model.config.get_text_config(decoder=True).num_hidden_layers
        super().__init__()
        self.layers = [SinkWindowLayer(window, sinks, inv_freq) for _ in range(n_layers)]
        self.layer_class_to_replicate = None

    @property
    def evicted(self) -> int:
        return self.layers[0].evicted if self.layers else 0


@torch.inference_mode()
def prefill(model, input_ids: torch.Tensor, window: int, sinks: int = 4, chunk: int | None = None):
    """Read `input_ids` (B, L) into a new SinkWindowCache in chunks; (cache, last-position logits (B, V))."""
    cache = SinkWindowCache(model, window, sinks)
    n = input_ids.shape[1]
    chunk = n if n <= window else (chunk or max(1, window // 2))  # one forward while it fits: exact
    logits = None
    for s in range(0, n, chunk):
        out = model(input_ids=input_ids[:, s : s + chunk], past_key_values=cache, use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :]
    return cache, logits


@torch.inference_mode()
def window_generate(
    model,
    prompt_ids: list[int],
    *,
    window: int,
    sinks: int = 4,
    max_new_tokens: int = 256,
    stop_ids=(),
    temperature: float = 0.0,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
    chunk: int | None = None,
    scores: list | None = None,
) -> tuple[list[int], bool]:
    """(new token ids without the stop token, stopped by itself) for one prompt. `scores`: a list that
    receives each step's raw logits (V,), for comparing with full attention."""
    if not prompt_ids:
        raise ReasonkdError("window_generate: empty prompt")
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    cache, logits = prefill(model, ids, window, sinks, chunk)
    warp = LogitsProcessorList()
    if temperature > 0:
        warp += [TemperatureLogitsWarper(temperature)] + ([TopPLogitsWarper(top_p)] if top_p < 1 else [])
    stop, new = set(stop_ids), []
    for _ in range(max_new_tokens):
        if scores is not None:
            scores.append(logits[0].float().clone())
        if temperature > 0:
            probs = torch.softmax(warp(ids, logits.float()), dim=-1)
            tok = int(torch.multinomial(probs, 1, generator=generator)[0, 0])
        else:
            tok = int(logits[0].argmax())
        if tok in stop:
            return new, True
        new.append(tok)
        out = model(input_ids=torch.tensor([[tok]], device=device), past_key_values=cache, use_cache=True)
        logits = out.logits[:, -1, :]
    return new, False


def windowed_completions(
    model,
    tokenizer,
    prompts: list[str],
    window: int,
    sinks: int = 4,
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int | None = None,
    progress: bool = False,
    desc: str = "generate",
) -> list[Completion]:
    """generate_batch's Completions, decoded with the sliding window (one prompt at a time, input order)."""
    from tqdm.auto import tqdm

    check_window(window, sinks, model)
    stop = _stop_ids(model, tokenizer)
    gen = torch.Generator(device=next(model.parameters()).device)
    gen.manual_seed(0 if seed is None else seed)
    outs = []
    for p in tqdm(prompts, desc=desc, disable=not progress, unit="seq"):
        ids = tokenizer(p, add_special_tokens=False)["input_ids"]
        new, finished = window_generate(
            model,
            ids,
            window=window,
            sinks=sinks,
            max_new_tokens=max_new_tokens,
            stop_ids=stop,
            temperature=temperature,
            top_p=top_p,
            generator=gen,
        )
        outs.append(Completion(p, tokenizer.decode(new, skip_special_tokens=True), len(ids), len(new), finished))
    return outs
