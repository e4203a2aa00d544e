"""First-error analysis: the classes on constructed completions, the calculation reader (units, commas,
decimals), transitions, the report section, `reasonkd analyze` end to end, bad input, and the agreement
with the hand-labelled completions of the shipped models."""

import json
from fractions import Fraction
from pathlib import Path

import pytest

from reasonkd.cli import main
from reasonkd.data.augment import math_item
from reasonkd.data.math_families import FAMILIES
from reasonkd.errors import ReasonkdError
from reasonkd.eval.analyze import analyze_runs, load_runs, transitions
from reasonkd.eval.calc import read_chain
from reasonkd.eval.diagnose import CLASSES, diagnose, excerpt, gold_of
from reasonkd.eval.report import write_report
from reasonkd.utils.io import read_jsonl, write_jsonl

LABELLED = Path(__file__).parent / "data" / "first_errors.jsonl"
SHOP = {"n1": 3, "p1": 8, "n2": 7, "p2": 2, "bill": 100, "coupon": 5, "name": "Grace"}
CHAIN = "1. Notebooks: 3 * $8 = $24.\n2. Pens: 7 * $2 = $14.\n3. Together: $24 + $14 = $38.\n"


def _item(extra: bool, idx: int = 1) -> dict:
    return math_item(
        FAMILIES["shopping_change"], dict(SHOP, extra=extra), f"math-shopping_change-{idx:05d}", seed=0, split="val"
    ).to_dict()


def _cls(completion: str, item: dict | None, finished=True, reference=None, question=None) -> str:
    ref = reference if reference is not None else (item or {}).get("answer")
    return diagnose(completion, ref, gold_of(item), question or (item or {}).get("question"), finished).cls


@pytest.fixture
def plain():
    return _item(False)  # change = 100 - (24 + 14) = 62


@pytest.fixture
def coupon():
    return _item(True)  # with the $5 coupon: 100 - 33 = 67; without it 62


def test_gold_of_a_family_item(plain, coupon):
    g = gold_of(coupon)
    assert g.values == [24, 14, 38, 33, 67] and g.answer == 67 and g.no_condition == 62
    assert g.condition_numbers == {Fraction(5)} and gold_of(plain).no_condition is None
    assert 4 in g.feeds[0] and g.feeds[3] == {4}  # notebooks feed everything after the total; the coupon the change


def test_each_class_on_constructed_completions(plain, coupon):
    assert _cls(CHAIN + "4. Change: $100 - $38 = $52.\n#### 52", plain) == "arithmetic"
    assert _cls("1. Notebooks: 3 * $13 = $39.\n2. Change: $100 - $39 = $61.\n#### 61", plain) == "copy"
    assert _cls("1. Items: 3 + 7 = 10.\n2. Change: 100 - 10 = 90.\n#### 90", plain) == "plan"
    assert _cls(CHAIN + "4. Change: $100 - $38 = $62.\n#### 62", coupon) == "condition"
    assert _cls(CHAIN + "4. Change: $100 - $38 = $62.\n#### 38", plain) == "extraction"
    assert _cls("1. Notebooks: 3 * $8 = $24.\n2. Pens: 7 *", plain, finished=False) == "no_answer"
    assert _cls("", plain) == "no_answer" and _cls("1. Add the costs.\n2. Subtract them.", plain) == "no_answer"
    assert _cls("#### 61", None, reference="62") == "other"  # no gold steps: a bare wrong answer is not told apart
    assert _cls("#### 61", plain) == "plan"  # with them: the needed gold intermediates never appear


def test_chain_reaching_gold_but_printing_another_final_line(plain):
    text = CHAIN + "4. Change: $100 - $38 = $62.\n\n#### 4. Print the change\n#### 1"
    d = diagnose(text, "62", gold_of(plain), plain["question"], True)
    assert d.cls == "extraction" and "reaches 62" in d.why and "[[#### 1]]" in excerpt(text, d)
    # without gold steps the reference alone is enough to see it
    assert _cls(text, None, reference="62", question=plain["question"]) == "extraction"


