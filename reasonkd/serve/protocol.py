"""The plumbing under the server's routes: per-app state, request checks, OpenAI-shaped errors, SSE.

    from reasonkd.serve.protocol import ServerState, install_error_handlers, read_body, gen_params
    st = ServerState(Engine(model, tokenizer), tokenizer, "student")
    req = await read_body(request, ChatRequest)       # API key, size limit, JSON, schema, model name
    params = gen_params(st, req, len(ids), req.max_tokens, None)

reasonkd.serve.server and reasonkd.serve.completions hold the routes; this module knows nothing of any one route.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from reasonkd.serve.engine import Engine, GenParams
from reasonkd.serve.schema import APIError, error_response

log = logging.getLogger(__name__)


@dataclass
class ServerState:
    """What one app serves and its limits; see `make_app` for the meaning of each."""

    engine: Engine
    tokenizer: object
    model_name: str
    max_tokens_cap: int = 1024
    max_concurrent: int = 4
    max_request_bytes: int = 1 << 20
    reasoning_parser: str | None = None
    api_key: str | None = None
    created: int = field(default_factory=lambda: int(time.time()))
    sem: asyncio.Semaphore = field(init=False)

    def __post_init__(self):
        self.sem = asyncio.Semaphore(self.max_concurrent)


# ------------------------------------------------------------------ errors


async def _api_error(request: Request, exc: APIError):
    return error_response(exc.status, exc.body)


async def _http_error(request: Request, exc: StarletteHTTPException):
    kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
    return error_response(
        exc.status_code,
        {"message": f"{exc.detail}: {request.method} {request.url.path}", "type": kind, "param": None, "code": None},
    )


async def _internal(request: Request, exc: Exception):  # never crash the server on one bad request
    log.exception("internal error on %s", request.url.path)
    return error_response(
        500, {"message": f"internal error: {type(exc).__name__}", "type": "server_error", "param": None, "code": None}
    )


# ----------------------------------------------------------------- helpers


def state(request: Request) -> ServerState:
    return request.app.state.server


async def read_body(request: Request, cls):
    """The request body validated as `cls`, after the API key and size checks."""
    st = state(request)
    if st.api_key is not None:
        got = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(got.encode(), st.api_key.encode()):
            raise APIError(401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key")
    too_big = f"request body larger than this server's limit of {st.max_request_bytes} bytes"
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > st.max_request_bytes:
        raise APIError(413, too_big)
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > st.max_request_bytes:
            raise APIError(413, too_big)
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise APIError(400, "request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise APIError(400, "request body must be a JSON object")
    try:
        req = cls.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        param = ".".join(str(x) for x in err["loc"])
        raise APIError(400, f"{param}: {err['msg']}", param=param) from None
    if req.model != st.model_name:
        raise APIError(
            404,
            f"model {req.model!r} does not exist; this server serves {st.model_name!r}",
            param="model",
            code="model_not_found",
        )
    return req


def gen_params(st: ServerState, req, prompt_len: int, max_tokens: int | None, logprobs: int | None) -> GenParams:
    """Generation parameters of one request, checked against the cap and the model's context."""
    max_len = st.engine.max_len
    if max_tokens is None:
        max_tokens = st.max_tokens_cap
        if max_len:
            max_tokens = max(1, min(max_tokens, max_len - prompt_len))
    elif max_tokens > st.max_tokens_cap:
        raise APIError(
            400, f"max_tokens={max_tokens} exceeds this server's cap of {st.max_tokens_cap}", param="max_tokens"
        )
    if max_len and prompt_len + max_tokens > max_len:
        raise APIError(
            400,
            f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) exceeds the model's "
            f"context of {max_len} tokens; for longer inputs start the server with --window W --sinks S",
            param="messages",
            code="context_length_exceeded",
        )
    stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
    if len(stop) > 4 or any(not s for s in stop):
        raise APIError(400, "stop: at most 4 non-empty strings", param="stop")
    return GenParams(
        max_new_tokens=max_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        n=req.n,
        stop=stop,
        seed=req.seed,
        logprobs=logprobs,
        token_ids_as_strings=bool(getattr(req, "return_tokens_as_token_ids", False)),
    )


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def sse(obj) -> str:
    return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"


def stream_error(e: Exception) -> str:
    """An in-band error event: the headers are already sent, so the status cannot change."""
    return sse(
        {
            "error": {
                "message": f"generation failed: {type(e).__name__}",
                "type": "server_error",
                "param": None,
                "code": None,
            }
        }
    )


def streaming(gen) -> StreamingResponse:
    return StreamingResponse(gen, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


async def stream_events(st: ServerState, ids: list[int], params: GenParams):
    """Run engine.stream in a thread; yield its per-step event lists here, in the event loop."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()
    cancel = threading.Event()

    def put(item):
        with contextlib.suppress(RuntimeError):  # the loop may be gone if the client left
            loop.call_soon_threadsafe(queue.put_nowait, item)

    def work():
        try:
            for events in st.engine.stream(ids, params, cancel):
                put(("events", events))
            put(("end", None))
        except Exception as e:  # noqa: BLE001 - reported to the client as an error event
            log.exception("generation failed")
            put(("error", e))

    async with st.sem:
        threading.Thread(target=work, daemon=True, name="reasonkd-gen").start()
        try:
            while True:
                kind, payload = await queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise payload
                yield payload
        finally:
            cancel.set()  # client gone or done: stop decoding


def install_error_handlers(app: FastAPI) -> None:
    """Every error as OpenAI's `{"error": {...}}` body: APIError as raised, HTTP errors as 4xx, the rest 500."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _internal)
