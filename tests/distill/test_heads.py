"""Head scoring, head gates and per-layer eager attention on tiny random models (CPU, seconds)."""

import argparse
import json
import math

import pytest
import torch

from reasonkd.distill.heads import (
    attention_modules,
    attentions_by_layer,
    head_gates,
    load_examples,
    load_head_selection,
    score_heads,
    use_eager_attention_only_in,
)
from reasonkd.distill.cli import register_heads
from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.models import load_model

EXAMPLES = [
    {"prompt": "A farmer has 3 pens and buys 4 more. How many pens?", "trace": "Step 1: 3 + 4 = 7. #### 7"},
    {"prompt": "How many legs have 2 chickens?", "trace": "Each has 2 legs, so 2 * 2 = 4. #### 4"},
    {"prompt": "Apples cost 5 dollars each; total for 6?", "trace": "6 * 5 = 30 dollars. The answer is 30. #### 30"},
]


@pytest.fixture(scope="module")
def llama(tiny_llama_dir):
    return load_model(str(tiny_llama_dir))


def _ids(tok, texts):
    tok.padding_side = "right"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    tok.padding_side = "left"
    return enc["input_ids"], enc["attention_mask"]


def _zero_head(model, layer, head):
    """Reference ablation: zero the o_proj input columns of one head (a copy of the weights)."""
    w = attention_modules(model)[layer].o_proj.weight
    saved = w.detach().clone()
    d = w.shape[1] // model.config.num_attention_heads
    with torch.no_grad():
        w[:, head * d : (head + 1) * d] = 0
    return saved


def test_gates_of_one_change_nothing_and_zero_gate_equals_zeroed_weights(llama):
    model, tok = llama
    ids, mask = _ids(tok, [e["prompt"] for e in EXAMPLES])
    with torch.no_grad():
        ref = model(ids, attention_mask=mask).logits
        gates = torch.ones(2, 4)
        with head_gates(model, gates):
            torch.testing.assert_close(model(ids, attention_mask=mask).logits, ref)
            gates[1, 2] = 0
            gated = model(ids, attention_mask=mask).logits
        saved = _zero_head(model, 1, 2)
        zeroed = model(ids, attention_mask=mask).logits
        attention_modules(model)[1].o_proj.weight.copy_(saved)
        torch.testing.assert_close(model(ids, attention_mask=mask).logits, ref)  # hooks removed
    torch.testing.assert_close(gated, zeroed, atol=1e-6, rtol=1e-5)
    assert not torch.allclose(gated, ref)


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
@pytest.mark.parametrize("padding", ["none", "right", "left"])
def test_eager_only_in_keeps_logits_and_returns_only_chosen_maps(tiny_qwen_dir, impl, padding):
    model, tok = load_model(str(tiny_qwen_dir), attn_implementation=impl)  # 3 layers, 6 heads
    eager_model, _ = load_model(str(tiny_qwen_dir), attn_implementation="eager")
    texts = [EXAMPLES[0]["prompt"], EXAMPLES[1]["prompt"] if padding != "none" else EXAMPLES[0]["prompt"][::-1]]
    tok.padding_side = "left" if padding == "left" else "right"
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    ids, mask = enc["input_ids"], enc["attention_mask"].bool()
    with torch.no_grad():
        ref = eager_model(ids, attention_mask=mask, output_attentions=True)
        assert use_eager_attention_only_in(model, {2, 0}) == [0, 2]
        out = model(ids, attention_mask=mask, output_attentions=True)
    torch.testing.assert_close(out.logits[mask], ref.logits[mask], atol=1e-5, rtol=1e-4)  # pad rows are junk
    maps = attentions_by_layer(model, out.attentions)
    assert sorted(maps) == [0, 2] and len(out.attentions) == 2
    for layer, a in maps.items():
        assert a.shape == (2, 6, ids.shape[1], ids.shape[1])
        rows = mask[:, None, :, None].expand_as(a)
        torch.testing.assert_close(a[rows], ref.attentions[layer][rows], atol=1e-5, rtol=1e-4)
        assert torch.triu(a, diagonal=1)[rows].abs().max() == 0  # causal (fully masked pad rows are uniform)
    use_eager_attention_only_in(model, [])
    with torch.no_grad():
        assert attentions_by_layer(model, model(ids, attention_mask=mask, output_attentions=True).attentions) == {}


