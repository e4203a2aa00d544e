"""`reasonkd teacher generate --engine openvino` on a tiny random model: the same traces as the hf
engine, and `teacher_int8` is refused without openvino and noted in stats.json with it."""

import json

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.generate import GenerateSettings, generate_traces
from reasonkd.utils.io import read_jsonl

pytest.importorskip("openvino_genai")


def _run(items_file, out, teacher, **kw):
    return generate_traces(
        GenerateSettings(
            teacher=str(teacher),
            data=str(items_file),
            out=str(out),
            max_new_tokens=6,
            batch_size=4,
            progress=False,
            dtype="float32",
            **kw,
        )
    )


def _rows(out):
    return sorted(
        (r["id"], r["trace"], r["tokens"])
        for r in read_jsonl(out / "negatives.jsonl") + read_jsonl(out / "traces.jsonl")
    )


def test_openvino_engine_traces_equal_hf(items_file, tmp_path, tiny_llama_dir):
    _run(items_file, tmp_path / "hf", tiny_llama_dir)
    stats = _run(items_file, tmp_path / "ov", tiny_llama_dir, engine="openvino")
    assert _rows(tmp_path / "ov") == _rows(tmp_path / "hf")
    assert stats["settings"]["engine"] == "openvino" and stats["settings"]["teacher_int8"] is False


def test_teacher_int8(items_file, tmp_path, tiny_llama_dir):
    with pytest.raises(ReasonkdError, match="engine openvino"):
        _run(items_file, tmp_path / "hf8", tiny_llama_dir, teacher_int8=True)
    stats = _run(items_file, tmp_path / "ov8", tiny_llama_dir, engine="openvino", teacher_int8=True)
    assert stats["settings"]["teacher_int8"] is True
    saved = json.loads((tmp_path / "ov8" / "stats.json").read_text())
    assert saved["settings"]["teacher_int8"] is True and saved["settings"]["engine"] == "openvino"
