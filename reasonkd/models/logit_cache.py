"""Top-k teacher logit cache: the teacher's soft targets along each trace, computed once, read every epoch.

The format, its writer (`reasonkd teacher logits`) and its reader (offline
distillation) live together here, below both the teacher and the distiller.

    write_logit_cache(teacher, teacher_tok, examples, "runs/logits", k=20, batch_size=8)   # runs the teacher
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
`open_cache_dir` + `write_scored`. Where the endpoint's tokenizer is unknown,
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
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import encode_example, tokenizer_hash
from reasonkd.utils.io import read_json, write_json

log = logging.getLogger(__name__)
FORMAT, VERSION = "reasonkd-logit-cache", 1
_MISSING = object()
_DTYPES = {"float16": torch.float16, "float32": torch.float32}


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


def _shard_name(i: int) -> str:
    return f"shard-{i:05d}.safetensors"


def _shard_ids(path: Path) -> list[str]:
    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {}).get("ids", "[]"))


def _intern_strings(records: list[dict]) -> list[bytes]:
    """Token-string records ("token_strings", "topk_strings": bytes) -> ids into one shard-local table."""
    table: dict[bytes, int] = {}

    def ids(strings):
        return [table.setdefault(b, len(table)) for b in strings]

    for r in records:
        r["token_ids"] = torch.tensor(ids(r.pop("token_strings")), dtype=torch.int32)
        rows = [ids(row) for row in r.pop("topk_strings")]
        r["topk_ids"] = torch.tensor(rows, dtype=torch.int32).reshape(len(rows), -1)
    return list(table)


def _save_shard(path: Path, records: list[dict], dtype: torch.dtype) -> None:
    """Write one shard atomically (temp file + rename)."""
    metadata = {}
    if records and "token_strings" in records[0]:  # token strings: the shard names its own table of them
        metadata["strings"] = json.dumps([b.hex() for b in _intern_strings(records)])

    def offsets(lengths):
        return torch.tensor([0, *lengths], dtype=torch.long).cumsum(0)

    tensors = {
        "token_ids": torch.cat([r["token_ids"] for r in records]).to(torch.int32),
        "token_offsets": offsets([len(r["token_ids"]) for r in records]),
        "trace_start": torch.tensor([r["trace_start"] for r in records], dtype=torch.long),
        "topk_ids": torch.cat([r["topk_ids"] for r in records]).to(torch.int32).contiguous(),
        "topk_logprobs": torch.cat([r["topk_logprobs"] for r in records]).to(dtype).contiguous(),
        "row_offsets": offsets([r["topk_ids"].shape[0] for r in records]),
    }
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"ids": json.dumps([r["id"] for r in records]), **metadata})
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@torch.inference_mode()
def _score_batch(model, batch: list[tuple[str, list[int], int]], pad_id: int, k: int) -> list[dict]:
    """Teacher top-k log-probs at the positions predicting each trace token of a batch."""
    width = max(len(ids) for _, ids, _ in batch)
    device = next(model.parameters()).device
    input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    mask = torch.zeros_like(input_ids)
    for r, (_, ids, _) in enumerate(batch):
        input_ids[r, :len(ids)] = torch.tensor(ids)
        mask[r, :len(ids)] = 1
    hidden = model.get_decoder()(input_ids=input_ids.to(device), attention_mask=mask.to(device),
                                 use_cache=False).last_hidden_state
    lm_head = model.get_output_embeddings()
    out = []
    for r, (eid, ids, start) in enumerate(batch):
        # only rows that predict trace tokens: (B, L, V) logits would dominate memory at V ~ 150k
        rows = hidden[r, start - 1:len(ids) - 1]
        logp = torch.log_softmax(lm_head(rows).float(), dim=-1)
        top = logp.topk(min(k, logp.shape[-1]), dim=-1)
        out.append({"id": eid, "token_ids": torch.tensor(ids, dtype=torch.int32), "trace_start": start,
                    "topk_ids": top.indices.cpu(), "topk_logprobs": top.values.cpu()})
    return out


def write_logit_cache(model, tokenizer, examples: list[dict], out_dir: str | Path, k: int = 20,
                      batch_size: int = 8, *, max_length: int | None = None, dtype: str = "float16",
                      shard_size: int = 256, teacher_id: str | None = None, progress: bool = True) -> Path:
    """Run the teacher over `examples` ({"id", "prompt", "trace", "system"?}) and write the cache.

    model: the teacher (eval mode, any dtype/device); tokenizer: its tokenizer. Each example is
    encoded like the trainer does (chat prompt + trace + end of turn, cut at max_length), and the
    top-k log-probs of every trace position are stored. Resumes an interrupted write with the same
    settings; returns out_dir.
    """
    if k < 1:
        raise ReasonkdError(f"k must be >= 1, got {k}")
    teacher_id = teacher_id or str(getattr(getattr(model, "reasonkd_source", None), "alias", None)
                                   or getattr(model.config, "_name_or_path", "") or "teacher")
    settings = {"teacher": teacher_id, "tokenizer_hash": tokenizer_hash(tokenizer), "k": int(k), "dtype": dtype,
                "max_length": max_length}
    done = open_cache_dir(out_dir, settings)
    todo = encode_todo(tokenizer, examples, done, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return write_scored(out_dir, settings, todo, lambda batch: _score_batch(model, batch, pad_id, k),
                        model.get_output_embeddings().weight.shape[0], batch_size=batch_size,
                        shard_size=shard_size, progress=progress)


def open_cache_dir(out_dir: str | Path, settings: dict) -> set[str]:
    """Start or resume a cache folder written with `settings` (teacher, tokenizer_hash, k, dtype, ...):
    refuses one written with other settings; returns the example ids already in committed shards."""
    if settings.get("dtype") not in _DTYPES:
        raise ReasonkdError(f"dtype must be float16 or float32, got {settings.get('dtype')!r}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    if run_file.is_file():
        old = json.loads(run_file.read_text())
        diff = sorted(key for key in settings if old.get(key) != settings[key])
        if diff:
            raise ReasonkdError(f"{out} holds a logit cache written with other {', '.join(diff)} "
                                f"({', '.join(f'{d}={old.get(d)!r}' for d in diff)}); use another output folder")
    else:
        write_json(run_file, settings)
    for tmp in out.glob(".shard-*.tmp"):  # a write killed mid-shard
        tmp.unlink(missing_ok=True)
    return {eid for s in sorted(out.glob("shard-*.safetensors")) for eid in _shard_ids(s)}


def encode_todo(tokenizer, examples: list[dict], done: set[str], max_length: int | None) -> list[tuple]:
    """(id, token ids, trace start) of the examples not yet cached, encoded as the trainer encodes them,
    longest first (similar lengths per batch: little padding)."""
    ids = [str(ex["id"]) for ex in examples]
    if len(set(ids)) != len(ids):
        raise ReasonkdError("logit cache: example ids must be unique")
    todo = []
    for ex in examples:
        if str(ex["id"]) in done:
            continue
        token_ids, start = encode_example(tokenizer, ex["prompt"], ex["trace"], ex.get("system"), max_length)
        if len(token_ids) > start:
            todo.append((str(ex["id"]), token_ids, start))
        else:
            log.warning("logit cache: example %s has no trace token within max_length; skipped", ex["id"])
    todo.sort(key=lambda t: -len(t[1]))
    return todo


def write_scored(out_dir: str | Path, settings: dict, todo: list, score_batch, vocab_size: int, *,
                 batch_size: int = 8, shard_size: int = 256, progress: bool = True, desc: str = "teacher logits",
                 on_batch=None) -> Path:
    """Score `todo` in batches with `score_batch(batch) -> records` and commit a shard every `shard_size`
    examples, then write index.json and meta.json. Records: {"id", "trace_start", "topk_logprobs" (N, K)} and
    either "token_ids" + "topk_ids" (tensors) or "token_strings" + "topk_strings" (bytes; settings["tokens"]
    == "strings"). `on_batch(bar, records)` may update the bar's counters."""
    out = Path(out_dir)
    next_shard = len(list(out.glob("shard-*.safetensors")))
    bar = tqdm(total=len(todo), desc=desc, unit="ex", disable=not progress, dynamic_ncols=True)
    for s in range(0, len(todo), shard_size):
        chunk, records = todo[s:s + shard_size], []
        for b in range(0, len(chunk), batch_size):
            got = score_batch(chunk[b:b + batch_size])
            records += got
            bar.update(len(chunk[b:b + batch_size]))
            if on_batch is not None:
                on_batch(bar, got)
        if records:
            _save_shard(out / _shard_name(next_shard), records, _DTYPES[settings["dtype"]])
            next_shard += 1
    bar.close()
    _finish(out, settings, vocab_size)
    return out


