"""Soft targets from an endpoint (reasonkd.teacher.remote) against `reasonkd serve` (tiny model, fp32): remote
teacher forcing and generated log-probs equal the in-process cache; the fallbacks, faults and resume."""

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest
import torch

from reasonkd.errors import ReasonkdError
from reasonkd.models.logit_cache import LogitCache
from reasonkd.models.logit_writer import write_logit_cache
from reasonkd.teacher.backends import OpenAIBackend, Request, Sampling
from reasonkd.teacher.remote import score_traces, write_generated_cache
from reasonkd.teacher.traces import load_traces

PROMPTS = ["What is 2 + 3?", "the farmer has 3 cows and 4 hens. How many legs?", "Name a colour."]
TRACES = ["2 + 3 = 5. The answer is 5.", "Cows have 4 legs: 12. Hens have 2: 8. Total 20 legs.", "Blue is one."]


@pytest.fixture(scope="module")
def tiny(tiny_qwen_dir):
    from reasonkd.models import load_model

    return load_model(str(tiny_qwen_dir), dtype="float32")


@pytest.fixture(scope="module")
def server(tiny):
    from reasonkd.serve.server import make_app, running_server

    model, tok = tiny
    with running_server(make_app(model, tok, "tiny", max_tokens_cap=32)) as url:
        yield url


@pytest.fixture
def traces(tmp_path):
    f = tmp_path / "traces.jsonl"
    f.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "sample_idx": 0, "prompt": p, "trace": t}) + "\n"
            for i, (p, t) in enumerate(zip(PROMPTS, TRACES))
        )
    )
    return f


def _local(tiny, traces, out, k=5):
    model, tok = tiny
    return LogitCache(write_logit_cache(model, tok, load_traces(traces), out, k=k, dtype="float32", progress=False))


def _assert_same(a: LogitCache, b: LogitCache, ids, rows_may_be_fewer=False):
    for eid in ids:
        x, y = a.get(eid), b.get(eid)
        assert x.token_ids.tolist() == y.token_ids.tolist() and x.trace_start == y.trace_start
        n = len(x.topk_logprobs)
        assert n == len(y.topk_logprobs) or (rows_may_be_fewer and 0 < n <= len(y.topk_logprobs))
        assert torch.allclose(x.topk_logprobs.float(), y.topk_logprobs[:n].float(), atol=1e-4)
        assert (x.topk_ids[:, 0] == y.topk_ids[:n, 0]).all()


def test_remote_scoring_equals_in_process(tiny, server, traces, tmp_path, tiny_qwen_dir):
    remote = LogitCache(
        score_traces(
            server + "/v1", "tiny", traces, tmp_path / "remote", tokenizer_name=str(tiny_qwen_dir), k=5, progress=False
        )
    )
    _assert_same(remote, _local(tiny, traces, tmp_path / "local"), ["p0#0", "p1#0", "p2#0"])


def _proxy(server, edit):
    """An httpx transport forwarding to `server`, with `edit(request json, response json) -> (status, json)`."""
    real = httpx.Client(base_url=server)

    def handler(request):
        body = json.loads(request.content)
        r = real.post(request.url.path, json=body)
        status, out = edit(body, r.json())
        return httpx.Response(status, json=out, headers={"retry-after": "0.01"} if status == 429 else {})

    return httpx.Client(transport=httpx.MockTransport(handler))


def test_echo_fallback_and_neither(tiny, server, traces, tmp_path, tiny_qwen_dir):
    def no_prompt_logprobs(body, resp):  # an endpoint that ignores prompt_logprobs (OpenAI-style echo only)
        for c in resp.get("choices", []):
            c.pop("prompt_logprobs", None)
        return 200, resp

    kw = dict(tokenizer_name=str(tiny_qwen_dir), k=5, progress=False)
    echo = LogitCache(
        score_traces(
            "http://127.0.0.1:1/v1",
            "tiny",
            traces,
            tmp_path / "echo",
            http_client=_proxy(server, no_prompt_logprobs),
            **kw,
        )
    )
    _assert_same(echo, _local(tiny, traces, tmp_path / "local"), ["p0#0", "p1#0", "p2#0"])

    def neither(body, resp):
        return 400, {"error": {"message": "echo is not supported", "type": "invalid_request_error"}}

    with pytest.raises(ReasonkdError, match="neither vLLM's prompt_logprobs nor echo.*--logprobs K"):
        score_traces(
            "http://127.0.0.1:1/v1", "tiny", traces, tmp_path / "none", http_client=_proxy(server, neither), **kw
        )


