"""Atomic file and folder writes, so nothing half-written is ever left behind.

Every writer in reasonkd goes through these: write to a temporary sibling,
fsync, then `os.replace` (atomic on POSIX). A crash leaves either the old file
or the new one, never a torn one.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from reasonkd.errors import ReasonkdError


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[Any]:
    """Open a temp file next to `path`; on clean exit rename it onto `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        full = is_disk_full(e, path.parent)  # before the partial write frees its space
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if full:
            raise disk_full_error(path, e) from e
        raise


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp folder next to `path`; on clean exit it replaces `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException as e:
        full = is_disk_full(e, tmp)  # before the partial write frees its space
        shutil.rmtree(tmp, ignore_errors=True)
        if full:
            raise disk_full_error(path, e) from e
        raise


# below this many free bytes, a failed write is taken for a full disk whatever its message (torch.save's own
# reads "[enforce fail at inline_container.cc] unexpected pos ..."); a full disk shows ~0 here
NEARLY_FULL = 16 * 2**20


def is_disk_full(error: BaseException, where: str | os.PathLike | None = None) -> bool:
    """True for a write that failed for want of space: an OSError with ENOSPC, a library's own wrapper of
    one (safetensors: `SafetensorError: ... No space left on device`), or any other write error while the disk
    under `where` has less than NEARLY_FULL free (check before the partial write is removed)."""
    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return True
    if "No space left on device" in str(error) or "StorageFull" in str(error):
        return True
    if where is None or not isinstance(error, (OSError, RuntimeError)):
        return False
    return free_bytes(Path(where)) < NEARLY_FULL


def free_bytes(path: Path) -> int:
    """Bytes free on the disk that holds `path`, or would hold it (its nearest existing parent)."""
    try:
        return shutil.disk_usage(next(p for p in (path, *path.parents) if p.exists())).free
    except OSError:
        return NEARLY_FULL  # unknown: not taken for a full disk


def disk_full_error(path: str | os.PathLike, error: BaseException) -> ReasonkdError:
    """The one clear error of a write that ran out of disk: the path, the space free once the partial write
    was removed, and what to do."""
    free = free_bytes(Path(path))
    return ReasonkdError(
        f"writing {path} failed: the disk is full ({free / 2**30:.1f} GiB free there once the partial write was "
        f"removed; the error was {type(error).__name__}: {str(error)[:200]}). Nothing half-written was kept. Free "
        f"disk space (old runs, or the OpenVINO conversions under REASONKD_HOME/engines, which are rebuilt on "
        f"demand), then rerun the same command (a run resumes from its last checkpoint)"
    )


def link_or_copy(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Hard-link `src` to `dst` where the filesystem allows it, else copy it.

    For files that are written once and never edited in place (a finished stage's
    weights): a 0.5B student in fp32 is 2.5 GB, and a second copy is pure disk.
    """
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        shutil.copy2(src, dst)


def write_json(path: str | os.PathLike, obj: Any, indent: int = 2) -> None:
    with atomic_write(path) as f:
        json.dump(obj, f, indent=indent, sort_keys=False, default=str)
        f.write("\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    n = 0
    with atomic_write(path) as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
            n += 1
    return n


def read_text(
    path: str | os.PathLike, what: str = "text file", error: type | None = None, allow_empty: bool = False
) -> str:
    """The UTF-8 text of `path`; binary, non-UTF-8, missing and (unless allow_empty) empty files raise
    one `error` (ReasonkdError by default) naming the file, and the line for a bad byte."""
    from reasonkd.errors import ReasonkdError

    error = error or ReasonkdError
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file (expected a {what})") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder, expected a {what}") from None
    except OSError as e:
        raise error(f"{path}: cannot read it ({e.strerror})") from None
    if b"\x00" in data:  # text formats never hold NUL; UTF-16 and binary files do
        raise error(
            f"{path}: binary data (a NUL byte at offset {data.find(0)}), not a UTF-8 {what}; "
            "pass the text file itself (UTF-16 files: save them as UTF-8)"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise error(
            f"{path}:{line}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); save the {what} as UTF-8"
        ) from None
    if not text.strip() and not allow_empty:
        raise error(f"{path}: empty file, expected a {what}")
    return text.removeprefix("\ufeff")  # a UTF-8 byte-order mark is not content


def read_json(path: str | os.PathLike, what: str = "JSON file", error: type | None = None) -> Any:
    """One JSON document; bad input (binary, non-UTF-8, empty, cut short, invalid) -> one error naming file:line."""
    from reasonkd.errors import ReasonkdError

    error = error or ReasonkdError
    text = read_text(path, what, error)
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        where = f"{path}:{e.lineno}" if isinstance(e, json.JSONDecodeError) else str(path)
        cut = isinstance(e, json.JSONDecodeError) and e.pos >= len(text.rstrip())
        raise error(
            f"{where}: not valid JSON{' (the file ends early: truncated?)' if cut else ''} "
            f"({getattr(e, 'msg', 'nested too deeply')}); re-create the {what}"
        ) from None


def iter_jsonl(
    path: str | os.PathLike, allow_empty: bool = True, what: str = "JSONL file"
) -> Iterator[tuple[int, dict]]:
    """(line number, row) for each non-blank line of a JSONL file of objects. Bad input raises one
    ReasonkdError naming file:line: binary or non-UTF-8 data, a line that is not a JSON object, a last
    line cut mid-record, and (allow_empty=False) an empty file."""
    from reasonkd.errors import ReasonkdError

    text = read_text(path, what, allow_empty=allow_empty)
    lines = text.split("\n")
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as e:
            msg = getattr(e, "msg", "nested too deeply")
            if lineno == len(lines) and not text.endswith("\n"):
                raise ReasonkdError(
                    f"{path}:{lineno}: the last line ends mid-record ({msg}): the file looks "
                    "truncated; re-create it or delete that line"
                ) from None
            raise ReasonkdError(f"{path}:{lineno}: not valid JSON ({msg}); fix or remove that line") from None
        if not isinstance(row, dict):
            raise ReasonkdError(f"{path}:{lineno}: expected one JSON object per line, got {type(row).__name__}")
        yield lineno, row


def read_jsonl(path: str | os.PathLike, allow_empty: bool = True) -> list[dict]:
    """Read a JSONL file of objects; bad input raises ReasonkdError naming file and line (see iter_jsonl)."""
    return [row for _, row in iter_jsonl(path, allow_empty)]


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def file_problem(folder: str | os.PathLike, files: dict[str, dict], check_sha: bool = True) -> str | None:
    """None if every file of a manifest ({name: {"size", "sha256"?}}) is in `folder` as recorded,
    else what is wrong with the first one that is not (missing, truncated, or failing its SHA-256)."""
    for name, meta in files.items():
        p = Path(folder) / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != meta["size"]:
            return f"{name} has {p.stat().st_size} bytes, expected {meta['size']} (truncated or corrupted)"
        if check_sha and meta.get("sha256") and sha256_file(p) != meta["sha256"]:
            return f"{name} fails its SHA-256 check"
    return None
