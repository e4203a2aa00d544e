"""Teacher trace generation: prompt the teacher, sample k traces per problem, verify, keep.

    reasonkd teacher generate --teacher qwen2.5-coder-0.5b --data data/quick --out runs/traces --limit 100

    from reasonkd.teacher.generate import GenerateSettings, generate_traces
    stats = generate_traces(GenerateSettings(teacher="qwen2.5-coder-0.5b", data="data/quick", out="runs/traces"))

Every trace is checked against the problem's reference with
`reasonkd.data.verify.verify_item`. Verified, complete traces go to
`traces.jsonl` (the training targets); the others go to `negatives.jsonl`
with an `error_type` (`truncated`, `no_answer`, `wrong_final_answer`).
`stats.json` holds acceptance rates per domain and difficulty (judging, keeping
and writing these files: `reasonkd.teacher.selection`). The output
folder is resumable: see `reasonkd.teacher.store` for the commit protocol.

Rejection sampling: `k` (`--samples-per-problem`) traces per problem at a
temperature > 0, each with its own seed (derived from the request key, which
holds the sample index and `seed`); only verified ones are kept, and
`prefer="shortest"` keeps one verified trace per problem, the shortest
(short chains teach small students better). The `selection` block of
stats.json says what that bought: acceptance per sample, problems solved by
at least one sample, mean length of the kept traces, teacher tokens spent.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from reasonkd.data.prompts import load_template, render
from reasonkd.errors import ReasonkdError
from reasonkd.models.generation import GenerationJob
from reasonkd.teacher.backends import Request, Result, Sampling, make_backend, request_key
from reasonkd.teacher.shard import shard_items
from reasonkd.teacher.selection import finalize, make_row
from reasonkd.teacher.store import RequestCache, ShardStore
from reasonkd.utils.io import write_json

log = logging.getLogger(__name__)

# Settings that change what the teacher is asked: resuming with other values is refused.
IDENTITY_KEYS = ("teacher", "template", "temperature", "top_p", "max_new_tokens", "k")
PREFER = ("all", "shortest")


@dataclass(kw_only=True)
class GenerateSettings(GenerationJob):
    """A teacher run: the shared generation settings (models.generation.GenerationJob: sampling, data, split,
    domain, template, batch_size, dtype, engine; a trace that hits max_new_tokens is a `truncated` negative)
    plus what is the teacher's own."""

    teacher: str
    """Model alias / folder / .gguf (hf, vllm) or a name for the API model (openai)."""
    data: str
    """A built dataset folder or one JSONL file (reasonkd.data schema)."""
    out: str
    """Output folder (resumable)."""
    k: int = 1
    """Traces sampled per problem (`--samples-per-problem`): rejection sampling keeps the verified ones."""
    seed: int = 0
    """Base seed of the samples; each sample's own seed comes from (this, the prompt, its sample index).
    Another seed draws new samples (0 keeps the request keys of runs made before this option)."""
    prefer: str = "all"
    """Which verified traces per problem go to traces.jsonl: all | shortest (one per problem, fewest tokens)."""
    backend: str = "hf"
    """hf | vllm | openai (a local teacher, backend hf, runs on `engine`)."""
    teacher_int8: bool = False
    """INT8 teacher weights (engine openvino): faster traces; fine here because every trace is verified."""
    base_url: str = ""
    api_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout: float = 600.0
    max_retries: int = 5
    limit: int | None = None
    """Use N problems, taken in a stable hash order of their ids (a larger N extends a smaller one)."""
    shard_size: int = 64
    """Problems per committed shard: the unit of work lost to a crash (its requests stay cached)."""
    device: str = "cpu"
    cache_dir: str | None = None
    """Request cache folder (default OUT/cache); share it between runs to reuse completions."""
    progress: bool = True
    shard: str | None = None
    """'i/n': only shard i of n of the problems (reasonkd.teacher.shard; merge with `reasonkd teacher merge`)."""
    logprobs: int = 0
    """backend openai: keep the top-K log-probs of every generated token; kept traces' go to OUT/logits, a logit
    cache (reasonkd.teacher.remote). 0 = none."""
    logprobs_tokenizer: str = ""
    """The endpoint's tokenizer for OUT/logits (default: the teacher name, when it resolves here): token ids;
    'none' or unknown: token strings."""
    price_in: float = 0.0
    """USD per million prompt tokens (the progress bar's cost counter); 0 = not shown."""
    price_out: float = 0.0
    """USD per million generated tokens (the progress bar's cost counter)."""


