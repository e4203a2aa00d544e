"""Cross-tokenizer alignment on hand-built tokenizers of different families (offline, no downloads).

Hand-checked expectations use tokenizers built from explicit vocabularies (deterministic);
properties are also checked on the two trained byte-level tokenizers of tests/tiny_models.py.
"""

import pytest
import torch

from reasonkd.distill.align import (
    align_tokens,
    aligned_positions,
    build_vocab_map,
    char_offsets,
    check_token_ids,
    normalized_vocab,
    tokenizer_relation,
    truncate_to_common_vocab,
)
from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import tokenizer_hash

TEXT = "café 12345 naïve 😀"


def _fast(tk, **special):
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=tk, **special)


@pytest.fixture(scope="module")
def byte_level():
    """GPT-2 style byte-level BPE with a handful of explicit merges."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    merges = [
        ("c", "a"),
        ("ca", "f"),
        ("Ã", "©"),
        ("caf", "Ã©"),
        ("Ġ", "1"),
        ("Ġ1", "2"),
        ("3", "4"),
        ("Ġ", "n"),
        ("Ġn", "a"),
        ("Ã", "¯"),
        ("v", "e"),
        ("Ġ", "t"),
        ("Ġt", "h"),
        ("Ġth", "e"),
        ("i", "n"),
        ("in", "g"),
    ]
    vocab = {"<|endoftext|>": 0}
    for tok in sorted(alphabet) + [a + b for a, b in merges]:
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(models.BPE(vocab, merges))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    return _fast(tk, eos_token="<|endoftext|>")


@pytest.fixture(scope="module")
def char_level():
    """One token per character, whitespace dropped."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    chars = sorted(set("abcdefghijklmnopqrstuvwxyzéï0123456789😀"))
    tk = Tokenizer(models.WordLevel({"[UNK]": 0, **{c: i + 1 for i, c in enumerate(chars)}}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split("", "isolated")])
    return _fast(tk, unk_token="[UNK]")


