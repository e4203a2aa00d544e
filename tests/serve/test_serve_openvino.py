"""`reasonkd serve --engine openvino` answers the official `openai` client like the hf engine (chat, streaming,
completions, seeds, stop strings, concurrent requests), on a tiny random model over loopback HTTP."""

import openai
import pytest

from reasonkd.serve.server import make_app, running_server

pytest.importorskip("openvino_genai")
MSG = [{"role": "user", "content": "the farmer has chickens"}]


@pytest.fixture(scope="module")
def lively(tiny_qwen_dir, tmp_path_factory):
    """The tiny model with larger weights, so it says varied things (tiny_models.lively_model)."""
    from tiny_models import lively_model

    return lively_model(tiny_qwen_dir, tmp_path_factory.mktemp("lively_serve"))


@pytest.fixture(scope="module")
def clients(lively, tmp_path_factory):
    """{'hf': client, 'openvino': client}: the same model served by each engine."""
    from reasonkd.models import load_model
    from reasonkd.models.engines import make_engine
    from reasonkd.serve.engine import OVServeEngine

    mp = pytest.MonkeyPatch()
    mp.setenv("REASONKD_HOME", str(tmp_path_factory.mktemp("serve_home")))
    model, tok = load_model(str(lively), dtype="float32")
    ov = make_engine("openvino", str(lively), dtype="float32")  # module scope: pinned here, not by conftest
    kw = dict(max_tokens_cap=32, max_concurrent=3, max_request_bytes=8192)
    with (
        running_server(make_app(model, tok, "tiny", **kw)) as hf_url,
        running_server(make_app(None, ov.tokenizer, "tiny", engine=OVServeEngine(ov), **kw)) as ov_url,
    ):
        yield {
            name: openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)
            for name, url in (("hf", hf_url), ("openvino", ov_url))
        }
    mp.undo()


def test_chat_greedy_like_hf(clients):
    r = {
        k: c.chat.completions.create(model="tiny", messages=MSG, max_tokens=12, temperature=0)
        for k, c in clients.items()
    }
    assert r["openvino"].choices[0].message.content == r["hf"].choices[0].message.content
    assert r["openvino"].choices[0].message.content
    assert r["openvino"].usage.completion_tokens == r["hf"].usage.completion_tokens
    assert r["openvino"].usage.prompt_tokens == r["hf"].usage.prompt_tokens
    assert r["openvino"].choices[0].finish_reason == r["hf"].choices[0].finish_reason


