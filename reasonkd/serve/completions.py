"""The (legacy) /v1/completions route of the OpenAI-compatible server: plain-text prompts (a string, token ids,
or a list of either), `echo` with `logprobs`, vLLM's `prompt_logprobs` / `return_tokens_as_token_ids` (one
teacher-forced pass, `Engine.score`), streaming as SSE.

The route is a module-level handler on this module's `router`, which reasonkd.serve.server.make_app
includes next to the chat routes; call it through the app:

    app = make_app(model, tokenizer, "student")
    with running_server(app) as base_url:
        openai.OpenAI(base_url=base_url + "/v1", api_key="x").completions.create(model="student", prompt="1+1=")
"""

from __future__ import annotations

import time
import uuid

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from reasonkd.serve.engine import GenParams
from reasonkd.serve.protocol import (
    ServerState,
    gen_params,
    read_body,
    sse,
    state,
    stream_error,
    stream_events,
    streaming,
    usage,
)
from reasonkd.serve.schema import APIError, CompletionRequest

router = APIRouter()


def _prompt_ids(st: ServerState, req: CompletionRequest) -> tuple[list, list[list[int]]]:
    """The request's prompts (a string, token ids, or a list of either) and their token ids."""
    p = req.prompt
    prompts = [p] if isinstance(p, str) or (p and all(isinstance(x, int) for x in p)) else list(p)
    if not prompts:
        raise APIError(400, "prompt: must not be empty", param="prompt")
    vocab = len(st.tokenizer)
    id_lists = []
    for x in prompts:
        if isinstance(x, str):
            id_lists.append(st.engine.text_ids(x))
        elif all(0 <= t < vocab for t in x):
            id_lists.append(list(x))
        else:
            raise APIError(400, f"prompt: token ids must be in [0, {vocab})", param="prompt")
    return prompts, id_lists


def _legacy_logprobs(tokens: list[dict], offset: int) -> dict:
    """/v1/completions' log-prob shape: parallel lists, with each token's character offset. As vLLM, each
    top_logprobs dict holds the top k and the token itself; the first echoed prompt token has None."""
    offs, pos = [], offset
    for t in tokens:
        offs.append(pos)
        pos += len(t["token"])
    tops = [
        None
        if t["top_logprobs"] is None
        else {**{e["token"]: e["logprob"] for e in t["top_logprobs"]}, t["token"]: t["logprob"]}
        for t in tokens
    ]
    return {
        "tokens": [t["token"] for t in tokens],
        "token_logprobs": [t["logprob"] for t in tokens],
        "top_logprobs": tops,
        "text_offset": offs,
    }


def _prompt_entries(st: ServerState, ids: list[int], rows: list, as_ids: bool) -> list[dict]:
    """The echoed prompt tokens as log-prob entries (Engine.score rows; the first token has none)."""
    out = [{**st.engine.token_entry(ids[0], None, as_ids), "top_logprobs": None}]
    return out + [st.engine.row_info(t, row, as_ids) for t, row in zip(ids[1:], rows[1:])]


def _vllm_prompt_logprobs(st: ServerState, ids: list[int], rows: list, k: int, as_ids: bool) -> list:
    """vLLM's `prompt_logprobs`: None, then per prompt token {token id: {logprob, rank, decoded_token}} holding
    the top k and the prompt token itself (with its rank)."""

    def entry(tid, lp, rank):
        return {
            "logprob": lp,
            "rank": rank,
            "decoded_token": f"token_id:{tid}" if as_ids else st.tokenizer.decode([tid]),
        }

    out: list = [None]
    for tid, (lp, rank, top_ids, top_lps) in zip(ids[1:], rows[1:]):
        d = {str(t): entry(t, v, r + 1) for r, (t, v) in enumerate(zip(top_ids[:k], top_lps[:k]))}
        d.setdefault(str(tid), entry(tid, lp, rank))
        out.append(d)
    return out


