"""`reasonkd bench` on the tiny model: every backend returns positive numbers in the design §5 table shape."""

import json

import pytest

from reasonkd.export.bench import bench_model, format_table
from reasonkd.models import load_model


@pytest.mark.parametrize("name", ["onnx", "openvino-int8"])
def test_bench_model_rows(exports, name):
    model, tok = load_model(str(exports[name][0]))
    rows = bench_model(
        model,
        tok,
        batch_sizes=(1, 3),
        new_tokens=5,
        repeats=2,
        meta={"backend": model.backend, "precision": model.precision},
    )
    assert [r["batch_size"] for r in rows] == [1, 3]
    for r in rows:
        assert r["tokens_per_s"] > 0 and r["ttft_ms"] > 0 and r["ms_per_token"] > 0 and len(r["tokens_per_s_all"]) == 2
        assert r["prompts"] == 3
    table = format_table(rows)
    assert table.splitlines()[0].startswith("| hardware target | backend | precision | batch | tokens/s")
    assert ("OpenVINO | int8" if name.endswith("int8") else "ONNX Runtime | fp32") in table


def test_cli_bench_torch_and_export(exports, varied_llama_dir, tmp_path, capsys):
    from reasonkd.cli import main

    out = tmp_path / "rows.json"
    assert (
        main(
            [
                "bench",
                "--model",
                str(varied_llama_dir),
                "--batch-sizes",
                "1,2",
                "--new-tokens",
                "3",
                "--repeats",
                "1",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    rows = json.loads(out.read_text())
    assert [(r["backend"], r["precision"], r["batch_size"]) for r in rows] == [
        ("torch", "fp32", 1),
        ("torch", "fp32", 2),
    ]
    assert all(r["tokens_per_s"] > 0 and r["peak_rss_mb"] > 0 for r in rows)
    assert (
        main(
            [
                "bench",
                "--model",
                str(exports["openvino"][0]),
                "--batch-sizes",
                "2",
                "--new-tokens",
                "3",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    assert "| OpenVINO | fp32 | 2 |" in capsys.readouterr().out
    assert main(["bench", "--model", str(exports["openvino"][0]), "--backend", "onnx"]) == 1
    assert "is a openvino export; use --backend openvino" in capsys.readouterr().err
