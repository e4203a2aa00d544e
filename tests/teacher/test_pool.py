"""Several teachers (reasonkd.teacher.pool): each solves the problems, verified traces pooled per problem by
policy (all / shortest / best_family), stats per teacher, the `teacher` field, the CLI's several --teacher."""

from __future__ import annotations

import json

import pytest

from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.teacher.backends import Result
from reasonkd.teacher.generate import GenerateSettings
from reasonkd.teacher.pool import TeacherSpec, generate_pooled, load_verdicts
from reasonkd.teacher.traces import load_traces
from reasonkd.utils.io import read_json, read_jsonl

QUESTIONS = {
    "m-add": "How many is 2 + 3?",
    "m-mul": "What is 6 * 7?",
    "m-sub": "What is 9 - 4?",
    "m-sq": "What is 3 * 3?",
    "m-dbl": "What is 8 + 8?",
}
# teacher A: right on add (long), sub, sq; B: right on add (short), mul, sq, dbl -> B is best on the family
ANSWERS = {
    "A": {
        "m-add": "Two plus three: 2 + 3 = 5, so five.\n#### 5",
        "m-mul": "#### 48",
        "m-sub": "9 - 4 = 5\n#### 5",
        "m-sq": "3 * 3 = 9\n#### 9",
        "m-dbl": "#### 15",
    },
    "B": {
        "m-add": "#### 5",
        "m-mul": "6 * 7 = 42\n#### 42",
        "m-sub": "#### 6",
        "m-sq": "So 3 * 3 = 9 here.\n#### 9",
        "m-dbl": "#### 16",
    },
}


class Answers:
    """A scripted teacher: tokens = words, so lengths are easy to read."""

    def __init__(self, name):
        self.name, self.calls = name, 0

    def generate(self, requests, sampling):
        out = []
        for r in requests:
            pid = next(p for p, q in QUESTIONS.items() if q in r.user)
            text = ANSWERS[self.name][pid]
            out.append(Result(r.key, text, None, 10, len(text.split()), True, 0.01))
        self.calls += len(requests)
        yield out


@pytest.fixture
def five_items(tmp_path):
    from _teacher_cases import item_rows

    rows = [r for r in item_rows() if r["id"] in QUESTIONS]
    path = tmp_path / "items.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _run(data, out, prefer):
    settings = GenerateSettings(teacher="", data=str(data), out=str(out), prefer=prefer, progress=False)
    return generate_pooled(
        settings, [TeacherSpec("A"), TeacherSpec("B")], backends={"A": Answers("A"), "B": Answers("B")}
    )


def _kept(out):
    return sorted((r["id"], r["teacher"]) for r in read_jsonl(out / "traces.jsonl"))


def test_policies_stats_and_teacher_field(five_items, tmp_path):
    stats = _run(five_items, tmp_path / "all", "all")
    assert _kept(tmp_path / "all") == [
        ("m-add", "A"),
        ("m-add", "B"),
        ("m-dbl", "B"),
        ("m-mul", "B"),
        ("m-sq", "A"),
        ("m-sq", "B"),
        ("m-sub", "A"),
    ]
    pool = stats["pool"]
    assert pool["problems"] == 5 and pool["solved_by_any"] == 5
    a, b = pool["teachers"]["A"], pool["teachers"]["B"]
    assert (a["acceptance_rate"], a["problems_solved"], a["only_it_solved"], a["only_it_solved_ids"]) == (
        0.6,
        3,
        1,
        ["m-sub"],
    )
    assert (b["acceptance_rate"], b["problems_solved"], b["only_it_solved"]) == (0.8, 4, 2)
    assert a["mean_tokens"] == pytest.approx(sum(len(t.split()) for t in ANSWERS["A"].values()) / 5, abs=0.05)
    # ids stay unique for the trainer: sample_idx renumbered per problem, the teacher's own kept
    ex = load_traces(tmp_path / "all")
    assert sorted(e["id"] for e in ex if e["id"].startswith("m-add")) == ["m-add#0", "m-add#1"]
    assert all("teacher_sample_idx" in r for r in read_jsonl(tmp_path / "all" / "traces.jsonl"))
    assert load_verdicts(tmp_path / "all")["m-sub"] == {"A": True, "B": False}
    assert {r["teacher"] for r in read_jsonl(tmp_path / "all" / "negatives.jsonl")} == {"A", "B"}
    assert (tmp_path / "all" / "teachers" / "A" / "traces.jsonl").is_file()


