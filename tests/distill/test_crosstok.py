"""PairEncoder, collate and the aligned losses on the two tiny tokenizers ("a" student, "b" teacher).

Fast tests build the tokenizers offline; `-m slow` checks the real SmolLM2-135M / Qwen2.5-Coder-0.5B
pair (run it under `flock /tmp/reasonkd-heavy.lock`).
"""

import logging

import pytest
import torch

from reasonkd.distill.align import build_vocab_map, truncate_to_common_vocab
from reasonkd.distill.crosstok import (PairEncoder, aligned_hidden_loss, aligned_mask, collate,
                                       cross_tokenizer_logit_loss, end_of_turn, gather_aligned)
from reasonkd.distill.losses import FeatureProjector, forward_kl
from reasonkd.errors import ReasonkdError

PROMPT = "A farmer has 12 boxes of 4 apples. How many apples?"
TRACE = "Step 1: 12 * 4 = 48. café naïve 😀 #### 48"
# Hand-checked splits of TRACE (character end offsets, byte pieces of one character merged):
#   a: S|t|ep| 1|:| 1|2| |*| 4| =| 4|8|.| c|a|f|é| n|a|ï|ve| |😀| ####| 4|8
#   b: S|t|ep| 1|:| 12| |*| 4| =| 4|8|.| café| naïve| |😀| ####| 4|8
# Common ends: every boundary of b (b never splits inside a token of a).
HAND_ENDS = [1, 2, 4, 6, 7, 10, 11, 12, 14, 16, 18, 19, 20, 25, 31, 32, 33, 38, 40, 41]


@pytest.fixture(scope="module")
def toks():
    from reasonkd.models.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer("a"), build_tiny_tokenizer("b")


@pytest.fixture(scope="module")
def enc(toks):
    a, b = toks
    return PairEncoder(a, b, len(a), len(b))


def _n_prompt(labels):
    return next(k for k, x in enumerate(labels) if x != -100)


def _aligned_trace_pairs(row):
    s_np, t_np = _n_prompt(row["student_labels"]), _n_prompt(row["teacher_labels"])
    return [(i, j) for i, j in enumerate(row["align_index"]) if j >= 0 and i >= s_np], s_np, t_np


def test_hand_checked_boundaries(enc):
    row = enc.encode(PROMPT, TRACE)
    pairs, s_np, t_np = _aligned_trace_pairs(row)
    a = enc.student.tok
    ends = [len(a.decode(row["student_input_ids"][s_np:i + 1])) for i, _ in pairs]
    assert ends == HAND_ENDS
    assert row["align_index"][s_np - 1] == t_np - 1  # last prompt tokens: both predict the first trace token
    assert sum(j >= 0 for j in row["align_index"]) == len(HAND_ENDS) + 1
    assert all(j == -1 for j in row["align_index"][:s_np - 1])


def test_every_aligned_pair_ends_at_the_same_character(enc):
    row = enc.encode(PROMPT, TRACE)
    pairs, s_np, t_np = _aligned_trace_pairs(row)
    a, b = enc.student.tok, enc.teacher.tok
    for i, j in pairs:
        s_text = a.decode(row["student_input_ids"][s_np:i + 1], skip_special_tokens=True)
        t_text = b.decode(row["teacher_input_ids"][t_np:j + 1], skip_special_tokens=True)
        assert s_text == t_text == TRACE[:len(s_text)], (i, j)


def test_labels_cover_trace_and_end_of_turn(enc):
    row = enc.encode(PROMPT, TRACE)
    assert end_of_turn(enc.student.tok) == end_of_turn(enc.teacher.tok) == "<|im_end|>"
    for who in ("student", "teacher"):
        tok, ids, labels = getattr(enc, who).tok, row[f"{who}_input_ids"], row[f"{who}_labels"]
        n = _n_prompt(labels)
        assert tok.decode(ids[:n]).endswith("<|im_start|>assistant\n")
        assert labels[n:] == ids[n:] and tok.decode(labels[n:]) == TRACE + "<|im_end|>"
    assert len(row["align_index"]) == len(row["student_input_ids"])


def test_same_tokenizer_is_identity(toks, caplog):
    a, _ = toks
    with caplog.at_level(logging.INFO, logger="reasonkd.distill.crosstok"):
        enc = PairEncoder(a, a, len(a), len(a), student_system="Think step by step.")
    assert enc.relation == "same" and "same tokenizer" in caplog.text
    row = enc.encode(PROMPT, TRACE)
    assert row["teacher_input_ids"] == row["student_input_ids"] and row["teacher_labels"] == row["student_labels"]
    assert row["align_index"] == list(range(len(row["student_input_ids"])))


