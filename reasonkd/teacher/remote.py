"""Soft targets from a remote teacher: top-k log-probs from any OpenAI-compatible endpoint, as a logit cache.

    reasonkd teacher generate --backend openai --base-url URL --api-model NAME --logprobs 20 ... --out runs/t
        -> runs/t/traces.jsonl and runs/t/logits (the top-20 of every generated token, kept traces only)
    reasonkd teacher logits --base-url URL --api-model NAME --traces runs/t --out runs/logits --k 20
        -> scores existing traces by teacher forcing (vLLM's prompt_logprobs, else echo + logprobs)

Both write the format of reasonkd.models.logit_cache. Where the endpoint's tokenizer is known (a local
alias / folder / hub id: `--teacher`, else the API model name), rows hold its token ids, exactly as
`teacher logits --teacher` writes them; otherwise (generation only) they hold token strings, which the
distiller aligns to any student by characters. Log-probs are stored as received, never renormalised: the
tail mass 1 - sum(top-k) stays what the teacher said. Scoring is resumable (committed shards are skipped
after a crash or kill -9), runs `concurrency` requests at once, retries as reasonkd.teacher.api does, and
its bar counts tokens and cost.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import encode_example, tokenizer_hash
from reasonkd.models.logit_writer import encode_todo, open_cache_dir, write_scored

log = logging.getLogger(__name__)
NO_SCORING = (
    "{url} answers neither vLLM's prompt_logprobs nor echo with logprobs on /v1/completions, so it "
    "cannot score given text. Take soft targets while generating instead (`reasonkd teacher generate "
    "--backend openai --logprobs K`), or score in-process (`reasonkd teacher logits --teacher MODEL`)"
)


def known_tokenizer(name: str):
    """The endpoint's tokenizer when `name` resolves locally (alias, folder, cached hub id), else None."""
    from reasonkd.models import load_tokenizer

    if not name or name == "none":
        return None
    try:
        return load_tokenizer(name)
    except Exception as e:  # noqa: BLE001 - any failure means: not known here
        log.info("tokenizer of %r not available here (%s): log-probs kept as token strings", name, e)
        return None


def _token_id(token: str, hex_bytes: str, by_bytes: dict[bytes, int]) -> int | None:
    if token.startswith("token_id:"):
        return int(token[9:])
    return by_bytes.get(bytes.fromhex(hex_bytes))


def _bytes_to_id(tokenizer) -> dict[bytes, int]:
    """Token bytes -> id (byte-level and sentencepiece vocabularies), for endpoints that send strings only."""
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    decode = {c: b for b, c in bytes_to_unicode().items()}
    out: dict[bytes, int] = {}
    for tok, i in sorted(tokenizer.get_vocab().items(), key=lambda t: t[1]):
        raw = bytes(decode[c] for c in tok) if all(c in decode for c in tok) else tok.replace("\u2581", " ").encode()
        out.setdefault(raw, i)
    return out


def _rows(tokens: list, k: int):
    """(top-k log-probs (N, k), top-k [token, hex] per row) of received tokens; short rows padded with -inf."""
    lps = torch.full((len(tokens), k), float("-inf"))
    tops = []
    for n, t in enumerate(tokens):
        top = sorted(t[3], key=lambda x: -x[2])[:k]
        lps[n, : len(top)] = torch.tensor([x[2] for x in top])
        tops.append([(x[0], x[1]) for x in top] + [("", "")] * (k - len(top)))
    return lps, tops


def generated_record(row: dict, tokens: list, k: int, tokenizer, by_bytes) -> dict | None:
    """A cache record of one kept trace from its generated tokens' log-probs, or None when they do not spell
    the trace (e.g. an R1 trace whose reasoning came apart from the content)."""
    if not tokens:
        return None
    lps, tops = _rows(tokens, k)
    if tokenizer is None:  # token strings: the trace's own tokens, no prompt
        # tokens are kept up to where the completion and the trace part (an R1 trace re-joins reasoning and
        # answer; a plain one is the completion, outer whitespace stripped), as the ids path keeps them
        text = b"".join(bytes.fromhex(t[1]) for t in tokens).decode("utf-8", errors="replace")
        same = next(
            (i for i, (a, b) in enumerate(zip(text, row["trace"])) if a != b), min(len(text), len(row["trace"]))
        )
        limit, keep, n = len(row["trace"][:same].encode("utf-8")), [], 0
        for t in tokens:
            n += len(bytes.fromhex(t[1]))
            if n > limit:
                break
            keep.append(t)
        if not keep:
            return None
        if same == len(row["trace"]) and len(keep) == len(tokens) - 1:  # the whole trace, then the end-of-turn
            keep.append(tokens[-1])  # token it stopped on (vLLM / reasonkd serve return its entry): its row
        return {
            "id": f"{row['id']}#{row.get('sample_idx', 0)}",
            "trace_start": 0,
            "token_strings": [bytes.fromhex(t[1]) for t in keep],
            "topk_strings": [[bytes.fromhex(h) for _, h in top] for top in tops[: len(keep)]],
            "topk_logprobs": lps[: len(keep)],
        }
    ids, start = encode_example(tokenizer, row["prompt"], row["trace"], row.get("system"))
    gen = [_token_id(t[0], t[1], by_bytes) for t in tokens]
    n = 0  # rows up to the first token where the endpoint's tokens and this encoding of the trace part (none: the
    # tokens do not spell the trace)
    while n < len(gen) and start + n < len(ids) and gen[n] == ids[start + n]:
        n += 1
    if n == 0:
        return None
    top_ids = torch.zeros((n, k), dtype=torch.int32)
    for r, top in enumerate(tops[:n]):
        for c, (a, h) in enumerate(top):
            tid = _token_id(a, h, by_bytes) if h else None
            if tid is None:  # a token this tokenizer cannot name: left out of the row, never given another's mass
                lps[r, c] = float("-inf")
            else:
                top_ids[r, c] = tid
    return {
        "id": f"{row['id']}#{row.get('sample_idx', 0)}",
        "token_ids": torch.tensor(ids, dtype=torch.int32),
        "trace_start": start,
        "topk_ids": top_ids,
        "topk_logprobs": lps[:n],
    }


