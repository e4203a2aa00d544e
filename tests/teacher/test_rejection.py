"""Rejection sampling in `reasonkd teacher generate`: k samples per problem, only verified ones kept,
`prefer: shortest` keeps the shortest verified one, per-sample seeds, the selection stats."""

from __future__ import annotations

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.backends import Result
from reasonkd.teacher.generate import GenerateSettings, generate_traces
from reasonkd.teacher.selection import select_verified
from reasonkd.utils.io import read_jsonl

# per question: the text of sample 0, 1, 2 (wrong / long right / short right, or wrong everywhere)
SAMPLES = {
    "How many is 2 + 3?": [
        "2 + 3 = 6\n#### 6",
        "Two plus three: 2 + 3 = 5, so the total is five.\n#### 5",
        "2 + 3 = 5\n#### 5",
    ],
    "What is 6 * 7?": ["6 * 7 = 48\n#### 48", "#### 41", "#### 40"],
    "What is 9 - 4?": ["9 - 4 = 5\n#### 5", "Nine minus four is 5.\n#### 5", "9 - 4 = 6\n#### 6"],
}


class SampleBackend:
    """Answers by (question, sample_idx); tokens = words, so lengths are easy to read."""

    def __init__(self):
        self.seeds = []

    def generate(self, requests, sampling):
        out = []
        for r in requests:
            q = next(q for q in SAMPLES if q in r.user)
            text = SAMPLES[q][r.sample_idx]
            self.seeds.append(r.seed)
            out.append(Result(r.key, text, None, 10, len(text.split()), True, 0.01))
        yield out


@pytest.fixture
def three_items(tmp_path):
    import json

    from _teacher_cases import item_rows

    rows = [r for r in item_rows() if r["question"] in SAMPLES]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _settings(data, out, **kw):
    return GenerateSettings(teacher="scripted", data=str(data), out=str(out), split=None, progress=False, **kw)


def test_only_verified_traces_are_kept_and_shortest_wins(three_items, tmp_path):
    out = tmp_path / "all"
    stats = generate_traces(_settings(three_items, out, k=3, temperature=0.8), backend=SampleBackend())
    kept = read_jsonl(out / "traces.jsonl")
    assert {(r["id"], r["sample_idx"]) for r in kept} == {("m-add", 1), ("m-add", 2), ("m-sub", 0), ("m-sub", 1)}
    assert all(r["pred"] == r["answer"] for r in kept)  # every kept trace is verified
    assert len(read_jsonl(out / "negatives.jsonl")) == 5
    sel = stats["selection"]
    assert sel["prefer"] == "all" and sel["kept"] == 4 and sel["samples"] == 9
    assert sel["acceptance_per_sample"] == round(4 / 9, 4) and sel["problems_solved"] == 2 and sel["problems"] == 3
    assert sel["teacher_tokens"] == sum(len(t.split()) for ts in SAMPLES.values() for t in ts)

    out = tmp_path / "short"
    stats = generate_traces(
        _settings(three_items, out, k=3, temperature=0.8, prefer="shortest"), backend=SampleBackend()
    )
    kept = read_jsonl(out / "traces.jsonl")
    assert {(r["id"], r["sample_idx"]) for r in kept} == {("m-add", 2), ("m-sub", 0)}  # the shortest verified
    assert stats["selection"]["kept"] == 2
    assert (
        stats["selection"]["kept_mean_tokens"]
        == (len(SAMPLES["How many is 2 + 3?"][2].split()) + len(SAMPLES["What is 9 - 4?"][0].split())) / 2
    )
    assert stats["selection"]["kept_mean_tokens"] < stats["selection"]["verified_mean_tokens"]


def test_select_verified_breaks_ties_by_sample_index():
    rows = [
        {"id": "a", "sample_idx": i, "tokens": t, "accepted": ok}
        for i, (t, ok) in enumerate([(5, True), (3, False), (5, True), (7, True)])
    ]
    assert [r["sample_idx"] for r in select_verified(rows, "shortest")] == [0]
    assert [r["sample_idx"] for r in select_verified(rows, "all")] == [0, 2, 3]


def test_each_sample_has_its_own_seed_and_another_base_seed_draws_new_ones(three_items, tmp_path):
    a, b = SampleBackend(), SampleBackend()
    generate_traces(_settings(three_items, tmp_path / "s0", k=3, temperature=0.8), backend=a)
    generate_traces(_settings(three_items, tmp_path / "s7", k=3, temperature=0.8, seed=7), backend=b)
    assert len(set(a.seeds)) == 9 and len(set(b.seeds)) == 9 and not set(a.seeds) & set(b.seeds)
    with pytest.raises(ReasonkdError, match="seed"):  # a folder keeps its seed
        generate_traces(_settings(three_items, tmp_path / "s7", k=3, temperature=0.8), backend=SampleBackend())
    with pytest.raises(ReasonkdError, match="--prefer"):
        generate_traces(_settings(three_items, tmp_path / "x", prefer="longest"), backend=SampleBackend())


def test_cli_samples_per_problem_and_prefer(three_items, tmp_path, monkeypatch, capsys):
    import reasonkd.teacher.generate as gen
    from reasonkd.cli import main

    real = gen.generate_traces
    monkeypatch.setattr(gen, "generate_traces", lambda s: real(s, backend=SampleBackend()))
    out = tmp_path / "cli"
    assert (
        main(
            [
                "teacher",
                "generate",
                "--teacher",
                "scripted",
                "--data",
                str(three_items),
                "--out",
                str(out),
                "--split",
                "all",
                "--samples-per-problem",
                "3",
                "--temperature",
                "0.8",
                "--prefer",
                "shortest",
                "--no-progress",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "kept 2 traces (prefer shortest) of 2/3 problems solved by >= 1 sample" in text
    assert len(read_jsonl(out / "traces.jsonl")) == 2
    assert "traces.jsonl (2 traces)" in text  # what the file holds, not every verified sample
