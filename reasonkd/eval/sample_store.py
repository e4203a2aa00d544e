"""An evaluation's stored samples: where they go, reusing them on a rerun with the same settings, and
generating a long evaluation in chunks that a stopped run resumes from.

    path = samples_path("runs/eval", "student", "gsm8k")          # runs/eval/samples/student/gsm8k.jsonl
    cached = load_cached(path, identity)                         # (rows, throughput) or None
    outs, stats = generate_resumable(engine, prompts, path, identity, seed=0, progress=True, desc="gsm8k",
                                     max_new_tokens=512)
    save_rows(path, identity, rows, stats)

`identity` holds every setting that changes the samples (reasonkd.eval.runner.evaluate_model builds it);
samples stored under another identity are generated again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.models.engines import Engine

log = logging.getLogger(__name__)


def safe_name(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label).strip("._") or "model"


def samples_path(out_dir, label: str, task: str) -> Path:
    return Path(out_dir) / "samples" / safe_name(label) / f"{task}.jsonl"


def load_cached(path: Path, identity: dict) -> tuple[list[dict], dict | None] | None:
    """(rows, throughput) of an earlier run of the same task with the same settings, else None."""
    meta = path.with_suffix(".meta.json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        saved = json.loads(meta.read_text())
        if saved.get("identity") != json.loads(json.dumps(identity)):
            return None
    except (json.JSONDecodeError, AttributeError):
        return None
    from reasonkd.utils.io import read_jsonl

    return read_jsonl(path), saved.get("throughput")


def save_rows(path: Path, identity: dict, rows: list[dict], throughput: dict | None = None) -> None:
    from reasonkd.utils.io import write_json, write_jsonl

    write_jsonl(path, rows)
    write_json(path.with_suffix(".meta.json"), {"identity": identity, "throughput": throughput})


EVAL_CHUNK = 256
"""With an output folder, an evaluation of more sequences than this generates them in chunks of this size,
each appended to <task>.partial.jsonl as it finishes: a stopped evaluation resumes at its last whole chunk.
Chunk i samples with seed + i, so a resumed run draws what an uninterrupted one draws."""


def generate_resumable(
    gen: Engine, prompts: list[str], path: Path | None, identity: dict, *, seed: int, progress: bool, desc: str, **kw
) -> tuple[list, dict]:
    """(completions, throughput stats) of `prompts`, in chunks recorded under `path` (see EVAL_CHUNK)."""
    from reasonkd.models.generation import Completion
    from reasonkd.utils.io import atomic_write

    if path is None or len(prompts) <= EVAL_CHUNK:
        outs = gen.generate(prompts, seed=seed, progress=progress, desc=desc, **kw)
        return outs, dict(gen.stats)
    partial = path.with_suffix(".partial.jsonl")
    key = json.loads(json.dumps({**identity, "chunk": EVAL_CHUNK, "n": len(prompts)}))
    rows = []
    for line in partial.read_text(encoding="utf-8").splitlines() if partial.is_file() else []:
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line a kill cut short: that chunk is generated again
            break
    if not rows or rows[0].get("identity") != key:  # another run's chunks (other settings): start over
        rows = [{"identity": key}]
    chunks = [
        r for r in rows[1:] if r.get("prompts") == [p[-64:] for p in prompts[r["start"] : r["start"] + EVAL_CHUNK]]
    ]
    partial.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(partial) as f:  # the good lines only, so appends follow whole lines
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in [rows[0], *chunks])
    done = {c["start"]: c for c in chunks}
    if done:
        log.info(
            "%s: resuming, %d of %d sequences generated earlier (%s)",
            desc,
            sum(len(c["outs"]) for c in chunks),
            len(prompts),
            partial,
        )
    new_tokens, seconds = sum(c["new_tokens"] for c in chunks), sum(c["seconds"] for c in chunks)
    for i, start in enumerate(range(0, len(prompts), EVAL_CHUNK)):
        if start in done:
            continue
        part = prompts[start : start + EVAL_CHUNK]
        outs = gen.generate(part, seed=seed + i, progress=progress, desc=f"{desc} [{start}/{len(prompts)}]", **kw)
        done[start] = {
            "start": start,
            "prompts": [p[-64:] for p in part],
            "new_tokens": gen.stats["new_tokens"],
            "seconds": gen.stats["seconds"],
            "outs": [[o.text, o.prompt_tokens, o.new_tokens, o.finished] for o in outs],
        }
        new_tokens, seconds = new_tokens + gen.stats["new_tokens"], seconds + gen.stats["seconds"]
        with open(partial, "a", encoding="utf-8") as f:  # one line per whole chunk: a cut line is dropped
            f.write(json.dumps(done[start], ensure_ascii=False) + "\n")
    outs = [
        Completion(p, *o)
        for start in sorted(done)
        for p, o in zip(prompts[start : start + EVAL_CHUNK], done[start]["outs"])
    ]
    stats = {
        **gen.stats,
        "new_tokens": new_tokens,
        "seconds": seconds,
        "tokens_per_s": new_tokens / max(seconds, 1e-9),
        "sequences": len(outs),
    }
    return outs, stats


def load_run(run: str | Path) -> list[dict]:
    """The result dicts of an earlier run (its folder or results.json), samples read back in."""
    from reasonkd.utils.io import read_jsonl

    p = Path(run)
    path = p / "results.json" if p.is_dir() else p
    if not path.is_file():
        raise ReasonkdError(f"{run}: no results.json (pass a folder written by `reasonkd eval --out`)")
    try:
        data = json.loads(path.read_text())
        models = data["models"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ReasonkdError(f"{path}: not a reasonkd results.json") from None
    for m in models:
        for v in m["tasks"].values():
            f = path.parent / v.get("samples_file", "")
            v["samples"] = read_jsonl(f) if v.get("samples_file") and f.is_file() else []
    return models