def write_generated_cache(
    out_dir: str | Path, kept: list[dict], logprobs_of, k: int, teacher: str, tokenizer
) -> tuple[Path, int]:
    """The logit cache of `teacher generate --logprobs`: one entry per kept trace (logprobs_of(row) -> its
    generated tokens' log-probs, from the request cache). Rebuilt whole from the request cache, so a resumed
    run writes each trace once. Returns (folder, traces left out)."""
    import shutil

    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    settings = {
        "teacher": teacher,
        "k": int(k),
        "dtype": "float32",
        "max_length": None,
        "tokenizer_hash": tokenizer_hash(tokenizer) if tokenizer is not None else "strings",
        **({} if tokenizer is not None else {"tokens": "strings"}),
    }
    open_cache_dir(out, settings)
    by_bytes = _bytes_to_id(tokenizer) if tokenizer is not None else {}
    records, skipped = [], 0
    for row in kept:
        rec = generated_record(row, logprobs_of(row) or [], k, tokenizer, by_bytes)
        if rec is None:
            skipped += 1
        else:
            records.append(rec)
    by_id = {r["id"]: r for r in records}
    write_scored(
        out,
        settings,
        [(r["id"], None, None) for r in records],
        lambda batch: [by_id[b[0]] for b in batch],
        len(tokenizer) if tokenizer is not None else 0,
        batch_size=64,
        progress=False,
    )
    if skipped:
        log.warning("logit cache: %d kept trace(s) left out: their generated tokens do not spell the trace", skipped)
    return out, skipped


