"""OpenAI-compatible HTTP server for any causal LM (a distilled student, or a teacher endpoint).

    reasonkd serve --model runs/student --port 8000

    from reasonkd.serve.server import make_app, running_server
    app = make_app(model, tokenizer, "student")
    with running_server(app) as base_url:          # uvicorn in a thread on a free loopback port
        openai.OpenAI(base_url=base_url + "/v1", api_key="x").chat.completions.create(...)

Routes: POST /v1/chat/completions, POST /v1/completions (streaming as SSE
`data: {...}` chunks ending in `data: [DONE]`; `logprobs` / `top_logprobs`; on
/v1/completions also `echo` + `logprobs` and vLLM's `prompt_logprobs` / `return_tokens_as_token_ids`,
by one teacher-forced pass, `Engine.score`),
GET /v1/models, GET /health. Every error is a JSON body in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` with a 4xx status for bad
requests (OpenAI uses 400 where FastAPI would say 422). Limits: request body
size (413), `max_tokens` cap (400), at most `max_concurrent` generations at
once (the rest wait their turn). With `reasoning_parser="r1"` a `<think>`
block goes to `reasoning_content`, the rest to `content`, as R1 endpoints do.
A chat message may hold `image_url` parts (inline data: URLs; remote URLs are
refused, nothing is fetched): each is answered from its OCR text (docs/ocr.md).

The routes are module-level handlers on `router` (chat, models, health) and on
reasonkd.serve.completions' `router` (/v1/completions); everything one app serves
(engine, limits, names) is a `ServerState` (reasonkd.serve.protocol) on
`app.state.server`, which `make_app` builds and each handler reads back.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid

import uvicorn
from fastapi import APIRouter, FastAPI, Request
from starlette.concurrency import run_in_threadpool

from reasonkd.errors import ReasonkdError
from reasonkd.ocr.inputs import content_text
from reasonkd.serve import completions
from reasonkd.serve.engine import Engine, GenParams
from reasonkd.serve.protocol import (
    ServerState,
    gen_params,
    install_error_handlers,
    read_body,
    sse,
    state,
    stream_error,
    stream_events,
    streaming,
    usage,
)
from reasonkd.serve.schema import APIError, ChatRequest
from reasonkd.teacher.parse import THINK_OPEN, ThinkSplitter, parse_output

router = APIRouter()


def make_app(
    model,
    tokenizer,
    model_name: str,
    *,
    max_tokens_cap: int = 1024,
    max_concurrent: int = 4,
    max_request_bytes: int = 1 << 20,
    reasoning_parser: str | None = None,
    api_key: str | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """The FastAPI app serving `model` under the name `model_name`. See the module doc.
    `engine`: an already built decoding engine (same interface as reasonkd.serve.engine.Engine) to use
    instead of one over `model`."""
    if reasoning_parser not in (None, "r1"):
        raise ValueError(f"reasoning_parser must be None or 'r1', got {reasoning_parser!r}")
    app = FastAPI(title="reasonkd", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.server = ServerState(
        engine or Engine(model, tokenizer),
        tokenizer,
        model_name,
        max_tokens_cap,
        max_concurrent,
        max_request_bytes,
        reasoning_parser,
        api_key,
    )
    install_error_handlers(app)
    app.include_router(router)
    app.include_router(completions.router)
    return app


# ------------------------------------------------------------ small routes


@router.get("/health")
async def health(request: Request):
    return {"status": "ok", "model": state(request).model_name}


def _model_card(st: ServerState) -> dict:
    return {
        "id": st.model_name,
        "object": "model",
        "created": st.created,
        "owned_by": "reasonkd",
        "max_model_len": st.engine.max_len,
    }


@router.get("/v1/models")
async def models(request: Request):
    return {"object": "list", "data": [_model_card(state(request))]}


@router.get("/v1/models/{name:path}")
async def model_info(name: str, request: Request):
    st = state(request)
    if name != st.model_name:
        raise APIError(404, f"model {name!r} does not exist", param="model", code="model_not_found")
    return _model_card(st)


# ---------------------------------------------------------- chat completions


def _chat_messages(req: ChatRequest) -> list[dict]:
    """OpenAI messages as chat-template dicts: `developer` is `system`, text parts are joined,
    an image part becomes the OCR text of the image (reasonkd.ocr.inputs.content_text)."""
    out = []
    for i, m in enumerate(req.messages):
        content = (
            m.content if isinstance(m.content, str) else "".join(p.text for p in (m.content or []) if p.type == "text")
        )
        if not isinstance(m.content, str) and any(p.type == "image_url" for p in m.content or []):
            try:
                content = content_text(m.content, where=f"messages[{i}].content")
            except ReasonkdError as e:
                raise APIError(400, str(e), param=f"messages[{i}].content") from None
        out.append({"role": "system" if m.role == "developer" else m.role, "content": content})
    return out


def _chat_message(st: ServerState, text: str, starts_in_think: bool) -> dict:
    """One non-streamed assistant message; with the r1 parser, the <think> block goes to reasoning_content."""
    if st.reasoning_parser == "r1":
        parsed = parse_output(("<think>" if starts_in_think else "") + text)
        if parsed.r1:
            return {"role": "assistant", "content": parsed.final, "reasoning_content": parsed.reasoning}
    return {"role": "assistant", "content": text}


@router.post("/v1/chat/completions")
async def chat(request: Request):
    st = state(request)
    req = await read_body(request, ChatRequest)
    messages = await run_in_threadpool(_chat_messages, req)  # image parts are OCR'd: off the event loop
    try:
        ids = st.engine.chat_ids(messages)
    except Exception as e:  # noqa: BLE001 - templates raise on e.g. role order
        raise APIError(400, f"messages: the chat template rejected them ({e})", param="messages") from None
    if req.top_logprobs is not None and not req.logprobs:
        raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
    params = gen_params(
        st,
        req,
        len(ids),
        req.max_completion_tokens or req.max_tokens,
        (req.top_logprobs or 0) if req.logprobs else None,
    )
    rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    starts_in_think = st.reasoning_parser == "r1" and st.tokenizer.decode(ids[-4:]).rstrip().endswith(THINK_OPEN)
    if req.stream:
        include_usage = bool((req.stream_options or {}).get("include_usage"))
        return streaming(_chat_stream(st, ids, params, rid, now, starts_in_think, include_usage))
    async with st.sem:
        results = await run_in_threadpool(st.engine.complete, ids, params)
    choices = [
        {
            "index": i,
            "message": _chat_message(st, r["text"], starts_in_think),
            "finish_reason": r["finish_reason"],
            "logprobs": {"content": r["tokens"]} if params.logprobs is not None else None,
        }
        for i, r in enumerate(results)
    ]
    return {
        "id": rid,
        "object": "chat.completion",
        "created": now,
        "model": st.model_name,
        "choices": choices,
        "usage": usage(len(ids), sum(r["completion_tokens"] for r in results)),
    }


async def _chat_stream(
    st: ServerState, ids: list[int], params: GenParams, rid: str, now: int, starts_in_think: bool, include_usage: bool
):
    """The SSE chunks of a streamed chat completion, ending in `data: [DONE]`."""

    def chunk(choices, usage=None):
        body = {
            "id": rid,
            "object": "chat.completion.chunk",
            "created": now,
            "model": st.model_name,
            "choices": choices,
        }
        if include_usage:
            body["usage"] = usage
        return sse(body)

    splitters = [ThinkSplitter(starts_in_think) for _ in range(params.n)]
    n_tokens = 0
    yield chunk(
        [
            {"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}
            for i in range(params.n)
        ]
    )
    try:
        async for events in stream_events(st, ids, params):
            out = []
            for ev in events:
                n_tokens += ev.counted
                delta = {"content": ev.text}
                if st.reasoning_parser == "r1":
                    think, text = splitters[ev.index].feed(ev.text, final=bool(ev.finish_reason))
                    delta = {"content": text, **({"reasoning_content": think} if think else {})}
                if not any(delta.values()) and ev.token is None and not ev.finish_reason:
                    continue
                out.append(
                    {
                        "index": ev.index,
                        "delta": delta,
                        "finish_reason": ev.finish_reason,
                        "logprobs": {"content": [ev.token]} if ev.token is not None else None,
                    }
                )
            if out:
                yield chunk(out)
    except Exception as e:  # noqa: BLE001 - headers are sent: report in-band
        yield stream_error(e)
    if include_usage:
        yield chunk([], usage(len(ids), n_tokens))
    yield "data: [DONE]\n\n"


@contextlib.contextmanager
def running_server(app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
    """Serve `app` with uvicorn in a background thread; yields the base URL (http://host:port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="reasonkd-serve")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
