"""Any dataset as problems: Hugging Face hub ids, Parquet / JSON / Arrow / CSV files, `save_to_disk` folders.

    from reasonkd.data.external import dataset_items, describe, is_dataset_spec
    items = dataset_items("hf:HuggingFaceH4/MATH-500@test")                 # list[Item], LaTeX answers
    items = dataset_items("runs/mine.parquet#question=problem,answer=final", split="test")
    print(describe("open-r1/OpenR1-Math-220k"))     # columns, detected schema, the mapping used, a row

A dataset spec is `hf:NAME[:CONFIG][@SPLIT]` (a hub id), or a local path (a
.parquet / .json / .jsonl / .arrow / .csv file, a `save_to_disk` folder or a
folder of such files, `@SPLIT` after it picks one of its splits), optionally
followed by `#question=COL,answer=COL,solution=COL` (any of the three). Every
kind is read by `datasets` (`load_dataset` / `load_from_disk`). Without a
mapping the columns of the common schemas are found by name: GSM8K
(`question`, `answer` ending `#### N`), MATH / MATH-500 (`problem`,
`solution`, `answer`), NuminaMath (`problem`, `solution` with a `\\boxed{}`),
OpenR1-Math (`problem`, `solution`, `answer`, `generations`).

reasonkd.data.load.load_items hands such specs here, so `--data` takes them
wherever it takes a built dataset. Splits: `@SPLIT` (or the only split of a
file) is taken as the split the caller asks for; otherwise the dataset's own
`train` / `validation` / `test` splits answer for train / val / test. Answers
that are plain numbers are graded by `math_numeric`, all others by
`math_latex` (reasonkd.data.latex; a row becomes an Item in reasonkd.data.dataset_rows). A hub id with no network fails within
seconds, naming the local alternative (as model hub ids do).
"""

from __future__ import annotations

import logging
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path

from reasonkd.data.dataset_rows import row_item
from reasonkd.data.schema import Item
from reasonkd.errors import ReasonkdError

log = logging.getLogger(__name__)

ROLES = ("question", "answer", "solution")
# Column names of the common schemas, most specific first (the first present one is used).
DEFAULT_COLUMNS = {
    "question": ("question", "problem", "prompt", "query", "instruction", "input"),
    "answer": ("answer", "final_answer", "expected_answer", "gold", "target", "output"),
    "solution": ("solution", "rationale", "reasoning", "cot", "explanation"),
}
FILE_KINDS = {".parquet": "parquet", ".json": "json", ".jsonl": "json", ".arrow": "arrow", ".csv": "csv"}
_SPLIT_NAMES = {"train": "train", "validation": "val", "valid": "val", "val": "val", "dev": "val", "test": "test"}
HUB_HOST = "huggingface.co"


@dataclass
class DataSpec:
    """A parsed dataset spec (see the module docstring)."""

    source: str
    """The hub id or the local path."""
    hub: bool = False
    """True for `hf:NAME`."""
    config: str | None = None
    """The hub dataset's config (`hf:NAME:CONFIG`)."""
    split: str | None = None
    """The dataset's own split name (`@SPLIT`), None for all / the one asked for."""
    columns: dict = field(default_factory=dict)
    """Role -> column: question / answer / solution (`#question=COL,...`)."""

    @property
    def name(self) -> str:
        """A short slug for ids and templates: 'math-500', 'openr1-math-220k', 'mine'."""
        base = self.source.rstrip("/").split("/")[-1] if self.hub else Path(self.source).stem or "dataset"
        return re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-") or "dataset"