class RemoteScorer:
    """Teacher forcing through an endpoint: the top-k log-probs at every position of given token ids."""

    def __init__(
        self,
        base_url: str,
        api_model: str,
        tokenizer,
        k: int,
        *,
        api_key_env: str = "OPENAI_API_KEY",
        concurrency: int = 4,
        timeout: float = 600.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        http_client=None,
        price_in: float = 0.0,
    ):
        from reasonkd.teacher.backends import OpenAIBackend

        # the backend's checks and key handling: --base-url, --api-model, the key from the environment only
        self.api = OpenAIBackend(
            base_url,
            api_model,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            max_retries=max_retries,
            backoff=backoff,
            http_client=http_client,
        )
        self.base_url, self.tok, self.k = base_url, tokenizer, k
        self.mode: str | None = None
        self.tokens, self.price_in = 0, price_in
        self._by_bytes: dict[bytes, int] | None = None

    def _call(self, ids: list[int], mode: str):
        from reasonkd.teacher.api import with_retries

        extra = {"return_tokens_as_token_ids": True}
        kw = dict(logprobs=self.k, echo=True) if mode == "echo" else {}
        if mode == "prompt_logprobs":
            extra["prompt_logprobs"] = self.k
        return with_retries(
            lambda: self.api.client.completions.create(
                model=self.api.api_model, prompt=ids, max_tokens=1, temperature=0.0, extra_body=extra, **kw
            ),
            max_retries=self.api.max_retries,
            backoff=self.api.backoff,
            key=self.api._key,
            what="teacher scoring",
        )

    def _detect(self, ids: list[int]) -> str:
        """prompt_logprobs where the endpoint answers it, else echo + logprobs; neither: one clear error."""
        answers = []
        for mode in ("prompt_logprobs", "echo"):
            try:
                rows = self._parse(self._call(ids, mode), ids, mode)
            except ReasonkdError as e:
                answers.append(f"{mode}: {e}")
                continue
            if rows is not None:
                log.info("scoring through %s", mode)
                return mode
            answers.append(f"{mode}: answered without them")
        raise ReasonkdError(NO_SCORING.format(url=self.base_url) + " (" + "; ".join(answers) + ")")

    def _parse(self, resp, ids: list[int], mode: str) -> list | None:
        """Per position 1..T-1: [(token id, log-prob) of the top k], or None when the answer lacks them."""
        choice = resp.choices[0]
        if mode == "prompt_logprobs":
            pl = (choice.model_extra or {}).get("prompt_logprobs")
            if not pl or len(pl) < len(ids):
                return None
            return [
                sorted(((int(t), float(v["logprob"])) for t, v in row.items()), key=lambda x: -x[1])[: self.k]
                for row in pl[1 : len(ids)]
            ]
        lp = choice.logprobs
        if lp is None or not lp.top_logprobs or len(lp.top_logprobs) < len(ids):
            return None
        if self._by_bytes is None:
            self._by_bytes = _bytes_to_id(self.tok)
        rows = []
        for top in lp.top_logprobs[1 : len(ids)]:
            pairs = [(_token_id(t, t.encode("utf-8").hex(), self._by_bytes), float(v)) for t, v in (top or {}).items()]
            rows.append(sorted([p for p in pairs if p[0] is not None], key=lambda x: -x[1])[: self.k])
        return rows

    def score(self, item: tuple) -> dict:
        """One cache record: (id, token ids, trace start) -> rows start-1 .. T-2 of the teacher's top k."""
        eid, ids, start = item
        rows = self._parse(self._call(ids, self.mode), ids, self.mode)
        if rows is None:
            raise ReasonkdError(
                f"{self.base_url} answered example {eid!r} without the log-probs it gave before "
                f"({self.mode}); rerun the same command to resume"
            )
        self.tokens += len(ids)
        ids_t, lps = (
            torch.zeros((len(ids) - start, self.k), dtype=torch.int32),
            torch.full((len(ids) - start, self.k), float("-inf")),
        )
        for r, row in enumerate(rows[start - 1 :]):
            ids_t[r, : len(row)] = torch.tensor([t for t, _ in row], dtype=torch.int32)
            lps[r, : len(row)] = torch.tensor([v for _, v in row])
        return {
            "id": eid,
            "token_ids": torch.tensor(ids, dtype=torch.int32),
            "trace_start": start,
            "topk_ids": ids_t,
            "topk_logprobs": lps,
        }


def score_traces(
    base_url: str,
    api_model: str,
    traces,
    out,
    *,
    tokenizer_name: str = "",
    k: int = 20,
    concurrency: int = 4,
    timeout: float = 600.0,
    max_retries: int = 5,
    api_key_env: str = "OPENAI_API_KEY",
    limit: int | None = None,
    max_length: int | None = None,
    price_in: float = 0.0,
    progress: bool = True,
    http_client=None,
    shard_size: int = 64,
    cache_dtype: str = "float32",
) -> Path:
    """`reasonkd teacher logits --base-url`: the endpoint's top-k along each trace, as `teacher logits --teacher`
    writes it (token ids of the endpoint's tokenizer: `tokenizer_name`, else `api_model`, must resolve here)."""
    from reasonkd.teacher.traces import load_traces

    if k < 1 or k > 20:
        raise ReasonkdError(f"--k must be in 1..20 for an endpoint (OpenAI's limit on top log-probs), got {k}")
    name = tokenizer_name or api_model
    tok = known_tokenizer(name)
    if tok is None:
        raise ReasonkdError(
            f"--teacher {name!r}: scoring given traces needs the endpoint's tokenizer and chat "
            "template here (an alias, folder or hub id; pass it with --teacher), to send the exact "
            "token ids it scores; without it, take soft targets while generating "
            "(`teacher generate --backend openai --logprobs K`)"
        )
    examples = load_traces(traces, limit)
    scorer = RemoteScorer(
        base_url,
        api_model,
        tok,
        k,
        api_key_env=api_key_env,
        concurrency=concurrency,
        timeout=timeout,
        max_retries=max_retries,
        http_client=http_client,
        price_in=price_in,
    )
    settings = {
        "teacher": api_model,
        "tokenizer_hash": tokenizer_hash(tok),
        "k": int(k),
        "dtype": cache_dtype,
        "max_length": max_length,
    }
    todo = encode_todo(tok, examples, open_cache_dir(out, settings), max_length)
    if todo:
        scorer.mode = scorer._detect(todo[-1][1])  # the shortest trace probes the endpoint
    pool = ThreadPoolExecutor(scorer.api.concurrency, thread_name_prefix="teacher-score")

    def counters(bar, records):
        cost = f", ${scorer.tokens * price_in / 1e6:.4f}" if price_in else ""
        bar.set_postfix_str(f"{scorer.tokens} tokens{cost}")

    try:
        return write_scored(
            out,
            settings,
            todo,
            lambda batch: list(pool.map(scorer.score, batch)),
            len(tok),
            batch_size=4 * scorer.api.concurrency,
            shard_size=shard_size,
            progress=progress,
            desc="remote teacher logits",
            on_batch=counters,
        )
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