def test_shortest_and_best_family(five_items, tmp_path):
    _run(five_items, tmp_path / "short", "shortest")
    # add: B's "#### 5" (2 words) beats A's; sq: A's 6 words beat B's 8
    assert _kept(tmp_path / "short") == [("m-add", "B"), ("m-dbl", "B"), ("m-mul", "B"), ("m-sq", "A"), ("m-sub", "A")]
    _run(five_items, tmp_path / "fam", "best_family")
    # B is right on 4/5 of the family, A on 3/5: B's traces wherever B solved it, A's where only A did
    assert _kept(tmp_path / "fam") == [("m-add", "B"), ("m-dbl", "B"), ("m-mul", "B"), ("m-sq", "B"), ("m-sub", "A")]
    assert read_json(tmp_path / "fam" / "pool.json")["family_rate"]["math/m"] == {"A": 0.6, "B": 0.8}


def test_resume_reuses_each_teacher_folder(five_items, tmp_path):
    _run(five_items, tmp_path / "r", "all")
    settings = GenerateSettings(
        teacher="", data=str(five_items), out=str(tmp_path / "r"), prefer="shortest", progress=False
    )
    backends = {"A": Answers("A"), "B": Answers("B")}
    generate_pooled(settings, [TeacherSpec("A"), TeacherSpec("B")], backends=backends)
    assert backends["A"].calls == 0 and backends["B"].calls == 0  # committed: nothing regenerated
    assert len(read_jsonl(tmp_path / "r" / "traces.jsonl")) == 5


def test_bad_specs():
    with pytest.raises(ConfigError):
        TeacherSpec("")
    with pytest.raises(ConfigError):
        TeacherSpec("x", weight=-1)
    with pytest.raises(ConfigError):
        TeacherSpec("x", backend="nope")
    with pytest.raises(ReasonkdError, match="each teacher once"):
        generate_pooled(GenerateSettings(teacher="", data="d", out="o"), [TeacherSpec("A"), TeacherSpec("A")])


def test_cli_takes_several_teachers(five_items, tmp_path, monkeypatch, capsys):
    import reasonkd.teacher.pool as pool
    from reasonkd.cli import main

    real = pool.generate_pooled
    monkeypatch.setattr(
        pool,
        "generate_pooled",
        lambda s, teachers: real(s, teachers, backends={t.model: Answers(t.model) for t in teachers}),
    )
    rc = main(
        [
            "teacher",
            "generate",
            "--teacher",
            "A",
            "--teacher",
            "B",
            "--data",
            str(five_items),
            "--out",
            str(tmp_path / "cli"),
            "--prefer",
            "best_family",
            "--no-progress",
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "pool (best_family): 5/5 problems" in out and "A: acceptance 60.0%" in out
    assert _kept(tmp_path / "cli")[-1] == ("m-sub", "A")


def test_recipe_accepts_teachers_and_a_plain_teacher(tmp_path):
    from reasonkd.config import from_dict
    from reasonkd.distill.recipe import DistillRecipe

    one = from_dict(DistillRecipe, {"student": "s", "teacher": "t"})
    one.resolve_teachers()
    assert one.teacher == "t" and one.teachers == []
    many = from_dict(
        DistillRecipe, {"student": "s", "teachers": [{"model": "a", "weight": 2.0}, {"model": "b", "dtype": "float32"}]}
    )
    many.resolve_teachers()
    assert many.teacher == "a" and [t.weight for t in many.teachers] == [2.0, 1.0]
    single = from_dict(
        DistillRecipe, {"student": "s", "teachers": [{"model": "a", "logit_cache": "c", "dtype": "float32"}]}
    )
    single.resolve_teachers()
    assert single.teacher == "a" and single.data.logit_cache == "c" and single.teacher_dtype == "float32"
    # overrides rebuild the recipe from its own dict: the derived teacher must follow the new list
    from reasonkd.config import load_config

    path = tmp_path / "r.yaml"
    path.write_text("student: s\nteachers: [{model: a}, {model: b}]\n")
    cfg = load_config(DistillRecipe, path, ["teachers=[{model: b, logit_cache: cb}]"])
    cfg.resolve_teachers()
    assert cfg.teacher == "b" and cfg.data.logit_cache == "cb"
    with pytest.raises(ConfigError, match="teachers.1.weight"):
        from_dict(DistillRecipe, {"student": "s", "teachers": [{"model": "a"}, {"model": "b", "weight": -1}]})


def test_demo_report_names_the_teacher_of_the_traces():
    from reasonkd.pipeline.report import demo_markdown

    md = demo_markdown(
        {
            "student": "s",
            "teacher": "A",
            "table": "|x|",
            "paired": {},
            "cases": [],
            "traces": {
                "teacher_accepted": 5,
                "problems": 8,
                "acceptance_rate": 0.625,
                "reference": 0,
                "by_teacher": {"A": 3, "B": 2},
            },
        }
    )
    assert "By teacher: A 3, B 2." in md