def test_offending_step_is_marked(plain):
    text = CHAIN + "4. Change: $100 - $38 = $52.\n#### 52"
    d = diagnose(text, "62", gold_of(plain), plain["question"], True)
    assert text[d.start : d.end] == "$100 - $38 = $52" and "[[$100 - $38 = $52]]" in excerpt(text, d)
    assert d.why == "$100 - $38 = 52 (is 62)"


@pytest.mark.parametrize(
    "text, ok",
    [
        ("Cost: $1,234.50 + $15 = $1,249.50", True),
        ("1,000 - 250 = 750 apples", True),
        ("2.5 hours * $12 = $30", True),
        ("3 x 4.5 = 13.5", True),
        ("20% of 40 = 8 girls", True),
        ("40 * 20% = 8", True),
        ("12 crates * 19 apples/crate = 228 apples", True),
        (r"\[ \frac{200 \text{ apples}}{10 \text{ apples per bag}} = 20 \text{ bags} \]", True),
        (r"\[ 25 \text{ miles/hour} \times 3 \text{ hours} = 75 \text{ miles} \]", True),
        ("10 / 3 = 3.33 cups", True),
        ("$1,234 + 1,000 = $2,224", False),
        ("0.5 * 9 = 4", False),
    ],
)
def test_calculations_with_units_commas_and_decimals(text, ok):
    calcs = read_chain(text).calcs
    assert len(calcs) == 1 and calcs[0].ok is ok, [(c.expr, c.value, c.claimed) for c in calcs]


def test_chains_and_algebra():
    chain = read_chain(
        "40 * 20 = 800 / 100 = 8\n5 * 3 + 2 = 15 + 2 = 17\n2c + 4r = 112\n2 * chickens + 4 * rabbits = 112"
    )
    assert [(c.expr, c.ok) for c in chain.calcs] == [
        ("40 * 20", True),
        ("800 / 100", True),
        ("5 * 3 + 2", True),
        ("15 + 2", True),
    ]
    # list marks are no quantities
    assert [v for v, _ in read_chain("1. Pay 3 * 4 = 12.\n2. Done").numbers] == [3, 4, 12]


def test_transitions_count_fixed_introduced_stayed():
    def summary(label, classes):
        return {"label": label, "task": "gsm8k", "rows": {str(i): {"cls": c} for i, c in enumerate(classes)}}

    t = transitions(
        summary("sft-only", ["plan", "correct", "arithmetic", "plan", "correct"]),
        summary("distilled", ["correct", "copy", "arithmetic", "no_answer", "correct"]),
    )
    assert (t["fixed"], t["introduced"], t["stayed"], t["shared"]) == (1, 1, 2, 5)
    assert t["by_class"]["plan"] == {"fixed": 1, "introduced": 0, "stayed": 1, "same": 0}
    assert t["by_class"]["copy"]["introduced"] == 1 and t["by_class"]["arithmetic"]["same"] == 1
    assert t["matrix"]["plan->no_answer"] == 1


def _result(label, completions, items, task="gsm8k"):
    rows = [
        {
            "idx": i,
            "id": it["id"],
            "sample": 0,
            "prompt": it["question"],
            "completion": c,
            "reference": it["answer"],
            "verdict": c.rstrip().endswith(f"#### {it['answer']}"),
            "extracted": {"final": c.rsplit("####", 1)[-1].strip()},
            "finished": True,
        }
        for i, (it, c) in enumerate(zip(items, completions))
    ]
    acc = sum(r["verdict"] for r in rows) / len(rows)
    return {
        "label": label,
        "model": label,
        "kind": "model",
        "params": 1,
        "throughput": {},
        "cases": [],
        "tasks": {task: {"metrics": {"accuracy": acc, "ci": [acc, acc], "n": len(rows)}, "samples": rows}},
    }


