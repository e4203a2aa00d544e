"""Sliding-window attention with sinks (reasonkd.models.window): exact below the window, bounded above it,
and the one clear error for an input longer than the model's context."""

import pytest
import torch

from reasonkd.errors import ReasonkdError
from reasonkd.models import load_model
from reasonkd.models.engines.hf import HFEngine
from reasonkd.models.generation import _stop_ids, generate_batch
from reasonkd.models.window import SinkWindowCache, _rotate_back, check_context, window_generate


@pytest.fixture(scope="module", params=["tiny_llama_dir", "tiny_qwen_dir"])
def model_tok(request):
    model, tok = load_model(str(request.getfixturevalue(request.param)), dtype="float32")
    return model.eval(), tok


def _prompt_ids(tok, n: int) -> list[int]:
    text = " ".join(f"the farmer has {i} chickens and {i + 3} rabbits." for i in range(200))
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert len(ids) >= n
    return ids[:n]


def test_equals_full_attention_below_the_window(model_tok):
    model, tok = model_tok
    ids = _prompt_ids(tok, 40)
    scores: list = []
    new, _ = window_generate(model, ids, window=128, sinks=4, max_new_tokens=24, stop_ids=[], scores=scores)
    full = model.generate(
        torch.tensor([ids]),
        attention_mask=torch.ones(1, len(ids), dtype=torch.long),
        max_new_tokens=24,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
        eos_token_id=None,
        pad_token_id=tok.pad_token_id,
    )
    assert new == full[0, len(ids) :].tolist()  # identical greedy tokens
    with torch.no_grad():
        ref = model(full[:, :-1]).logits[0, len(ids) - 1 :]
    got = torch.stack(scores)
    assert got.shape == ref.shape
    assert torch.allclose(got, ref, atol=1e-5, rtol=0)  # logits within 1e-5 at every step


def test_engine_window_equals_full_below_the_window(model_tok):
    model, tok = model_tok
    prompts = [tok.decode(_prompt_ids(tok, 30)), tok.decode(_prompt_ids(tok, 45))]
    full = generate_batch(model, tok, prompts, max_new_tokens=12, batch_size=1, progress=False)
    eng = HFEngine.wrap(model, tok)
    eng.window, eng.sinks = 128, 4
    win = eng.generate(prompts, max_new_tokens=12, batch_size=4)
    assert [c.text for c in win] == [c.text for c in full]
    assert [c.new_tokens for c in win] == [c.new_tokens for c in full]


def test_window_bounds_the_cache_above_the_window(model_tok):
    model, tok = model_tok
    ids = _prompt_ids(tok, 300)
    cache = SinkWindowCache(model, window=64, sinks=4)
    with torch.no_grad():
        for s in range(0, len(ids), 32):
            model(input_ids=torch.tensor([ids[s : s + 32]]), past_key_values=cache, use_cache=True)
    assert cache.get_seq_length() == 64 and cache.evicted == 300 - 64
    new, _ = window_generate(model, ids, window=64, sinks=4, max_new_tokens=5, stop_ids=_stop_ids(model, tok))
    assert len(new) <= 5


def test_rotate_back_composes_with_rope():
    """Rotating keys set at position p back by s gives the keys at p - s (what eviction relies on)."""
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb

    torch.manual_seed(0)
    inv_freq = 1.0 / (10000 ** (torch.arange(0, 16, 2).float() / 16))
    k = torch.randn(1, 2, 5, 16)

    def rope(x, pos):
        ang = torch.outer(torch.tensor(pos, dtype=torch.float32), inv_freq)
        emb = torch.cat([ang, ang], -1)[None]
        return apply_rotary_pos_emb(x, x, emb.cos(), emb.sin())[0]

    at_p = rope(k, [20, 21, 22, 23, 24])
    assert torch.allclose(_rotate_back(at_p, 7, inv_freq), rope(k, [13, 14, 15, 16, 17]), atol=1e-5)


def test_too_long_input_names_the_window_option(model_tok):
    model, tok = model_tok
    with pytest.raises(ReasonkdError, match=r"maximum context of 512 tokens.*--window W --sinks S"):
        check_context(model, 600)
    check_context(model, 600, window=128)  # the window mode takes it


def test_engine_warns_once_past_the_context(model_tok, caplog):
    model, tok = model_tok
    long_prompt = tok.decode(_prompt_ids(tok, 600))
    HFEngine.wrap(model, tok).generate([long_prompt, "short"], max_new_tokens=2)  # a batch of problems goes on
    assert "1 of 2 inputs are longer than the model's maximum context of 512 tokens" in caplog.text
    assert "--window W --sinks S" in caplog.text


def test_serve_engine_window_equals_full_below_the_window(model_tok):
    from reasonkd.serve.engine import Engine, GenParams

    model, tok = model_tok
    ids = _prompt_ids(tok, 50)
    p = GenParams(max_new_tokens=10, temperature=0.0)
    full = Engine(model, tok).complete(ids, p)
    win_engine = Engine(model, tok, window=128, sinks=4)
    assert win_engine.max_len is None  # the window takes inputs past the context
    assert win_engine.complete(ids, p)[0]["text"] == full[0]["text"]
    long_ids = _prompt_ids(tok, 600)  # past the tiny model's 512-token context
    assert win_engine.complete(long_ids, p)[0]["completion_tokens"] <= 10


def test_generate_cli_window_and_too_long(tiny_llama_dir, capsys):
    from reasonkd.cli import main

    model, tok = load_model(str(tiny_llama_dir))
    long_text = tok.decode(_prompt_ids(tok, 600))
    assert main(["generate", "--model", str(tiny_llama_dir), "--prompt", long_text, "--max-new-tokens", "3"]) == 1
    assert "longer than the model's maximum context of 512 tokens" in capsys.readouterr().err  # one clear error
    assert (
        main(
            [
                "generate",
                "--model",
                str(tiny_llama_dir),
                "--prompt",
                long_text,
                "--max-new-tokens",
                "3",
                "--window",
                "128",
                "--sinks",
                "4",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    assert "window 128" in capsys.readouterr().err
