"""Prompt log-probs from `reasonkd serve` as vLLM gives them: `echo` + `logprobs` on /v1/completions and
`prompt_logprobs`, with `return_tokens_as_token_ids`; values are the model's own raw log-softmax."""

import openai
import pytest
import torch

from reasonkd.serve.server import make_app, running_server


@pytest.fixture(scope="module")
def tiny(tiny_llama_dir):
    from reasonkd.models import load_model

    return load_model(str(tiny_llama_dir), dtype="float32")


@pytest.fixture(scope="module")
def client(tiny):
    model, tok = tiny
    with running_server(make_app(model, tok, "tiny", max_tokens_cap=16)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def _reference(tiny, ids):
    model, _ = tiny
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)


def test_prompt_logprobs_equal_a_forward_pass(client, tiny):
    _, tok = tiny
    ids = tok("the farmer has three cows", add_special_tokens=False)["input_ids"]
    r = client.completions.create(
        model="tiny",
        prompt=ids,
        max_tokens=1,
        temperature=0,
        extra_body={"prompt_logprobs": 5, "return_tokens_as_token_ids": True},
    )
    pl = r.choices[0].model_extra["prompt_logprobs"]
    ref = _reference(tiny, ids)
    assert pl[0] is None and len(pl) == len(ids)
    for i in range(1, len(ids)):
        row = pl[i]
        assert str(ids[i]) in row  # the prompt token itself, with its rank
        assert row[str(ids[i])]["logprob"] == pytest.approx(float(ref[i - 1, ids[i]]), abs=1e-4)
        assert row[str(ids[i])]["rank"] == int((ref[i - 1] > ref[i - 1, ids[i]]).sum()) + 1
        top = ref[i - 1].topk(5)
        for t, v in zip(top.indices.tolist(), top.values.tolist()):
            assert row[str(t)]["logprob"] == pytest.approx(v, abs=1e-4)
            assert row[str(t)]["decoded_token"] == f"token_id:{t}"


def test_echo_logprobs(client, tiny):
    _, tok = tiny
    r = client.completions.create(
        model="tiny", prompt="the farmer has", max_tokens=2, temperature=0, logprobs=3, echo=True
    )
    lp = r.choices[0].logprobs
    ids = tok("the farmer has", add_special_tokens=True)["input_ids"]
    assert len(lp.tokens) == len(ids) + 2 and lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    ref = _reference(tiny, ids)
    for i in range(1, len(ids)):
        assert lp.token_logprobs[i] == pytest.approx(float(ref[i - 1, ids[i]]), abs=1e-4)
        assert lp.tokens[i] in lp.top_logprobs[i]  # vLLM: the top k plus the token itself
    assert r.choices[0].text.startswith("the farmer has")


def test_stream_with_prompt_logprobs_is_refused(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="tiny", prompt="x y", max_tokens=2, logprobs=1, echo=True, stream=True)
    assert e.value.body["param"] == "stream"


def test_byte_tokens_carry_their_own_bytes(tiny):
    """A byte token inside a multi-byte character reports its byte, not the replacement character's."""
    from reasonkd.distill.align import normalized_vocab
    from reasonkd.serve.engine import Engine

    model, tok = tiny
    eng = Engine(model, tok)
    vocab = normalized_vocab(tok)
    for tid in list(vocab)[:50]:
        assert bytes(eng.token_entry(tid, 0.0)["bytes"]) == vocab[tid]