def test_generated_logprobs_equal_in_process(tiny, server, tmp_path, tiny_qwen_dir):
    from reasonkd.teacher.remote import known_tokenizer

    b = OpenAIBackend(server + "/v1", "tiny", logprobs=5, token_ids=True)
    rows = []
    for i, p in enumerate(PROMPTS):
        res = b._one(Request(f"{i + 1:08x}", None, p), Sampling(temperature=1.0, max_new_tokens=12))
        rows.append(
            {"id": f"p{i}", "sample_idx": 0, "prompt": p, "system": None, "trace": res.text, "logprobs": res.logprobs}
        )
    # a random model splits characters into byte tokens that re-encode otherwise; real traces are text
    rows = [r for r in rows if r["trace"].strip() and "\ufffd" not in r["trace"]]
    assert rows
    f = tmp_path / "gen.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tok = known_tokenizer(str(tiny_qwen_dir))
    out, skipped = write_generated_cache(tmp_path / "gen", rows, lambda r: r["logprobs"], 5, "tiny", tok)
    assert skipped == 0
    _assert_same(
        LogitCache(out), _local(tiny, f, tmp_path / "local"), [f"{r['id']}#0" for r in rows], rows_may_be_fewer=True
    )
    strings, _ = write_generated_cache(tmp_path / "str", rows, lambda r: r["logprobs"], 5, "tiny", None)
    cache = LogitCache(strings)
    assert cache.by_strings and cache.meta["tokens"] == "strings"
    for r in rows:  # the stored token strings spell the trace; values are the endpoint's, unnormalised
        e = cache.get(f"{r['id']}#0")
        assert b"".join(cache.strings[i] for i in e.token_ids.tolist()).decode() == r["trace"]
        sent = torch.tensor([t[3][0][2] for t in r["logprobs"]][: len(e.topk_logprobs)])
        assert torch.allclose(e.topk_logprobs[:, 0], sent)
        assert (e.topk_logprobs.exp().sum(-1) <= 1 + 1e-5).all()


def test_faults_are_retried_or_named(server, traces, tmp_path, tiny_qwen_dir, tiny):
    """429 with Retry-After, a 500 and a dropped connection are retried; a missing logprobs is named."""
    calls = {"n": 0}
    real = httpx.Client(base_url=server)

    def handler(request):
        calls["n"] += 1
        if calls["n"] == 3:
            return httpx.Response(429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0.05"})
        if calls["n"] == 4:
            return httpx.Response(500, json={"error": {"message": "boom"}})
        if calls["n"] == 5:
            raise httpx.RemoteProtocolError("peer closed connection without sending complete message body")
        return httpx.Response(200, json=real.post(request.url.path, json=json.loads(request.content)).json())

    out = score_traces(
        "http://127.0.0.1:1/v1",
        "tiny",
        traces,
        tmp_path / "faults",
        tokenizer_name=str(tiny_qwen_dir),
        k=5,
        progress=False,
        http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        concurrency=1,
    )
    assert calls["n"] >= 7
    _assert_same(LogitCache(out), _local(tiny, traces, tmp_path / "local"), ["p0#0", "p1#0", "p2#0"])

    def no_logprobs(request):
        body = real.post(request.url.path, json=json.loads(request.content)).json()
        body["choices"][0]["logprobs"] = None
        return httpx.Response(200, json=body)

    b = OpenAIBackend(
        "http://127.0.0.1:1/v1",
        "tiny",
        logprobs=5,
        http_client=httpx.Client(transport=httpx.MockTransport(no_logprobs)),
    )
    with pytest.raises(ReasonkdError, match="returned no logprobs.*does not give top-k log-probs"):
        b._one(Request("00000001", None, "What is 2 + 3?"), Sampling(max_new_tokens=4))


def test_kill_9_mid_run_resumes_without_duplicates(server, tmp_path, tiny_qwen_dir, tiny):
    f = tmp_path / "many.jsonl"
    f.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "sample_idx": 0, "prompt": PROMPTS[i % 3] + f" ({i})", "trace": TRACES[i % 3]})
            + "\n"
            for i in range(40)
        )
    )
    out = tmp_path / "remote"
    code = (
        f"from reasonkd.teacher.remote import score_traces; score_traces({server + '/v1'!r}, 'tiny', "
        f"{str(f)!r}, {str(out)!r}, tokenizer_name={str(tiny_qwen_dir)!r}, k=5, progress=False, "
        "shard_size=2, concurrency=1)"
    )
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env)
    deadline = time.monotonic() + 120
    while len(list(out.glob("shard-*.safetensors"))) < 3 and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "meta.json").is_file(), "the run finished before it was killed; nothing was tested"
    cache = LogitCache(
        score_traces(
            server + "/v1", "tiny", f, out, tokenizer_name=str(tiny_qwen_dir), k=5, progress=False, shard_size=2
        )
    )
    ids = [
        eid
        for s in sorted(out.glob("shard-*.safetensors"))
        for eid in json.loads(__import__("safetensors").safe_open(str(s), "pt").metadata()["ids"])
    ]
    assert len(ids) == len(set(ids)) == 40 == len(cache)
    _assert_same(cache, _local(tiny, f, tmp_path / "local"), [f"q{i}#0" for i in range(40)])


