"""The atomic writers: a write that runs out of disk gets one clear error and leaves nothing behind."""

import errno

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.utils import io
from reasonkd.utils.io import atomic_dir, atomic_write, is_disk_full


class SafetensorError(Exception):
    """safetensors' own error type: a disk-full save raises this, not an OSError."""


def test_a_disk_full_folder_write_names_the_folder_and_leaves_nothing(tmp_path):
    out = tmp_path / "run" / "final"
    with pytest.raises(ReasonkdError, match=r"writing .*final failed: the disk is full .* GiB free") as info:
        with atomic_dir(out) as tmp:
            (tmp / "config.json").write_text("{}")
            raise SafetensorError(
                'Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
            )
    assert "rerun the same command" in str(info.value)
    assert list((tmp_path / "run").iterdir()) == []  # no final/, no temp folder


def test_a_disk_full_file_write_names_the_file_and_keeps_the_old_one(tmp_path):
    (tmp_path / "run").mkdir()
    path = tmp_path / "run" / "summary.json"
    path.write_text("old")
    with pytest.raises(ReasonkdError, match="summary.json failed: the disk is full"):
        with atomic_write(path) as f:
            f.write("new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert path.read_text() == "old"
    assert [p.name for p in path.parent.iterdir()] == ["summary.json"]


def test_other_write_failures_pass_through_unchanged(tmp_path):
    tmp_path = tmp_path / "run"
    with pytest.raises(PermissionError):
        with atomic_dir(tmp_path / "x"):
            raise PermissionError(errno.EACCES, "Permission denied")
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(tmp_path / "y.json"):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
    assert not is_disk_full(OSError(errno.EIO, "I/O error"))
    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))


def test_a_write_error_on_a_nearly_full_disk_counts_as_disk_full(tmp_path, monkeypatch):
    """torch.save's own disk-full error names no errno ("unexpected pos 576 vs 534"): what gives it away
    is the disk, ~0 bytes free when it fails (measured before the partial write is removed)."""
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    free = {"bytes": 10 * 2**30}
    monkeypatch.setattr(io, "free_bytes", lambda path: free["bytes"])
    assert not is_disk_full(torch_error, tmp_path)  # plenty free: some other failure
    free["bytes"] = 4096
    assert is_disk_full(torch_error, tmp_path)
    assert not is_disk_full(torch_error)  # no place to look at: only the message counts
    assert not is_disk_full(KeyboardInterrupt(), tmp_path)  # an interrupt stays an interrupt
    with pytest.raises(ReasonkdError, match=r"ckpt failed: the disk is full .*unexpected pos 576"):
        with atomic_dir(tmp_path / "run" / "ckpt"):
            raise torch_error