def test_eager_only_in_gradients_and_errors(llama):
    model, tok = llama
    ids, mask = _ids(tok, [EXAMPLES[0]["trace"]])
    use_eager_attention_only_in(model, {1})
    try:
        out = model(ids, attention_mask=mask, output_attentions=True)
        out.attentions[0][..., 0].sum().backward()
        assert attention_modules(model)[1].q_proj.weight.grad.abs().sum() > 0
        assert attention_modules(model)[0].q_proj.weight.grad.abs().sum() > 0  # through layer 0's sdpa
        with pytest.raises(ReasonkdError, match="out of range"):
            use_eager_attention_only_in(model, {5})
    finally:
        model.zero_grad(set_to_none=True)
        use_eager_attention_only_in(model, [])


def test_gradient_scores_match_finite_differences(llama):
    model, tok = llama
    res = score_heads(model, tok, EXAMPLES, method="gradient", batch_size=8, progress=False)
    assert (res["n_layers"], res["n_heads"], res["n_examples"]) == (2, 4, 3)
    # one batch, so the score is |d mean-NLL / d gate|: compare with central differences
    from reasonkd.distill.heads import _batches, _trace_nll

    batch = _batches(tok, EXAMPLES, 8, 256, "cpu")[0]
    gates, eps = torch.ones(2, 4, dtype=torch.float64), 2e-2  # fp32 model: a small eps drowns in rounding

    def mean_nll():
        with torch.no_grad(), head_gates(model, gates):
            nll, n, _ = _trace_nll(model, batch)
        return float(nll) / n

    for layer, head in [(0, 0), (1, 3)]:
        gates[layer, head] = 1 + eps
        up = mean_nll()
        gates[layer, head] = 1 - eps
        down = mean_nll()
        gates[layer, head] = 1
        assert res["scores"][layer][head] == pytest.approx(abs(up - down) / (2 * eps), rel=2e-2, abs=1e-4)
    assert res["nll"] == pytest.approx(mean_nll(), rel=1e-5)
    scores = [r["score"] for r in res["ranking"]]
    assert scores == sorted(scores, reverse=True) and len(scores) == 8
    assert all(0 <= r["entropy"] <= math.log(256) for r in res["ranking"])
    assert any(r["entropy"] > 0 for r in res["ranking"])


def test_ablation_scores_are_exact_and_model_is_left_as_it_was(llama):
    model, tok = llama
    configs = [a.config for a in attention_modules(model)]
    grads = [p.requires_grad for p in model.parameters()]
    res = score_heads(model, tok, EXAMPLES[:2], method="ablation", batch_size=1, progress=False)
    assert [a.config for a in attention_modules(model)] == configs
    assert [p.requires_grad for p in model.parameters()] == grads and not model.training
    from reasonkd.distill.heads import _batches, _trace_nll

    batches = _batches(tok, EXAMPLES[:2], 2, 256, "cpu")

    def mean_nll():
        with torch.no_grad():
            parts = [_trace_nll(model, b)[:2] for b in batches]
        return sum(float(n) for n, _ in parts) / sum(c for _, c in parts)

    base = mean_nll()
    assert res["nll"] == pytest.approx(base, rel=1e-5)
    saved = _zero_head(model, 0, 1)
    try:
        assert res["scores"][0][1] == pytest.approx(mean_nll() - base, abs=1e-5)
    finally:
        with torch.no_grad():
            attention_modules(model)[0].o_proj.weight.copy_(saved)