def _logprobs_endpoint(tok, items, calls: list):
    """A mock chat endpoint answering each scripted item (_teacher_cases.ITEMS) with its text and the top-5
    log-probs of every token, named by `tok`'s ids; each request body is appended to `calls`."""

    def handler(request):
        body = json.loads(request.content)
        calls.append(body)
        q = body["messages"][-1]["content"]
        _, _, _, _, _, text, finished, rc = next(it for it in items if it[3] in q)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        content = [
            {
                "token": f"token_id:{t}",
                "logprob": -0.25,
                "bytes": None,
                "top_logprobs": [{"token": f"token_id:{t}", "logprob": -0.25, "bytes": None}]
                + [{"token": f"token_id:{(t + j) % 400}", "logprob": -2.0 - j, "bytes": None} for j in range(1, 5)],
            }
            for t in ids
        ]
        msg = {"role": "assistant", "content": text, **({"reasoning_content": rc} if rc else {})}
        return httpx.Response(
            200,
            json={
                "id": "x",
                "object": "chat.completion",
                "created": 0,
                "model": "t",
                "choices": [
                    {
                        "index": 0,
                        "message": msg,
                        "logprobs": {"content": content},
                        "finish_reason": "stop" if finished else "length",
                    }
                ],
                "usage": {"prompt_tokens": 9, "completion_tokens": len(ids), "total_tokens": 9 + len(ids)},
            },
        )

    return handler


