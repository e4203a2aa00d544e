"""Top-k teacher logit cache: the teacher's soft targets along each trace, computed once, read every epoch.

The format and its reader (offline distillation) live here, its writer (`reasonkd
teacher logits`) in reasonkd.models.logit_writer, below both the teacher and the distiller.

    write_logit_cache(teacher, teacher_tok, examples, "runs/logits", k=20, batch_size=8)   # logit_writer
    cache = LogitCache("runs/logits"); cache.check_tokenizer(student_tok)
    entry = cache.get("gsm-12#0")   # .token_ids (T,), .trace_start, .topk_ids (N, K), .topk_logprobs (N, K)

Offline distillation reads these instead of running the teacher, so training
holds no teacher in memory and skips its forward pass. Format (docs/distill.md):

    DIR/meta.json      {"format": "reasonkd-logit-cache", "version": 1, "teacher", "tokenizer_hash",
                        "vocab_size", "k", "temperature": 1.0, "dtype", "max_length", "n_examples",
                        "n_rows", "shards": [...]}   -- written last: its presence marks a finished cache
    DIR/index.json     {example_id: [shard number, position in shard]}
    DIR/run.json       the writer's settings (checked when an interrupted write resumes)
    DIR/shard-NNNNN.safetensors, tensors of the shard's examples concatenated:
        token_ids      int32 (sum T_i,)      the teacher-tokenised prompt + trace + end of turn
        token_offsets  int64 (n + 1,)        example i is token_ids[off[i]:off[i+1]]
        trace_start    int64 (n,)            index of the first trace token within the example
        topk_ids       int32 (sum N_i, K)    N_i = T_i - trace_start_i rows per example
        topk_logprobs  float16|float32 (sum N_i, K), sorted descending
        row_offsets    int64 (n + 1,)
      and metadata {"ids": JSON list of the example ids}.

Row j of an example is the teacher's distribution (temperature 1, log-probs of
the FULL softmax, so they sum to <= 1) at the position that predicts trace
token j, i.e. token_ids[trace_start + j]. Sequences are encoded exactly as the
trainer encodes them (`reasonkd.models.encoding.encode_example`), so with the same
tokenizer cache rows line up with the student's trace tokens. A student whose
tokenizer hash differs is refused (`check_tokenizer`).

Writing is resumable: shards are written to a temp file and renamed; a rerun
skips the examples already in committed shards.

Remote teachers (reasonkd.teacher.remote) write the same format through
`logit_writer.open_cache_dir` + `write_scored`. Where the endpoint's tokenizer is unknown,
the cache holds token STRINGS: meta "tokens": "strings", each shard's metadata
"strings" lists its tokens' UTF-8 bytes (hex) and its ids index that list;
token_ids are then the trace's own tokens only (trace_start 0, no prompt), and
the reader maps every shard into one table, `LogitCache.strings`. The
distiller aligns such a cache to any student by characters
(reasonkd.distill.fused_cache). A cache may hold fewer rows than trace tokens
(an API does not score the end-of-turn token it stops on): readers use the rows
there are. Log-probs are stored as the endpoint gave them, never renormalised,
so the tail mass 1 - sum(top-k) stays exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import tokenizer_hash
from reasonkd.utils.io import read_json

FORMAT, VERSION = "reasonkd-logit-cache", 1
_MISSING = object()


@dataclass
class CacheEntry:
    token_ids: torch.Tensor
    """(T,) int32 teacher token ids of prompt + trace."""
    trace_start: int
    """Index of the first trace token in token_ids."""
    topk_ids: torch.Tensor
    """(N, K) int32, N = T - trace_start: row j is the distribution of token trace_start + j."""
    topk_logprobs: torch.Tensor
    """(N, K) float16/float32 log-probs at T = 1, descending."""


class LogitCache:
    """Read a cache written by `logit_writer.write_logit_cache` (memory-mapped; only the rows asked for are read)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            hint = (
                " (an interrupted write: rerun `reasonkd teacher logits` with the same --out to finish it)"
                if (self.path / "run.json").is_file()
                else ""
            )
            raise ReasonkdError(f"data.logit_cache {self.path}: not a finished logit cache, no meta.json{hint}")
        self.meta = read_json(meta_file, "logit-cache meta.json")  # binary / truncated / empty: one clear error
        if not isinstance(self.meta, dict):
            raise ReasonkdError(f"{meta_file}: expected a JSON object; re-create the cache (reasonkd teacher logits)")
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise ReasonkdError(
                f"{meta_file}: format {self.meta.get('format')!r} version {self.meta.get('version')!r}"
                f" is not {FORMAT!r} version {VERSION}"
            )
        self.index = read_json(self.path / "index.json", "logit-cache index.json")
        if not isinstance(self.index, dict):
            raise ReasonkdError(f"{self.path / 'index.json'}: expected a JSON object; re-create the cache")
        self.k = int(self.meta["k"])
        self._shards: dict[int, tuple] = {}
        self.strings: list[bytes] | None = None
        """Token-string caches (meta "tokens": "strings"): the token of each id, as UTF-8 bytes."""
        self._local: dict[int, torch.Tensor] = {}
        if self.meta.get("tokens") == "strings":
            self._read_string_tables()

    @property
    def by_strings(self) -> bool:
        """True when ids name token strings (`self.strings`), not a tokenizer's ids."""
        return self.strings is not None

    def _read_string_tables(self) -> None:
        """One table over the shards' own string tables; each shard's ids are mapped into it on read."""
        table: dict[bytes, int] = {}
        for i, name in enumerate(self.meta["shards"]):
            with safe_open(str(self.path / name), framework="pt") as f:
                local = [bytes.fromhex(h) for h in json.loads((f.metadata() or {}).get("strings", "[]"))]
            self._local[i] = torch.tensor([table.setdefault(b, len(table)) for b in local] or [0], dtype=torch.long)
        self.strings = list(table)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, example_id: str) -> bool:
        return self._key(example_id) is not None

    @property
    def tokenizer_hash(self) -> str:
        return self.meta["tokenizer_hash"]

    def check_tokenizer(self, tokenizer, who: str = "student") -> None:
        """Refuse a tokenizer other than the teacher's: cached ids would mean other tokens."""
        mine = tokenizer_hash(tokenizer)
        if mine != self.tokenizer_hash:
            raise ReasonkdError(
                f"logit cache {self.path} was made with the tokenizer of {self.meta.get('teacher')!r} "
                f"(hash {self.tokenizer_hash[:12]}), but the {who}'s tokenizer differs (hash {mine[:12]}): "
                "top-k ids would name other tokens. Use a student with the teacher's tokenizer, or drop "
                "data.logit_cache and distil online"
            )

    def _key(self, example_id: str) -> str | None:
        # `reasonkd teacher logits` names entries id#sample_idx; traces without sample_idx are #0
        for key in (example_id, f"{example_id}#0"):
            if key in self.index:
                return key
        return None

    def _shard(self, i: int):
        if i not in self._shards:
            shard = self.path / self.meta["shards"][i]
            try:
                f = safe_open(str(shard), framework="pt")
                self._shards[i] = (
                    f,
                    f.get_tensor("token_offsets"),
                    f.get_tensor("row_offsets"),
                    f.get_tensor("trace_start"),
                )
            except Exception as e:  # safetensors raises its own types for a cut or foreign file
                raise ReasonkdError(
                    f"{shard}: unreadable logit-cache shard ({type(e).__name__}: {e}); "
                    "re-create the cache with `reasonkd teacher logits`"
                ) from None
        return self._shards[i]

    def get(self, example_id: str, default=_MISSING) -> CacheEntry:
        """The entry of `example_id` (or `default` when given and the id is not cached)."""
        key = self._key(str(example_id))
        if key is None:
            if default is not _MISSING:
                return default
            raise ReasonkdError(f"logit cache {self.path} has no entry for example {example_id!r}")
        shard, pos = self.index[key]
        f, tok_off, row_off, starts = self._shard(shard)
        t0, t1 = int(tok_off[pos]), int(tok_off[pos + 1])
        r0, r1 = int(row_off[pos]), int(row_off[pos + 1])
        token_ids, topk_ids = f.get_slice("token_ids")[t0:t1], f.get_slice("topk_ids")[r0:r1]
        if shard in self._local:  # token strings: shard-local ids -> this cache's table (self.strings)
            token_ids, topk_ids = self._local[shard][token_ids.long()], self._local[shard][topk_ids.long()]
        return CacheEntry(
            token_ids=token_ids,
            trace_start=int(starts[pos]),
            topk_ids=topk_ids,
            topk_logprobs=f.get_slice("topk_logprobs")[r0:r1],
        )
