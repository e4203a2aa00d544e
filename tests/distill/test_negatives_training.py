"""Wrong traces in training: loading both sources, the wrong-step mask, and the loss terms in a run."""

from __future__ import annotations

import json

import pytest

from reasonkd.utils.io import read_jsonl, write_jsonl
from tests.distill._tiny_distill import build_pair, write_traces


def _wrong(trace: str) -> str:
    """Same first line, a wrong answer after it (an arithmetic slip in the final step)."""
    head, _, _ = trace.partition(".")
    return head + ".\nSo it is 99.\n#### 99"


def test_divergence_char_starts_at_the_line_of_the_first_difference():
    from reasonkd.distill.negatives import divergence_char

    right = "Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\n#### 14"
    wrong = "Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 16.\n#### 16"
    assert wrong[divergence_char(right, wrong) :].startswith("Step 2: 7 * 2 = 16")
    assert divergence_char(right, "Other text") == 0


def test_load_negatives_reads_teacher_and_data_engine_rows(tmp_path):
    from reasonkd.distill.negatives import load_negatives
    from reasonkd.errors import ReasonkdError

    write_jsonl(tmp_path / "negatives.jsonl", [{"id": "p1", "sample_idx": 0, "prompt": "q", "trace": "bad"}])
    write_jsonl(
        tmp_path / "train.jsonl",
        [
            {"id": "p2", "kind": "original", "steps": ["ok", "#### 3"], "verifier": "math_numeric", "answer": "3"},
            {
                "id": "p2-neg-x",
                "parent_id": "p2",
                "kind": "negative",
                "steps": ["bad", "#### 4"],
                "verifier": "math_numeric",
                "answer": "4",
            },
        ],
    )
    assert load_negatives(tmp_path / "negatives.jsonl") == {"p1": ["bad"]}
    assert load_negatives(tmp_path / "train.jsonl") == {"p2": ["bad\n#### 4"]}
    (tmp_path / "empty.jsonl").write_text('{"id": "x", "trace": ""}\n')
    with pytest.raises(ReasonkdError, match="empty.jsonl:1"):
        load_negatives(tmp_path / "empty.jsonl")


def test_attach_negatives_marks_the_wrong_step_tokens(tmp_path):
    from reasonkd.distill.data import collate, encode_all
    from reasonkd.teacher.traces import load_traces
    from reasonkd.distill.negatives import attach_negatives
    from reasonkd.models import load_tokenizer

    _, student = build_pair(tmp_path)
    tok = load_tokenizer(str(student))
    traces = load_traces(write_traces(tmp_path / "traces.jsonl", n=4))
    enc = encode_all(traces, tok, 96)
    negs = {"q0": [_wrong(traces[0]["trace"])], "q2": [_wrong(traces[2]["trace"])]}
    assert attach_negatives(enc, {t["id"]: t for t in traces}, negs, tok, 96) == 2
    e = enc[0]
    wrong_text = tok.decode(e.neg_input_ids[e.neg_start :])
    assert wrong_text.lstrip().startswith("So it is 99"), wrong_text  # the shared first step is not penalised
    batch = collate(enc, tok.pad_token_id)
    assert batch["has_neg"].tolist() == [True, False, True, False]
    assert batch["neg_wrong"][0].sum() == len(e.neg_input_ids) - e.neg_start and not batch["neg_wrong"][1].any()


def _negatives_run(tmp_path, teacher, student, data, weight: float) -> list[dict]:
    from reasonkd.distill.stages import run_recipe

    out = tmp_path / f"run-{weight}"
    (tmp_path / "r.yaml").write_text(f"""\
student: {student}
teacher: {teacher}
data: {{path: {data}, negatives: {tmp_path / "neg.jsonl"}}}
output_dir: {out}
bf16_autocast: false
max_length: 96
batch_size: 4
save_every: 0
stages:
  - name: logic
    kind: logic
    steps: 16
    lr: 0.003
    lr_schedule: constant
    losses: [{{name: ce}}, {{name: unlikelihood, weight: {weight}}}, {{name: preference, weight: {weight}}}]
""")
    run_recipe(tmp_path / "r.yaml", progress=False)
    return [json.loads(x) for x in (out / "stages" / "1-logic" / "metrics.jsonl").read_text().splitlines()]


def test_negative_terms_push_the_wrong_trace_down(tmp_path):
    """Same run with the negative terms at weight 0 (computed and logged only) and at weight 1: with
    them, the wrong step ends less likely and the right-vs-wrong margin wider."""
    teacher, student = build_pair(tmp_path)
    data = write_traces(tmp_path / "traces.jsonl", n=8)
    write_jsonl(tmp_path / "neg.jsonl", [{"id": r["id"], "trace": _wrong(r["trace"])} for r in read_jsonl(data)])
    off, on = (
        _negatives_run(tmp_path, teacher, student, data, 0.0),
        _negatives_run(tmp_path, teacher, student, data, 1.0),
    )
    for term in ("unlikelihood", "preference"):
        last_off = sum(r["terms"][term] for r in off[-4:]) / 4
        last_on = sum(r["terms"][term] for r in on[-4:]) / 4
        assert last_on < last_off, (term, last_on, last_off)
    assert on[-1]["terms"]["preference"] < on[0]["terms"]["preference"]


def test_negative_losses_need_data_negatives(tmp_path):
    from reasonkd.config import from_dict
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.errors import ConfigError

    recipe = from_dict(
        DistillRecipe,
        {
            "student": "s",
            "data": {"path": "x"},
            "stages": [
                {"name": "a", "kind": "logic", "steps": 1, "losses": [{"name": "ce"}, {"name": "unlikelihood"}]}
            ],
        },
    )
    with pytest.raises(ConfigError, match="data.negatives"):
        recipe.check_ready()
