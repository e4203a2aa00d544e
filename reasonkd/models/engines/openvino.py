"""The openvino engine: OpenVINO GenAI's continuous-batching pipeline (paged KV cache) on the CPU.

    engine = OpenVINOEngine("smollm2-135m")                    # converts once per weights, then cached
    outs = engine.generate(prompts, max_new_tokens=256)         # greedy, fp32 weights and compute
    engine = OpenVINOEngine("smollm2-135m", dtype="bfloat16")  # bf16 compute where the CPU has native bf16
    engine = OpenVINOEngine("qwen2.5-coder-0.5b", int8=True)    # INT8 weights: teacher traces only

The checkpoint is converted to OpenVINO IR by reasonkd.models.engines.ov_convert
(cached per weights fingerprint; `convert_seconds` / `load_seconds` count it).
Prompts are tokenized and completions decoded by the model's own transformers
tokenizer, exactly as in the hf engine; GenAI gets token ids, so no chat
template or special token is added twice. The CPU plugin's precision
settings come from one table, reasonkd.models.engines.ov_settings: fp32 runs
with fp32 compute and an fp32 KV cache (so greedy tokens match PyTorch fp32),
bf16 with bf16 compute and a bf16 KV cache (the plugin refuses an f32 one).
A plugin that refuses to compile is an error naming what was asked and the
override that works; only a conversion whose manifest check fails is converted
again (reasonkd.models.engines.ov_convert). Each request carries its own seed (seed + its index), so a
seeded sampling run is reproducible however the scheduler batches it.

Why GenAI's pipeline rather than optimum-intel's OVModelForCausalLM with
transformers' generate: measured on smollm2-135m in benchmarks/bench_generation.py
(BENCHMARKS.md "Generation").
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import openvino as ov
import openvino_genai as ov_genai
from tqdm.auto import tqdm
from transformers import GenerationConfig

from reasonkd.errors import ReasonkdError
from reasonkd.models.cache import cached_param_count
from reasonkd.models.engines.base import Engine, stop_token_ids
from reasonkd.models.engines.hf import completions_from_ids
from reasonkd.models.engines.ov_convert import ensure_converted
from reasonkd.models.engines.ov_settings import plugin_settings
from reasonkd.models.loader import tokenizer_from
from reasonkd.utils import hardware

# this module is imported only by make_engine, after require_export_extra checked the export extra

log = logging.getLogger(__name__)


class OpenVINOEngine(Engine):
    name = "openvino"

    def __init__(
        self,
        model_name_or_path: str,
        *,
        dtype: str = "float32",
        int8: bool = False,
        kv_cache_gb: float = 2.0,
        max_num_seqs: int = 64,
        prefix_caching: bool = False,
    ):
        """`dtype`: "float32" | "bfloat16" (resolve "auto" first: reasonkd.utils.hardware.resolve_dtype)."""
        super().__init__()
        t0 = time.perf_counter()
        self.folder, self.conversion = ensure_converted(model_name_or_path, int8=int8)
        weights = self.conversion.get("weights", "fp32")
        self.settings = plugin_settings(hardware.dtype_name(dtype), weights, hardware.probe().native_bf16)
        if self.settings.note:
            log.info("openvino: %s", self.settings.note)
        self.precision = {"int8": "int8 weights", "export": "export"}.get(weights, "fp32")
        if self.settings.compute == "bf16":
            self.precision += " (bf16 compute)"
        self.tokenizer = tokenizer_from(str(self.folder))
        try:
            self._gen_config = GenerationConfig.from_pretrained(str(self.folder))
        except OSError:
            self._gen_config = None
        self.stop_ids = set(stop_token_ids(self.tokenizer, self._gen_config))
        sched = ov_genai.SchedulerConfig()
        sched.cache_size = max(1, int(round(kv_cache_gb)))
        sched.max_num_seqs = max_num_seqs
        sched.enable_prefix_caching = prefix_caching
        self.pipe = compile_pipeline(self.folder, sched, self.settings)
        self._lock = threading.Lock()
        self._next_id = 0
        try:
            config = json.loads((self.folder / "config.json").read_text())
        except (OSError, ValueError):
            config = {}
        self.max_len = int(config.get("max_position_embeddings") or 0) or None
        self.load_seconds = time.perf_counter() - t0

    def config_for(
        self, max_new_tokens: int, temperature: float, top_p: float, seed: int | None, stop: list[str] | None
    ):
        """A GenAI GenerationConfig that decodes like the hf engine (reasonkd.models.generation)."""
        c = ov_genai.GenerationConfig()
        c.max_new_tokens = max_new_tokens
        c.stop_token_ids = set(self.stop_ids)
        c.apply_chat_template = False
        if stop and self.conversion.get("tokenizer_ir") == "tokenizer+detokenizer":
            # GenAI ends a sequence at a stop string (its detokenizer watches the text); without one it runs
            # on to max_new_tokens and completions_from_ids cuts the text and counts the tokens alike
            c.stop_strings = set(stop)
            c.include_stop_str_in_output = True
        for key in ("repetition_penalty", "no_repeat_ngram_size"):  # the checkpoint's own, as transformers does
            value = getattr(self._gen_config, key, None)
            if value:
                setattr(c, key, value)
        if temperature > 0:
            c.do_sample, c.temperature, c.top_p = True, temperature, top_p
            c.rng_seed = seed if seed is not None else random.randrange(2**31)
        else:
            c.do_sample = False
        return c

    def _ids(self, prompts: list[str]) -> list[list[int]]:
        return [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]

    def _tensor(self, ids: list[int]):
        return ov.Tensor(np.asarray([ids], dtype=np.int64))

    def _strip(self, ids: list[int]) -> tuple[list[int], bool]:
        """Generated ids without the end-of-turn token GenAI leaves at the end; whether one was there."""
        for j, t in enumerate(ids):
            if t in self.stop_ids:
                return ids[:j], True
        return ids, False

    def _generate(self, prompts, *, max_new_tokens, temperature, top_p, seed, stop, batch_size, progress, desc):
        # batch_size does not apply: the scheduler keeps up to max_num_seqs sequences in flight
        ids = self._ids(prompts)
        base = seed if seed is not None else random.randrange(2**31)
        handles = []
        bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="seq")
        new_total, t0 = 0, time.perf_counter()
        with self._lock:
            for i, x in enumerate(ids):
                cfg = self.config_for(max_new_tokens, temperature, top_p, base + i, stop)
                handles.append(self.pipe.add_request(self._request_id(), self._tensor(x), cfg))
            results: list = [None] * len(prompts)
            pending = set(range(len(prompts)))
            while pending:
                self.pipe.step()
                done = [i for i in pending if _finished(handles[i])]
                for i in done:
                    results[i] = _read_all(handles[i])
                    new_total += len(results[i][0])
                    pending.discard(i)
                if done:
                    bar.update(len(done))
                    bar.set_postfix(tok_s=f"{new_total / max(time.perf_counter() - t0, 1e-9):.1f}")
                if pending and not self.pipe.has_non_finished_requests():
                    raise ReasonkdError(
                        "OpenVINO GenAI stopped with requests unfinished (out of KV cache?); raise kv_cache_gb"
                    )
        bar.close()
        stripped = [self._strip(r[0]) for r in results]
        return completions_from_ids(
            self.tokenizer,
            prompts,
            [len(x) for x in ids],
            [s[0] for s in stripped],
            [s[1] or r[1] == "stop" for s, r in zip(stripped, results)],
            stop,
        )

    def _request_id(self) -> int:
        self._next_id += 1
        return self._next_id

    def stream_ids(self, prompt_ids: list[int], cfg, cancel: threading.Event | None = None) -> Iterator[list[int]]:
        """Yield the new token ids of one request as they come (the serve engine's decoding loop).

        Concurrent streams share the pipeline: whichever caller holds the lock runs one scheduler step for
        all requests in flight (continuous batching), then every caller reads its own handle."""
        with self._lock:
            handle = self.pipe.add_request(self._request_id(), self._tensor(prompt_ids), cfg)
        try:
            while True:
                if cancel is not None and cancel.is_set():
                    handle.cancel()
                    return
                with self._lock:
                    if not _finished(handle) and handle.can_read() is False:
                        self.pipe.step()
                    chunk = handle.read() if handle.can_read() else {}
                for out in chunk.values():
                    if out.generated_ids:
                        yield list(out.generated_ids)
                if _finished(handle) and not handle.can_read():
                    return
        finally:
            if not _finished(handle):
                handle.cancel()

    def num_parameters(self) -> int | None:
        return cached_param_count(Path(self.conversion.get("source", self.folder)))

    def latency(self, prompts: list[str], max_new_tokens: int = 64, warmup: int = 1) -> dict:
        """Batch-1 greedy timings (see Engine.latency), first token timed as it streams out."""
        cfg = self.config_for(max_new_tokens, 0.0, 1.0, None, None)
        raw: dict = {"ttft_s": [], "total_s": [], "per_token_s": [], "new_tokens": []}
        for i, p in enumerate([prompts[0]] * warmup + list(prompts) if prompts else []):
            t0, stamps = time.perf_counter(), []
            for ids in self.stream_ids(self._ids([p])[0], cfg):
                stamps += [time.perf_counter()] * len([t for t in ids if t not in self.stop_ids])
            if i < warmup or not stamps:
                continue
            raw["ttft_s"].append(stamps[0] - t0)
            raw["total_s"].append(time.perf_counter() - t0)
            if len(stamps) > 1:
                raw["per_token_s"].append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
            raw["new_tokens"].append(len(stamps))
        return raw

    def close(self) -> None:
        self.pipe = None


def compile_pipeline(folder: Path, sched, settings):
    """GenAI's continuous-batching pipeline for `folder` with the plugin `settings`. A refusal is not a
    damaged conversion (ensure_converted already checked the files against their manifest): it is an error
    that says what was asked, what the plugin said, and the override that works."""
    try:
        return ov_genai.ContinuousBatchingPipeline(str(folder), sched, "CPU", dict(settings.props))
    except RuntimeError as e:
        said = [line.strip() for line in str(e).strip().splitlines() if line.strip()]
        fix = (
            "pass dtype=float32 (reasonkd demo dtype=float32, or --dtype float32 on the command), or --engine hf"
            if settings.compute == "bf16"
            else "use --engine hf"
        )
        raise ReasonkdError(
            f"OpenVINO cannot compile {folder} with {settings.describe()} "
            f"({settings.props}): the CPU plugin said: {' / '.join(said[-2:])[:400] or type(e).__name__}."
            f" Fix: {fix}"
        ) from e


def _finished(handle) -> bool:
    return handle.get_status() not in (ov_genai.GenerationStatus.RUNNING,)


def _read_all(handle) -> tuple[list[int], str]:
    """(generated ids, 'stop' | 'length') of a finished single-sequence request."""
    outs = handle.read_all()
    if not outs:
        return [], "length"
    o = outs[0]
    reason = str(o.finish_reason).rsplit(".", 1)[-1].lower()
    return list(o.generated_ids), reason
