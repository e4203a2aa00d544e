"""Cross-tokenizer alignment: which student tokens correspond to which teacher tokens.

A teacher such as DeepSeek-R1 (vocab 129,280) and a student such as Qwen2
(vocab 152,064) tokenise text differently, so KD across them needs (1) positions where
both models sit at the same character boundary and (2) a map between their
vocabularies. Everything here works from character offsets of fast tokenizers.

    s_off = char_offsets(student_tok, text); t_off = char_offsets(teacher_tok, text)
    groups = align_tokens(s_off, t_off)        # [((s0, s1), (t0, t1)), ...] same characters
    pos = aligned_positions(s_off, t_off)       # per student token: teacher index or -1
    vmap = build_vocab_map(student_tok, teacher_tok)  # shared token strings -> losses.shared_logprobs
    tokenizer_relation(student_tok, teacher_tok, 151936, 152064)  # "same" / "same_padded" / "different"
    check_token_ids(ids, student_tok, "student", text)  # catches teacher ids fed to the student

Offsets are (start, end) character indices into `text`, end exclusive.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
import warnings
from dataclasses import dataclass

import torch

from reasonkd.errors import ReasonkdError

Span = tuple[int, int]


# ---- character offsets and token alignment -----------------------------------


def char_offsets(tokenizer, text: str, add_special_tokens: bool = False) -> list[Span]:
    """(start, end) character span of each token of `text`, from a fast tokenizer's offset mapping."""
    if not getattr(tokenizer, "is_fast", False):
        raise ReasonkdError(
            f"{type(tokenizer).__name__} is not a fast tokenizer; cross-tokenizer alignment "
            "needs offset mappings (load it with use_fast=True)"
        )
    enc = tokenizer(text, add_special_tokens=add_special_tokens, return_offsets_mapping=True)
    return [(int(a), int(b)) for a, b in enc["offset_mapping"]]


def _extend_same_end(offsets: list[Span], i: int) -> int:
    """Advance i past following tokens that end at the same character (pieces of one character,
    e.g. the byte tokens of an emoji): the boundary is after the last of them."""
    while i + 1 < len(offsets) and offsets[i + 1][1] == offsets[i][1]:
        i += 1
    return i


def align_tokens(student_offsets: list[Span], teacher_offsets: list[Span]) -> list[tuple[Span, Span]]:
    """Group both token sequences into pairs of spans covering the same characters.

    Returns [((s_start, s_stop), (t_start, t_stop)), ...], half-open token index ranges, in order,
    partitioning both sequences. Greedy two-pointer merge on END offsets: advance whichever side
    ends earlier until both end at the same character, then close the group, so multi-token words
    give 1:n, n:1 or n:m groups. Ends (not starts) are compared because tokenizers disagree on
    whether a leading space belongs to a token. Tokens after the last common end (e.g. a trailing
    space only one side keeps) are merged into the last group.
    """
    ns, nt = len(student_offsets), len(teacher_offsets)
    if ns == 0 or nt == 0:
        return [((0, ns), (0, nt))] if ns + nt else []
    groups: list[tuple[Span, Span]] = []
    i = j = gi = gj = 0
    while i < ns and j < nt:
        ei, ej = student_offsets[i][1], teacher_offsets[j][1]
        if ei == ej:
            i, j = _extend_same_end(student_offsets, i) + 1, _extend_same_end(teacher_offsets, j) + 1
            groups.append(((gi, i), (gj, j)))
            gi, gj = i, j
        elif ei < ej:
            i += 1
        else:
            j += 1
    if gi < ns or gj < nt:  # leftovers: no common boundary after the last group
        if groups:
            (s0, _), (t0, _) = groups.pop()
            groups.append(((s0, ns), (t0, nt)))
        else:
            groups.append(((0, ns), (0, nt)))
    return groups


def _boundary_ends(offsets: list[Span]) -> dict[int, int]:
    """end char -> index of the last non-empty token ending there (a real token boundary)."""
    out = {}
    for k, (start, end) in enumerate(offsets):
        if end > start and (k + 1 == len(offsets) or offsets[k + 1][1] != end):
            out[end] = k
    return out