@pytest.fixture(scope="module")
def wordpiece():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    pieces = ["[UNK]", "café", "123", "##45", "na", "##ïve", "😀", "the", "##ing", "go"]
    tk = Tokenizer(models.WordPiece({p: i for i, p in enumerate(pieces)}, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tk.decoder = decoders.WordPiece()
    return _fast(tk, unk_token="[UNK]")


@pytest.fixture(scope="module")
def metaspace():
    """sentencepiece-style: '▁' marks a space, <0x0A> byte fallback."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    merges = [("▁", "t"), ("▁t", "h"), ("▁th", "e"), ("i", "n"), ("in", "g")]
    vocab = {"<unk>": 0, "<0x0A>": 1}
    for tok in ["▁", "t", "h", "e", "i", "n", "g", "a"] + [a + b for a, b in merges]:
        vocab.setdefault(tok, len(vocab))
    tk = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True))
    tk.pre_tokenizer = pre_tokenizers.Metaspace()
    tk.decoder = decoders.Metaspace()
    return _fast(tk, unk_token="<unk>")


@pytest.fixture(scope="module")
def tiny_pair():
    from tiny_models import build_tiny_tokenizer

    return build_tiny_tokenizer("a"), build_tiny_tokenizer("b")


def test_hand_built_tokenizers_split_as_designed(byte_level, char_level, wordpiece):
    assert byte_level.convert_ids_to_tokens(byte_level(TEXT)["input_ids"]) == [
        "cafÃ©",
        "Ġ12",
        "34",
        "5",
        "Ġna",
        "Ã¯",
        "ve",
        "Ġ",
        "ð",
        "Ł",
        "ĺ",
        "Ģ",
    ]
    assert char_offsets(byte_level, TEXT) == [
        (0, 4),
        (4, 7),
        (7, 9),
        (9, 10),
        (10, 13),
        (13, 14),
        (14, 16),
        (16, 17),
        (17, 18),
        (17, 18),
        (17, 18),
        (17, 18),
    ]
    assert len(char_offsets(char_level, TEXT)) == 15
    assert wordpiece.convert_ids_to_tokens(wordpiece(TEXT)["input_ids"]) == ["café", "123", "##45", "na", "##ïve", "😀"]


def test_align_byte_level_with_char_level(byte_level, char_level):
    s, t = char_offsets(byte_level, TEXT), char_offsets(char_level, TEXT)
    # café | 12 | 34 | 5 | na | ï | ve | (space + 4 emoji bytes) against single characters
    assert align_tokens(s, t) == [
        ((0, 1), (0, 4)),
        ((1, 2), (4, 6)),
        ((2, 3), (6, 8)),
        ((3, 4), (8, 9)),
        ((4, 5), (9, 11)),
        ((5, 6), (11, 12)),
        ((6, 7), (12, 14)),
        ((7, 12), (14, 15)),
    ]
    assert aligned_positions(s, t) == [3, 5, 7, 8, 10, 11, 13, -1, -1, -1, -1, 14]


def test_align_byte_level_with_wordpiece_n_to_m(byte_level, wordpiece):
    s, t = char_offsets(byte_level, TEXT), char_offsets(wordpiece, TEXT)
    groups = align_tokens(s, t)
    # "Ġ12 34 5" vs "123 ##45" is 3:2; "Ã¯ ve" vs "##ïve" is 2:1; space + emoji bytes vs "😀" is 5:1
    assert groups == [((0, 1), (0, 1)), ((1, 4), (1, 3)), ((4, 5), (3, 4)), ((5, 7), (4, 5)), ((7, 12), (5, 6))]
    assert aligned_positions(s, t) == [0, -1, -1, 2, 3, -1, 4, -1, -1, -1, -1, 5]
    assert [tuple(reversed(g)) for g in align_tokens(t, s)] == groups  # symmetric


def test_align_tokens_edge_cases():
    assert align_tokens([(0, 2), (2, 5)], [(0, 3), (3, 5)]) == [((0, 2), (0, 2))]  # n:m
    assert align_tokens([(0, 3), (3, 4)], [(0, 3)]) == [((0, 2), (0, 1))]  # trailing leftover
    assert align_tokens([(0, 0), (0, 3), (4, 7)], [(0, 3), (3, 7)]) == [((0, 2), (0, 1)), ((2, 3), (1, 2))]
    assert aligned_positions([(0, 0), (0, 3), (4, 7)], [(0, 3), (3, 7)]) == [-1, 0, 1]  # special token -> -1
    assert align_tokens([], []) == [] and align_tokens([(0, 1)], []) == [((0, 1), (0, 0))]


def test_trained_tokenizers_alignment_properties(tiny_pair):
    a, b = tiny_pair
    for text in [TEXT, "The farmer has 12 chickens and 7 rabbits: 12 * 4 = 48.\nAnswer  is 40 ü", "x"]:
        s, t = char_offsets(a, text), char_offsets(b, text)
        groups = align_tokens(s, t)
        assert groups[0][0][0] == 0 and groups[-1][0][1] == len(s) and groups[-1][1][1] == len(t)
        for (s0, s1), (t0, t1) in groups:  # contiguous, non-empty, same characters
            assert s1 > s0 and t1 > t0 and s[s1 - 1][1] == t[t1 - 1][1]
            assert text[s[s0][0] : s[s1 - 1][1]].strip() == text[t[t0][0] : t[t1 - 1][1]].strip()
        for i, j in enumerate(aligned_positions(s, t)):
            assert j == -1 or s[i][1] == t[j][1]


def test_normalized_vocab_space_markers(byte_level, metaspace, wordpiece):
    bl, ms, wp = normalized_vocab(byte_level), normalized_vocab(metaspace), normalized_vocab(wordpiece)
    assert bl[byte_level.convert_tokens_to_ids("Ġthe")] == b" the"
    assert bl[byte_level.convert_tokens_to_ids("Ċ")] == b"\n"
    assert ms[metaspace.convert_tokens_to_ids("▁the")] == b" the"
    assert ms[metaspace.convert_tokens_to_ids("<0x0A>")] == b"\n"
    assert wp[wordpiece.convert_tokens_to_ids("##ing")] == b"ing"
    assert wp[wordpiece.convert_tokens_to_ids("the")] == b" the"


def test_build_vocab_map_across_families(byte_level, metaspace, wordpiece, tiny_pair):
    vmap = build_vocab_map(byte_level, metaspace)
    pairs = set(zip(vmap.student_ids.tolist(), vmap.teacher_ids.tolist()))
    for s_tok, t_tok in [("Ġthe", "▁the"), ("Ġ", "▁"), ("ing", "ing"), ("Ċ", "<0x0A>"), ("a", "a")]:
        assert (byte_level.convert_tokens_to_ids(s_tok), metaspace.convert_tokens_to_ids(t_tok)) in pairs, s_tok
    wmap = build_vocab_map(byte_level, wordpiece)
    pairs = set(zip(wmap.student_ids.tolist(), wmap.teacher_ids.tolist()))
    assert (byte_level.convert_tokens_to_ids("ing"), wordpiece.convert_tokens_to_ids("##ing")) in pairs
    assert (byte_level.convert_tokens_to_ids("Ġthe"), wordpiece.convert_tokens_to_ids("the")) in pairs
    a, b = tiny_pair
    ab = build_vocab_map(a, b)
    assert len(ab) > 100 and ab.student_ids.max() < len(a) and ab.teacher_ids.max() < len(b)
    assert a.convert_ids_to_tokens(ab.student_ids.tolist()) == b.convert_ids_to_tokens(ab.teacher_ids.tolist())
    small = build_vocab_map(a, b, student_vocab_size=100)
    assert small.student_ids.max() < 100 and small.student_vocab_size == 100


def test_tokenizer_relation_hash_and_truncation(tiny_pair):
    from tiny_models import build_tiny_tokenizer

    a, b = tiny_pair
    a2 = build_tiny_tokenizer("a")
    assert tokenizer_relation(a, a2, 320, 320) == "same"
    assert tokenizer_relation(a, a2, 320, 384) == "same_padded"
    assert tokenizer_relation(a, b, 320, 480) == "different"
    with pytest.raises(ReasonkdError, match="logits"):
        tokenizer_relation(a, a2, 300, 320)
    assert tokenizer_hash(a) == tokenizer_hash(a2) != tokenizer_hash(b)
    assert len(tokenizer_hash(a)) == 64
    s, t = torch.zeros(1, 2, 320), torch.zeros(1, 2, 384)
    with pytest.warns(UserWarning, match="truncating"):
        s2, t2 = truncate_to_common_vocab(s, t)
    assert s2.shape == t2.shape == (1, 2, 320)


def test_check_token_ids_catches_id_mixing(byte_level, wordpiece, tiny_pair):
    s_ids = byte_level(TEXT)["input_ids"]
    t_ids = wordpiece(TEXT)["input_ids"]
    check_token_ids(s_ids, byte_level, "student", TEXT)  # right ids: fine
    check_token_ids(torch.tensor([s_ids + [-100]]), byte_level, "student")
    with pytest.raises(ReasonkdError, match="decode to .*fed to the student"):
        check_token_ids(t_ids, byte_level, "student", TEXT)  # teacher ids in the student vocab
    with pytest.raises(ReasonkdError, match="out of range"):
        check_token_ids(s_ids, wordpiece, "teacher")  # student ids exceed the teacher vocab
    a, b = tiny_pair
    text = "The farmer has 12 chickens and 7 rabbits."
    check_token_ids(b(text)["input_ids"], b, "teacher", text)
    with pytest.raises(ReasonkdError, match="fed to the student"):
        check_token_ids(b(text)["input_ids"], a, "student", text)
    with pytest.raises(ReasonkdError, match="fast tokenizer"):
        char_offsets(object(), TEXT)
