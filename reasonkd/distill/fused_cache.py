"""Several teachers' logit caches read as ONE top-k cache in the student's vocabulary (offline fusion).

    cache = open_fused_cache(recipe, examples, student_tok)   # recipe.teachers with logit_cache each
    entry = cache.get("gsm-12#0")   # .token_ids (student), .trace_start, .topk_ids (N, k) student ids,
                                    # .topk_logprobs (N, k) of the mixture, .row_mask (N,) rows with a teacher

Each teacher's cache was built alone (`reasonkd teacher logits --teacher A --teacher B`, one teacher in
memory at a time), so training holds no teacher and peak memory stays at one teacher + student. Per
example and per student trace row, every teacher's top-k row is found (same tokenizer: the same row;
another tokenizer: the teacher row at the character-aligned position, `crosstok.PairEncoder`), its ids
mapped into the student's vocabulary (`fusion.sparse_to_student`), and the rows mixed with the recipe's
weighting (`fusion.fuse_topk`; static / verification / confidence: reasonkd/distill/fusion.py). A remote
teacher's token-string cache (reasonkd.teacher.remote) is one teacher aligned by characters alone: the
cached strings give its token spans, `normalized_vocab` bytes map them to student ids. A teacher
without a row there (no cache entry, no aligned position) gets weight 0 on that row; a row no teacher
covers is left out of the logit terms (row_mask), as a missing cache entry is. The trainer then reads
it like a one-teacher cache of a same-tokenizer teacher (`losses.topk_logprobs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from reasonkd.distill import fusion as F
from reasonkd.distill.align import (
    aligned_positions,
    build_vocab_map,
    char_offsets,
    normalized_vocab,
    tokenizer_relation,
)
from reasonkd.distill.crosstok import PairEncoder, _vocab_size
from reasonkd.distill.losses.sparse import teacher_buckets
from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.models import load_tokenizer
from reasonkd.models.encoding import encode_example, tokenizer_hash
from reasonkd.models.logit_cache import LogitCache
from reasonkd.teacher.pool import TeacherSpec, load_verdicts

log = logging.getLogger(__name__)
_MISSING = object()


@dataclass
class FusedEntry:
    token_ids: torch.Tensor
    """(T,) student token ids of prompt + trace."""
    trace_start: int
    topk_ids: torch.Tensor
    """(N, k) student ids of the fused top-k, N = T - trace_start."""
    topk_logprobs: torch.Tensor
    """(N, k) log-probs of the mixture, descending."""
    row_mask: torch.Tensor
    """(N,) bool: rows where at least one teacher has a distribution."""


@dataclass
class _Teacher:
    name: str
    cache: LogitCache
    encoder: PairEncoder | None
    """None: same tokenizer as the student (rows line up)."""
    id_map: torch.Tensor | None
    by_strings: bool = False
    """A token-string cache (a remote teacher of unknown tokenizer): rows aligned by characters."""


class FusedLogitCache:
    """The LogitCache interface (k, path, get, check_tokenizer) over several teachers' caches."""

    def __init__(
        self,
        teachers: list[_Teacher],
        weights,
        weighting: str,
        k: int,
        student_tok,
        student_vocab: int,
        examples: dict[str, dict],
        max_length: int,
        verdicts: dict | None = None,
    ):
        self.teachers, self.weighting, self.k = teachers, weighting, k
        self.weights = F.static_weights(weights)
        self.student_tok, self.student_vocab, self.max_length = student_tok, student_vocab, max_length
        self.examples, self.verdicts = examples, verdicts or {}
        self.path = " + ".join(str(t.cache.path) for t in teachers)
        self._memo: dict[str, FusedEntry | None] = {}

    def check_tokenizer(self, tokenizer, who: str = "student") -> None:
        """Each teacher's cache was checked against that teacher's tokenizer; the fused ids are the student's."""

    def __contains__(self, example_id: str) -> bool:
        return any(example_id in t.cache for t in self.teachers)

    def _example_weights(self, example_id: str) -> torch.Tensor:
        """(T,) weights of this example before row masks: static, or zeroed for the wrong teachers."""
        if self.weighting != "verification":
            return self.weights
        verdict = self.verdicts.get(example_id.rsplit("#", 1)[0], {})
        correct = torch.tensor([[verdict.get(t.name, True) for t in self.teachers]])  # unknown: not wrong
        return F.verification_weights(self.weights, correct)[0]

    def _rows(self, t: _Teacher, ex: dict, s_ids: list[int], s_np: int, n: int):
        """(ids (n, K) student space, log-probs (n, K), valid (n,)) of teacher t at the student's trace rows."""
        entry = t.cache.get(ex["id"], default=None)
        k = t.cache.k
        ids, lp = torch.zeros((n, k), dtype=torch.long), torch.full((n, k), float("-inf"))
        valid = torch.zeros(n, dtype=torch.bool)
        if entry is None:
            return ids, lp, valid
        if t.by_strings:  # token strings: the teacher row after the trace character where student token j - 1 ends
            src = _string_rows(self.student_tok, ex["trace"], t.cache.strings, entry.token_ids.tolist(), n)
        elif t.encoder is None:  # same tokenizer: row j is the same trace token
            if entry.token_ids[entry.trace_start :].tolist()[:n] != s_ids[s_np : s_np + n][: len(entry.topk_ids)]:
                raise ReasonkdError(
                    f"logit cache {t.cache.path}: example {ex['id']!r} holds other trace tokens "
                    "than the student's; rebuild it from these traces"
                )
            src = torch.arange(n)
        else:  # student output position s_np - 1 + j -> the aligned teacher position -> its cache row
            enc = t.encoder.encode(ex["prompt"], ex["trace"], ex.get("system"), id=ex["id"])
            if enc.teacher_input_ids[: len(entry.token_ids)] != entry.token_ids.tolist()[: len(enc.teacher_input_ids)]:
                raise ReasonkdError(
                    f"logit cache {t.cache.path}: example {ex['id']!r} was cached with other "
                    f"tokens than {t.name}'s encoding of this trace; rebuild it from these traces"
                )
            pos = torch.tensor(
                [enc.teacher_index[s_np - 1 + j] if s_np - 1 + j < len(enc.teacher_index) else -1 for j in range(n)]
            )
            src = torch.where(pos >= 0, pos - (entry.trace_start - 1), torch.full_like(pos, -1))
        ok = (src >= 0) & (src < entry.topk_ids.shape[0])
        if ok.any():
            m_ids, m_lp = F.sparse_to_student(entry.topk_ids[src[ok]], entry.topk_logprobs[src[ok]].float(), t.id_map)
            ids[ok], lp[ok], valid[ok] = m_ids, m_lp, True
        return ids, lp, valid

    def get(self, example_id: str, default=_MISSING) -> FusedEntry:
        if example_id not in self._memo:
            self._memo[example_id] = self._fuse(example_id)
        entry = self._memo[example_id]
        if entry is None:
            if default is not _MISSING:
                return default
            raise ReasonkdError(f"no teacher's logit cache ({self.path}) has example {example_id!r}")
        return entry

    def _fuse(self, example_id: str) -> FusedEntry | None:
        ex = self.examples.get(example_id)
        if ex is None or example_id not in self:
            return None
        s_ids, s_np = encode_example(self.student_tok, ex["prompt"], ex["trace"], ex.get("system"), self.max_length)
        n = len(s_ids) - s_np
        parts = [self._rows(t, ex, s_ids, s_np, n) for t in self.teachers]
        valid = torch.stack([p[2] for p in parts], dim=-1)  # (n, T)
        w = self._example_weights(example_id).expand(n, -1) * valid
        if self.weighting == "confidence":
            logps = [teacher_buckets(torch.where(p[2][:, None], p[1], torch.zeros_like(p[1]))) for p in parts]
            w = F.confidence_weights(logps, self.weights).double() * valid
        row_mask = w.sum(-1) > 0
        w = torch.where(row_mask[:, None], w / w.sum(-1, keepdim=True).clamp_min(1e-300), self.weights.expand(n, -1))
        ids, lp = F.fuse_topk([(p[0], p[1]) for p in parts], w, self.student_vocab, self.k)
        return FusedEntry(torch.tensor(s_ids, dtype=torch.long), s_np, ids, lp, row_mask)


