"""Remote teacher forcing against `reasonkd serve` vs in-process `teacher logits`, on the same traces: tokens/s.

    .venv/bin/python benchmarks/bench_remote_scoring.py --traces runs/traces [--teacher qwen2.5-coder-0.5b]
        [--limit 20] [--k 20] [--engines hf,openvino] [--concurrency 2]

The server is started (`reasonkd serve --model TEACHER --dtype float32 --engine E` on a free loopback port)
and warmed up before the clock starts; the in-process teacher is loaded before its clock starts too, so both
figures are scoring alone. Both caches are compared (max |difference| of the top-k log-probs). Writes the
"Remote teacher scoring" section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, machine, record_section  # noqa: E402


def _serve(teacher: str, engine: str):
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reasonkd",
            "serve",
            "--model",
            teacher,
            "--port",
            str(port),
            "--dtype",
            "float32",
            "--engine",
            engine,
            "--max-tokens-cap",
            "16",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(900):
        try:
            if httpx.get(url + "/health", timeout=2).status_code == 200:
                return proc, url + "/v1"
        except httpx.HTTPError:
            time.sleep(1)
    proc.kill()
    raise SystemExit(f"reasonkd serve --engine {engine} did not start")


def _max_diff(a, b) -> float:
    from reasonkd.models.logit_cache import LogitCache

    ca, cb = LogitCache(a), LogitCache(b)
    return max(float((ca.get(e).topk_logprobs.float() - cb.get(e).topk_logprobs.float()).abs().max()) for e in ca.index)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", required=True)
    ap.add_argument("--teacher", default="qwen2.5-coder-0.5b")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--engines", default="hf")
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()

    from reasonkd.models import load_model
    from reasonkd.models.logit_cache import LogitCache
    from reasonkd.models.logit_writer import write_logit_cache
    from reasonkd.teacher.remote import score_traces
    from reasonkd.teacher.traces import load_traces

    examples = load_traces(args.traces, args.limit)
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    model, tok = load_model(args.teacher, dtype="float32")
    t0 = time.perf_counter()
    write_logit_cache(model, tok, examples, tmp / "local", k=args.k, batch_size=4, dtype="float32", progress=False)
    local_s = time.perf_counter() - t0
    tokens = sum(len(LogitCache(tmp / "local").get(e["id"]).token_ids) for e in examples)
    del model
    rows = [("in-process `teacher logits --teacher` (hf, fp32, batch 4)", local_s, None)]
    for engine in args.engines.split(","):
        proc, url = _serve(args.teacher, engine)
        try:
            score_traces(
                url,
                Path(args.teacher).name,
                args.traces,
                tmp / f"warm-{engine}",
                tokenizer_name=args.teacher,
                k=args.k,
                limit=1,
                progress=False,
            )  # first request: lazy setup (the openvino scorer) off the clock
            t0 = time.perf_counter()
            score_traces(
                url,
                Path(args.teacher).name,
                args.traces,
                tmp / f"remote-{engine}",
                tokenizer_name=args.teacher,
                k=args.k,
                limit=args.limit,
                concurrency=args.concurrency,
                progress=False,
            )
            rows.append(
                (
                    f"`teacher logits --base-url` -> `reasonkd serve --engine {engine}` (fp32, "
                    f"concurrency {args.concurrency})",
                    time.perf_counter() - t0,
                    _max_diff(tmp / f"remote-{engine}", tmp / "local"),
                )
            )
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    lines = [
        f"Top-{args.k} log-probs of {args.teacher} along {len(examples)} traces ({tokens} tokens, prompt + "
        "trace), scoring only (model load and server start excluded).",
        "",
        "| scorer | seconds | tokens/s | max abs diff vs in-process |",
        "|---|---|---|---|",
    ]
    for name, sec, diff in rows:
        lines.append(f"| {name} | {sec:.1f} | {tokens / sec:.0f} | {'-' if diff is None else f'{diff:.1e}'} |")
    lines += [
        "",
        f"`python benchmarks/bench_remote_scoring.py --traces TRACES --limit {args.limit} --engines "
        f"{args.engines} --concurrency {args.concurrency}` on {machine()}.",
    ]
    body = "\n".join(lines)
    print(body)
    record_section("Remote teacher scoring", body)


if __name__ == "__main__":
    main()
