"""OpenAI-compatible HTTP server for any causal LM (a distilled student, or a teacher endpoint).

    reasonkd serve --model runs/student --port 8000

    from reasonkd.serve.server import make_app, running_server
    app = make_app(model, tokenizer, "student")
    with running_server(app) as base_url:          # uvicorn in a thread on a free loopback port
        openai.OpenAI(base_url=base_url + "/v1", api_key="x").chat.completions.create(...)

Routes: POST /v1/chat/completions, POST /v1/completions (streaming as SSE
`data: {...}` chunks ending in `data: [DONE]`; `logprobs` / `top_logprobs`),
GET /v1/models, GET /health. Every error is a JSON body in OpenAI's shape
`{"error": {"message", "type", "param", "code"}}` with a 4xx status for bad
requests (OpenAI uses 400 where FastAPI would say 422). Limits: request body
size (413), `max_tokens` cap (400), at most `max_concurrent` generations at
once (the rest wait their turn). With `reasoning_parser="r1"` a `<think>`
block goes to `reasoning_content`, the rest to `content`, as R1 endpoints do.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import threading
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from reasonkd.serve.engine import Engine, GenParams
from reasonkd.serve.schema import APIError, ChatRequest, CompletionRequest, error_response
from reasonkd.teacher.parse import THINK_OPEN, ThinkSplitter, parse_output

log = logging.getLogger(__name__)


def make_app(model, tokenizer, model_name: str, *, max_tokens_cap: int = 1024, max_concurrent: int = 4,
             max_request_bytes: int = 1 << 20, reasoning_parser: str | None = None,
             api_key: str | None = None) -> FastAPI:
    """The FastAPI app serving `model` under the name `model_name`. See the module doc."""
    if reasoning_parser not in (None, "r1"):
        raise ValueError(f"reasoning_parser must be None or 'r1', got {reasoning_parser!r}")
    engine = Engine(model, tokenizer)
    sem = asyncio.Semaphore(max_concurrent)
    app = FastAPI(title="reasonkd", docs_url=None, redoc_url=None, openapi_url=None)
    created = int(time.time())

    @app.exception_handler(APIError)
    async def _api_error(request, exc: APIError):
        return error_response(exc.status, exc.body)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request, exc: StarletteHTTPException):
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return error_response(exc.status_code, {"message": f"{exc.detail}: {request.method} {request.url.path}",
                                                 "type": kind, "param": None, "code": None})

    @app.exception_handler(Exception)
    async def _internal(request, exc: Exception):  # never crash the server on one bad request
        log.exception("internal error on %s", request.url.path)
        return error_response(500, {"message": f"internal error: {type(exc).__name__}", "type": "server_error",
                                     "param": None, "code": None})

    async def _body(request: Request, cls):
        if api_key is not None:
            got = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(got.encode(), api_key.encode()):
                raise APIError(401, "invalid or missing API key (Authorization: Bearer ...)", code="invalid_api_key")
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > max_request_bytes:
            raise APIError(413, f"request body larger than this server's limit of {max_request_bytes} bytes")
        raw = bytearray()
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > max_request_bytes:
                raise APIError(413, f"request body larger than this server's limit of {max_request_bytes} bytes")
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
        if req.model != model_name:
            raise APIError(404, f"model {req.model!r} does not exist; this server serves {model_name!r}",
                           param="model", code="model_not_found")
        return req

    def _params(req, prompt_len: int, max_tokens: int | None, logprobs: int | None) -> GenParams:
        if max_tokens is None:
            max_tokens = max_tokens_cap
            if engine.max_len:
                max_tokens = max(1, min(max_tokens, engine.max_len - prompt_len))
        elif max_tokens > max_tokens_cap:
            raise APIError(400, f"max_tokens={max_tokens} exceeds this server's cap of {max_tokens_cap}",
                           param="max_tokens")
        if engine.max_len and prompt_len + max_tokens > engine.max_len:
            raise APIError(400, f"prompt ({prompt_len} tokens) + max_tokens ({max_tokens}) exceeds the model's "
                           f"context of {engine.max_len} tokens", param="messages", code="context_length_exceeded")
        stop = [req.stop] if isinstance(req.stop, str) else list(req.stop or [])
        if len(stop) > 4 or any(not s for s in stop):
            raise APIError(400, "stop: at most 4 non-empty strings", param="stop")
        return GenParams(max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p, n=req.n, stop=stop,
                         seed=req.seed, logprobs=logprobs)

    def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
        return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens}

    def _sse(obj) -> str:
        return f"data: {json.dumps(obj, ensure_ascii=False)}\n\n"

    async def _stream_events(ids: list[int], params: GenParams):
        """Run engine.stream in a thread; yield its per-step event lists here, in the event loop."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def put(item):
            with contextlib.suppress(RuntimeError):  # the loop may be gone if the client left
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def work():
            try:
                for events in engine.stream(ids, params, cancel):
                    put(("events", events))
                put(("end", None))
            except Exception as e:  # noqa: BLE001 - reported to the client as an error event
                log.exception("generation failed")
                put(("error", e))

        async with sem:
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

    # ---------------------------------------------------------------- routes

    @app.get("/health")
    async def health():
        return {"status": "ok", "model": model_name}

    @app.get("/v1/models")
    async def models():
        return {"object": "list", "data": [_model_card()]}

    @app.get("/v1/models/{name:path}")
    async def model_info(name: str):
        if name != model_name:
            raise APIError(404, f"model {name!r} does not exist", param="model", code="model_not_found")
        return _model_card()

    def _model_card() -> dict:
        return {"id": model_name, "object": "model", "created": created, "owned_by": "reasonkd",
                "max_model_len": engine.max_len}

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        req = await _body(request, ChatRequest)
        msgs = [{"role": "system" if m.role == "developer" else m.role,
                 "content": m.content if isinstance(m.content, str) else
                 "".join(p.text for p in (m.content or []))} for m in req.messages]
        try:
            ids = engine.chat_ids(msgs)
        except Exception as e:  # noqa: BLE001 - templates raise on e.g. role order
            raise APIError(400, f"messages: the chat template rejected them ({e})", param="messages") from None
        if req.top_logprobs is not None and not req.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", param="top_logprobs")
        params = _params(req, len(ids), req.max_completion_tokens or req.max_tokens,
                         (req.top_logprobs or 0) if req.logprobs else None)
        rid, now = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
        starts_in_think = reasoning_parser == "r1" and tokenizer.decode(ids[-4:]).rstrip().endswith(THINK_OPEN)

        if not req.stream:
            async with sem:
                results = await run_in_threadpool(engine.complete, ids, params)
            choices = []
            for i, r in enumerate(results):
                msg = {"role": "assistant", "content": r["text"]}
                if reasoning_parser == "r1":
                    parsed = parse_output(("<think>" if starts_in_think else "") + r["text"])
                    if parsed.r1:
                        msg = {"role": "assistant", "content": parsed.final, "reasoning_content": parsed.reasoning}
                choices.append({"index": i, "message": msg, "finish_reason": r["finish_reason"],
                                "logprobs": {"content": r["tokens"]} if params.logprobs is not None else None})
            return {"id": rid, "object": "chat.completion", "created": now, "model": model_name,
                    "choices": choices, "usage": _usage(len(ids), sum(r["completion_tokens"] for r in results))}

        include_usage = bool((req.stream_options or {}).get("include_usage"))

        async def gen():
            def chunk(choices, usage=None):
                body = {"id": rid, "object": "chat.completion.chunk", "created": now, "model": model_name,
                        "choices": choices}
                if include_usage:
                    body["usage"] = usage
                return _sse(body)

            splitters = [ThinkSplitter(starts_in_think) for _ in range(params.n)]
            n_tokens = 0
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "logprobs": None,
                          "finish_reason": None} for i in range(params.n)])
            try:
                async for events in _stream_events(ids, params):
                    out = []
                    for ev in events:
                        n_tokens += ev.counted
                        delta = {"content": ev.text}
                        if reasoning_parser == "r1":
                            think, text = splitters[ev.index].feed(ev.text, final=bool(ev.finish_reason))
                            delta = {"content": text, **({"reasoning_content": think} if think else {})}
                        if not any(delta.values()) and ev.token is None and not ev.finish_reason:
                            continue
                        out.append({"index": ev.index, "delta": delta, "finish_reason": ev.finish_reason,
                                    "logprobs": {"content": [ev.token]} if ev.token is not None else None})
                    if out:
                        yield chunk(out)
            except Exception as e:  # noqa: BLE001 - headers are sent: report in-band
                yield _sse({"error": {"message": f"generation failed: {type(e).__name__}", "type": "server_error",
                                      "param": None, "code": None}})
            if include_usage:
                yield chunk([], _usage(len(ids), n_tokens))
            yield "data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/completions")
    async def completions(request: Request):
        req = await _body(request, CompletionRequest)
        p = req.prompt
        if isinstance(p, str):
            prompts = [p]
        elif p and all(isinstance(x, int) for x in p):
            prompts = [p]
        else:
            prompts = list(p)
        if not prompts:
            raise APIError(400, "prompt: must not be empty", param="prompt")
        vocab = len(tokenizer)
        id_lists = []
        for x in prompts:
            if isinstance(x, str):
                id_lists.append(engine.text_ids(x))
            elif all(0 <= t < vocab for t in x):
                id_lists.append(list(x))
            else:
                raise APIError(400, f"prompt: token ids must be in [0, {vocab})", param="prompt")
        if req.echo and req.logprobs is not None:
            raise APIError(400, "echo with logprobs is not supported", param="echo")
        params = [_params(req, len(ids), req.max_tokens, req.logprobs) for ids in id_lists]
        texts = [x if isinstance(x, str) else tokenizer.decode(x) for x in prompts]
        rid, now = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def legacy_logprobs(tokens: list[dict], offset: int) -> dict:
            offs, pos = [], offset
            for t in tokens:
                offs.append(pos)
                pos += len(t["token"])
            return {"tokens": [t["token"] for t in tokens], "token_logprobs": [t["logprob"] for t in tokens],
                    "top_logprobs": [{e["token"]: e["logprob"] for e in t["top_logprobs"]} for t in tokens],
                    "text_offset": offs}

        if not req.stream:
            choices, n_completion = [], 0
            for j, (ids, gp) in enumerate(zip(id_lists, params)):
                async with sem:
                    results = await run_in_threadpool(engine.complete, ids, gp)
                for i, r in enumerate(results):
                    n_completion += r["completion_tokens"]
                    choices.append({"index": j * gp.n + i, "text": (texts[j] if req.echo else "") + r["text"],
                                    "finish_reason": r["finish_reason"],
                                    "logprobs": legacy_logprobs(r["tokens"], 0) if gp.logprobs is not None else None})
            return {"id": rid, "object": "text_completion", "created": now, "model": model_name, "choices": choices,
                    "usage": _usage(sum(len(x) for x in id_lists) * req.n, n_completion)}

        async def gen():
            n_tokens = 0
            try:
                for j, (ids, gp) in enumerate(zip(id_lists, params)):
                    offsets = [0] * gp.n
                    if req.echo:
                        yield _sse({"id": rid, "object": "text_completion", "created": now, "model": model_name,
                                    "choices": [{"index": j * gp.n + i, "text": texts[j], "logprobs": None,
                                                 "finish_reason": None} for i in range(gp.n)]})
                    async for events in _stream_events(ids, gp):
                        out = []
                        for ev in events:
                            n_tokens += ev.counted
                            lp = None
                            if ev.token is not None:
                                lp = legacy_logprobs([ev.token], offsets[ev.index])
                                offsets[ev.index] += len(ev.token["token"])
                            if ev.text or lp or ev.finish_reason:
                                out.append({"index": j * gp.n + ev.index, "text": ev.text, "logprobs": lp,
                                            "finish_reason": ev.finish_reason})
                        if out:
                            yield _sse({"id": rid, "object": "text_completion", "created": now,
                                        "model": model_name, "choices": out})
            except Exception as e:  # noqa: BLE001 - headers are sent: report in-band
                yield _sse({"error": {"message": f"generation failed: {type(e).__name__}", "type": "server_error",
                                      "param": None, "code": None}})
            if (req.stream_options or {}).get("include_usage"):
                yield _sse({"id": rid, "object": "text_completion", "created": now, "model": model_name,
                            "choices": [], "usage": _usage(sum(len(x) for x in id_lists) * req.n, n_tokens)})
            yield "data: [DONE]\n\n"

        return StreamingResponse(gen(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    return app


@contextlib.contextmanager
def running_server(app, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
    """Serve `app` with uvicorn in a background thread; yields the base URL (http://host:port)."""
    import uvicorn

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
