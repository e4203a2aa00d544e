"""Teacher trace generation: prompt the teacher, sample k traces per problem, verify, keep.

    reasonkd teacher generate --teacher qwen2.5-coder-0.5b --data data/quick --out runs/traces --limit 100

    from reasonkd.teacher.generate import GenerateSettings, generate_traces
    stats = generate_traces(GenerateSettings(teacher="qwen2.5-coder-0.5b", data="data/quick", out="runs/traces"))

Every trace is checked against the problem's reference with
`reasonkd.data.verify.verify_item`. Verified, complete traces go to
`traces.jsonl` (the training targets); the others go to `negatives.jsonl`
with an `error_type` (`truncated`, `no_answer`, `wrong_final_answer`).
`stats.json` holds acceptance rates per domain and difficulty. The output
folder is resumable: see `reasonkd.teacher.store` for the commit protocol.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import yaml
from tqdm.auto import tqdm

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.backends import Request, Result, Sampling, make_backend, request_key
from reasonkd.teacher.parse import parse_output
from reasonkd.teacher.store import RequestCache, ShardStore
from reasonkd.utils.io import write_json, write_jsonl

log = logging.getLogger(__name__)

# `{question}` is replaced by the item's question. Math asks for GSM8K's "#### N"
# line so the strict extractor, not the last-number fallback, reads the answer.
DEFAULT_TEMPLATE = {
    "system": None,
    "math": '{question}\n\nThink step by step, then give the final answer on its own last line as "#### <number>".',
    "code": "{question}\n\nThink step by step about the algorithm, then give the complete solution "
            "in one ```python code block.",
    "logic": '{question}\n\nThink step by step, then give the final answer after "Answer:".',
    "default": "{question}\n\nThink step by step, then state the final answer.",
}
ERROR_TYPES = ("truncated", "no_answer", "wrong_final_answer")
# Settings that change what the teacher is asked: resuming with other values is refused.
IDENTITY_KEYS = ("teacher", "template", "temperature", "top_p", "max_new_tokens", "k")


@dataclass
class GenerateSettings:
    teacher: str
    """Model alias / folder / .gguf (hf, vllm) or a name for the API model (openai)."""
    data: str
    """A built dataset folder or one JSONL file (reasonkd.data schema)."""
    out: str
    """Output folder (resumable)."""
    split: str | None = "train"
    """Which split to use; None for all."""
    domain: str | None = None
    """Only this domain (math | code | logic); None for all."""
    k: int = 1
    """Traces sampled per problem."""
    temperature: float = 0.0
    """0 = greedy."""
    top_p: float = 1.0
    max_new_tokens: int = 384
    """Cap on generated tokens; a trace that hits it is a `truncated` negative."""
    batch_size: int = 16
    backend: str = "hf"
    """hf | vllm | openai."""
    base_url: str = ""
    api_model: str = ""
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 4
    timeout: float = 600.0
    max_retries: int = 5
    limit: int | None = None
    """Use N problems, taken in a stable hash order of their ids (a larger N extends a smaller one)."""
    template: str | None = None
    """Prompt template file (YAML with system/math/code/logic/default keys, or plain text); None = default."""
    shard_size: int = 64
    """Problems per committed shard: the unit of work lost to a crash (its requests stay cached)."""
    dtype: str = "auto"
    device: str = "cpu"
    cache_dir: str | None = None
    """Request cache folder (default OUT/cache); share it between runs to reuse completions."""
    progress: bool = True


def load_template(path: str | None) -> dict:
    """The prompt template: the default, or a file (YAML mapping, or plain text for every domain)."""
    if not path:
        return dict(DEFAULT_TEMPLATE)
    p = Path(path)
    if not p.is_file():
        raise ReasonkdError(f"--template {path}: no such file")
    text = p.read_text(encoding="utf-8")
    if p.suffix in (".yaml", ".yml", ".json"):
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ReasonkdError(f"{path}: expected a mapping with keys system/math/code/logic/default")
        unknown = set(data) - set(DEFAULT_TEMPLATE)
        if unknown:
            raise ReasonkdError(f"{path}: unknown keys {sorted(unknown)}; use {sorted(DEFAULT_TEMPLATE)}")
        tpl = {"system": None, "default": DEFAULT_TEMPLATE["default"], **data}
    else:
        tpl = {"system": None, "default": text}
    for key, value in tpl.items():
        if key != "system" and value is not None and "{question}" not in value:
            raise ReasonkdError(f"{path}: template '{key}' lacks the {{question}} placeholder")
    return tpl


def render(template: dict, item: dict) -> tuple[str | None, str]:
    """(system, user) text for one item; str.replace, because code and LaTeX are full of braces."""
    body = template.get(item["domain"]) or template["default"]
    return template.get("system") or None, body.replace("{question}", item["question"])


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
        raise ReasonkdError(f"{data}: no problems left after split={split} domain={domain} "
                            "(negatives are skipped); check --split / --domain")
    return items


def judge(item: dict, parsed, finished: bool) -> tuple[bool, str | None, str | None]:
    """(accepted, error_type, predicted answer) of one trace."""
    from reasonkd.data.verify import extract_final_answer, verify_item

    pred = extract_final_answer(parsed.trace) if item["domain"] == "math" else None
    if not finished:
        # a cut-off trace never ends: as a target it would teach the student to ramble
        return False, "truncated", pred
    if parsed.r1 and (not parsed.think_closed or not parsed.final.strip()):
        return False, "no_answer", pred
    if verify_item(item, parsed.trace):
        return True, None, pred
    if item["domain"] == "math":
        return False, ("no_answer" if pred is None else "wrong_final_answer"), pred
    no_block = item["domain"] == "code" and "```" not in parsed.trace
    return False, ("no_answer" if no_block or not parsed.final.strip() else "wrong_final_answer"), pred


def make_row(item: dict, req: Request, res: dict, teacher: str) -> dict:
    from reasonkd.data.verify import reference_answer

    parsed = parse_output(res["text"], res.get("reasoning_content"))
    accepted, error_type, pred = judge(item, parsed, res["finished"])
    return {"id": item["id"], "sample_idx": req.sample_idx, "prompt": req.user, "system": req.system,
            "trace": parsed.trace, "reasoning": parsed.reasoning, "final": parsed.final, "pred": pred,
            "answer": reference_answer(item), "domain": item["domain"], "difficulty": item.get("difficulty"),
            "template": item.get("template"), "split": item.get("split"), "teacher": teacher,
            "tokens": res["new_tokens"], "prompt_tokens": res["prompt_tokens"], "finished": res["finished"],
            "accepted": accepted, "error_type": error_type, "request": req.key[:16]}


def compute_stats(rows: list[dict]) -> dict:
    """Acceptance overall, per domain, per difficulty and per (domain, difficulty)."""
    def summary(group: list[dict]) -> dict:
        problems = {r["id"] for r in group}
        solved = {r["id"] for r in group if r["accepted"]}
        acc = sum(r["accepted"] for r in group)
        out = {"problems": len(problems), "samples": len(group), "accepted": acc,
               "acceptance_rate": round(acc / len(group), 4) if group else 0.0,
               "problems_solved": len(solved),
               "mean_tokens": round(sum(r["tokens"] for r in group) / len(group), 1) if group else 0.0}
        out.update({e: sum(r["error_type"] == e for r in group) for e in ERROR_TYPES})
        return out

    by: dict[str, dict[str, list]] = {"domain": defaultdict(list), "difficulty": defaultdict(list),
                                      "domain_difficulty": defaultdict(list)}
    for r in rows:
        by["domain"][r["domain"]].append(r)
        by["difficulty"][str(r["difficulty"])].append(r)
        by["domain_difficulty"][f"{r['domain']}/{r['difficulty']}"].append(r)
    return {"overall": summary(rows), **{f"by_{k}": {g: summary(v) for g, v in sorted(d.items())}
                                         for k, d in by.items()}}


def format_stats(stats: dict) -> str:
    o = stats["overall"]
    lines = [f"teacher {stats['teacher']}: accepted {o['accepted']}/{o['samples']} traces "
             f"({100 * o['acceptance_rate']:.1f}%), {o['problems_solved']}/{o['problems']} problems solved",
             f"{'domain/difficulty':<20}{'samples':>8}{'accepted':>9}{'rate':>8}{'truncated':>10}"
             f"{'no_answer':>10}{'wrong':>7}{'tokens':>8}"]
    for name, s in stats["by_domain_difficulty"].items():
        lines.append(f"{name:<20}{s['samples']:>8}{s['accepted']:>9}{100 * s['acceptance_rate']:>7.1f}%"
                     f"{s['truncated']:>10}{s['no_answer']:>10}{s['wrong_final_answer']:>7}{s['mean_tokens']:>8.0f}")
    for name, s in stats["by_domain"].items():
        lines.append(f"{name + ' (all)':<20}{s['samples']:>8}{s['accepted']:>9}{100 * s['acceptance_rate']:>7.1f}%")
    g = stats["generation"]
    if g.get("tokens_per_s"):
        lines.append(f"generation: {g['new_tokens']} tokens in {g['seconds']:.0f}s ({g['tokens_per_s']:.1f} tok/s)")
    return "\n".join(lines)


def _finalize(store: ShardStore, teacher: str, settings: dict, this_run: dict) -> dict:
    rows = list(store.rows())
    traces = [{k: v for k, v in r.items() if k not in ("accepted", "error_type")} for r in rows if r["accepted"]]
    negatives = [{k: v for k, v in r.items() if k != "accepted"} for r in rows if not r["accepted"]]
    write_jsonl(store.out / "traces.jsonl", traces)
    write_jsonl(store.out / "negatives.jsonl", negatives)
    stats = {"teacher": teacher, **compute_stats(rows), "generation": store.totals(),
             "settings": {k: settings[k] for k in ("backend", "k", "temperature", "top_p", "max_new_tokens",
                                                   "batch_size", "data", "split", "domain", "limit")},
             "this_run": this_run}
    write_json(store.out / "stats.json", stats)
    return stats


def generate_traces(s: GenerateSettings, backend=None) -> dict:
    """Run (or resume) one trace-generation job; returns stats.json's content. `backend`: an
    already built backend (tests), else one is made from the settings when first needed."""
    if s.k < 1 or s.max_new_tokens < 1 or s.batch_size < 1 or s.shard_size < 1:
        raise ReasonkdError("--k, --max-new-tokens, --batch-size and --shard-size must be >= 1")
    if s.k > 1 and s.temperature == 0:
        log.warning("--k %d with --temperature 0 samples the same greedy trace %d times; pass e.g. "
                    "--temperature 0.7", s.k, s.k)
    teacher = s.teacher or s.api_model
    if not teacher:
        raise ReasonkdError("--teacher is required (for --backend openai it defaults to --api-model)")
    template = load_template(s.template)
    items = select_items(s.data, s.split, s.domain, s.limit)
    sampling = Sampling(s.temperature, s.top_p, s.max_new_tokens)
    settings = {**dataclasses.asdict(s), "teacher": teacher, "template": template}
    store = ShardStore(s.out)
    try:
        store.check_settings(settings, IDENTITY_KEYS)
        cache = RequestCache(s.cache_dir or Path(s.out) / "cache")
        done = store.done_ids
        pending = [it for it in items if it["id"] not in done]
        total = len(items) * s.k
        log.info("%d problems x k=%d: %d already committed, %d to do (%d requests cached)", len(items), s.k,
                 len(items) - len(pending), len(pending), len(cache))
        bar = tqdm(total=total, initial=total - len(pending) * s.k, desc="teacher", unit="trace",
                   disable=not s.progress, dynamic_ncols=True)
        run_tokens, run_seconds = 0, 0.0
        for start in range(0, len(pending), s.shard_size):
            shard = pending[start:start + s.shard_size]
            reqs = []
            for item in shard:
                system, user = render(template, item)
                reqs += [Request(request_key(teacher, system, user, sampling, i), system, user, i) for i in range(s.k)]
            todo = list({r.key: r for r in reqs if r.key not in cache}.values())  # identical requests run once
            bar.update(len(reqs) - len(todo))
            shard_tokens, t0 = 0, time.perf_counter()
            if todo:
                if backend is None:
                    backend = make_backend(s.backend, teacher=teacher, batch_size=s.batch_size, dtype=s.dtype,
                                           device=s.device, base_url=s.base_url, api_model=s.api_model,
                                           api_key_env=s.api_key_env, concurrency=s.concurrency,
                                           timeout=s.timeout, max_retries=s.max_retries)
                    t0 = time.perf_counter()
                for results in backend.generate(todo, sampling):
                    cache.put([_cache_row(r, teacher) for r in results])
                    shard_tokens += sum(r.new_tokens for r in results)
                    bar.update(len(results))
                    el = run_seconds + time.perf_counter() - t0
                    bar.set_postfix(tok_s=f"{(run_tokens + shard_tokens) / max(el, 1e-9):.1f}")
            seconds = time.perf_counter() - t0 if todo else 0.0
            run_tokens, run_seconds = run_tokens + shard_tokens, run_seconds + seconds
            # requests were built item by item, k per item
            rows = [make_row(shard[i // s.k], r, cache.get(r.key), teacher) for i, r in enumerate(reqs)]
            store.commit(rows, [it["id"] for it in shard], {"new_tokens": shard_tokens, "seconds": round(seconds, 3)})
        bar.close()
        this_run = {"new_tokens": run_tokens, "seconds": round(run_seconds, 2),
                    "tokens_per_s": round(run_tokens / run_seconds, 2) if run_seconds else None}
        return _finalize(store, teacher, settings, this_run)
    finally:
        store.close()


def _cache_row(r: Result, teacher: str) -> dict:
    return {"key": r.key, "teacher": teacher, "text": r.text, "reasoning_content": r.reasoning_content,
            "prompt_tokens": r.prompt_tokens, "new_tokens": r.new_tokens, "finished": r.finished,
            "seconds": round(r.seconds, 3)}
