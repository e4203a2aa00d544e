"""PairEncoder (the teacher's view of an example when tokenizers differ) on the two tiny tokenizers
("a" student, "b" teacher).

Fast tests build the tokenizers offline; `-m slow` checks the real SmolLM2-135M / Qwen2.5-Coder-0.5B
pair.
"""

import pytest
import torch

from reasonkd.distill import crosstok
from reasonkd.distill.align import build_vocab_map, tokenizer_relation, truncate_to_common_vocab
from reasonkd.distill.crosstok import PairEncoder
from reasonkd.distill.data import collate, encode_all
from reasonkd.distill.losses import forward_kl, logprobs
from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import end_of_turn

PROMPT = "A farmer has 12 boxes of 4 apples. How many apples?"
TRACE = "Step 1: 12 * 4 = 48. café naïve 😀 #### 48"
# Hand-checked splits of TRACE (character end offsets, byte pieces of one character merged):
#   a: S|t|ep| 1|:| 1|2| |*| 4| =| 4|8|.| c|a|f|é| n|a|ï|ve| |😀| ####| 4|8
#   b: S|t|ep| 1|:| 12| |*| 4| =| 4|8|.| café| naïve| |😀| ####| 4|8
# Common ends: every boundary of b (b never splits inside a token of a).
HAND_ENDS = [1, 2, 4, 6, 7, 10, 11, 12, 14, 16, 18, 19, 20, 25, 31, 32, 33, 38, 40, 41]


@pytest.fixture(scope="module")
def toks():
    from tiny_models import build_tiny_tokenizer

    return build_tiny_tokenizer("a"), build_tiny_tokenizer("b")


@pytest.fixture(scope="module")
def enc(toks):
    a, b = toks
    return PairEncoder(a, b, len(a), len(b))


def _aligned_trace_pairs(e):
    """[(student pos, teacher pos)] on the trace, student and teacher prompt lengths."""
    s_np = e.prompt_len
    t_np = e.teacher_index[s_np - 1] + 1  # the last prompt tokens are paired
    return [(i, j) for i, j in enumerate(e.teacher_index) if j >= 0 and i >= s_np], s_np, t_np


def test_hand_checked_boundaries(enc):
    e = enc.encode(PROMPT, TRACE)
    pairs, s_np, t_np = _aligned_trace_pairs(e)
    a = enc.student_tok
    ends = [len(a.decode(e.input_ids[s_np : i + 1])) for i, _ in pairs]
    assert ends == HAND_ENDS
    assert sum(j >= 0 for j in e.teacher_index) == len(HAND_ENDS) + 1
    assert all(j == -1 for j in e.teacher_index[: s_np - 1])


def test_every_aligned_pair_ends_at_the_same_character(enc):
    e = enc.encode(PROMPT, TRACE)
    pairs, s_np, t_np = _aligned_trace_pairs(e)
    a, b = enc.student_tok, enc.teacher_tok
    for i, j in pairs:
        s_text = a.decode(e.input_ids[s_np : i + 1], skip_special_tokens=True)
        t_text = b.decode(e.teacher_input_ids[t_np : j + 1], skip_special_tokens=True)
        assert s_text == t_text == TRACE[: len(s_text)], (i, j)


def test_both_sides_read_prompt_trace_and_end_of_turn(enc):
    e = enc.encode(PROMPT, TRACE)
    assert end_of_turn(enc.student_tok) == end_of_turn(enc.teacher_tok) == "<|im_end|>"
    _, s_np, t_np = _aligned_trace_pairs(e)
    for tok, ids, n in ((enc.student_tok, e.input_ids, s_np), (enc.teacher_tok, e.teacher_input_ids, t_np)):
        assert tok.decode(ids[:n]).endswith("<|im_start|>assistant\n")
        assert tok.decode(ids[n:]) == TRACE + "<|im_end|>"
    assert len(e.teacher_index) == len(e.input_ids)


def test_truncation_drops_partners_past_the_teacher_end(toks):
    a, b = toks
    full = PairEncoder(a, b, len(a), len(b), teacher_system="You are a careful teacher. " * 4)
    e = full.encode(PROMPT, TRACE)
    _, s_np, t_np = _aligned_trace_pairs(e)
    assert t_np > s_np + 10  # the teacher's long system prompt makes its side longer
    cut = PairEncoder(a, b, len(a), len(b), max_length=t_np + 5, teacher_system=full.systems["teacher"]).encode(
        PROMPT, TRACE
    )
    lt = len(cut.teacher_input_ids)
    assert lt == t_np + 5 and len(cut.input_ids) == min(len(e.input_ids), t_np + 5)
    expected = [j if j < lt else -1 for j in e.teacher_index[: len(cut.input_ids)]]
    assert cut.teacher_index == expected and any(j >= lt for j in e.teacher_index)