def _demo_models():
    items = [_item(False, 1), _item(True, 2)]
    right = [
        CHAIN + "4. Change: $100 - $38 = $62.\n#### 62",
        CHAIN + "4. Coupon: $38 - $5 = $33.\n5. Change: $100 - $33 = $67.\n#### 67",
    ]
    slip = CHAIN + "4. Change: $100 - $38 = $52.\n#### 52"
    nocoupon = CHAIN + "4. Change: $100 - $38 = $62.\n#### 62"
    models = [
        _result("student-before", ["1. Items: 3 + 7 = 10.\n2. Change: 100 - 10 = 90.\n#### 90", slip], items),
        _result("sft-only", [slip, right[1]], items),
        _result("distilled", [right[0], nocoupon], items),
        _result("teacher", right, items),
    ]
    return models, items


def test_report_section_transitions_and_sft_comparison(tmp_path):
    models, items = _demo_models()
    paths = write_report(
        models,
        tmp_path,
        gold={it["id"]: it for it in items},
        pairs=[("sft-only", "distilled"), ("student-before", "distilled")],
    )
    md, html = paths["markdown"].read_text(), paths["html"].read_text()
    assert "## Where the reasoning breaks" in md and "### sft-only -> distilled (gsm8k, 2 shared problems)" in md
    assert "| distilled | gsm8k | 2 | 1 | 0 | 0 | 0 | 0 | 0 | 1 (100%) | 0 |" in md  # the coupon left out
    assert "| sft-only | gsm8k | 2 | 1 | 0 | 0 | 1 (100%) |" in md
    assert "| gsm8k | distilled | sft-only | +0.0 |" in md  # the comparison that matters, not only vs before
    assert "<td>distilled</td><td>sft-only</td>" in html and "Where the reasoning breaks" in html
    assert 'alt="errors by first-error class"' in html and '<mark class="step">' in html
    # the held-out problems where they differ: each way round, with the wrong one's class
    assert "sft-only right, distilled wrong (condition)" in md and "distilled right, sft-only wrong (arithmetic)" in md
    errors = json.loads(paths["json"].read_text())["errors"]
    assert [m["label"] for m in errors["models"]] == ["student-before", "sft-only", "distilled", "teacher"]
    assert errors["transitions"][0]["before"] == "sft-only" and errors["transitions"][0]["fixed"] == 1