def test_truncation_drops_partners_past_the_teacher_end(toks):
    a, b = toks
    full = PairEncoder(a, b, len(a), len(b), teacher_system="You are a careful teacher. " * 4)
    row = full.encode(PROMPT, TRACE)
    s_np, t_np = _n_prompt(row["student_labels"]), _n_prompt(row["teacher_labels"])
    assert t_np > s_np + 10  # the teacher's long system prompt makes its side longer
    cut = PairEncoder(a, b, len(a), len(b), max_length=t_np + 5, teacher_system=full.teacher.system).encode(
        PROMPT, TRACE)
    lt = len(cut["teacher_input_ids"])
    assert lt == t_np + 5 and len(cut["student_input_ids"]) == min(len(row["student_input_ids"]), t_np + 5)
    expected = [j if j < lt else -1 for j in row["align_index"][:len(cut["student_input_ids"])]]
    assert cut["align_index"] == expected and any(j >= lt for j in row["align_index"])


def test_teacher_ids_fed_to_the_student_are_caught(toks, monkeypatch):
    a, b = toks
    enc = PairEncoder(a, b, len(a), len(b))
    real = enc._ids
    monkeypatch.setattr(enc, "_ids", lambda side, text, offsets=False: real(enc.teacher, text, offsets))
    with pytest.raises(ReasonkdError, match="student"):
        enc.encode(PROMPT, TRACE)


def test_collate_gather_and_mask(enc):
    rows = [enc.encode(PROMPT, TRACE), enc.encode("2 + 2?", "4")]
    batch = collate(rows, pad_id_student=3, pad_id_teacher=3)
    ls, lt = len(rows[0]["student_input_ids"]), len(rows[0]["teacher_input_ids"])
    assert batch["student_input_ids"].shape == batch["align_index"].shape == (2, ls)
    assert batch["teacher_input_ids"].shape == batch["teacher_labels"].shape == (2, lt)
    n1 = len(rows[1]["student_input_ids"])
    assert batch["student_attention_mask"][1].tolist() == [1] * n1 + [0] * (ls - n1)
    assert (batch["align_index"][1, n1:] == -1).all() and (batch["student_labels"][1, n1:] == -100).all()
    teacher = torch.randn(2, lt, 3)
    got = gather_aligned(teacher, batch["align_index"])
    for b in range(2):
        for i, j in enumerate(batch["align_index"][b].tolist()):
            assert torch.equal(got[b, i], teacher[b, j] if j >= 0 else torch.zeros(3))
    mask = aligned_mask(batch["student_labels"], batch["align_index"])
    s_np = _n_prompt(rows[0]["student_labels"])
    assert mask[0, s_np - 1] and not mask[0, s_np - 2] and not mask[:, -1].any()
    # last prompt token + every trace boundary (the last one, after "48", predicts <|im_end|>)
    assert int(mask[0].sum()) == len(HAND_ENDS) + 1


def _load(path):
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    return AutoModelForCausalLM.from_pretrained(path)


def test_padded_vocab_same_tokenizer(toks, tiny_llama_dir, tmp_path_factory, caplog):
    from reasonkd.models.tiny import build_tiny_model

    a, _ = toks
    student = _load(tiny_llama_dir)
    teacher = _load(build_tiny_model(tmp_path_factory.mktemp("padded"), arch="qwen2", tokenizer="a", vocab_pad=64))
    vs, vt = student.config.vocab_size, teacher.config.vocab_size
    assert vt == vs + 64
    with caplog.at_level(logging.INFO, logger="reasonkd.distill.crosstok"):
        enc = PairEncoder(a, a, vs, vt)
    assert enc.relation == "same_padded"
    assert any(r.levelno == logging.WARNING and "truncate_to_common_vocab" in r.message for r in caplog.records)
    batch = collate([enc.encode(PROMPT, TRACE)], a.pad_token_id, a.pad_token_id)
    s_logits = student(batch["student_input_ids"]).logits
    with torch.no_grad():
        t_logits = teacher(batch["teacher_input_ids"]).logits
    mask = aligned_mask(batch["student_labels"], batch["align_index"])
    with pytest.raises(ReasonkdError, match="truncate_to_common_vocab"):
        forward_kl(s_logits, t_logits, mask=mask)
    with pytest.warns(UserWarning, match="truncating"):
        s_cut, t_cut = truncate_to_common_vocab(s_logits, t_logits)
    loss = forward_kl(s_cut, t_cut, mask=mask, temperature=2.0)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters() if p.requires_grad)