def aligned_positions(student_offsets: list[Span], teacher_offsets: list[Span]) -> list[int]:
    """For each student token, the index of the teacher token whose span ENDS at the same character, or -1.

    These are the positions where both tokenizers have a token boundary at the same character, so
    the two models have read exactly the same text: hidden-state and logit losses compare there.
    Only the last of several tokens ending at the same character (byte pieces of one character)
    counts as a boundary; empty spans (special tokens) map to -1.
    """
    s_ends, t_ends = _boundary_ends(student_offsets), _boundary_ends(teacher_offsets)
    out = [-1] * len(student_offsets)
    for end, i in s_ends.items():
        out[i] = t_ends.get(end, -1)
    return out


# ---- vocabulary map -------------------------------------------------------------


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table used by byte-level BPE vocabularies."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


def _space_scheme(tokenizer) -> str:
    """How the vocabulary writes spaces: 'byte_level' (Ġ), 'metaspace' (▁), 'wordpiece' (##) or 'plain'."""
    spec = json.loads(tokenizer.backend_tokenizer.to_str())
    parts = {k: json.dumps(spec.get(k)) for k in ("normalizer", "pre_tokenizer", "decoder")}
    if '"ByteLevel"' in parts["pre_tokenizer"] or '"ByteLevel"' in parts["decoder"]:
        return "byte_level"
    if "\u2581" in json.dumps(parts, ensure_ascii=False) or '"Metaspace"' in parts["pre_tokenizer"]:
        return "metaspace"
    if (spec.get("model") or {}).get("type") == "WordPiece":
        return "wordpiece"
    return "plain"


def normalized_vocab(tokenizer) -> dict[int, bytes]:
    """id -> the token's text as UTF-8 bytes with the space marker made a real space.

    byte-level 'Ġthe' -> b' the' (every char mapped back to its byte); sentencepiece '▁the' -> b' the',
    '<0x0A>' -> b'\\n'; WordPiece '##ing' -> b'ing', 'the' -> b' the' (word-initial pieces usually
    follow a space; approximate). Added/special tokens keep their literal content.
    """
    scheme = _space_scheme(tokenizer)
    added = set(tokenizer.get_added_vocab())
    out = {}
    for token, idx in tokenizer.get_vocab().items():
        if token in added:
            key = token.encode("utf-8")
        elif scheme == "byte_level" and all(c in _BYTE_DECODER for c in token):
            key = bytes(_BYTE_DECODER[c] for c in token)
        elif scheme == "metaspace":
            m = _BYTE_FALLBACK.match(token)
            key = bytes([int(m.group(1), 16)]) if m else token.replace("\u2581", " ").encode("utf-8")
        elif scheme == "wordpiece":
            key = token[2:].encode("utf-8") if token.startswith("##") else (" " + token).encode("utf-8")
        else:
            key = token.encode("utf-8")
        out[int(idx)] = key
    return out


@dataclass
class VocabMap:
    """Shared tokens of two vocabularies: student_ids[m] and teacher_ids[m] are the same string.

    student_ids, teacher_ids: (M,) long, sorted by student id; *_vocab_size: the logits widths the
    ids were checked against.
    """

    student_ids: torch.Tensor
    teacher_ids: torch.Tensor
    student_vocab_size: int
    teacher_vocab_size: int

    def __len__(self) -> int:
        return int(self.student_ids.numel())


def build_vocab_map(
    student_tok, teacher_tok, student_vocab_size: int | None = None, teacher_vocab_size: int | None = None
) -> VocabMap:
    """Map tokens whose normalised strings (see `normalized_vocab`) are identical.

    Ids at or above the given vocab sizes (default len(tokenizer)) are left out. When several ids
    of one side share a string, the smallest id is used.
    """
    s_size = student_vocab_size or len(student_tok)
    t_size = teacher_vocab_size or len(teacher_tok)
    t_by_key: dict[bytes, int] = {}
    for idx, key in sorted(normalized_vocab(teacher_tok).items()):
        if idx < t_size:
            t_by_key.setdefault(key, idx)
    pairs, seen = [], set()
    for idx, key in sorted(normalized_vocab(student_tok).items()):
        if idx < s_size and key in t_by_key and key not in seen:
            seen.add(key)
            pairs.append((idx, t_by_key[key]))
    if not pairs:
        raise ReasonkdError(
            "the student and teacher vocabularies share no token strings; use options.cross: uld instead"
        )
    ids = torch.tensor(pairs, dtype=torch.long)
    return VocabMap(ids[:, 0].contiguous(), ids[:, 1].contiguous(), s_size, t_size)