def test_score_heads_input_errors(llama):
    model, tok = llama
    with pytest.raises(ConfigError, match="method"):
        score_heads(model, tok, EXAMPLES, method="magic")
    with pytest.raises(ReasonkdError, match="example 1"):
        score_heads(model, tok, [EXAMPLES[0], {"prompt": "x"}], progress=False)
    with pytest.raises(ReasonkdError, match="max_length"):
        score_heads(model, tok, EXAMPLES, max_length=4, progress=False)


def test_load_examples_from_traces_and_items(tmp_path):
    traces = tmp_path / "traces.jsonl"
    traces.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"id": "a", "prompt": "Q1?", "system": "Be careful.", "trace": "t1 #### 1"},
                {"id": "b", "prompt": "Q2?", "trace": "t2 #### 2"},
            ]
        )
        + "\n"
    )
    ex = load_examples(traces, limit=1)
    assert [{k: e[k] for k in ("prompt", "trace", "system")} for e in ex] == [
        {"prompt": "Q1?", "trace": "t1 #### 1", "system": "Be careful."}
    ]
    items = tmp_path / "items.jsonl"
    base = {"domain": "math", "verifier": "math_numeric", "split": "train"}
    items.write_text(
        "\n".join(
            json.dumps({**base, **r})
            for r in [
                {"id": "m1", "question": "2+3?", "answer": "5", "steps": ["2 + 3 = 5."]},
                {"id": "m2", "question": "4*2?", "answer": "8", "steps": ["4 * 2 = 8.", "#### 8"]},
                {"id": "m3", "question": "4*2?", "answer": "9", "steps": ["4 * 2 = 9.", "#### 9"], "kind": "negative"},
            ]
        )
        + "\n"
    )
    ex = load_examples(items)
    assert [e["trace"] for e in ex] == ["2 + 3 = 5.\n#### 5", "4 * 2 = 8.\n#### 8"]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x", "text": "hello"}\n')
    with pytest.raises(ReasonkdError, match="row 1"):
        load_examples(bad)


def test_heads_command_end_to_end(tiny_llama_dir, tmp_path):
    data = tmp_path / "traces.jsonl"
    data.write_text("\n".join(json.dumps(e) for e in EXAMPLES) + "\n")
    parser = argparse.ArgumentParser()
    register_heads(parser.add_subparsers(dest="command"))
    out = tmp_path / "heads"
    args = parser.parse_args(
        [
            "heads",
            "--teacher",
            str(tiny_llama_dir),
            "--data",
            str(data),
            "--out",
            str(out),
            "--limit",
            "2",
            "--top-k",
            "3",
            "--batch-size",
            "2",
        ]
    )
    assert args.func(args) == 0
    res = json.loads((out / "heads.json").read_text())
    assert res["method"] == "gradient" and res["n_examples"] == 2 and res["top_k"] == 3
    assert res["model"] == str(tiny_llama_dir) and len(res["ranking"]) == 8
    assert set(res["ranking"][0]) == {"layer", "head", "score", "entropy"}
    assert (out / "heads.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    sel = load_head_selection(out / "heads.json", top_k=3)
    assert sum(len(h) for h in sel.values()) == 3
    assert all(h == sorted(h) for h in sel.values()) and list(sel) == sorted(sel)
    top = res["ranking"][0]
    assert top["head"] in load_head_selection(out / "heads.json", top_k=1)[top["layer"]]
    with pytest.raises(ConfigError, match="top_k"):
        load_head_selection(out / "heads.json", top_k=9)
    with pytest.raises(ReasonkdError, match="not a heads.json"):
        load_head_selection(data, top_k=1)


def test_cli_method_choices_match_the_scorer():
    """`reasonkd heads --method` lists its choices without importing torch; they must stay METHODS."""
    import argparse

    from reasonkd.distill.heads import METHODS

    parser = argparse.ArgumentParser()
    register_heads(parser.add_subparsers(dest="command"))
    heads = parser._subparsers._group_actions[0].choices["heads"]
    method = next(a for a in heads._actions if a.dest == "method")
    assert tuple(method.choices) == METHODS
