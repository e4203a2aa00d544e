"""`reasonkd serve`: an OpenAI-compatible HTTP endpoint for one model.

    reasonkd serve --model runs/student [--host 127.0.0.1] [--port 8000] [--max-tokens-cap 1024] [--max-concurrent 4]
    reasonkd serve --model runs/student --engine openvino     # OpenVINO GenAI on the CPU (fp32 weights)
    curl http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
         -d '{"model": "student", "messages": [{"role": "user", "content": "2+3?"}]}'

See reasonkd.serve.server and docs/teacher.md ("Serving").
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from reasonkd.errors import ReasonkdError

log = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args) -> int:  # imports when called: this module is imported at every `reasonkd` start
    import uvicorn

    from reasonkd.models import load_model
    from reasonkd.models.engines import make_engine, resolve_engine
    from reasonkd.models.window import check_window
    from reasonkd.serve.engine import Engine, OVServeEngine
    from reasonkd.serve.server import make_app
    from reasonkd.teacher.backends import auto_dtype

    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            raise ReasonkdError(f"--api-key-env {args.api_key_env}: that environment variable is not set")
    if not _is_loopback(args.host):
        log.warning(
            "serving on %s: reachable from other machines%s",
            args.host,
            "" if api_key else " and WITHOUT an API key (pass --api-key-env)",
        )
    for flag in ("max_tokens_cap", "max_concurrent", "max_request_bytes"):
        if getattr(args, flag) < 1:
            raise ReasonkdError(f"--{flag.replace('_', '-')} must be >= 1, got {getattr(args, flag)}")
    dtype = auto_dtype(args.device) if args.dtype == "auto" else args.dtype
    # auto: openvino on a CPU with the export extra; a sliding window is the hf engine's alone
    engine = "hf" if args.window and args.engine == "auto" else resolve_engine(args.engine, args.device, args.model)
    if args.window and engine != "hf":
        raise ReasonkdError(f"--window needs --engine hf (got {engine})")
    extra = {}
    if engine == "hf":
        model, tok = load_model(args.model, dtype=dtype, device=args.device)
        if args.window:  # sliding window over the KV cache (reasonkd.models.window)
            check_window(args.window, args.sinks, model)
            extra["engine"] = Engine(model, tok, window=args.window, sinks=args.sinks)
    elif engine == "openvino":  # converted once per weights (cached), decoded by OpenVINO GenAI
        ov = make_engine("openvino", args.model, dtype=dtype, device=args.device)
        model, tok, dtype = None, ov.tokenizer, f"openvino, {ov.precision}"
        extra["engine"] = OVServeEngine(ov)
    else:
        raise ReasonkdError(
            f"reasonkd serve --engine {engine}: serve with --engine hf or openvino "
            "(for vLLM, run vLLM's own OpenAI-compatible server)"
        )
    name = args.served_model_name or Path(str(args.model).rstrip("/")).name
    app = make_app(
        model,
        tok,
        name,
        max_tokens_cap=args.max_tokens_cap,
        max_concurrent=args.max_concurrent,
        max_request_bytes=args.max_request_bytes,
        reasoning_parser=args.reasoning_parser,
        api_key=api_key,
        **extra,
    )
    print(f"serving {name!r} ({dtype}) at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def register(sub) -> None:
    """Add `reasonkd serve` to the top-level parser."""
    p = sub.add_parser("serve", help="serve a model over an OpenAI-compatible HTTP API")
    p.add_argument("--model", required=True, help="alias, folder, .gguf file or hub id")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--served-model-name", default=None, help="the `model` clients must send (default: the name)")
    p.add_argument("--max-tokens-cap", type=int, default=1024, help="largest max_tokens a request may ask for")
    p.add_argument("--max-concurrent", type=int, default=4, help="generations at once; others wait their turn")
    p.add_argument("--max-request-bytes", type=int, default=1 << 20, help="larger request bodies get 413")
    p.add_argument(
        "--reasoning-parser",
        default=None,
        choices=["r1"],
        help="r1: return <think> contents as reasoning_content, like R1 endpoints",
    )
    p.add_argument("--api-key-env", default=None, help="require 'Authorization: Bearer $VAR' (VAR named here)")
    p.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32", "float16"])
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="sliding-window attention: keep W tokens of KV cache (hf engine; no context limit)",
    )
    p.add_argument("--sinks", type=int, default=4, help="attention-sink tokens kept at the start (with --window)")
    p.add_argument(
        "--engine",
        default="auto",
        choices=["hf", "openvino", "auto"],
        help="hf (transformers) or openvino (CPU: converted once per weights, continuous batching); "
        "auto = openvino where the export extra is installed, else hf",
    )
    p.set_defaults(func=_serve)