@router.post("/v1/completions")
async def completions(request: Request):
    st = state(request)
    req = await read_body(request, CompletionRequest)
    prompts, id_lists = _prompt_ids(st, req)
    echo_lp = req.echo and req.logprobs is not None
    if req.stream and (echo_lp or req.prompt_logprobs is not None):
        raise APIError(
            400,
            "prompt log-probs (echo with logprobs, prompt_logprobs) are answered without streaming: drop stream",
            param="stream",
        )
    params = [gen_params(st, req, len(ids), req.max_tokens, req.logprobs) for ids in id_lists]
    texts = [x if isinstance(x, str) else st.tokenizer.decode(x) for x in prompts]
    rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    if req.stream:
        return streaming(_completion_stream(st, req, id_lists, params, texts, rid, now))
    choices, n_completion = [], 0
    k_prompt = max(req.prompt_logprobs or 0, req.logprobs or 0)
    for j, (ids, gp) in enumerate(zip(id_lists, params)):
        rows = None
        async with st.sem:
            if echo_lp or req.prompt_logprobs is not None:  # teacher forcing over the prompt: one pass
                rows = await run_in_threadpool(st.engine.score, ids, k_prompt)
            results = await run_in_threadpool(st.engine.complete, ids, gp)
        for i, r in enumerate(results):
            n_completion += r["completion_tokens"]
            choice = {
                "index": j * gp.n + i,
                "text": (texts[j] if req.echo else "") + r["text"],
                "finish_reason": r["finish_reason"],
                "logprobs": None,
            }
            if gp.logprobs is not None:
                echoed = _prompt_entries(st, ids, rows, gp.token_ids_as_strings) if echo_lp else []
                choice["logprobs"] = _legacy_logprobs(echoed + r["tokens"], 0)
            if req.prompt_logprobs is not None:
                choice["prompt_logprobs"] = _vllm_prompt_logprobs(
                    st, ids, rows, req.prompt_logprobs, gp.token_ids_as_strings
                )
            choices.append(choice)
    return {
        "id": rid,
        "object": "text_completion",
        "created": now,
        "model": st.model_name,
        "choices": choices,
        "usage": usage(sum(len(x) for x in id_lists) * req.n, n_completion),
    }


async def _completion_stream(
    st: ServerState,
    req: CompletionRequest,
    id_lists: list[list[int]],
    params: list[GenParams],
    texts: list[str],
    rid: str,
    now: int,
):
    """The SSE chunks of a streamed completion (prompts one after another), ending in `data: [DONE]`."""

    def chunk(choices, **extra):
        return sse(
            {
                "id": rid,
                "object": "text_completion",
                "created": now,
                "model": st.model_name,
                "choices": choices,
                **extra,
            }
        )

    n_tokens = 0
    try:
        for j, (ids, gp) in enumerate(zip(id_lists, params)):
            offsets = [0] * gp.n
            if req.echo:
                yield chunk(
                    [
                        {"index": j * gp.n + i, "text": texts[j], "logprobs": None, "finish_reason": None}
                        for i in range(gp.n)
                    ]
                )
            async for events in stream_events(st, ids, gp):
                out = []
                for ev in events:
                    n_tokens += ev.counted
                    lp = None
                    if ev.token is not None:
                        lp = _legacy_logprobs([ev.token], offsets[ev.index])
                        offsets[ev.index] += len(ev.token["token"])
                    if ev.text or lp or ev.finish_reason:
                        out.append(
                            {
                                "index": j * gp.n + ev.index,
                                "text": ev.text,
                                "logprobs": lp,
                                "finish_reason": ev.finish_reason,
                            }
                        )
                if out:
                    yield chunk(out)
    except Exception as e:  # noqa: BLE001 - headers are sent: report in-band
        yield stream_error(e)
    if (req.stream_options or {}).get("include_usage"):
        yield chunk([], usage=usage(sum(len(x) for x in id_lists) * req.n, n_tokens))
    yield "data: [DONE]\n\n"