# ---- tokenizer identity ------------------------------------------------------------


def tokenizer_hash(tokenizer) -> str:
    """sha256 over the sorted vocabulary items and the special tokens (stable across processes)."""
    payload = {"vocab": sorted(tokenizer.get_vocab().items()), "special": sorted(set(tokenizer.all_special_tokens))}
    return hashlib.sha256(json.dumps(payload, ensure_ascii=False).encode("utf-8")).hexdigest()


def tokenizer_relation(student_tok, teacher_tok, student_vocab_size: int, teacher_vocab_size: int) -> str:
    """ "same" (identical vocab dict and logits sizes), "same_padded" (identical vocab, embedding
    sizes differ, e.g. 151,936 vs 152,064: compare logits[..., :min] via truncate_to_common_vocab)
    or "different" (aligned positions + the cross-vocabulary forms of losses.cross_vocab)."""
    if student_tok.get_vocab() != teacher_tok.get_vocab():
        return "different"
    if student_vocab_size == teacher_vocab_size:
        return "same"
    if len(student_tok) > min(student_vocab_size, teacher_vocab_size):
        raise ReasonkdError(
            f"the shared tokenizer has {len(student_tok)} tokens but one model's logits have "
            f"only {min(student_vocab_size, teacher_vocab_size)}; check the checkpoints"
        )
    return "same_padded"


def truncate_to_common_vocab(student_logits: torch.Tensor, teacher_logits: torch.Tensor):
    """Slice both (B, L, V*) logits to the smaller V (same tokenizer, padded embeddings); warns.

    The rows cut are padding ids no tokenizer emits; dropping them renormalises the softmax over
    real tokens only.
    """
    vs, vt = student_logits.shape[-1], teacher_logits.shape[-1]
    if vs == vt:
        return student_logits, teacher_logits
    v = min(vs, vt)
    warnings.warn(
        f"student vocab {vs} != teacher vocab {vt} with the same tokenizer: truncating logits to {v}", stacklevel=2
    )
    return student_logits[..., :v], teacher_logits[..., :v]


# ---- guard against mixing the two models' ids -----------------------------------------


def _loose(text: str) -> str:
    """Compare texts ignoring whitespace, case and Unicode form: tokenizers restore spaces differently."""
    return "".join(unicodedata.normalize("NFKC", text).casefold().split())


def check_token_ids(ids, tokenizer, who: str, text: str | None = None, vocab_size: int | None = None) -> None:
    """Raise ReasonkdError if `ids` are not `who`'s ids: out of range, or (with `text`) decode to other text.

    ids: list or tensor of token ids (-100 entries ignored); vocab_size: the model's logits width
    (default len(tokenizer)). The text check compares decode(ids) with decode(encode(text)) ignoring
    whitespace and case, so it catches ids from the other tokenizer (the classic id-mixing bug).
    """
    flat = [int(x) for x in (ids.reshape(-1).tolist() if torch.is_tensor(ids) else _flatten(ids)) if int(x) != -100]
    size = vocab_size or len(tokenizer)
    bad = [(k, x) for k, x in enumerate(flat) if not 0 <= x < size]
    if bad:
        k, x = bad[0]
        raise ReasonkdError(
            f"{who} token ids out of range for the {who} vocabulary (size {size}): id {x} at "
            f"index {k} ({len(bad)} bad in all); were the other model's ids fed to the {who}?"
        )
    if text is not None:
        got = tokenizer.decode(flat, skip_special_tokens=True)
        expected = tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"], skip_special_tokens=True)
        if _loose(got) != _loose(expected):
            raise ReasonkdError(
                f"{who} token ids decode to {got[:80]!r}, not the expected text {expected[:80]!r}; "
                f"were the other model's ids fed to the {who}?"
            )


def _flatten(ids):
    for x in ids:
        if isinstance(x, (list, tuple)):
            yield from _flatten(x)
        else:
            yield x