def parse_columns(text: str | list | dict | None) -> dict:
    """'question=problem,answer=final' (or a list of 'k=v', or a dict) -> {"question": "problem", ...}."""
    if not text:
        return {}
    pairs = (
        text.items()
        if isinstance(text, dict)
        else (
            p.split("=", 1) if "=" in p else (p, "")
            for p in (re.split(r"[,\s]+", text) if isinstance(text, str) else text)
            if p
        )
    )
    out = {}
    for role, col in pairs:
        if role not in ROLES or not col:
            raise ReasonkdError(
                f"column mapping {role}={col}: write ROLE=COLUMN with ROLE one of {', '.join(ROLES)}"
                " (e.g. question=problem answer=answer solution=solution)"
            )
        out[role] = col
    return out


def parse_spec(spec: str, columns: str | list | dict | None = None) -> DataSpec:
    """`hf:NAME[:CONFIG][@SPLIT][#MAPPING]` or `PATH[@SPLIT][#MAPPING]` -> DataSpec."""
    text, _, mapping = str(spec).partition("#")
    hub = text.startswith("hf:")
    if hub:
        text = text[3:]
    split = None
    if "@" in text and (hub or not Path(text).exists()):
        text, split = text.rsplit("@", 1)
    config = None
    if hub and ":" in text:
        text, config = text.split(":", 1)
    if hub and not re.fullmatch(r"[\w.-]+(/[\w.-]+)?", text):
        raise ReasonkdError(f"--data {spec}: a hub dataset is hf:NAME[:CONFIG][@SPLIT], e.g. hf:openai/gsm8k:main@test")
    return DataSpec(text, hub, config or None, split or None, {**parse_columns(mapping), **parse_columns(columns)})


def _first_row(path: Path) -> dict | None:
    """The first row of a JSONL file, or None when it is empty or damaged (then the reasonkd reader, whose
    error names the file and line, gets it)."""
    from reasonkd.utils.io import iter_jsonl

    try:
        for _, row in iter_jsonl(path):
            return row
    except ReasonkdError:
        return None
    return None


def _is_item(row: dict | None) -> bool:
    return row is not None and "verifier" in row and "domain" in row


def is_table_spec(spec) -> bool:
    """A dataset the gsm8k task reads through `load_items` rather than as a GSM8K JSONL (hf:NAME, Parquet,
    CSV, ...): the one rule for the task and for the error analysis's gold items."""
    return bool(spec) and is_dataset_spec(spec) and not str(spec).endswith(".jsonl")


def is_dataset_spec(spec) -> bool:
    """True when `spec` is for this module: a hub id, or local data that is not a reasonkd build or JSONL."""
    text = str(spec).partition("#")[0]
    if text.startswith("hf:") or "#" in str(spec):
        return True
    path = Path(text)
    if not path.exists() and "@" in text:
        path = Path(text.rsplit("@", 1)[0])
    if path.is_file():
        if path.suffix == ".jsonl":
            row = _first_row(path)
            return row is not None and not _is_item(row)
        return path.suffix in FILE_KINDS
    if path.is_dir():
        if any((path / f"{s}.jsonl").is_file() for s in ("train", "val", "test")) and (path / "stats.json").is_file():
            return False  # a `reasonkd data build` folder
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            return True
        return any(
            p.suffix in FILE_KINDS for d in (path, path / "data") if d.is_dir() for p in d.iterdir()
        ) and not any(_is_item(_first_row(p)) for p in path.glob("*.jsonl"))
    return False


# ------------------------------------------------------------------ loading through `datasets`


def _hub_local_copy(name: str) -> str | None:
    try:
        from huggingface_hub import snapshot_download  # lazy: only hub ids need it

        return snapshot_download(name, repo_type="dataset", local_files_only=True)
    except Exception:  # noqa: BLE001  (not in the local HF cache, whatever the reason)
        return None


