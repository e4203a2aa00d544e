"""Read any dataset back as item rows: a built folder (train/val/test.jsonl), one JSONL file, or another
dataset spec (`hf:NAME`, Parquet / JSON / Arrow, a GSM8K JSONL: reasonkd.data.external).

    from reasonkd.data import load_items
    rows = load_items("data/default", split="train")      # list[dict], one per item (reasonkd.data.schema)
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.data.external import dataset_items, is_dataset_spec
from reasonkd.data.schema import SPLITS
from reasonkd.errors import ReasonkdError


def load_items(path_or_dir: str | Path, split: str | None = None) -> list[dict]:
    """Rows of a built dataset: a folder (train/val/test.jsonl) or one JSONL file; or of any other
    dataset (`hf:NAME`, Parquet / JSON / Arrow, a GSM8K JSONL: reasonkd.data.external).

    `split` picks one split file from a folder (or filters a single file).
    """
    from reasonkd.utils.io import read_jsonl

    if is_dataset_spec(path_or_dir):
        if split is not None and split not in SPLITS:
            raise ReasonkdError(f"split={split!r}: choose one of {SPLITS}")
        return [it.to_dict() for it in dataset_items(str(path_or_dir), split=split)]

    path = Path(path_or_dir)
    if split is not None and split not in SPLITS:
        raise ReasonkdError(f"split={split!r}: choose one of {SPLITS}")
    if path.is_dir():
        names = [split] if split else list(SPLITS)
        files = [path / f"{s}.jsonl" for s in names]
        missing = [str(f) for f in files if not f.is_file()]
        if missing and (split or len(missing) == len(files)):
            raise ReasonkdError(
                f"{path}: no {', '.join(missing)}; build it with `reasonkd data build RECIPE --out {path}`"
            )
        rows = [r for f in files if f.is_file() for r in read_jsonl(f)]
    elif path.is_file():
        rows = read_jsonl(path, allow_empty=False)
        if split:
            rows = [r for r in rows if r.get("split") == split]
    else:
        raise ReasonkdError(f"{path}: no such dataset file or folder")
    for i, r in enumerate(rows):
        missing_fields = [f for f in ("id", "domain", "question", "answer", "verifier") if f not in r]
        if missing_fields:
            raise ReasonkdError(f"{path}: row {i + 1} lacks {missing_fields}; not a reasonkd dataset")
    return rows