def test_cross_tokenizer_losses_on_tiny_models(enc, tiny_llama_dir, tiny_qwen_dir):
    student, teacher = _load(tiny_llama_dir), _load(tiny_qwen_dir)  # llama + tok a, qwen2 + tok b, 64 vs 96 wide
    a, b = enc.student.tok, enc.teacher.tok
    vmap = build_vocab_map(a, b, student.config.vocab_size, teacher.config.vocab_size)
    batch = collate([enc.encode(PROMPT, TRACE), enc.encode("2 + 2?", "4")], a.pad_token_id, b.pad_token_id)
    s_out = student(batch["student_input_ids"], attention_mask=batch["student_attention_mask"],
                    output_hidden_states=True)
    # teacher run WITH grad on purpose: the losses must detach it themselves
    t_out = teacher(batch["teacher_input_ids"], attention_mask=batch["teacher_attention_mask"],
                    output_hidden_states=True)
    projector = FeatureProjector(student.config.hidden_size, teacher.config.hidden_size)
    kl = cross_tokenizer_logit_loss(s_out.logits, t_out.logits, batch, vmap, kind="cross_vocab_kl", temperature=2.0)
    uld = cross_tokenizer_logit_loss(s_out.logits, t_out.logits, batch, kind="uld")
    hid = aligned_hidden_loss(s_out.hidden_states[-1], t_out.hidden_states[-1], batch, projector)
    for value in (kl, uld, hid):
        assert torch.isfinite(value) and value > 0
    (kl + uld + hid).backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in student.parameters())
    assert all(p.grad is not None for p in projector.parameters())
    assert all(p.grad is None for p in teacher.parameters())
    with pytest.raises(ReasonkdError, match="vocab_map"):
        cross_tokenizer_logit_loss(s_out.logits, t_out.logits, batch, None)
    with pytest.raises(ReasonkdError, match="kind"):
        cross_tokenizer_logit_loss(s_out.logits, t_out.logits, batch, vmap, kind="kl")


REAL_TRACES = [
    ("A farm has chickens and rabbits: 35 heads and 94 legs. How many rabbits?",
     "Let c be chickens and r rabbits. c + r = 35 and 2c + 4r = 94. Doubling the first: 2c + 2r = 70. "
     "Subtracting: 2r = 24, so r = 12 and c = 23. Check: 23*2 + 12*4 = 46 + 48 = 94. ✓\n#### 12"),
    ("Fix the bug: def mean(xs): return sum(xs) / len(xs) - 1",
     "The function subtracts 1 after dividing because of operator precedence.\n\n```python\n"
     "def mean(xs):\n    if not xs:\n        raise ValueError(\"empty list\")\n    return sum(xs) / len(xs)\n```\n"
     "Now mean([1, 2, 3]) == 2.0, and an empty list raises "
     "instead of dividing by zero."),
    ("Qu'est-ce qu'un café naïf ? 😀", "Un café « naïf » est servi sans sucre — 3,5 € à Zürich. 😀 Résultat : 42."),
]


@pytest.mark.slow
def test_real_pair_alignment_and_vocab_map():
    from reasonkd.models import load_tokenizer
    from reasonkd.models.registry import get_spec

    s_tok, t_tok = load_tokenizer("smollm2-135m"), load_tokenizer("qwen2.5-coder-0.5b")
    vs, vt = get_spec("smollm2-135m").vocab_size, get_spec("qwen2.5-coder-0.5b").vocab_size
    enc = PairEncoder(s_tok, t_tok, vs, vt, max_length=1024)
    assert enc.relation == "different" and enc.student.end == enc.teacher.end == "<|im_end|>"
    covered = total = 0
    for prompt, trace in REAL_TRACES:
        row = enc.encode(prompt, trace)
        pairs, s_np, t_np = _aligned_trace_pairs(row)
        for i, j in pairs:
            s_text = s_tok.decode(row["student_input_ids"][s_np:i + 1])
            assert s_text == t_tok.decode(row["teacher_input_ids"][t_np:j + 1]) == trace[:len(s_text)]
        covered += len(pairs)
        total += len(row["student_input_ids"]) - s_np - 1  # trace tokens, end-of-turn excluded
    fraction = covered / total
    vmap = build_vocab_map(s_tok, t_tok, vs, vt)
    print(f"\nreal pair: {covered}/{total} student trace tokens aligned ({fraction:.1%}); "
          f"shared vocab {len(vmap)}")
    assert fraction > 0.6
    assert 38_000 <= len(vmap) <= 40_500
