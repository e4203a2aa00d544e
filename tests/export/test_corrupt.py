"""A missing, truncated or unreadable export folder gives one clear ReasonkdError (CLI exit 1)."""

import shutil

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.export.manifest import MANIFEST
from reasonkd.export.runtime import load_exported
from reasonkd.models import load_model


def _copy(exports, name, tmp_path):
    return shutil.copytree(exports[name][0], tmp_path / name)


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_missing_folder():
    with pytest.raises(ReasonkdError, match="does not exist"):
        load_exported("/nonexistent/reasonkd-export")


@pytest.mark.parametrize(
    "name,victim", [("onnx", "model.onnx"), ("openvino", "openvino_model.bin"), ("openvino-int8", "openvino_model.xml")]
)
def test_truncated_model_file(exports, tmp_path, name, victim):
    folder = _copy(exports, name, tmp_path)
    _truncate(folder / victim)
    with pytest.raises(ReasonkdError, match=rf"{victim} has \d+ bytes, the manifest says \d+ \(truncated"):
        load_model(str(folder))


@pytest.mark.parametrize("name,victim", [("onnx", "model.onnx"), ("openvino", "openvino_model.xml")])
def test_missing_model_file(exports, tmp_path, name, victim):
    folder = _copy(exports, name, tmp_path)
    (folder / victim).unlink()
    with pytest.raises(ReasonkdError, match=rf"{victim} is missing; the export is damaged: re-run `reasonkd export"):
        load_model(str(folder))


def test_unreadable_or_missing_manifest(exports, tmp_path):
    folder = _copy(exports, "onnx", tmp_path)
    (folder / MANIFEST).write_text('{"format": "onnx", "files": {')
    with pytest.raises(ReasonkdError, match="unreadable"):
        load_model(str(folder))
    (folder / MANIFEST).unlink()
    with pytest.raises(ReasonkdError, match=f"has no {MANIFEST}"):
        load_model(str(folder))  # still recognised as an export by its model.onnx


def test_cli_reports_damage_with_exit_1(exports, tmp_path, capsys):
    from reasonkd.cli import main

    folder = _copy(exports, "openvino", tmp_path)
    _truncate(folder / "openvino_model.bin", 0.9)
    assert main(["bench", "--model", str(folder), "--new-tokens", "2", "--repeats", "1"]) == 1
    err = capsys.readouterr().err
    assert "openvino_model.bin" in err and "truncated" in err and "Traceback" not in err