def test_generate_with_logprobs_writes_a_cache_and_resumes(items_file, tmp_path, tiny_qwen_dir):
    """`teacher generate --backend openai --logprobs 5`: OUT/logits holds each kept trace once, with the values
    the endpoint sent, in the endpoint tokenizer's ids; a rerun asks nothing and writes the same cache."""
    import sys as _sys
    from pathlib import Path

    _sys.path.insert(0, str(Path(__file__).parent))
    from _teacher_cases import ITEMS

    from reasonkd.models import load_tokenizer
    from reasonkd.models.encoding import encode_example
    from reasonkd.teacher.generate import GenerateSettings, generate_traces

    tok = load_tokenizer(str(tiny_qwen_dir))
    calls = []
    handler = _logprobs_endpoint(tok, ITEMS, calls)

    def backend():
        return OpenAIBackend(
            "http://127.0.0.1:1/v1",
            "t",
            logprobs=5,
            token_ids=True,
            http_client=httpx.Client(transport=httpx.MockTransport(handler)),
        )

    s = GenerateSettings(
        teacher="t",
        data=str(items_file),
        out=str(tmp_path / "run"),
        backend="openai",
        api_model="t",
        logprobs=5,
        logprobs_tokenizer=str(tiny_qwen_dir),
        progress=False,
        price_in=1.0,
        price_out=2.0,
    )
    stats = generate_traces(s, backend=backend())
    assert all(c["logprobs"] and c["top_logprobs"] == 5 for c in calls)
    kept = [json.loads(line) for line in (tmp_path / "run" / "traces.jsonl").read_text().splitlines()]
    cache = LogitCache(tmp_path / "run" / "logits")
    assert stats["logits"]["traces"] == len(cache) == len(kept) - stats["logits"]["left_out"] > 0
    for r in kept:
        e = cache.get(f"{r['id']}#{r['sample_idx']}", default=None)
        if e is None:
            continue
        ids, start = encode_example(tok, r["prompt"], r["trace"], r.get("system"))
        assert e.token_ids.tolist() == ids and e.trace_start == start
        assert e.topk_ids[:, 0].tolist() == ids[start : start + len(e.topk_ids)]
        assert torch.allclose(e.topk_logprobs, torch.tensor([-0.25, -3.0, -4.0, -5.0, -6.0]).expand_as(e.topk_logprobs))
    n = len(calls)
    stats2 = generate_traces(s, backend=backend())  # resumed / rerun: all cached, nothing asked twice
    assert len(calls) == n and stats2["logits"] == stats["logits"]
    assert len(LogitCache(tmp_path / "run" / "logits")) == len(cache)


def test_cli_names_what_is_missing(traces, tmp_path, capsys):
    from reasonkd.cli import main

    cases = [
        (
            ["teacher", "logits", "--traces", str(traces), "--out", str(tmp_path / "o")],
            "--teacher MODEL .* or --base-url URL --api-model NAME",
        ),
        (
            [
                "teacher",
                "logits",
                "--base-url",
                "http://127.0.0.1:1/v1",
                "--traces",
                str(traces),
                "--out",
                str(tmp_path / "o"),
            ],
            "--base-url needs --api-model",
        ),
        (
            [
                "teacher",
                "generate",
                "--teacher",
                "t",
                "--data",
                str(traces),
                "--out",
                str(tmp_path / "g"),
                "--logprobs",
                "5",
            ],
            "--logprobs takes the top-k from an endpoint",
        ),
    ]
    import re

    for argv, msg in cases:
        assert main(argv) != 0
        assert re.search(msg, capsys.readouterr().err)


def test_a_generated_string_record_keeps_the_end_of_turn_row_after_a_whole_trace():
    """Token strings: rows run to the end of the trace; the end-of-turn token the completion stopped on (its
    entry sent as vLLM and `reasonkd serve` send it) gives one more row, the teacher's end-of-turn row, but
    only right after the whole trace."""
    from reasonkd.teacher.remote import generated_record

    def entry(text, lp):
        h = text.encode().hex()
        return [text, h, lp, [[text, h, lp], ["x", b"x".hex(), lp - 1.0]]]

    row = {"id": "p", "sample_idx": 0, "trace": "2 + 3 = 5\n#### 5"}
    pieces = ["2", " +", " 3", " =", " 5", "\n", "####", " 5"]
    tokens = [entry(t, -0.1) for t in pieces] + [entry("<|im_end|>", -0.2)]
    rec = generated_record(row, tokens, 2, None, {})
    assert [b.decode() for b in rec["token_strings"]] == pieces + ["<|im_end|>"]
    assert rec["topk_logprobs"].shape == (len(pieces) + 1, 2) and rec["topk_logprobs"][-1, 0] == pytest.approx(-0.2)
    # cut at max tokens (no end-of-turn token): the trace's rows only
    assert len(generated_record(row, tokens[:-1], 2, None, {})["token_strings"]) == len(pieces)
    # the completion went on past the stored trace (trailing newline stripped): no end-of-turn row
    more = [entry(t, -0.1) for t in pieces + ["\n"]] + [entry("<|im_end|>", -0.2)]
    assert len(generated_record(row, more, 2, None, {})["token_strings"]) == len(pieces)
