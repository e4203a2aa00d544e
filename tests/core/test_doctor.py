"""`reasonkd doctor`: runs in seconds and says what a bug report needs."""

import json
import time

from reasonkd.cli import main


def test_doctor_prints_what_a_bug_report_needs(capsys):
    t0 = time.perf_counter()
    assert main(["doctor"]) == 0
    assert time.perf_counter() - t0 < 15
    out = capsys.readouterr().out
    for heading in ("CPU:", "flags:", "cores:", "memory:", "versions:", "matmul:", "auto:", "engines:", "sandbox:",
                    "models:"):
        assert heading in out
    assert "torch " in out and "transformers " in out and "float32" in out and "GFLOP/s" in out
    assert "hf: yes" in out and "smollm2-135m" in out


def test_doctor_json(capsys):
    assert main(["doctor", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["auto"]["cpu"]["dtype"] in ("float32", "bfloat16") and r["auto"]["cpu"]["reason"]
    assert set(r["gflops"]["cpu"]) == {"float32", "bfloat16"} and r["cpu"]["vector_level"]
    assert r["sandboxes"] and any(m["alias"] == "smollm2-135m" for m in r["models"])