def _string_rows(student_tok, trace: str, strings: list[bytes], teacher_tokens: list[int], n: int) -> torch.Tensor:
    """(n,) teacher cache row of each student trace row, -1 where none: row 0 predicts the first trace token on
    both sides; student row j + 1 reads the text up to where student token j ends, so it pairs with the teacher
    row after the teacher token ending at the same character (align.aligned_positions)."""
    raw, t_off = b"", []
    for i in teacher_tokens:  # character spans of the teacher's tokens (a byte piece ends where its char is whole)
        start = len(raw.decode("utf-8", errors="ignore"))
        raw += strings[i]
        t_off.append((start, len(raw.decode("utf-8", errors="ignore"))))
    pos = aligned_positions(char_offsets(student_tok, trace), t_off)
    src = torch.full((n,), -1, dtype=torch.long)
    if n:
        src[0] = 0
    for j, tj in enumerate(pos[: n - 1]):
        if tj >= 0:
            src[j + 1] = tj + 1
    return src


def _string_id_map(student_tok, strings: list[bytes], student_vocab: int) -> torch.Tensor:
    """(len(strings),) the student id of each cached token string (same normalisation as align.build_vocab_map:
    the smallest student id with those bytes), -1 where the student has none."""
    by_bytes: dict[bytes, int] = {}
    for idx, key in sorted(normalized_vocab(student_tok).items()):
        if idx < student_vocab:
            by_bytes.setdefault(key, idx)
    return torch.tensor([by_bytes.get(b, -1) for b in strings] or [-1], dtype=torch.long)


