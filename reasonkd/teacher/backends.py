"""Where teacher completions come from: local HF model, vLLM, or an OpenAI-compatible API.

    backend = make_backend("hf", teacher="qwen2.5-coder-0.5b", batch_size=16)
    for results in backend.generate(requests, sampling):   # yields lists as batches finish
        ...

Every backend takes the same `Request`s (system + user text, a cache key, a
sample index) and yields `Result`s in groups, so the caller can commit each
group to the request cache as soon as it exists (a crash loses at most one
group of work).

- `hf` (default): a model on this machine through a generation engine
  (`engine`: hf = transformers, prompts length-sorted and batched with a KV
  cache; openvino = OpenVINO GenAI on the CPU, optionally with INT8 teacher
  weights; see reasonkd.models.engines); bf16 where the hardware runs it
  natively (2x faster generation on CPUs with AVX-512 bf16, and on GPUs).
- `vllm`: GPU only, optional import (`pip install 'reasonkd[vllm]'`).
- `openai`: any OpenAI-compatible endpoint (`reasonkd serve`, vLLM's server, a
  hosted R1) through the official `openai` client, with a thread pool, retries
  (Retry-After, else exponential backoff: reasonkd.teacher.api) and a request
  timeout; with `logprobs` K each result carries the top-K log-probs of its tokens. The API key is read from the
  environment variable named by `api_key_env`, never written anywhere.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urlparse

from reasonkd.errors import ReasonkdError
from reasonkd.models.generation import Sampling  # the generation settings shared with eval, rollouts, serve
from reasonkd.utils.hardware import dtype_name, resolve_dtype

log = logging.getLogger(__name__)
BACKENDS = ("hf", "vllm", "openai")


@dataclass(frozen=True)
class Request:
    key: str
    """Hash of (teacher, system, user, sampling, sample_idx): the request-cache key."""
    system: str | None
    user: str
    sample_idx: int = 0

    @property
    def seed(self) -> int:
        """A per-request seed, so a sampled trace is reproducible where the backend honours seeds."""
        return int(self.key[:8], 16)


@dataclass
class Result:
    key: str
    text: str
    """The completion (`content` for API backends)."""
    reasoning_content: str | None
    """Separate reasoning from R1-style endpoints, else None."""
    prompt_tokens: int
    new_tokens: int
    finished: bool
    """False when cut at max_new_tokens."""
    seconds: float
    """Wall time of the batch / request that produced it (shared by a batch)."""
    logprobs: list | None = None
    """openai backend with `logprobs` > 0: per generated token [token, bytes hex, log-prob, [[token, bytes hex,
    log-prob], ...] top-k] as the endpoint gave them (reasonkd.teacher.remote turns them into a logit cache)."""


def request_key(teacher: str, system: str | None, user: str, sampling: Sampling, sample_idx: int) -> str:
    blob = "\x1f".join(
        [
            teacher,
            system or "",
            user,
            f"{sampling.temperature:g}",
            f"{sampling.top_p:g}",
            str(sampling.max_new_tokens),
            str(sample_idx),
        ]
    )
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


def auto_dtype(device: str) -> str:
    """bfloat16 where it runs natively (GPU, or a CPU with AVX-512 bf16 / AMX), else float32 (fp16 on a
    GPU without bf16): reasonkd.utils.hardware decides, for every command alike."""
    return dtype_name(resolve_dtype("auto", device)[0])


class HFBackend:
    """A local model through a generation engine (reasonkd.models.engines): `engine` hf (transformers;
    batched, length-sorted, KV cache), openvino (CPU; `int8` = INT8 weights) or auto."""

    name = "hf"

    def __init__(
        self,
        teacher: str,
        *,
        batch_size: int = 16,
        dtype: str = "auto",
        device: str = "cpu",
        engine: str = "hf",
        int8: bool = False,
    ):
        from reasonkd.models.engines import make_engine, resolve_engine

        self.engine_name = resolve_engine(engine, device, teacher)
        if int8 and self.engine_name != "openvino":
            raise ReasonkdError(
                f"teacher_int8 needs --engine openvino (the {self.engine_name} engine runs the weights as they are)"
            )
        self.dtype = auto_dtype(device) if dtype == "auto" else dtype
        self.batch_size = batch_size
        self.engine = make_engine(self.engine_name, teacher, dtype=self.dtype, device=device, int8=int8)
        self.tokenizer = self.engine.tokenizer
        self.model = getattr(self.engine, "model", None)

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[Result]]:
        from reasonkd.models.generation import apply_chat

        prompts = [apply_chat(self.tokenizer, r.user, r.system) for r in requests]
        lengths = [len(self.tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        # longest first across the whole group, so each batch holds similar lengths (little padding)
        order = sorted(range(len(requests)), key=lambda i: -lengths[i])
        # hf: one batch per group; the other engines schedule the whole group themselves (continuous batching)
        group = self.batch_size if self.engine_name == "hf" else max(len(order), 1)
        for start in range(0, len(order), group):
            idx = order[start : start + group]
            t0 = time.perf_counter()
            outs = self.engine.generate(
                [prompts[i] for i in idx],
                max_new_tokens=sampling.max_new_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                batch_size=len(idx),
                seed=requests[idx[0]].seed if sampling.temperature > 0 else None,
            )
            dt = time.perf_counter() - t0
            yield [
                Result(requests[i].key, o.text, None, o.prompt_tokens, o.new_tokens, o.finished, dt)
                for i, o in zip(idx, outs)
            ]


class VLLMBackend:
    """vLLM on a GPU (optional dependency)."""

    name = "vllm"

    def __init__(self, teacher: str, *, dtype: str = "auto", chunk: int = 512, **llm_kwargs):
        try:
            import vllm
        except ImportError:
            raise ReasonkdError(
                "--backend vllm needs the vllm package and a CUDA GPU: "
                "pip install 'reasonkd[vllm]' (or use --backend hf)"
            ) from None
        from reasonkd.models import resolve

        r = resolve(teacher)
        path = os.path.join(r.path, r.gguf_file) if r.gguf_file else r.path
        self._vllm, self.chunk = vllm, chunk
        self.llm = vllm.LLM(model=path, dtype="auto" if dtype == "auto" else dtype, **llm_kwargs)
        self.tokenizer = self.llm.get_tokenizer()

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[Result]]:
        from reasonkd.models.generation import apply_chat

        for start in range(0, len(requests), self.chunk):
            group = requests[start : start + self.chunk]
            prompts = [apply_chat(self.tokenizer, r.user, r.system) for r in group]
            params = [
                self._vllm.SamplingParams(
                    n=1,
                    temperature=sampling.temperature,
                    top_p=sampling.top_p,
                    max_tokens=sampling.max_new_tokens,
                    seed=r.seed,
                )
                for r in group
            ]
            t0 = time.perf_counter()
            outs = self.llm.generate(prompts, params, use_tqdm=False)
            dt = time.perf_counter() - t0
            yield [
                Result(
                    r.key,
                    o.outputs[0].text,
                    None,
                    len(o.prompt_token_ids),
                    len(o.outputs[0].token_ids),
                    o.outputs[0].finish_reason != "length",
                    dt,
                )
                for r, o in zip(group, outs)
            ]


def _is_loopback(url: str) -> bool:
    host = (urlparse(url).hostname or "").lower()
    return host in ("localhost", "::1") or host.startswith("127.")


class OpenAIBackend:
    """An OpenAI-compatible chat endpoint via the official client; reads `reasoning_content` too."""

    name = "openai"

    def __init__(
        self,
        base_url: str,
        api_model: str,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        flush_every: int = 16,
        http_client=None,
        logprobs: int = 0,
        token_ids: bool = False,
    ):
        """`logprobs` K > 0: ask for the top-K log-probs of every generated token (Result.logprobs);
        `token_ids`: ask for them by token id (vLLM's return_tokens_as_token_ids; the tokenizer is known)."""
        from openai import OpenAI

        if not base_url:
            raise ReasonkdError("--backend openai needs --base-url (e.g. http://127.0.0.1:8000/v1)")
        if not api_model:
            raise ReasonkdError("--backend openai needs --api-model (the model name the endpoint serves)")
        key = os.environ.get(api_key_env)
        if not key:
            if not _is_loopback(base_url):
                raise ReasonkdError(
                    f"no API key: set the environment variable {api_key_env} (or name another one with --api-key-env)"
                )
            key = "EMPTY"  # local servers (reasonkd serve, vLLM) accept any key
        self._key = key
        self.api_model, self.concurrency = api_model, max(1, concurrency)
        self.max_retries, self.backoff, self.flush_every = max_retries, backoff, flush_every
        self.logprobs, self.token_ids = logprobs, token_ids
        # the client's own retries are off: ours log, back off with jitter and count attempts
        self.client = OpenAI(
            base_url=base_url,
            api_key=key,
            timeout=timeout,
            max_retries=0,
            **({"http_client": http_client} if http_client is not None else {}),
        )

    def _scrub(self, message: str) -> str:
        from reasonkd.teacher.api import scrub

        return scrub(message, self._key)

    def _one(self, r: Request, sampling: Sampling) -> Result:
        from reasonkd.teacher.api import with_retries

        msgs = ([{"role": "system", "content": r.system}] if r.system else []) + [{"role": "user", "content": r.user}]
        extra = {}
        if self.logprobs:  # vLLM / reasonkd serve name tokens by id on request: exact ids, no string matching
            extra = {
                "logprobs": True,
                "top_logprobs": self.logprobs,
                **({"extra_body": {"return_tokens_as_token_ids": True}} if self.token_ids else {}),
            }
        t0 = time.perf_counter()
        resp = with_retries(
            lambda: self.client.chat.completions.create(
                model=self.api_model,
                messages=msgs,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_new_tokens,
                seed=r.seed,
                n=1,
                **extra,
            ),
            max_retries=self.max_retries,
            backoff=self.backoff,
            key=self._key,
        )
        choice = resp.choices[0]
        msg = choice.message
        reasoning = getattr(msg, "reasoning_content", None) or (msg.model_extra or {}).get("reasoning_content")
        usage = resp.usage
        lps = None
        if self.logprobs:
            lps = chat_logprobs(choice, self.api_model)
        return Result(
            r.key,
            msg.content or "",
            reasoning,
            usage.prompt_tokens if usage else 0,
            usage.completion_tokens if usage else 0,
            choice.finish_reason != "length",
            time.perf_counter() - t0,
            lps,
        )

    def generate(self, requests: list[Request], sampling: Sampling) -> Iterator[list[Result]]:
        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="teacher-api")
        pending = {pool.submit(self._one, r, sampling) for r in requests}
        buf, error, last = [], None, time.monotonic()
        try:
            while pending and error is None:
                done, pending = wait(pending, timeout=5.0, return_when=FIRST_COMPLETED)
                for f in done:
                    try:
                        buf.append(f.result())
                    except Exception as e:  # noqa: BLE001 - keep what finished, then stop
                        error = error or e
                # hand results over in groups: each group is one atomic cache write
                if buf and (len(buf) >= self.flush_every or not pending or time.monotonic() - last > 10):
                    yield buf
                    buf, last = [], time.monotonic()
            if error is not None:
                for f in pending:
                    f.cancel()
                for f in pending:  # requests already in flight still finish: keep their work
                    if not f.cancelled() and f.exception() is None:
                        buf.append(f.result())
                if buf:
                    yield buf
                raise error
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def make_backend(
    name: str,
    *,
    teacher: str = "",
    batch_size: int = 16,
    dtype: str = "auto",
    device: str = "cpu",
    base_url: str = "",
    api_model: str = "",
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    timeout: float = 600.0,
    max_retries: int = 5,
    engine: str = "hf",
    int8: bool = False,
    logprobs: int = 0,
    token_ids: bool = False,
):
    if name == "hf":
        return HFBackend(teacher, batch_size=batch_size, dtype=dtype, device=device, engine=engine, int8=int8)
    if name == "vllm":
        return VLLMBackend(teacher, dtype=dtype)
    if name == "openai":
        return OpenAIBackend(
            base_url,
            api_model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            logprobs=logprobs,
            token_ids=token_ids,
        )
    raise ReasonkdError(f"--backend {name!r}: choose one of {', '.join(BACKENDS)}")


def _entry(e) -> list:
    raw = getattr(e, "bytes", None)
    return [e.token, bytes(raw).hex() if raw is not None else e.token.encode("utf-8").hex(), float(e.logprob)]


def chat_logprobs(choice, model: str) -> list:
    """A chat choice's log-probs as [token, bytes hex, log-prob, [[token, bytes hex, log-prob], ...]] per token."""
    content = getattr(getattr(choice, "logprobs", None), "content", None)
    if content is None:
        if not (choice.message.content or ""):
            return []
        raise ReasonkdError(
            f"the endpoint returned no logprobs for {model!r} although --logprobs asked for them: "
            "it does not give top-k log-probs (docs/teacher.md lists the providers that do); "
            "drop --logprobs, or use an endpoint that returns them"
        )
    return [_entry(t) + [[_entry(x) for x in (t.top_logprobs or [])]] for t in content]
