"""Reading teacher traces: the rows `reasonkd teacher generate` accepts, as training examples.

    examples = load_traces("runs/traces")          # folder with traces.jsonl, or any traces JSONL
    # [{"id": "gsm-12#0", "prompt": ..., "trace": ..., "system": ..., "answer": ...}, ...]

The one trace reader: distillation, the logit cache, head scoring and the
demo read traces through it, so an example id means the same row everywhere
(`id#sample_idx` when the row has a sample_idx, as the logit cache names its
entries).
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import read_jsonl


def traces_file(path: str | Path) -> Path:
    """The traces JSONL of `path` (a file, or a folder holding traces.jsonl)."""
    p = Path(path)
    return p / "traces.jsonl" if p.is_dir() else p


def load_traces(path: str | Path, limit: int | None = None) -> list[dict]:
    """Rows {"id", "prompt", "trace", "system", "answer"} from a traces JSONL or a `teacher generate` folder.

    A row needs non-empty `prompt` and `trace` strings. Its id is `id#sample_idx` when the row has a
    sample_idx, else `id`, else `line<N>`; ids must be unique.
    """
    f = traces_file(path)
    if not f.is_file():
        raise ReasonkdError(f"data.path {path}: no such JSONL file or folder with traces.jsonl")
    out, seen = [], set()
    for n, row in enumerate(read_jsonl(f, allow_empty=False), 1):
        if not (
            isinstance(row.get("prompt"), str)
            and row["prompt"]
            and isinstance(row.get("trace"), str)
            and row["trace"].strip()
        ):
            raise ReasonkdError(f"{f}:{n}: each row needs non-empty 'prompt' and 'trace' strings")
        rid = row.get("id")
        rid = f"line{n}" if rid is None else str(rid)
        if "sample_idx" in row:
            rid = f"{rid}#{row['sample_idx']}"
        if rid in seen:
            raise ReasonkdError(f"{f}:{n}: duplicate id {rid!r}; ids must be unique (add sample_idx)")
        seen.add(rid)
        out.append(
            {
                "id": rid,
                "prompt": row["prompt"],
                "trace": row["trace"],
                "system": row.get("system"),
                "answer": row.get("answer"),
            }
        )
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise ReasonkdError(f"{f}: no traces")
    return out
