"""Trace generation end to end: verification, negatives, stats, resume, cache, templates, backends."""

import json
import sys
import types

import pytest

from reasonkd.data.prompts import load_template
from reasonkd.data.verify import verify_item
from reasonkd.errors import ReasonkdError
from reasonkd.teacher.generate import GenerateSettings, generate_traces, select_items
from reasonkd.utils.io import read_jsonl

from _teacher_cases import EXPECTED, ITEMS, item_rows


def _settings(items_file, out, **kw):
    base = dict(teacher="scripted-teacher", data=str(items_file), out=str(out), shard_size=3, progress=False)
    return GenerateSettings(**{**base, **kw})


def test_verified_traces_negatives_and_stats(items_file, tmp_path, scripted):
    out = tmp_path / "run"
    stats = generate_traces(_settings(items_file, out), backend=scripted())
    traces, negs = read_jsonl(out / "traces.jsonl"), read_jsonl(out / "negatives.jsonl")
    assert {t["id"] for t in traces} == {k for k, v in EXPECTED.items() if v is None}
    assert {n["id"]: n["error_type"] for n in negs} == {k: v for k, v in EXPECTED.items() if v}
    items = {r["id"]: r for r in item_rows()}
    for t in traces:  # every kept trace passes the verifier, and carries the documented fields
        assert verify_item(items[t["id"]], t["trace"])
        assert set(t) >= {
            "id",
            "prompt",
            "trace",
            "reasoning",
            "final",
            "answer",
            "domain",
            "teacher",
            "sample_idx",
            "tokens",
        }
        assert t["prompt"].startswith(items[t["id"]]["question"]) and t["teacher"] == "scripted-teacher"
    sq = next(t for t in traces if t["id"] == "m-sq")  # reasoning_content kept apart, joined in the trace
    assert (sq["reasoning"], sq["final"]) == ("3 * 3 = 9", "#### 9")
    assert sq["trace"] == "<think>\n3 * 3 = 9\n</think>\n\n#### 9"
    o = stats["overall"]
    assert (o["samples"], o["accepted"], o["truncated"], o["no_answer"], o["wrong_final_answer"]) == (7, 4, 1, 1, 1)
    assert stats["by_domain"]["logic"]["acceptance_rate"] == 1.0
    assert stats["by_difficulty"]["2"]["accepted"] == 1 and stats["by_difficulty"]["2"]["samples"] == 3
    assert json.loads((out / "stats.json").read_text())["overall"] == o
    assert len(json.loads((out / "progress.json").read_text())["shards"]) == 3  # 7 problems, 3 per shard


def test_crash_then_resume_processes_each_problem_once_and_reuses_the_cache(items_file, tmp_path, scripted):
    out = tmp_path / "run"
    crashing = scripted(group=2, fail_after=4)  # shard 1 (3 requests) commits; shard 2 dies after 1 group
    with pytest.raises(RuntimeError, match="teacher crashed"):
        generate_traces(_settings(items_file, out), backend=crashing)
    committed = json.loads((out / "progress.json").read_text())["shards"]
    assert len(committed) == 1 and not (out / "traces.jsonl").exists()
    again = scripted()
    generate_traces(_settings(items_file, out), backend=again)
    rows = read_jsonl(out / "traces.jsonl") + read_jsonl(out / "negatives.jsonl")
    assert sorted(r["id"] for r in rows) == sorted(EXPECTED)  # each problem exactly once
    assert not set(again.generated) & set(crashing.generated)  # cached requests were not regenerated
    assert len(again.generated) + len(crashing.generated) == len(EXPECTED)
    third = scripted()
    generate_traces(_settings(items_file, out), backend=third)  # finished run: nothing to do
    assert third.generated == []
    assert len(read_jsonl(out / "traces.jsonl")) + len(read_jsonl(out / "negatives.jsonl")) == len(EXPECTED)


def test_k_samples_and_limit_extension(items_file, tmp_path, scripted):
    out = tmp_path / "run"
    b = scripted()
    generate_traces(_settings(items_file, out, k=2, temperature=0.7, limit=3), backend=b)
    first = read_jsonl(out / "traces.jsonl") + read_jsonl(out / "negatives.jsonl")
    assert len(first) == 6 and sorted({r["sample_idx"] for r in first}) == [0, 1]
    assert len({(r["id"], r["sample_idx"]) for r in first}) == 6
    generate_traces(_settings(items_file, out, k=2, temperature=0.7, limit=5), backend=b)
    rows = read_jsonl(out / "traces.jsonl") + read_jsonl(out / "negatives.jsonl")
    assert len(rows) == 10 and {r["id"] for r in first} <= {r["id"] for r in rows}
    assert len(b.generated) == 10 == len(set(b.generated))


