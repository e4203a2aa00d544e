"""`reasonkd serve` over real HTTP on loopback, driven by the official `openai` client."""

import json
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

from reasonkd.serve.server import make_app, running_server

MSG = [{"role": "user", "content": "the farmer has chickens"}]


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from reasonkd.models import load_model

    return load_model(str(tiny_llama_dir))


@pytest.fixture(scope="module")
def server(tiny):
    model, tok = tiny
    with running_server(
        make_app(model, tok, "tiny", max_tokens_cap=32, max_concurrent=2, max_request_bytes=4096)
    ) as url:
        yield url


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server + "/v1", api_key="unused", max_retries=0, timeout=60)


def test_models(client):
    assert [m.id for m in client.models.list().data] == ["tiny"]


def test_chat_greedy_matches_transformers_generate(client, tiny):
    import torch

    model, tok = tiny
    r = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=12, temperature=0)
    ids = tok.apply_chat_template(MSG, add_generation_prompt=True, return_tensors="pt")
    with torch.inference_mode():
        ref = model.generate(
            ids, max_new_tokens=12, do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id
        )
    new = ref[0, ids.shape[1] :].tolist()
    if tok.eos_token_id in new:
        new = new[: new.index(tok.eos_token_id)]
    assert r.choices[0].message.content == tok.decode(new, skip_special_tokens=True)
    assert r.choices[0].message.role == "assistant" and r.usage.prompt_tokens == ids.shape[1]
    assert r.usage.completion_tokens == len(new)
    assert r.choices[0].finish_reason == ("length" if len(new) == 12 else "stop")


