"""Writing the top-k teacher logit cache (format and reader: reasonkd.models.logit_cache).

    write_logit_cache(teacher, teacher_tok, examples, "runs/logits", k=20, batch_size=8)   # runs the teacher

Remote teachers (reasonkd.teacher.remote) score with their endpoint instead and write the same format
through the steps `write_logit_cache` takes itself:

    done = open_cache_dir(out_dir, settings)              # start, or resume with the same settings
    todo = encode_todo(tokenizer, examples, done, max_length)
    write_scored(out_dir, settings, todo, score_batch, vocab_size)   # shards, then index.json and meta.json

Writing is resumable: shards are written to a temp file and renamed; a rerun skips the examples already in
committed shards, and meta.json, written last, marks the cache complete.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm.auto import tqdm

from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import encode_example, tokenizer_hash
from reasonkd.models.logit_cache import FORMAT, VERSION
from reasonkd.utils.io import write_json

log = logging.getLogger(__name__)
_DTYPES = {"float16": torch.float16, "float32": torch.float32}


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
        input_ids[r, : len(ids)] = torch.tensor(ids)
        mask[r, : len(ids)] = 1
    hidden = model.get_decoder()(
        input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=False
    ).last_hidden_state
    lm_head = model.get_output_embeddings()
    out = []
    for r, (eid, ids, start) in enumerate(batch):
        # only rows that predict trace tokens: (B, L, V) logits would dominate memory at V ~ 150k
        rows = hidden[r, start - 1 : len(ids) - 1]
        logp = torch.log_softmax(lm_head(rows).float(), dim=-1)
        top = logp.topk(min(k, logp.shape[-1]), dim=-1)
        out.append(
            {
                "id": eid,
                "token_ids": torch.tensor(ids, dtype=torch.int32),
                "trace_start": start,
                "topk_ids": top.indices.cpu(),
                "topk_logprobs": top.values.cpu(),
            }
        )
    return out


def write_logit_cache(
    model,
    tokenizer,
    examples: list[dict],
    out_dir: str | Path,
    k: int = 20,
    batch_size: int = 8,
    *,
    max_length: int | None = None,
    dtype: str = "float16",
    shard_size: int = 256,
    teacher_id: str | None = None,
    progress: bool = True,
) -> Path:
    """Run the teacher over `examples` ({"id", "prompt", "trace", "system"?}) and write the cache.

    model: the teacher (eval mode, any dtype/device); tokenizer: its tokenizer. Each example is
    encoded like the trainer does (chat prompt + trace + end of turn, cut at max_length), and the
    top-k log-probs of every trace position are stored. Resumes an interrupted write with the same
    settings; returns out_dir.
    """
    if k < 1:
        raise ReasonkdError(f"k must be >= 1, got {k}")
    teacher_id = teacher_id or str(
        getattr(getattr(model, "reasonkd_source", None), "alias", None)
        or getattr(model.config, "_name_or_path", "")
        or "teacher"
    )
    settings = {
        "teacher": teacher_id,
        "tokenizer_hash": tokenizer_hash(tokenizer),
        "k": int(k),
        "dtype": dtype,
        "max_length": max_length,
    }
    done = open_cache_dir(out_dir, settings)
    todo = encode_todo(tokenizer, examples, done, max_length)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return write_scored(
        out_dir,
        settings,
        todo,
        lambda batch: _score_batch(model, batch, pad_id, k),
        model.get_output_embeddings().weight.shape[0],
        batch_size=batch_size,
        shard_size=shard_size,
        progress=progress,
    )


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
            raise ReasonkdError(
                f"{out} holds a logit cache written with other {', '.join(diff)} "
                f"({', '.join(f'{d}={old.get(d)!r}' for d in diff)}); use another output folder"
            )
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


def write_scored(
    out_dir: str | Path,
    settings: dict,
    todo: list,
    score_batch,
    vocab_size: int,
    *,
    batch_size: int = 8,
    shard_size: int = 256,
    progress: bool = True,
    desc: str = "teacher logits",
    on_batch=None,
) -> Path:
    """Score `todo` in batches with `score_batch(batch) -> records` and commit a shard every `shard_size`
    examples, then write index.json and meta.json. Records: {"id", "trace_start", "topk_logprobs" (N, K)} and
    either "token_ids" + "topk_ids" (tensors) or "token_strings" + "topk_strings" (bytes; settings["tokens"]
    == "strings"). `on_batch(bar, records)` may update the bar's counters."""
    out = Path(out_dir)
    next_shard = len(list(out.glob("shard-*.safetensors")))
    bar = tqdm(total=len(todo), desc=desc, unit="ex", disable=not progress, dynamic_ncols=True)
    for s in range(0, len(todo), shard_size):
        chunk, records = todo[s : s + shard_size], []
        for b in range(0, len(chunk), batch_size):
            got = score_batch(chunk[b : b + batch_size])
            records += got
            bar.update(len(chunk[b : b + batch_size]))
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
    write_json(
        out / "meta.json",
        {
            "format": FORMAT,
            "version": VERSION,
            **settings,
            "temperature": 1.0,
            "vocab_size": int(vocab_size),
            "n_examples": len(index),
            "n_rows": n_rows,
            "shards": names,
        },
    )