def test_streaming_equals_non_streaming(clients):
    c = clients["openvino"]
    full = c.chat.completions.create(model="tiny", messages=MSG, max_tokens=16, temperature=0)
    chunks = list(
        c.chat.completions.create(
            model="tiny",
            messages=MSG,
            max_tokens=16,
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full.choices[0].message.content
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == full.choices[0].finish_reason
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens


def test_completions_stop_strings_like_hf(clients):
    greedy = clients["hf"].completions.create(model="tiny", prompt="the farmer", max_tokens=12, temperature=0)
    text = greedy.choices[0].text
    stop = text[4:6]
    assert stop.strip()
    for c in clients.values():
        cut = c.completions.create(model="tiny", prompt="the farmer", max_tokens=12, temperature=0, stop=[stop])
        assert cut.choices[0].text == text[: text.index(stop)] and cut.choices[0].finish_reason == "stop"


def test_seeded_sampling_n(clients):
    c = clients["openvino"]
    kw = dict(model="tiny", prompt="the farmer", max_tokens=10, temperature=1.0, seed=7, n=2)
    a, b = c.completions.create(**kw), c.completions.create(**kw)
    assert [x.text for x in a.choices] == [x.text for x in b.choices] and len(a.choices) == 2
    assert a.choices[0].text != a.choices[1].text


def test_concurrent_requests_share_the_pipeline(clients):
    from concurrent.futures import ThreadPoolExecutor

    c = clients["openvino"]
    with ThreadPoolExecutor(5) as ex:
        outs = list(
            ex.map(
                lambda _: (
                    c.chat.completions.create(model="tiny", messages=MSG, max_tokens=8, temperature=0)
                    .choices[0]
                    .message.content
                ),
                range(5),
            )
        )
    assert len(set(outs)) == 1 and outs[0]


def test_logprobs_like_hf(clients):
    """Chat and completions log-probs (and vLLM's prompt_logprobs) from the openvino engine equal the hf engine's."""
    kw = dict(model="tiny", messages=MSG, max_tokens=6, temperature=0, logprobs=True, top_logprobs=5)
    r = {k: c.chat.completions.create(**kw).choices[0].logprobs.content for k, c in clients.items()}
    assert [t.token for t in r["openvino"]] == [t.token for t in r["hf"]] and r["hf"]
    for a, b in zip(r["openvino"], r["hf"]):
        assert a.logprob == pytest.approx(b.logprob, abs=1e-3)
        assert [e.logprob for e in a.top_logprobs] == pytest.approx([e.logprob for e in b.top_logprobs], abs=1e-3)
    kw = dict(
        model="tiny",
        prompt="the farmer has",
        max_tokens=3,
        temperature=0,
        logprobs=3,
        echo=True,
        extra_body={"prompt_logprobs": 4},
    )
    c = {k: cl.completions.create(**kw).choices[0] for k, cl in clients.items()}
    assert c["openvino"].logprobs.tokens == c["hf"].logprobs.tokens
    assert c["openvino"].logprobs.token_logprobs[0] is None
    assert c["openvino"].logprobs.token_logprobs[1:] == pytest.approx(c["hf"].logprobs.token_logprobs[1:], abs=1e-3)
    pl = {k: v.model_extra["prompt_logprobs"] for k, v in c.items()}
    assert pl["openvino"][0] is None and len(pl["openvino"]) == len(pl["hf"]) > 1
    for a, b in zip(pl["openvino"][1:], pl["hf"][1:]):
        assert a.keys() == b.keys() and all(abs(a[t]["logprob"] - b[t]["logprob"]) < 1e-3 for t in a)


def test_the_end_of_turn_token_it_stops_on_has_its_log_prob_entry(lively):
    """As vLLM's: the end-of-sequence token a choice stops on is not in its text or completion_tokens, but
    its log-prob entry is the last one, so a distillation client gets the teacher's end-of-turn row.
    Both engines; the stop token is made to be the greedy choice's second token."""
    from reasonkd.models import load_model
    from reasonkd.models.engines import make_engine
    from reasonkd.serve.engine import Engine, GenParams, OVServeEngine

    model, tok = load_model(str(lively), dtype="float32")
    hf = Engine(model, tok)
    ids = hf.chat_ids(MSG)
    p = GenParams(max_new_tokens=6, temperature=0, logprobs=3, token_ids_as_strings=True)
    greedy = hf.complete(ids, p)[0]["tokens"]
    firsts = [int(t["token"].split(":")[1]) for t in greedy]
    cut = next(i for i in range(1, len(firsts)) if firsts[i] not in firsts[:i])  # stop there, once
    engines = {"hf": hf, "openvino": OVServeEngine(make_engine("openvino", str(lively), dtype="float32"))}
    for name, eng in engines.items():
        eng.stop_ids.add(firsts[cut])
        r = eng.complete(ids, p)[0]
        assert r["finish_reason"] == "stop" and r["completion_tokens"] == cut, name
        assert [t["token"] for t in r["tokens"]] == [t["token"] for t in greedy[: cut + 1]], name
        assert [t["logprob"] for t in r["tokens"]] == pytest.approx(
            [t["logprob"] for t in greedy[: cut + 1]], abs=1e-3
        ), name
        assert len(r["tokens"][-1]["top_logprobs"]) == 3