def test_streaming_equals_non_streaming(client):
    full = client.chat.completions.create(model="tiny", messages=MSG, max_tokens=16, temperature=0)
    chunks = list(
        client.chat.completions.create(
            model="tiny",
            messages=MSG,
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_raw_sse_framing(server):
    with httpx.stream(
        "POST", server + "/v1/completions", json={"model": "tiny", "prompt": "the", "max_tokens": 4, "stream": True}
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [ln for ln in r.iter_lines() if ln]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert json.loads(events[0][6:])["object"] == "text_completion"


def test_logprobs(client):
    r = client.chat.completions.create(
        model="tiny", messages=MSG, max_tokens=5, temperature=0, logprobs=True, top_logprobs=3
    )
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for t in content:  # greedy: the chosen token is the most likely one
        assert len(t.top_logprobs) == 3 and t.logprob <= 0
        assert t.top_logprobs[0].logprob == pytest.approx(t.logprob)
    c = client.completions.create(model="tiny", prompt="the farmer", max_tokens=4, logprobs=2, temperature=0)
    lp = c.choices[0].logprobs
    assert len(lp.tokens) == len(lp.token_logprobs) == len(lp.top_logprobs) == 4


def test_seeded_sampling_n_and_stop(client):
    kw = dict(model="tiny", prompt="the farmer", max_tokens=10, temperature=1.0, seed=7, n=2)
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert [c.text for c in a.choices] == [c.text for c in b.choices] and len(a.choices) == 2
    greedy = client.completions.create(model="tiny", prompt="the farmer", max_tokens=10, temperature=0)
    text = greedy.choices[0].text
    stop = text[3:5]
    if stop.strip():
        cut = client.completions.create(model="tiny", prompt="the farmer", max_tokens=10, temperature=0, stop=[stop])
        assert cut.choices[0].text == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_concurrent_requests(client):
    with ThreadPoolExecutor(5) as ex:  # more than max_concurrent: the rest wait, none fails
        outs = list(
            ex.map(
                lambda _: (
                    client.chat.completions.create(model="tiny", messages=MSG, max_tokens=6, temperature=0)
                    .choices[0]
                    .message.content
                ),
                range(5),
            )
        )
    assert len(set(outs)) == 1


@pytest.mark.parametrize(
    "kwargs,status,param",
    [
        (dict(model="other"), 404, "model"),
        (dict(max_tokens=33), 400, "max_tokens"),
        (dict(temperature=3), 400, "temperature"),
        (dict(n=0), 400, "n"),
        (dict(top_logprobs=2), 400, "top_logprobs"),
        (dict(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages.0.role"),
        (dict(messages=[]), 400, "messages"),
        (dict(stop=["a", "b", "c", "d", "e"]), 400, "stop"),
    ],
)
def test_bad_requests_are_4xx_in_openai_shape(client, kwargs, status, param):
    req = {"model": "tiny", "messages": MSG, "max_tokens": 4, **kwargs}
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(**req)
    assert e.value.status_code == status
    assert e.value.body["param"] == param and e.value.body["type"] and e.value.body["message"]


def test_malformed_and_oversized_bodies(server, client):
    for body, status in (
        (b"{not json", 400),
        (b"[1, 2]", 400),
        (json.dumps({"model": "tiny"}).encode(), 400),
        (b"x" * 5000, 413),
    ):
        r = httpx.post(server + "/v1/chat/completions", content=body, headers={"content-type": "application/json"})
        assert r.status_code == status and set(r.json()["error"]) == {"message", "type", "param", "code"}
    r = httpx.get(server + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"
    assert httpx.get(server + "/v1/chat/completions").status_code == 405
    assert client.chat.completions.create(model="tiny", messages=MSG, max_tokens=2).choices  # still serving


def test_context_length_and_token_prompts(client, tiny):
    _, tok = tiny
    long = "the farmer " * 300  # > 512 tokens, < the 4096-byte body limit
    with pytest.raises(openai.BadRequestError, match="context"):
        client.completions.create(model="tiny", prompt=long, max_tokens=8)
    ids = tok("the farmer")["input_ids"]
    a = client.completions.create(model="tiny", prompt=ids, max_tokens=4, temperature=0)
    b = client.completions.create(model="tiny", prompt="the farmer", max_tokens=4, temperature=0)
    assert a.choices[0].text == b.choices[0].text
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt=[10**6], max_tokens=4)


def test_api_key_required_when_configured(tiny):
    model, tok = tiny
    with running_server(make_app(model, tok, "tiny", api_key="s3cret")) as url:
        bad = openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.chat.completions.create(model="tiny", messages=MSG, max_tokens=2)
        good = openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0)
        assert good.chat.completions.create(model="tiny", messages=MSG, max_tokens=2).choices


def test_r1_reasoning_parser(tiny, monkeypatch):
    """--reasoning-parser r1: <think> contents go to reasoning_content, streamed or not."""
    from reasonkd.serve import server as server_mod
    from reasonkd.serve.engine import Engine, TokenEvent

    pieces = ["<think>", "2 + 2", " = 4", "</th", "ink>\n\n", "#### ", "4"]

    class ScriptedEngine(Engine):  # a real engine whose decoding is replaced by an R1-style script
        def stream(self, prompt_ids, p, cancel=None):
            for i, piece in enumerate(pieces):
                yield [TokenEvent(0, piece, None, "stop" if i == len(pieces) - 1 else None)]

    monkeypatch.setattr(server_mod, "Engine", ScriptedEngine)
    model, tok = tiny
    with running_server(make_app(model, tok, "r1", reasoning_parser="r1")) as url:
        c = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)
        msg = c.chat.completions.create(model="r1", messages=MSG, max_tokens=8).choices[0].message
        assert (msg.content, msg.model_extra["reasoning_content"]) == ("#### 4", "2 + 2 = 4")
        chunks = list(c.chat.completions.create(model="r1", messages=MSG, max_tokens=8, stream=True))
        deltas = [ch.choices[0].delta for ch in chunks if ch.choices]
        assert "".join(d.content or "" for d in deltas) == "#### 4"
        assert "".join((d.model_extra or {}).get("reasoning_content") or "" for d in deltas) == "2 + 2 = 4"


def test_reasonkd_serve_command(tiny_llama_dir):
    """The CLI end to end: a subprocess on a free loopback port, then SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "reasonkd.cli",
            "serve",
            "--model",
            str(tiny_llama_dir),
            "--port",
            str(port),
            "--served-model-name",
            "t",
            "--max-tokens-cap",
            "8",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read().decode()[-2000:]
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.json()["data"][0]["id"] == "t"
        c = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0)
        assert c.chat.completions.create(model="t", messages=MSG, max_tokens=8).usage.completion_tokens <= 8
        with pytest.raises(openai.BadRequestError, match="cap of 8"):
            c.chat.completions.create(model="t", messages=MSG, max_tokens=9)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        proc.stdout.close()