def _hub_source(spec: DataSpec, timeout: float = 3.0) -> str:
    """The hub id when the hub answers, else a local snapshot in the HF cache, else one clear error."""
    hint = (
        f"cannot download the dataset '{spec.source}': the Hugging Face hub is not reachable from this machine. "
        f"Download it elsewhere (`huggingface-cli download {spec.source} --repo-type dataset --local-dir DIR`), "
        "copy DIR here and pass --data DIR (or one of its Parquet / JSON files)"
    )
    offline = any(
        os.environ.get(v, "0") not in ("0", "", "false", "False") for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )
    if not offline:
        endpoint = os.environ.get("HF_ENDPOINT", f"https://{HUB_HOST}")
        host = re.sub(r"^https?://", "", endpoint).split("/")[0].split(":")[0]
        port = int(m.group(1)) if (m := re.search(r":(\d+)", re.sub(r"^https?://", "", endpoint))) else 443
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return spec.source
        except OSError:
            pass
    local = _hub_local_copy(spec.source)
    if local is None:
        raise ReasonkdError(hint + (" (HF_HUB_OFFLINE is set and it is not in the local HF cache)" if offline else ""))
    return local


def load_table(spec: DataSpec):
    """The dataset as a `datasets.DatasetDict` (a file or single Dataset becomes {'train': ...})."""
    import datasets  # lazy: `datasets` and pyarrow take a second to import

    datasets.disable_progress_bars()
    where = f"--data {'hf:' if spec.hub else ''}{spec.source}"
    try:
        if spec.hub:
            ds = datasets.load_dataset(_hub_source(spec), spec.config)
        else:
            path = Path(spec.source).expanduser()
            if not path.exists():
                raise ReasonkdError(f"{where}: no such file or folder (or write hf:NAME for a hub dataset)")
            if path.is_file():
                if path.suffix not in FILE_KINDS:
                    raise ReasonkdError(
                        f"{where}: cannot read {path.suffix or 'a file without suffix'}; "
                        f"use one of {', '.join(FILE_KINDS)} or a save_to_disk folder"
                    )
                ds = datasets.load_dataset(FILE_KINDS[path.suffix], data_files=str(path))
            elif (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
                ds = datasets.load_from_disk(str(path))
            else:
                ds = datasets.load_dataset(str(path))
    except ReasonkdError:
        raise
    except Exception as e:  # noqa: BLE001  (datasets raises many kinds for an unreadable source)
        empty = re.search(r'Instruction "([^"]+)" corresponds to no data', str(e))
        if empty:  # datasets' own words for a split file without rows
            raise ReasonkdError(f"{where}: the split {empty.group(1)!r} is empty (0 rows)") from None
        raise ReasonkdError(f"{where}: could not be read by datasets ({type(e).__name__}: {str(e)[:300]})") from None
    if isinstance(ds, datasets.Dataset):
        ds = datasets.DatasetDict({"train": ds})
    return ds


def pick_splits(ds, spec: DataSpec, want: str | None) -> list[tuple[str, str, object]]:
    """[(our split, its split name, Dataset)]: `@SPLIT` or a lone split as `want`, else its splits by name."""
    names = list(ds.keys())
    where = f"--data {spec.source}"
    if spec.split is not None:
        if spec.split not in ds:
            raise ReasonkdError(f"{where}: no split {spec.split!r}; its splits are {', '.join(names)}")
        chosen = [(want or _SPLIT_NAMES.get(spec.split, "train"), spec.split, ds[spec.split])]
    elif len(names) == 1:
        chosen = [(want or _SPLIT_NAMES.get(names[0], "train"), names[0], ds[names[0]])]
    else:
        chosen = [
            (_SPLIT_NAMES.get(n, "train"), n, ds[n])
            for n in names
            if want is None or _SPLIT_NAMES.get(n, "train") == want
        ]
        if not chosen:
            raise ReasonkdError(
                f"{where}: no {want} split; its splits are {', '.join(names)}; "
                f"pick one with @SPLIT (e.g. {spec.source}@{names[0]})"
            )
    for _, name, d in chosen:
        if len(d) == 0:
            raise ReasonkdError(f"{where}: the split {name!r} is empty (0 rows)")
    return chosen


def resolve_columns(columns: list[str], mapping: dict, where: str) -> dict:
    """Role -> column for this table: the given mapping, else the schema defaults. Errors name the columns."""
    out = {}
    for role in ROLES:
        if role in mapping:
            if mapping[role] not in columns:
                raise ReasonkdError(
                    f"{where}: no column {mapping[role]!r} (for {role}); the columns are {', '.join(columns)}"
                )
            out[role] = mapping[role]
        else:
            found = next((c for c in DEFAULT_COLUMNS[role] if c in columns), None)
            if found:
                out[role] = found
    if "question" not in out:
        raise ReasonkdError(
            f"{where}: no question column found; the columns are {', '.join(columns)}; "
            "name it: question=COLUMN (see `reasonkd data columns SPEC`)"
        )
    if "answer" not in out and "solution" not in out:
        raise ReasonkdError(
            f"{where}: no answer or solution column found; the columns are {', '.join(columns)}; "
            "name one: answer=COLUMN or solution=COLUMN"
        )
    return out


def schema_name(columns: list[str]) -> str:
    """The common schema these columns look like (for messages and `reasonkd data columns`)."""
    cols = set(columns)
    if {"problem", "generations"} <= cols:
        return "openr1-math"
    if {"problem", "solution", "messages"} <= cols:
        return "numinamath"
    if {"problem", "solution"} <= cols:
        return "math"
    if {"question", "answer"} <= cols:
        return "gsm8k"
    return "custom"


# ------------------------------------------------------------------ datasets -> items (a row: dataset_rows.row_item)


def dataset_items(
    spec: str, split: str | None = None, columns=None, limit: int | None = None, name: str | None = None
) -> list[Item]:
    """The problems of a dataset spec as Items (rows without a question or an answer are skipped, counted)."""
    s = parse_spec(spec, columns)
    items, skipped = [], 0
    for ours, theirs, d in pick_splits(load_table(s), s, split):
        cols = resolve_columns(d.column_names, s.columns, f"--data {spec}")
        for i, row in enumerate(d):
            if limit is not None and len(items) >= limit:
                break
            item = row_item(row, cols, name or s.name, ours, theirs, i, str(spec))
            skipped += item is None
            items += [item] if item else []
    if skipped:
        log.info("%s: %d rows without a question or an answer skipped", spec, skipped)
    if not items:
        raise ReasonkdError(
            f"--data {spec}: no usable rows (each needs a question, and an answer or a "
            "\\boxed{} answer in its solution)"
        )
    return items


def describe(spec: str, columns=None, rows: int = 1) -> str:
    """What `reasonkd data columns SPEC` prints: splits, columns and types, the schema, the mapping, a row."""
    s = parse_spec(spec, columns)
    ds = load_table(s)
    lines = [f"{spec}: splits " + ", ".join(f"{n} ({len(d)} rows)" for n, d in ds.items())]
    name, d = next(iter(ds.items())) if s.split is None else (s.split, ds[s.split])
    lines.append(f"columns of {name}: " + ", ".join(f"{c} ({d.features[c]!s:.40})" for c in d.column_names))
    lines.append(f"schema: {schema_name(d.column_names)}")
    try:
        cols = resolve_columns(d.column_names, s.columns, f"--data {spec}")
    except ReasonkdError as e:
        return "\n".join(lines + [f"mapping: none ({e})"])
    lines.append(
        "mapping: "
        + " ".join(f"{r}={c}" for r, c in cols.items())
        + "   (change it with SPEC#question=COL,answer=COL,solution=COL)"
    )
    for i in range(min(rows, len(d))):
        item = row_item(d[i], cols, s.name, "train", name, i, spec)
        lines.append(
            f"row {i}: "
            + (
                f"question={item.question[:70]!r} answer={item.answer!r} verifier={item.verifier}"
                if item
                else "skipped (no question or answer)"
            )
        )
    return "\n".join(lines)