def test_resume_with_other_settings_is_refused(items_file, tmp_path, scripted):
    out = tmp_path / "run"
    generate_traces(_settings(items_file, out, limit=2), backend=scripted())
    with pytest.raises(ReasonkdError, match="max_new_tokens: was 384, now 99"):
        generate_traces(_settings(items_file, out, limit=2, max_new_tokens=99), backend=scripted())


def test_templates(items_file, tmp_path, scripted):
    yml = tmp_path / "t.yaml"
    yml.write_text("system: Be brief.\nmath: 'Q: {question}\n#### at the end'\n")
    out = tmp_path / "run"
    generate_traces(_settings(items_file, out, template=str(yml), domain="math", limit=2), backend=scripted())
    rows = read_jsonl(out / "traces.jsonl") + read_jsonl(out / "negatives.jsonl")
    assert all(r["prompt"].startswith("Q: ") and r["system"] == "Be brief." for r in rows)
    txt = tmp_path / "t.txt"
    txt.write_text("Solve: {question}")
    assert load_template(str(txt))["default"] == "Solve: {question}"
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholder")
    with pytest.raises(ReasonkdError, match="question"):
        load_template(str(bad))


def test_select_items_rejects_duplicates_and_empty(tmp_path, items_file):
    assert [r["id"] for r in select_items(str(items_file), "train", "logic", None)] == ["l-sud"]
    dup = tmp_path / "dup.jsonl"
    dup.write_text(items_file.read_text() + items_file.read_text().splitlines()[0] + "\n")
    with pytest.raises(ReasonkdError, match="appears twice"):
        select_items(str(dup), None, None, None)
    with pytest.raises(ReasonkdError, match="no problems"):
        select_items(str(items_file), "test", None, None)


def test_hf_backend_on_a_tiny_model(items_file, tmp_path, tiny_llama_dir):
    out = tmp_path / "run"
    stats = generate_traces(
        GenerateSettings(
            teacher=str(tiny_llama_dir),
            data=str(items_file),
            out=str(out),
            max_new_tokens=6,
            batch_size=4,
            progress=False,
        )
    )
    rows = read_jsonl(out / "negatives.jsonl") + read_jsonl(out / "traces.jsonl")
    assert len(rows) == len(EXPECTED) and stats["generation"]["new_tokens"] > 0
    assert all(r["tokens"] <= 6 and r["prompt_tokens"] > 0 for r in rows)


def test_vllm_backend_missing_gives_a_clear_error(items_file, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # import vllm -> ImportError
    with pytest.raises(ReasonkdError, match="pip install 'reasonkd\\[vllm\\]'"):
        generate_traces(_settings(items_file, tmp_path / "run", backend="vllm", teacher="anything"))


def test_vllm_backend_with_a_stand_in_module(items_file, tmp_path, monkeypatch, tiny_llama_dir):
    """The vLLM code path against a fake `vllm` module with the same API surface."""

    class LLM:
        def __init__(self, model, dtype, **kw):
            from transformers import AutoTokenizer

            self.model, self.tok = model, AutoTokenizer.from_pretrained(model)

        def get_tokenizer(self):
            return self.tok

        def generate(self, prompts, params, use_tqdm):
            outs = []
            for p, _ in zip(prompts, params):
                text = next(it[5] for it in ITEMS if it[3] in p)
                done = types.SimpleNamespace(text=text, token_ids=[1] * 7, finish_reason="stop")
                outs.append(types.SimpleNamespace(prompt_token_ids=[1] * 11, outputs=[done]))
            return outs

    fake = types.SimpleNamespace(LLM=LLM, SamplingParams=lambda **kw: types.SimpleNamespace(**kw))
    monkeypatch.setitem(sys.modules, "vllm", fake)
    out = tmp_path / "run"
    stats = generate_traces(_settings(items_file, out, backend="vllm", teacher=str(tiny_llama_dir)))
    assert stats["overall"]["accepted"] == 5  # the truncation flag is the backend's: all finished here
    assert stats["generation"]["new_tokens"] == 7 * len(EXPECTED)


def test_check_command_reverifies_a_run(items_file, tmp_path, scripted, capsys):
    from reasonkd.cli import main

    out = tmp_path / "run"
    generate_traces(_settings(items_file, out), backend=scripted())
    assert main(["teacher", "check", "--traces", str(out), "--data", str(items_file)]) == 0
    assert "4 traces re-verified; 0 with the wrong verdict" in capsys.readouterr().out
    rows = read_jsonl(out / "traces.jsonl")
    rows[0]["trace"] = "#### 123456"  # a tampered trace must be caught
    (out / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["teacher", "check", "--traces", str(out), "--data", str(items_file)]) == 1