def _finish(out: Path, settings: dict, vocab_size: int) -> None:
    """Write index.json and then meta.json (meta last: it marks the cache complete)."""
    index, n_rows, names = {}, 0, []
    for i, path in enumerate(sorted(out.glob("shard-*.safetensors"))):
        if path.name != _shard_name(i):
            raise ReasonkdError(f"{out}: shard files are not numbered 0..n-1 ({path.name}); rebuild the cache")
        names.append(path.name)
        with safe_open(str(path), framework="pt") as f:
            n_rows += int(f.get_slice("topk_ids").get_shape()[0])
            for pos, eid in enumerate(json.loads(f.metadata()["ids"])):
                index[eid] = [i, pos]
    write_json(out / "index.json", index, indent=0)
    write_json(out / "meta.json", {"format": FORMAT, "version": VERSION, **settings, "temperature": 1.0,
                                   "vocab_size": int(vocab_size), "n_examples": len(index), "n_rows": n_rows,
                                   "shards": names})


class LogitCache:
    """Read a cache written by `write_logit_cache` (memory-mapped; only the rows asked for are read)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            hint = (" (an interrupted write: rerun `reasonkd teacher logits` with the same --out to finish it)"
                    if (self.path / "run.json").is_file() else "")
            raise ReasonkdError(f"data.logit_cache {self.path}: not a finished logit cache, no meta.json{hint}")
        self.meta = read_json(meta_file, "logit-cache meta.json")  # binary / truncated / empty: one clear error
        if not isinstance(self.meta, dict):
            raise ReasonkdError(f"{meta_file}: expected a JSON object; re-create the cache (reasonkd teacher logits)")
        if self.meta.get("format") != FORMAT or self.meta.get("version") != VERSION:
            raise ReasonkdError(f"{meta_file}: format {self.meta.get('format')!r} version {self.meta.get('version')!r}"
                                f" is not {FORMAT!r} version {VERSION}")
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
                "data.logit_cache and distil online")

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
                self._shards[i] = (f, f.get_tensor("token_offsets"), f.get_tensor("row_offsets"),
                                   f.get_tensor("trace_start"))
            except Exception as e:  # safetensors raises its own types for a cut or foreign file
                raise ReasonkdError(f"{shard}: unreadable logit-cache shard ({type(e).__name__}: {e}); "
                                    "re-create the cache with `reasonkd teacher logits`") from None
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
        return CacheEntry(token_ids=token_ids, trace_start=int(starts[pos]), topk_ids=topk_ids,
                          topk_logprobs=f.get_slice("topk_logprobs")[r0:r1])