def select_items(data: str, split: str | None, domain: str | None, limit: int | None) -> list[dict]:
    from reasonkd.data import load_items

    items = [r for r in load_items(data, split=split) if r.get("kind") != "negative"]
    if domain:
        items = [r for r in items if r["domain"] == domain]
    seen: set[str] = set()
    for r in items:
        if r["id"] in seen:
            raise ReasonkdError(f"{data}: id {r['id']!r} appears twice; ids must be unique")
        seen.add(r["id"])
    if limit is not None:
        # a stable hash order samples every family, and --limit 200 extends a run made with --limit 100
        items = sorted(items, key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())[:limit]
    if not items:
        raise ReasonkdError(
            f"{data}: no problems left after split={split} domain={domain} "
            "(negatives are skipped); check --split / --domain"
        )
    return items


def generate_traces(s: GenerateSettings, backend=None) -> dict:
    """Run (or resume) one trace-generation job; returns stats.json's content. `backend`: an
    already built backend (tests), else one is made from the settings when first needed."""
    teacher = _check_settings(s)
    lp_tok = _logprobs_tokenizer(s, teacher)  # before any work: --logprobs goes with --backend openai
    template = load_template(s.template)
    items = select_items(s.data, s.split, s.domain, s.limit)
    if s.shard:
        items = shard_items(items, s.shard)
    sampling = s.sampling()
    settings = {**dataclasses.asdict(s), "teacher": teacher, "template": template}
    store = ShardStore(s.out)
    try:
        store.check_settings(settings, _identity_keys(s))
        cache = RequestCache(s.cache_dir or Path(s.out) / "cache")
        done = store.done_ids
        pending = [it for it in items if it["id"] not in done]
        total = len(items) * s.k
        log.info(
            "%d problems x k=%d: %d already committed, %d to do (%d requests cached)",
            len(items),
            s.k,
            len(items) - len(pending),
            len(pending),
            len(cache),
        )
        bar = tqdm(
            total=total,
            initial=total - len(pending) * s.k,
            desc="teacher",
            unit="trace",
            disable=not s.progress,
            dynamic_ncols=True,
        )
        run_tokens, run_seconds, run_prompt = 0, 0.0, 0
        for start in range(0, len(pending), s.shard_size):
            shard = pending[start : start + s.shard_size]
            reqs = _shard_requests(s, template, teacher, sampling, shard)
            todo = list({r.key: r for r in reqs if not _cached(cache, r.key, s.logprobs)}.values())  # run once
            bar.update(len(reqs) - len(todo))
            shard_tokens, t0 = 0, time.perf_counter()
            if todo:
                if backend is None:
                    backend = _make_backend(s, teacher, lp_tok)
                    t0 = time.perf_counter()
                for results in backend.generate(todo, sampling):
                    cache.put([_cache_row(r, teacher) for r in results])
                    shard_tokens += sum(r.new_tokens for r in results)
                    run_prompt += sum(r.prompt_tokens for r in results)
                    bar.update(len(results))
                    el = run_seconds + time.perf_counter() - t0
                    bar.set_postfix_str(_counters(s, run_prompt, run_tokens + shard_tokens, el))
            seconds = time.perf_counter() - t0 if todo else 0.0
            run_tokens, run_seconds = run_tokens + shard_tokens, run_seconds + seconds
            # requests were built item by item, k per item
            rows = [make_row(shard[i // s.k], r, cache.get(r.key), teacher) for i, r in enumerate(reqs)]
            store.commit(rows, [it["id"] for it in shard], {"new_tokens": shard_tokens, "seconds": round(seconds, 3)})
        bar.close()
        this_run = {
            "new_tokens": run_tokens,
            "seconds": round(run_seconds, 2),
            "tokens_per_s": round(run_tokens / run_seconds, 2) if run_seconds else None,
        }
        stats = finalize(store, teacher, settings, this_run)
        if s.logprobs:
            stats["logits"] = _write_logits(s, store.out, cache, teacher, lp_tok)
            write_json(store.out / "stats.json", stats)
        return stats
    finally:
        store.close()


def _check_settings(s: GenerateSettings) -> str:
    """The teacher's name, once the settings pass their checks."""
    if s.k < 1 or s.max_new_tokens < 1 or s.batch_size < 1 or s.shard_size < 1:
        raise ReasonkdError("--k, --max-new-tokens, --batch-size and --shard-size must be >= 1")
    if s.prefer not in PREFER:
        raise ReasonkdError(f"--prefer {s.prefer!r}: choose one of {', '.join(PREFER)}")
    if s.k > 1 and s.temperature == 0:
        log.warning(
            "--k %d with --temperature 0 samples the same greedy trace %d times; pass e.g. --temperature 0.7", s.k, s.k
        )
    teacher = s.teacher or s.api_model
    if not teacher:
        raise ReasonkdError("--teacher is required (for --backend openai it defaults to --api-model)")
    return teacher


def _shard_requests(s: GenerateSettings, template, teacher: str, sampling: Sampling, shard: list[dict]) -> list:
    """The requests of one shard: k per problem, problem by problem."""
    reqs = []
    for item in shard:
        system, user = render(template, item)
        # INT8 weights are another model: their completions never answer an fp32 request from the cache
        reqs += [
            Request(
                sample_key(teacher + ("@int8" if s.teacher_int8 else ""), system, user, sampling, i, s.seed),
                system,
                user,
                i,
            )
            for i in range(s.k)
        ]
    return reqs


def _make_backend(s: GenerateSettings, teacher: str, lp_tok):
    """The backend the settings name (built when the first request is not in the cache)."""
    return make_backend(
        s.backend,
        teacher=teacher,
        batch_size=s.batch_size,
        dtype=s.dtype,
        device=s.device,
        base_url=s.base_url,
        api_model=s.api_model,
        api_key_env=s.api_key_env,
        concurrency=s.concurrency,
        timeout=s.timeout,
        max_retries=s.max_retries,
        engine=s.engine,
        int8=s.teacher_int8,
        logprobs=s.logprobs,
        token_ids=lp_tok is not None,
    )


def _cached(cache: RequestCache, key: str, logprobs: int) -> bool:
    """A finished request; with --logprobs, one that holds them (a completion cached without is asked again)."""
    return key in cache and (not logprobs or cache.get(key).get("logprobs") is not None)


def _counters(s: GenerateSettings, prompt_tokens: int, new_tokens: int, seconds: float) -> str:
    """The bar's counters: tokens, tokens/s and, with prices, the cost so far."""
    text = f"{prompt_tokens} in + {new_tokens} out tokens, {new_tokens / max(seconds, 1e-9):.1f} tok/s"
    if s.price_in or s.price_out:
        text += f", ${(prompt_tokens * s.price_in + new_tokens * s.price_out) / 1e6:.4f}"
    return text


def _logprobs_tokenizer(s: GenerateSettings, teacher: str):
    """The endpoint's tokenizer for --logprobs (None: token strings); checks --logprobs goes with openai."""
    if not s.logprobs:
        return None
    if s.backend != "openai":
        raise ReasonkdError(
            "--logprobs takes the top-k from an endpoint (--backend openai); for a local teacher "
            "run `reasonkd teacher logits --teacher MODEL` over the traces"
        )
    if not 1 <= s.logprobs <= 20:
        raise ReasonkdError(f"--logprobs must be in 1..20 (OpenAI's limit on top_logprobs), got {s.logprobs}")
    from reasonkd.teacher.remote import known_tokenizer

    return known_tokenizer(s.logprobs_tokenizer or teacher)


def _write_logits(s: GenerateSettings, out: Path, cache: RequestCache, teacher: str, tok) -> dict:
    """OUT/logits from the request cache: the kept traces' generated log-probs (reasonkd.teacher.remote)."""
    from reasonkd.teacher.remote import write_generated_cache
    from reasonkd.utils.io import read_jsonl

    by_prefix = {key[:16]: key for key in cache.keys()}
    kept = read_jsonl(out / "traces.jsonl")
    folder, skipped = write_generated_cache(
        out / "logits", kept, lambda row: cache.get(by_prefix[row["request"]]).get("logprobs"), s.logprobs, teacher, tok
    )
    return {
        "folder": str(folder),
        "k": s.logprobs,
        "traces": len(kept) - skipped,
        "left_out": skipped,
        "tokens": "ids" if tok is not None else "strings",
    }


def _identity_keys(s: GenerateSettings) -> tuple[str, ...]:
    """IDENTITY_KEYS, plus `seed` when this run or the recorded one has a seed (folders made before the
    option have none in run.json, and resume as seed 0)."""
    run = Path(s.out) / "run.json"
    recorded = json.loads(run.read_text()).get("seed") if run.is_file() else None
    return IDENTITY_KEYS + (("seed",) if s.seed or recorded else ())


def sample_key(teacher: str, system: str | None, user: str, sampling: Sampling, sample_idx: int, seed: int) -> str:
    """The request key of one sample; its first 8 hex digits are the sample's seed (Request.seed).
    seed 0 is the plain key, so request caches of earlier runs stay valid."""
    key = request_key(teacher, system, user, sampling, sample_idx)
    return key if not seed else hashlib.sha256(f"{key}\x1fseed={seed}".encode()).hexdigest()


def _cache_row(r: Result, teacher: str) -> dict:
    row = {
        "key": r.key,
        "teacher": teacher,
        "text": r.text,
        "reasoning_content": r.reasoning_content,
        "prompt_tokens": r.prompt_tokens,
        "new_tokens": r.new_tokens,
        "finished": r.finished,
        "seconds": round(r.seconds, 3),
    }
    if r.logprobs is not None:
        row["logprobs"] = r.logprobs
    return row