def test_teacher_ids_fed_to_the_student_are_caught(toks, monkeypatch):
    a, b = toks
    enc = PairEncoder(a, b, len(a), len(b))
    real = crosstok.encode_example
    monkeypatch.setattr(crosstok, "encode_example", lambda tok, *args, **kw: real(b, *args, **kw))
    with pytest.raises(ReasonkdError, match="student"):
        enc.encode(PROMPT, TRACE)


def test_encode_all_and_collate_carry_the_teacher_view(enc):
    a = enc.student_tok
    rows = [{"id": "x", "prompt": PROMPT, "trace": TRACE}, {"id": "y", "prompt": "2 + 2?", "trace": "4"}]
    encoded = encode_all(rows, a, 512, pair=enc)
    batch = collate(encoded, a.pad_token_id, teacher_pad_id=enc.teacher_tok.pad_token_id)
    ls, lt = len(encoded[0].input_ids), len(encoded[0].teacher_input_ids)
    assert batch["input_ids"].shape == batch["teacher_index"].shape == (2, ls)
    assert batch["teacher_input_ids"].shape == (2, lt) and batch["teacher_identity"] is False
    n1 = len(encoded[1].input_ids)
    assert (batch["teacher_index"][1, n1:] == -1).all() and (batch["labels"][1, n1:] == -100).all()


def _load(path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path)


def test_padded_vocab_same_tokenizer(toks, tiny_llama_dir, tmp_path_factory):
    from tiny_models import build_tiny_model

    a, _ = toks
    student = _load(tiny_llama_dir)
    teacher = _load(build_tiny_model(tmp_path_factory.mktemp("padded"), arch="qwen2", tokenizer="a", vocab_pad=64))
    vs, vt = student.config.vocab_size, teacher.config.vocab_size
    assert vt == vs + 64 and tokenizer_relation(a, a, vs, vt) == "same_padded"
    batch = collate(encode_all([{"id": "x", "prompt": PROMPT, "trace": TRACE}], a, 512), a.pad_token_id)
    s_logits = student(batch["input_ids"]).logits[0]
    with torch.no_grad():
        t_logits = teacher(batch["teacher_input_ids"]).logits[0]
    with pytest.warns(UserWarning, match="truncating"):
        s_cut, t_cut = truncate_to_common_vocab(s_logits, t_logits)
    loss = forward_kl(logprobs(s_cut, 2.0), logprobs(t_cut, 2.0)).mean()
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters() if p.requires_grad)


REAL_TRACES = [
    (
        "A farm has chickens and rabbits: 35 heads and 94 legs. How many rabbits?",
        "Let c be chickens and r rabbits. c + r = 35 and 2c + 4r = 94. Doubling the first: 2c + 2r = 70. "
        "Subtracting: 2r = 24, so r = 12 and c = 23. Check: 23*2 + 12*4 = 46 + 48 = 94. ✓\n#### 12",
    ),
    (
        "Fix the bug: def mean(xs): return sum(xs) / len(xs) - 1",
        "The function subtracts 1 after dividing because of operator precedence.\n\n```python\n"
        'def mean(xs):\n    if not xs:\n        raise ValueError("empty list")\n    return sum(xs) / len(xs)\n```\n'
        "Now mean([1, 2, 3]) == 2.0, and an empty list raises "
        "instead of dividing by zero.",
    ),
    ("Qu'est-ce qu'un café naïf ? 😀", "Un café « naïf » est servi sans sucre — 3,5 € à Zürich. 😀 Résultat : 42."),
]


@pytest.mark.slow
def test_real_pair_alignment_and_vocab_map():
    from reasonkd.models import load_tokenizer
    from reasonkd.models.registry import get_spec

    s_tok, t_tok = load_tokenizer("smollm2-135m"), load_tokenizer("qwen2.5-coder-0.5b")
    vs, vt = get_spec("smollm2-135m").vocab_size, get_spec("qwen2.5-coder-0.5b").vocab_size
    enc = PairEncoder(s_tok, t_tok, vs, vt, max_length=1024)
    assert tokenizer_relation(s_tok, t_tok, vs, vt) == "different"
    assert end_of_turn(s_tok) == end_of_turn(t_tok) == "<|im_end|>"
    covered = total = 0
    for prompt, trace in REAL_TRACES:
        e = enc.encode(prompt, trace)
        pairs, s_np, t_np = _aligned_trace_pairs(e)
        for i, j in pairs:
            s_text = s_tok.decode(e.input_ids[s_np : i + 1])
            assert s_text == t_tok.decode(e.teacher_input_ids[t_np : j + 1]) == trace[: len(s_text)]
        covered += len(pairs)
        total += len(e.input_ids) - s_np - 1  # trace tokens, end-of-turn excluded
    fraction = covered / total
    vmap = build_vocab_map(s_tok, t_tok, vs, vt)
    print(f"\nreal pair: {covered}/{total} student trace tokens aligned ({fraction:.1%}); shared vocab {len(vmap)}")
    assert fraction > 0.6
    assert 38_000 <= len(vmap) <= 40_500
