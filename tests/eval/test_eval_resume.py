"""A long evaluation with an output folder generates in chunks, each recorded as it finishes: a run
stopped mid-way resumes at its last whole chunk (a line cut by a kill is generated again) and gives the
samples an uninterrupted run gives."""

import json

import pytest

from reasonkd.eval import runner, sample_store
from reasonkd.models.engines.base import Engine

GSM8K = [
    {"question": f"Tom has {a} apples and buys {b} more. How many now?", "answer": f"#### {a + b}"}
    for a in range(3, 6)
    for b in range(2, 5)
]  # 9 problems


class Stop(Exception):
    pass


def _eval(tiny_qwen_dir, data, out):
    kw = dict(
        data=str(data),
        max_new_tokens=5,
        batch_size=2,
        latency_problems=0,
        cases=False,
        dtype="float32",
        engine="hf",
        label="m",
        progress=False,
    )
    r = runner.evaluate_model(str(tiny_qwen_dir), ["gsm8k"], out_dir=out, **kw)
    return [{k: s[k] for k in ("id", "completion", "new_tokens", "finished")} for s in r["tasks"]["gsm8k"]["samples"]]


def test_a_stopped_evaluation_resumes_at_its_last_chunk(tiny_qwen_dir, tmp_path, monkeypatch):
    data = tmp_path / "gsm8k.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in GSM8K))
    monkeypatch.setattr(sample_store, "EVAL_CHUNK", 4)  # 9 sequences: chunks of 4, 4, 1
    whole = _eval(tiny_qwen_dir, data, tmp_path / "whole")
    assert not list((tmp_path / "whole").rglob("*.partial.jsonl"))  # gone once the samples are written

    calls = []
    generate = Engine.generate

    def stopping(self, prompts, **kw):
        calls.append(len(prompts))
        if len(calls) == 3:
            raise Stop  # killed during the last chunk
        return generate(self, prompts, **kw)

    monkeypatch.setattr(Engine, "generate", stopping)
    with pytest.raises(Stop):
        _eval(tiny_qwen_dir, data, tmp_path / "cut")
    partial = next((tmp_path / "cut").rglob("gsm8k.partial.jsonl"))
    assert len(partial.read_text().splitlines()) == 3  # identity + two whole chunks
    with open(partial, "a") as f:
        f.write('{"start": 8, "prompts": ["cut by a ki')  # a kill in the middle of writing a line
    calls.clear()
    monkeypatch.setattr(
        Engine, "generate", lambda self, prompts, **kw: calls.append(len(prompts)) or generate(self, prompts, **kw)
    )
    assert _eval(tiny_qwen_dir, data, tmp_path / "cut") == whole
    assert calls == [1]  # only the missing chunk was generated
    assert not partial.exists()
