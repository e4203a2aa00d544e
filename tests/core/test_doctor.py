"""`reasonkd doctor`: runs in seconds and says what a bug report needs."""

import json
import time

import pytest

from reasonkd.cli import main


def test_doctor_prints_what_a_bug_report_needs(capsys):
    t0 = time.perf_counter()
    assert main(["doctor"]) == 0
    assert time.perf_counter() - t0 < 15
    out = capsys.readouterr().out
    for heading in (
        "CPU:",
        "flags:",
        "cores:",
        "memory:",
        "versions:",
        "matmul:",
        "auto:",
        "engines:",
        "sandbox:",
        "models:",
    ):
        assert heading in out
    assert "torch " in out and "transformers " in out and "float32" in out and "GFLOP/s" in out
    assert "hf: yes" in out and "smollm2-135m" in out


def test_doctor_json(capsys):
    assert main(["doctor", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["auto"]["cpu"]["dtype"] in ("float32", "bfloat16") and r["auto"]["cpu"]["reason"]
    assert set(r["gflops"]["cpu"]) == {"float32", "bfloat16"} and r["cpu"]["vector_level"]
    assert r["sandboxes"] and any(m["alias"] == "smollm2-135m" for m in r["models"])


def _lively(tiny_llama_dir, out):
    """The tiny model, with weights that make it write tokens rather than stop at once."""
    from tiny_models import lively_model

    return lively_model(tiny_llama_dir, out)


@pytest.mark.real_hardware
def test_doctor_compiles_each_engine_for_real(tiny_llama_dir, tmp_path, capsys):
    """No mocks: each engine is compiled at the precision auto picks on this CPU (bf16 where native)."""
    pytest.importorskip("openvino_genai")
    model = _lively(tiny_llama_dir, tmp_path / "m")
    assert main(["doctor", "--check-model", str(model)]) == 0
    out = capsys.readouterr().out
    assert "check:" in out and "hf        PASS" in out and "openvino  PASS" in out


def test_doctor_names_an_engine_that_cannot_compile(tiny_llama_dir, tmp_path, capsys, monkeypatch):
    openvino_genai = pytest.importorskip("openvino_genai")

    def refuse(*a, **k):
        raise RuntimeError("Check 'key_cache_type == ov::element::bf16' failed: expect kvcache type bf16")

    monkeypatch.setattr(openvino_genai, "ContinuousBatchingPipeline", refuse)
    model = _lively(tiny_llama_dir, tmp_path / "m")
    assert main(["doctor", "--check-model", str(model)]) == 1
    out = capsys.readouterr().out
    assert "openvino  FAIL" in out and "expect kvcache type bf16" in out and "hf        PASS" in out


def test_doctor_skips_the_check_without_the_model(capsys):
    assert main(["doctor", "--no-engine-check"]) == 0
    assert "check:" not in capsys.readouterr().out
    assert main(["doctor", "--check-model", "no/such/folder"]) == 0
    assert "skip  not checked: no/such/folder: no such alias or folder" in capsys.readouterr().out
