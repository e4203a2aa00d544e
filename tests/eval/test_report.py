"""The report: the results table, comparisons, self-contained HTML, and a headless-Chromium render."""

import shutil
import subprocess

import numpy as np
import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.eval.report import markdown, write_report
from reasonkd.eval.sample_store import load_run


def _model(label, verdicts, ms, params, tps):
    samples = [
        {
            "idx": i,
            "id": f"q{i}",
            "sample": 0,
            "prompt": f"question {i}",
            "completion": f"#### {i}",
            "extracted": {"final": str(i)},
            "verdict": v,
            "reference": str(i),
        }
        for i, v in enumerate(verdicts)
    ]
    acc = sum(verdicts) / len(verdicts)
    return {
        "label": label,
        "model": label,
        "kind": "model",
        "params": params,
        "peak_rss_mb": 900.0,
        "latency": {
            "problems": 3,
            "max_new_tokens": 64,
            "latency_ms": {"p50": ms, "p95": ms * 1.3},
            "ttft_ms": {"p50": ms / 10, "p95": ms / 8},
            "ms_per_token": ms / 64,
            "tokens_per_s": 64e3 / ms,
        },
        "throughput": {"gsm8k": {"new_tokens": 6400, "seconds": 64e3 / ms / 4, "tokens_per_s": 4 * 64e3 / ms}},
        "tasks": {
            "gsm8k": {
                "metrics": {
                    "accuracy": acc,
                    "ci": [max(0, acc - 0.1), min(1, acc + 0.1)],
                    "n": len(verdicts),
                    "primary": "final",
                    "styles": {"strict": acc, "flexible": acc / 2, "final": acc},
                },
                "samples": samples,
            }
        },
        "cases": [
            {
                "name": "chickens_rabbits",
                "title": "Chickens and rabbits",
                "prompt": "p",
                "reference": "r",
                "answer": f"{label}: c + r = 40 ... 24 chickens, 16 rabbits",
                "check": True,
                "new_tokens": 40,
                "finished": True,
            }
        ],
    }


@pytest.fixture
def results():
    return [
        _model("student-before", [1, 0, 0, 0, 1, 0, 0, 0, 0, 1], 120, 7.6e9, 16),
        _model("student-after", [1, 1, 1, 0, 1, 1, 1, 1, 0, 1], 95, 7.6e9, 20),
        _model("teacher", [1, 1, 1, 1, 1, 1, 1, 1, 1, 1], 320, 671e9, 5),
    ]


def test_markdown_has_the_article_table(results, tmp_path):
    paths = write_report(results, tmp_path)
    md = paths["markdown"].read_text()
    assert md.splitlines()[2].startswith(
        "| Model | GSM8K | Latency ms (p50) | ms / token | Tokens/s (batched) | Params"
    )
    assert "| student-before | 30.0% [20.0, 40.0] (n=10) | 120 |" in md
    assert "| teacher | 100.0% [90.0, 100.0] (n=10) | 320 |" in md and "671.00B" in md
    assert "| gsm8k | student-after | student-before | +50.0 |" in md
    assert "GSM8K by answer-extraction style" in md


def test_labels_and_round_trip(results, tmp_path):
    write_report(results, tmp_path / "a", labels=["b", "a", "t"])
    back = load_run(tmp_path / "a")
    assert [r["label"] for r in back] == ["b", "a", "t"] and len(back[0]["tasks"]["gsm8k"]["samples"]) == 10
    assert "| b | 30.0% [20.0, 40.0]" in markdown(back, [])
    with pytest.raises(ReasonkdError, match="one per model"):
        write_report(results, tmp_path / "x", labels=["only-one"])
    with pytest.raises(ReasonkdError, match="labelled"):
        write_report(results, tmp_path / "y", labels=["s", "s", "t"])


def test_html_is_self_contained(results, tmp_path):
    html = write_report(results, tmp_path)["html"].read_text()
    assert html.count("data:image/png;base64,") == 4  # accuracy, latency, throughput, errors by first-error class
    assert "<table>" in html and html.count("<details>") >= 3
    assert "http://" not in html and "https://" not in html and "<script" not in html


@pytest.mark.skipif(
    not (shutil.which("chromium") or shutil.which("chromium-browser")),
    reason="headless Chromium not installed (apt-get install chromium)",
)
def test_html_renders_in_headless_chromium(results, tmp_path):
    from PIL import Image

    page = write_report(results, tmp_path)["html"]
    shot = tmp_path / "shot.png"
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
        cwd=tmp_path,
    )
    img = Image.open(shot).convert("RGB")
    assert img.size == (1200, 2000)
    px = np.asarray(img, dtype=int)
    ink = (px.sum(axis=2) < 600).mean()
    colour = ((px.max(axis=2) - px.min(axis=2)) > 80).mean()
    assert ink > 0.01, "page looks blank"
    assert colour > 0.005, "no coloured plot bars visible"