def test_analyze_command_on_a_demo_eval_folder(tmp_path, capsys):
    models, items = _demo_models()
    ev = tmp_path / "eval"
    write_jsonl(ev / "heldout.jsonl", items)  # the demo keeps its eval set (with gold steps) next to the results
    for m in models:
        (ev / f"{m['label']}.heldout.json").write_text(json.dumps(m))
    assert main(["analyze", str(ev), "--json", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "Model           Task   Problems  Wrong" in out and "no gold steps" not in out
    assert "sft-only -> distilled (gsm8k, 2 shared problems): fixed 1, introduced 1, stayed wrong 0" in out
    assert "student-before -> distilled" in out and "[[$100 - $38 = $52]]" in out
    saved = json.loads((tmp_path / "a.json").read_text())
    assert saved["models"][2]["counts"]["condition"] == 1 and set(saved["classes"]) == set(CLASSES)
    assert main(["analyze", str(ev), "--pair", "teacher,distilled"]) == 0
    assert "teacher -> distilled" in capsys.readouterr().out
    assert main(["analyze", str(ev), "--pair", "nobody,distilled"]) == 1
    assert "--pair nobody,distilled: give BEFORE,AFTER" in capsys.readouterr().err


def test_user_file_without_gold_steps(tmp_path, capsys, plain):
    """A plain GSM8K file: only the reference answer is known, so plan / condition are never given."""
    completions = [
        CHAIN + "4. Change: $100 - $38 = $52.\n#### 52",
        "1. Items: 3 + 7 = 10.\n2. Change: 100 - 10 = 90.\n#### 90",
        CHAIN + "4. Change: $100 - $38 = $62.\n#### 38",
    ]
    rows = [
        {"id": f"gsm8k-{i}", "prompt": plain["question"], "reference": "62", "verdict": False, "completion": c}
        for i, c in enumerate(completions)
    ]
    path = tmp_path / "samples" / "mine" / "gsm8k.jsonl"
    write_jsonl(path, rows)
    runs, items = load_runs([path])
    s = analyze_runs(runs, items)[0]
    assert s["label"] == "mine" and s["no_gold"] == 3 and s["counts"]["plan"] == s["counts"]["condition"] == 0
    assert (s["counts"]["arithmetic"], s["counts"]["extraction"], s["counts"]["other"]) == (1, 1, 1)
    assert main(["analyze", str(path)]) == 0
    assert "3 wrong answers have no gold steps" in capsys.readouterr().out
    # with the items given, the same answers get the gold-step classes
    write_jsonl(tmp_path / "items.jsonl", [dict(plain, id=f"gsm8k-{i}") for i in range(3)])
    runs, items = load_runs([path], data=[tmp_path / "items.jsonl"])
    assert analyze_runs(runs, items)[0]["counts"]["plan"] == 1


def test_a_compare_folder_with_one_samples_tree_per_arm(tmp_path, capsys, plain):
    """`reasonkd compare` keeps arms/<arm>/seed-<s>/eval-runs/samples/seed-<s>.<split>/gsm8k.jsonl, and
    each run's meta names the eval file holding the gold items."""
    write_jsonl(tmp_path / "eval" / "dev.jsonl", [plain])
    for arm, completion in (
        ("sft", CHAIN + "4. Change: $100 - $38 = $52.\n#### 52"),
        ("distill", CHAIN + "4. Change: $100 - $38 = $62.\n#### 62"),
    ):
        d = tmp_path / "arms" / arm / "seed-0" / "eval-runs" / "samples" / "seed-0.dev"
        write_jsonl(
            d / "gsm8k.jsonl",
            [
                {
                    "id": plain["id"],
                    "prompt": plain["question"],
                    "reference": "62",
                    "completion": completion,
                    "verdict": arm == "distill",
                    "finished": True,
                }
            ],
        )
        (d / "gsm8k.meta.json").write_text(json.dumps({"identity": {"data": str(tmp_path / "eval" / "dev.jsonl")}}))
    runs, items = load_runs([tmp_path])
    assert sorted(r.label for r in runs) == ["distill/seed-0.dev", "sft/seed-0.dev"] and plain["id"] in items
    assert main(["analyze", str(tmp_path), "--pair", "sft/seed-0.dev,distill/seed-0.dev"]) == 0
    assert "sft/seed-0.dev -> distill/seed-0.dev (gsm8k, 1 shared problems): fixed 1" in capsys.readouterr().out


def test_empty_and_malformed_samples_are_clear_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ReasonkdError, match="empty.jsonl: no samples"):
        load_runs([empty])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": 1, "completion": "x", "verdict": false}\n{"id": 2, "completion\n')
    with pytest.raises(ReasonkdError, match="bad.jsonl.*2"):
        load_runs([bad])
    odd = tmp_path / "odd.jsonl"
    odd.write_text('{"id": 1, "text": "x"}\n')
    with pytest.raises(ReasonkdError, match=r"odd.jsonl: sample 1 lacks \['completion', 'verdict'\]"):
        load_runs([odd])
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ReasonkdError, match="no math evaluation samples"):
        load_runs([tmp_path / "nothing"])
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.heldout.json").write_text('{"label": ')
    with pytest.raises(ReasonkdError, match="x.heldout.json: not JSON"):
        load_runs([tmp_path / "broken"])


def test_agreement_with_hand_labels_of_the_shipped_models():
    """The committed labels (wrong greedy completions of qwen2.5-coder-0.5b and smollm2-135m, each read
    and labelled by hand): the classifier agrees on at least 85% (BENCHMARKS.md, "Error analysis"), on the
    set the rules were written with and on the one labelled afterwards."""
    rows = read_jsonl(LABELLED)
    assert len(rows) >= 60 and {r["model"] for r in rows} == {"qwen2.5-coder-0.5b", "smollm2-135m"}
    assert {r["set"] for r in rows} == {"tuning", "held-out"}
    assert {r["label"] for r in rows} <= set(CLASSES)
    hits = sum(
        diagnose(r["completion"], r["reference"], gold_of(r["item"]), r["item"]["question"], r["finished"]).cls
        == r["label"]
        for r in rows
    )
    assert hits / len(rows) >= 0.85, hits / len(rows)
