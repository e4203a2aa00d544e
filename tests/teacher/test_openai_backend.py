"""The `openai` backend: over real HTTP against `reasonkd serve` (tiny model), and against canned
responses for R1 fields, retries and key handling."""

import json

import httpx
import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.backends import OpenAIBackend, Request, Sampling
from reasonkd.teacher.generate import GenerateSettings, generate_traces
from reasonkd.utils.io import read_jsonl


@pytest.fixture(scope="module")
def tiny_server(tiny_llama_dir):
    from reasonkd.models import load_model
    from reasonkd.serve.server import make_app, running_server

    model, tok = load_model(str(tiny_llama_dir))
    with running_server(make_app(model, tok, "tiny-teacher", max_tokens_cap=64)) as url:
        yield url


def test_generate_over_http_matches_the_local_backend(items_file, tmp_path, tiny_server, tiny_llama_dir, monkeypatch):
    monkeypatch.setenv("MY_TEACHER_KEY", "sk-secret-value-123")
    api = tmp_path / "api"
    stats = generate_traces(
        GenerateSettings(
            teacher="",
            data=str(items_file),
            out=str(api),
            backend="openai",
            base_url=tiny_server + "/v1",
            api_model="tiny-teacher",
            api_key_env="MY_TEACHER_KEY",
            concurrency=3,
            max_new_tokens=8,
            progress=False,
        )
    )
    rows = read_jsonl(api / "negatives.jsonl") + read_jsonl(api / "traces.jsonl")
    assert len(rows) == 7 and all(r["teacher"] == "tiny-teacher" for r in rows)
    assert stats["generation"]["new_tokens"] > 0 and all(0 < r["tokens"] <= 8 for r in rows)
    for f in api.rglob("*"):  # the key never reaches the disk
        if f.is_file():
            assert "sk-secret-value-123" not in f.read_text(errors="ignore")
    # greedy over HTTP == greedy in-process (same model, fp32, one sequence per batch)
    local = tmp_path / "local"
    generate_traces(
        GenerateSettings(
            teacher=str(tiny_llama_dir),
            data=str(items_file),
            out=str(local),
            max_new_tokens=8,
            batch_size=1,
            dtype="float32",
            progress=False,
        )
    )

    def by_key(d):
        return {r["id"]: r["trace"] for r in read_jsonl(d / "negatives.jsonl") + read_jsonl(d / "traces.jsonl")}

    assert by_key(api) == by_key(local)


def _canned(handler):
    return httpx.Client(transport=httpx.MockTransport(handler))


def _completion(content, reasoning=None, finish="stop"):
    msg = {"role": "assistant", "content": content}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "r1",
        "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14},
    }


def test_reasoning_content_and_retries(monkeypatch):
    calls = []

    def handler(request):
        calls.append(json.loads(request.content))
        if len(calls) <= 2:
            return httpx.Response(503, json={"error": {"message": "busy"}})
        return httpx.Response(200, json=_completion("#### 12", reasoning="3 * 4 = 12", finish="length"))

    monkeypatch.setenv("K", "k")
    b = OpenAIBackend("https://api.example.com/v1", "r1", api_key_env="K", backoff=0.01, http_client=_canned(handler))
    sampling = Sampling(temperature=0.6, top_p=0.95, max_new_tokens=32)
    [[res]] = list(b.generate([Request("ab" * 32, "sys", "q?", 0)], sampling))
    assert (res.text, res.reasoning_content, res.new_tokens, res.finished) == ("#### 12", "3 * 4 = 12", 9, False)
    assert len(calls) == 3  # two 503s retried
    sent = calls[-1]
    assert sent["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "q?"}]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["model"]) == (0.6, 0.95, 32, "r1")


def test_bad_request_is_not_retried(monkeypatch):
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(400, json={"error": {"message": "bad max_tokens", "type": "invalid_request_error"}})

    monkeypatch.setenv("K", "k")
    b = OpenAIBackend("https://api.example.com/v1", "r1", api_key_env="K", backoff=0.01, http_client=_canned(handler))
    with pytest.raises(ReasonkdError, match="after 1 attempt"):
        list(b.generate([Request("cd" * 32, None, "q?", 0)], Sampling()))
    assert len(calls) == 1


def test_auth_errors_do_not_leak_the_key(monkeypatch):
    key = "sk-live-abcdef123456"

    def handler(request):
        assert request.headers["authorization"] == f"Bearer {key}"
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {key}"}})

    monkeypatch.setenv("K", key)
    b = OpenAIBackend("https://api.example.com/v1", "r1", api_key_env="K", http_client=_canned(handler))
    with pytest.raises(ReasonkdError) as e:
        list(b.generate([Request("ef" * 32, None, "q?", 0)], Sampling()))
    assert key not in str(e.value) and "abcdef" not in str(e.value)


def test_api_key_only_from_the_named_env_var(monkeypatch):
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ReasonkdError, match="NOPE_KEY"):
        OpenAIBackend("https://api.example.com/v1", "m", api_key_env="NOPE_KEY")
    OpenAIBackend("http://127.0.0.1:9/v1", "m", api_key_env="NOPE_KEY")  # loopback servers need no key