def open_fused_cache(recipe, examples: list[dict], student_tok) -> FusedLogitCache:
    """The fused cache of recipe.teachers (each with a logit_cache), weighted by recipe.fusion."""
    caches = []
    for i, spec in enumerate(recipe.teachers):  # every cache first: a missing one fails before any tokenizer loads
        try:
            caches.append(LogitCache(spec.logit_cache))
        except ReasonkdError as e:  # the reader names data.logit_cache; here it is this teacher's key
            raise ReasonkdError(f"teachers.{i}.logit_cache ({spec.model}): {e}") from None
    verdicts = None
    if recipe.fusion.weighting == "verification":
        if not recipe.fusion.verdicts:
            raise ConfigError(
                "fusion.verdicts is required with fusion.weighting=verification: the --out folder of "
                "`reasonkd teacher generate --teacher A --teacher B` (its pool.json)"
            )
        verdicts = load_verdicts(recipe.fusion.verdicts)
    names = [f"teachers.{i} ({spec.model})" for i, spec in enumerate(recipe.teachers)]
    return _fused(recipe, examples, student_tok, recipe.teachers, caches, names, recipe.fusion.weighting, verdicts)


def one_teacher_cache(recipe, examples: list[dict], student_tok) -> LogitCache | FusedLogitCache:
    """data.logit_cache as the trainer reads it: as is when it holds the student's tokenizer ids; a cache of
    another tokenizer (a cross-tokenizer teacher's) is mapped into the student's vocabulary at the
    character-aligned rows, as the one teacher of a fused cache. Its teacher is recipe.teacher, else the
    one the cache names; the cache is checked against that teacher's tokenizer."""
    cache = LogitCache(recipe.data.logit_cache)
    if cache.by_strings:  # a remote teacher's token strings: mapped into the student's vocabulary by characters
        s_vocab = _vocab_size(recipe.student, student_tok)
        log.info(
            "data.logit_cache holds token strings of %s: aligned to the student by characters",
            cache.meta.get("teacher"),
        )
        teacher = _Teacher(
            str(cache.meta.get("teacher")),
            cache,
            None,
            _string_id_map(student_tok, cache.strings, s_vocab),
            by_strings=True,
        )
        return FusedLogitCache(
            [teacher],
            [1.0],
            "static",
            recipe.fusion.k,
            student_tok,
            s_vocab,
            {ex["id"]: ex for ex in examples},
            recipe.max_length,
        )
    if cache.tokenizer_hash == tokenizer_hash(student_tok):
        return cache
    teacher = recipe.teacher or cache.meta.get("teacher")
    if not teacher:
        cache.check_tokenizer(student_tok)  # no teacher to map from: raises the refusal that names the fix
    log.info(
        "data.logit_cache holds %s's tokenizer ids, not the student's: mapped into the student's "
        "vocabulary at aligned rows",
        teacher,
    )
    spec = TeacherSpec(model=teacher, logit_cache=recipe.data.logit_cache)
    return _fused(recipe, examples, student_tok, [spec], [cache], [f"teacher ({teacher})"], "static", None)


def _fused(recipe, examples, student_tok, specs, caches, names, weighting: str, verdicts) -> FusedLogitCache:
    """FusedLogitCache over opened caches: each checked against its teacher's tokenizer, mapped when it differs."""
    s_vocab = _vocab_size(recipe.student, student_tok)
    teachers = []
    for spec, cache, name in zip(specs, caches, names):
        t_tok = load_tokenizer(spec.model)
        cache.check_tokenizer(t_tok, who=name)
        t_vocab = _vocab_size(spec.model, t_tok)
        encoder = id_map = None
        if tokenizer_relation(student_tok, t_tok, s_vocab, t_vocab) == "different":
            encoder = PairEncoder(
                student_tok, t_tok, s_vocab, t_vocab, max_length=cache.meta.get("max_length") or recipe.max_length
            )
            id_map = F.id_map_from(build_vocab_map(student_tok, t_tok, s_vocab, t_vocab), t_vocab)
        teachers.append(_Teacher(spec.model, cache, encoder, id_map))
        log.info(
            "fusion: teacher %s (weight %g), cache %s, %s tokenizer",
            spec.model,
            spec.weight,
            spec.logit_cache,
            "same" if encoder is None else "another",
        )
    return FusedLogitCache(
        teachers,
        [t.weight for t in specs],
        weighting,
        recipe.fusion.k,
        student_tok,
        s_vocab,
        {ex["id"]: ex for ex in examples},
        recipe.max_length,
        verdicts,
    )
