"""`reasonkd compare` on tiny random models: 2 arms x 2 seeds end to end, resume, the split discipline,
clear errors for bad ARMS.yaml, the statistics checked by hand, and teacher correction.

Tiny random teachers solve nothing, so the traces are the data engine's own verified solutions of train
problems (as the demo's traces_fallback=reference does).
"""

from __future__ import annotations

import json

import pytest
import yaml

from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.eval.metrics import mcnemar_exact, paired_diff_ci

# ------------------------------------------------------------------ statistics by hand


def test_mcnemar_exact_by_hand():
    # a right / b wrong on 3 items, the reverse on 1: p = 2 * P(Bin(4, 1/2) <= 1) = 2 * 5/16
    r = mcnemar_exact([1, 1, 1, 0, 0, 1], [0, 0, 0, 1, 0, 1])
    assert (r["a_only"], r["b_only"], r["discordant"]) == (3, 1, 4) and r["p_value"] == pytest.approx(0.625)
    assert mcnemar_exact([1] * 6 + [0], [0] * 7)["p_value"] == pytest.approx(2 / 64)  # 6 vs 0
    assert mcnemar_exact([1, 0, 1], [1, 0, 1])["p_value"] == 1.0  # no discordant pair
    assert mcnemar_exact([1, 0], [0, 1])["p_value"] == 1.0  # 1 vs 1: p capped at 1
    with pytest.raises(ValueError):
        mcnemar_exact([1, 0], [1])


def test_paired_bootstrap_by_hand():
    # every item: a right, b wrong -> the difference is exactly 1, with no spread
    r = paired_diff_ci([1, 1, 1], [0, 0, 0])
    assert (r["diff"], r["lo"], r["hi"]) == (1.0, 1.0, 1.0) and r["p_value"] == 0.0
    # one discordant item of 4: resampled mean is 0 with probability (3/4)^4 = 0.316, so the 95% CI starts
    # at 0 and the two-sided p is about 2 * 0.316
    r = paired_diff_ci([1, 1, 0, 0], [0, 1, 0, 0])
    assert r["diff"] == 0.25 and r["lo"] == 0.0 and 0.5 <= r["hi"] <= 0.75
    assert abs(r["p_value"] - 2 * 0.75**4) < 0.05 and (r["a_only"], r["b_only"]) == (1, 0)


def test_accuracy_per_difficulty_level_by_hand(tmp_path):
    from types import SimpleNamespace

    from reasonkd.pipeline.compare_report import split_markdown, summarize_split
    from reasonkd.utils.io import write_jsonl

    def verdicts(bits):
        return {f"p{i}": b for i, b in enumerate(bits)}

    def run(bits):
        return {
            "verdicts": verdicts(bits),
            "timing": {"train_s": 1.0, "eval_s": {"dev": 1.0}},
            "steps": 2,
            "teacher_read_tokens": 0,
            "teacher_tokens": None,
        }

    arm = SimpleNamespace(name="sft", baseline=None, description="", traces=None)
    cfg = SimpleNamespace(baseline="sft", arms=[arm], traces="t", seeds=[0, 1], steps=2, batch_size=4, grad_accum=1)
    results = {
        "references": {
            "student": {"verdicts": verdicts([0, 0, 0, 0, 0]), "seconds": 1.0},
            "teacher": {"verdicts": verdicts([1, 1, 1, 0, 0]), "seconds": 1.0},
        },
        "arms": {"sft": {0: run([1, 0, 1, 1, 0]), 1: run([1, 1, 0, 1, 1])}},
    }
    write_jsonl(tmp_path / "dev.jsonl", [{"id": f"p{i}", "difficulty": d} for i, d in enumerate([1, 1, 2, 2, 10])])
    s = summarize_split(cfg, [arm], results, "dev", str(tmp_path / "dev.jsonl"))
    # levels in numeric order; an arm's accuracy is each problem's mean over the seeds, averaged
    assert list(s["by_level"]) == ["1", "2", "10"]
    assert s["by_level"]["1"] == {"n": 2, "models": {"student": 0.0, "teacher": 1.0, "sft": 0.75}}
    assert s["by_level"]["2"]["models"] == {"student": 0.0, "teacher": 0.5, "sft": 0.75}
    assert s["by_level"]["10"] == {"n": 1, "models": {"student": 0.0, "teacher": 0.0, "sft": 0.5}}
    md = split_markdown(s)
    assert "| level | problems | student | teacher | sft |" in md and "| 10 | 1 | 0.0 | 0.0 | 50.0 |" in md
    # one problem without a level: no level table rather than one over part of the problems
    write_jsonl(tmp_path / "dev.jsonl", [{"id": f"p{i}", "difficulty": 1} for i in range(4)] + [{"id": "p4"}])
    s = summarize_split(cfg, [arm], results, "dev", str(tmp_path / "dev.jsonl"))
    assert s["by_level"] == {} and "By difficulty" not in split_markdown(s)
    # each reference model has its own row label (the corrected teacher is not a second "teacher")
    results["references"]["teacher-corrected"] = {"verdicts": verdicts([1, 1, 1, 1, 0]), "seconds": 1.0}
    md = split_markdown(summarize_split(cfg, [arm], results, "dev", str(tmp_path / "dev.jsonl")))
    rows = [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith("| ") and "(eval)" in ln]
    assert rows == ["student (untrained)", "teacher", "teacher, corrected"]
    # retention: of the plain teacher's gap (0.7 / 0.6), and for an arm taught by the corrected teacher also
    # of that teacher's gap (0.7 / 0.8)
    s = summarize_split(cfg, [arm], results, "dev", str(tmp_path / "dev.jsonl"))
    assert abs(s["arms"][0]["retention"] - 0.7 / 0.6) < 1e-9 and s["arms"][0]["retention_own"] is None
    arm.corrected_teacher = True
    s = summarize_split(cfg, [arm], results, "dev", str(tmp_path / "dev.jsonl"))
    assert abs(s["arms"][0]["retention_own"] - 0.875) < 1e-9
    assert "116.7% (87.5% of the corrected teacher's gap)" in split_markdown(s)


def test_an_arm_with_its_own_baseline_is_also_paired_with_the_main_one(tmp_path):
    from types import SimpleNamespace

    from reasonkd.pipeline.compare_report import split_markdown, summarize_split

    def run(bits):
        return {
            "verdicts": {f"p{i}": b for i, b in enumerate(bits)},
            "timing": {"train_s": 1.0},
            "steps": 2,
            "teacher_read_tokens": 0,
            "teacher_tokens": None,
        }

    arms = [
        SimpleNamespace(name="sft", baseline=None, description="", traces=None),
        SimpleNamespace(name="sft-n", baseline=None, description="", traces=None),
        SimpleNamespace(name="onp", baseline="sft-n", description="", traces=None),
    ]
    cfg = SimpleNamespace(baseline="sft", arms=arms, traces="t", seeds=[0], steps=2, batch_size=4, grad_accum=1)
    results = {
        "references": {},
        "arms": {"sft": {0: run([1, 0, 0, 0])}, "sft-n": {0: run([0, 0, 0, 0])}, "onp": {0: run([1, 1, 1, 0])}},
    }
    s = summarize_split(cfg, arms, results, "dev", str(tmp_path / "missing.jsonl"))
    rows = {r["arm"]: r for r in s["arms"]}
    assert rows["onp"]["vs_baseline"]["pooled"]["diff"] == 0.75  # vs sft-n
    assert rows["onp"]["vs_main"]["pooled"]["diff"] == 0.5  # vs sft
    assert rows["sft-n"]["vs_main"] is None and rows["sft"]["vs_main"] is None
    assert "+75.0 [" in split_markdown(s) and "vs sft-n; +50.0 [" in split_markdown(s)
    # held-out brings the main baseline along with the chosen arm and its own baseline
    from reasonkd.pipeline.compare import chosen_arms

    assert [a.name for a in chosen_arms(cfg, "heldout", ["onp"])] == ["sft", "sft-n", "onp"]
    # `controls`: an arm with the main baseline is also paired with each control (not the control itself, nor
    # the baseline); held-out brings the controls along
    arms.append(SimpleNamespace(name="kd", baseline=None, description="", traces=None))
    results["arms"]["kd"] = {0: run([1, 1, 0, 0])}
    cfg.controls = ["sft-n"]
    s = summarize_split(cfg, arms, results, "dev", str(tmp_path / "missing.jsonl"))
    rows = {r["arm"]: r for r in s["arms"]}
    assert (
        rows["kd"]["vs_baseline"]["pooled"]["diff"] == 0.25
        and rows["kd"]["vs_controls"]["sft-n"]["pooled"]["diff"] == 0.5
    )
    assert rows["sft"]["vs_controls"] == {} and rows["sft-n"]["vs_controls"] == {} and rows["onp"]["vs_controls"] == {}
    kd_line = next(ln for ln in split_markdown(s).splitlines() if ln.startswith("| kd |"))
    assert "+25.0 [" in kd_line and "vs sft; +50.0 [" in kd_line and "vs sft-n |" in kd_line
    assert [a.name for a in chosen_arms(cfg, "heldout", ["kd"])] == ["sft", "sft-n", "kd"]


# ------------------------------------------------------------------ a tiny comparison


def test_compare_end_to_end_then_resume_and_heldout(setup, capsys):
    from reasonkd.cli import main
    from reasonkd.pipeline import compare_run

    root, path, _ = setup
    out = root / "out"
    assert main(["compare", str(path)]) == 0
    log = capsys.readouterr().out
    assert "2 arms x 2 seeds" in log and "[4/4] kd seed 1" in log
    data = json.loads((out / "compare.json").read_text())
    dev = data["splits"]["dev"]
    assert dev["n_problems"] == 3 and [r["arm"] for r in dev["arms"]] == ["sft", "kd"]
    sft, kd = dev["arms"]
    assert set(kd["per_seed"]) == {"0", "1"} and all(p["steps"] == 2 for p in kd["per_seed"].values())
    assert kd["vs_baseline"]["pooled"]["n"] == 3 and set(kd["vs_baseline"]["per_seed"]) == {"0", "1"}
    assert 0.0 <= kd["vs_baseline"]["pooled"]["mcnemar_p"] <= 1.0 and sft["vs_baseline"] is None
    assert kd["teacher_read_tokens"] > 0 and sft["teacher_read_tokens"] == 0  # only kd runs the teacher
    assert kd["wall_s"] > 0 and set(dev["references"]) == {"student", "teacher"}
    md = (out / "compare.md").read_text()
    assert "Dev split" in md and "| kd | 1 |" in md and "vs sft" in md and "Held-out" not in md
    assert "By difficulty level" in md and sum(v["n"] for v in dev["by_level"].values()) == 3
    for arm in ("sft", "kd"):
        for seed in (0, 1):
            run = out / "arms" / arm / f"seed-{seed}"
            assert (run / "final" / "config.json").is_file() and (run / "eval-dev.json").is_file()
    # both kd stages together take the shared budget; the recipe saved with the run says so
    saved = yaml.safe_load((out / "arms" / "kd" / "seed-1" / "config.yaml").read_text())
    assert [s["steps"] for s in saved["stages"]] == [1, 1] and saved["batch_size"] == 4 and saved["seed"] == 1

    # rerun: nothing is trained or evaluated again
    before = {p: p.stat().st_mtime_ns for p in out.glob("arms/*/seed-*/eval-dev.json")}
    calls = []
    orig = compare_run.run_recipe
    compare_run.run_recipe = lambda *a, **k: calls.append(a) or orig(*a, **k)
    try:
        assert main(["compare", str(path)]) == 0
    finally:
        compare_run.run_recipe = orig
    assert calls == [] and {p: p.stat().st_mtime_ns for p in before} == before
    assert "done earlier" in capsys.readouterr().out
    # a dev run of one arm keeps the arms evaluated earlier in the split's report (from their cached verdicts)
    assert main(["compare", str(path), "--arms", "sft"]) == 0
    assert "1 arms x 2 seeds" in capsys.readouterr().out
    dev = json.loads((out / "compare.json").read_text())["splits"]["dev"]
    assert [r["arm"] for r in dev["arms"]] == ["sft", "kd"] and set(dev["arms"][1]["per_seed"]) == {"0", "1"}

    # held-out: only with the chosen arms, whose baseline comes along; dev results stay in the report
    assert main(["compare", str(path), "--split", "heldout"]) == 1
    assert "--arms" in capsys.readouterr().err
    assert main(["compare", str(path), "--split", "heldout", "--arms", "kd"]) == 0
    data = json.loads((out / "compare.json").read_text())
    assert {r["arm"] for r in data["splits"]["heldout"]["arms"]} == {"sft", "kd"}
    assert data["splits"]["heldout"]["n_problems"] == 2 and "dev" in data["splits"]
    md = (out / "compare.md").read_text()
    assert "Dev split" in md and "Held-out split" in md and "Part-way" not in md

    # --report: a split's tables from what is evaluated so far, running nothing (kd seed 1 not evaluated yet)
    (out / "arms" / "kd" / "seed-1" / "eval-heldout.json").unlink()
    assert main(["compare", str(path), "--split", "heldout", "--report"]) == 0
    held = json.loads((out / "compare.json").read_text())["splits"]["heldout"]
    assert held["missing"] == ["kd seed 1"] and [set(r["per_seed"]) for r in held["arms"]] == [{"0", "1"}, {"0"}]
    assert held["arms"][1]["vs_baseline"]["pooled"]["seeds"] == 1 and set(held["references"]) == {"student", "teacher"}
    md = (out / "compare.md").read_text()
    assert "Part-way" in md and "kd seed 1" in md and "Dev split" in md
    assert not (out / "arms" / "kd" / "seed-1" / "eval-heldout.json").exists()  # nothing was run


def test_bad_arms_yaml_names_the_key(setup, tmp_path):
    from reasonkd.pipeline.compare_config import load_compare_config

    _, _, arms = setup

    def load(**change):
        d = json.loads(json.dumps(arms))
        for k, v in change.items():
            d[k] = v
        p = tmp_path / "a.yaml"
        p.write_text(yaml.safe_dump(d))
        return load_compare_config(p)

    with pytest.raises(ConfigError, match=r"arms\.1\.stages\.1\.losses\.0\.name: unknown loss 'kdd'"):
        bad = json.loads(json.dumps(arms["arms"]))
        bad[1]["stages"][1]["losses"][0]["name"] = "kdd"
        load(arms=bad)
    with pytest.raises(ConfigError, match=r"unknown config key 'arms\.0\.stagse'"):
        load(arms=[{"name": "sft", "stagse": []}, arms["arms"][1]])
    with pytest.raises(ConfigError, match=r"baseline: no arm named 'base'"):
        load(baseline="base")
    with pytest.raises(ConfigError, match=r"controls: no arm named \['sft-m'\]"):
        load(controls=["sft-m"])
    with pytest.raises(ConfigError, match=r"arms\.1\.overrides: \['batch_size'\]"):
        load(arms=[arms["arms"][0], {**arms["arms"][1], "overrides": {"batch_size": 2}}])
    with pytest.raises(ConfigError, match=r"arms\.1\.stages: give every stage a share"):
        bad = json.loads(json.dumps(arms["arms"]))
        del bad[1]["stages"][0]["share"]
        load(arms=bad)
    with pytest.raises(ConfigError, match=r"arms\.1\.recipe: file not found"):
        load(arms=[arms["arms"][0], {"name": "x", "recipe": "no/such.yaml"}])
    with pytest.raises(ConfigError, match="seeds"):
        load(seeds=[1, 1])


def test_stage_steps_follow_shares_and_recipe_files(setup, tmp_path):
    from reasonkd.pipeline.compare_config import _stage_steps, arm_recipe, load_compare_config

    assert _stage_steps([{"share": 0.15}, {"share": 0.425}, {"share": 0.425}], 28) == [4, 12, 12]
    assert _stage_steps([{"steps": 4}, {"steps": 12}, {"steps": 12}], 56) == [8, 24, 24]
    assert _stage_steps([{}, {}, {}], 7) == [3, 2, 2] and sum(_stage_steps([{}] * 3, 100)) == 100
    _, _, arms = setup
    recipe_file = tmp_path / "r.yaml"  # a whole distill recipe: its stages, scaled to the shared budget
    recipe_file.write_text(
        yaml.safe_dump(
            {
                "student": "ignored",
                "batch_size": 99,
                "balance_losses": True,
                "stages": [
                    {"name": "a", "kind": "logic", "steps": 10, "lr": 5e-5},
                    {"name": "b", "kind": "logic", "steps": 30},
                ],
            }
        )
    )
    d = {**arms, "steps": 8, "arms": [arms["arms"][0], {"name": "file", "recipe": "r.yaml"}]}
    p = tmp_path / "arms.yaml"
    p.write_text(yaml.safe_dump(d))
    cfg = load_compare_config(p)  # r.yaml is found next to arms.yaml
    r = arm_recipe(cfg, cfg.arms[1], seed=3)
    assert [s.steps for s in r.stages] == [2, 6] and [s.lr for s in r.stages] == [5e-5, 1e-3]
    assert r.balance_losses and r.batch_size == 4 and r.student == arms["student"] and r.seed == 3


def test_eval_sets_must_not_overlap_the_traces(setup, tmp_path):
    from reasonkd.pipeline.compare_data import prepare_eval_sets
    from reasonkd.pipeline.compare_config import load_compare_config

    root, _, arms = setup
    d = {**arms, "out": str(tmp_path / "out"), "eval": {**arms["eval"], "split": "train"}}
    p = tmp_path / "arms.yaml"
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ReasonkdError, match="eval problems"):
        prepare_eval_sets(load_compare_config(p), tmp_path / "out")
    d["eval"] = {**arms["eval"], "n_heldout": 500}
    p.write_text(yaml.safe_dump(d))
    with pytest.raises(ReasonkdError, match="fewer than eval.n_dev"):
        prepare_eval_sets(load_compare_config(p), tmp_path / "out")


def test_only_the_chosen_arms_traces_are_required(setup, tmp_path):
    from reasonkd.pipeline.compare_data import prepare_eval_sets
    from reasonkd.pipeline.compare_config import load_compare_config

    _, _, arms = setup
    d = {
        **arms,
        "out": str(tmp_path / "out"),
        "arms": arms["arms"]
        + [
            {
                "name": "rs",
                "traces": str(tmp_path / "not-built-yet.jsonl"),
                "stages": [{"name": "sft", "kind": "logic", "losses": [{"name": "ce"}]}],
            }
        ],
    }
    p = tmp_path / "arms.yaml"
    p.write_text(yaml.safe_dump(d))
    cfg = load_compare_config(p)
    assert set(prepare_eval_sets(cfg, tmp_path / "out", cfg.arms[:1])) == {"dev", "heldout"}
    with pytest.raises(ReasonkdError, match="not-built-yet"):  # a run that includes the arm needs its traces
        prepare_eval_sets(cfg, tmp_path / "out")


def test_a_question_inside_a_trace_prompt_is_a_leak_under_any_id(tmp_path):
    from reasonkd.pipeline.compare_data import _leaks
    from reasonkd.utils.io import write_jsonl

    write_jsonl(
        tmp_path / "traces.jsonl",
        [{"id": "other-7", "prompt": "Shot.\n\nTom has 3 apples. How many?", "trace": "#### 3"}],
    )
    rows = [
        {"id": "a", "question": "Tom has 3 apples. How many?"},
        {"id": "b", "question": "Ann has 4."},
        {"id": "other-7", "question": "unrelated"},
    ]
    assert _leaks(str(tmp_path), rows) == ["a", "other-7"]


def test_teacher_correction_returns_a_merged_teacher(setup, tmp_path, tiny_qwen_dir):
    import torch
    from safetensors.torch import load_file

    from reasonkd.models import load_model
    from reasonkd.pipeline.correct import CorrectionConfig, correct_teacher

    root, _, _ = setup
    cfg = CorrectionConfig(steps=2, lr=1e-2, lora_r=4, batch_size=4, max_length=256)
    folder = correct_teacher(
        str(tiny_qwen_dir), str(root / "traces.jsonl"), tmp_path / "corrected", cfg, device="cpu", progress=False
    )
    model, _ = load_model(str(folder), dtype="float32")
    assert not any("lora" in n for n, _ in model.named_parameters())  # adapters merged away
    old = load_file(str(tiny_qwen_dir / "model.safetensors"))
    new = load_file(str(folder / "model.safetensors"))
    assert any(not torch.equal(old[k], new[k]) for k in old if "q_proj.weight" in k)
    assert (
        correct_teacher(
            str(tiny_qwen_dir), str(root / "traces.jsonl"), tmp_path / "corrected", cfg, device="cpu", progress=False
        )
        == folder
    )  # finished: returned at once


def test_shipped_transfer_yaml_builds_every_arm_with_the_same_budget(tmp_path):
    from pathlib import Path

    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config

    root = Path(__file__).resolve().parents[2]
    overrides = []
    if not (root / "recipes/distill/article.yaml").is_file():  # written separately; a stand-in keeps this test
        (tmp_path / "article.yaml").write_text(
            yaml.safe_dump(
                {
                    "stages": [
                        {"name": "logic", "kind": "logic", "steps": 12},
                        {"name": "output", "kind": "output", "steps": 12},
                    ]
                }
            )
        )
        overrides.append(f"arms.1.recipe={tmp_path / 'article.yaml'}")
    cfg = load_compare_config(root / "recipes/compare/transfer.yaml", overrides)
    names = [a.name for a in cfg.arms]
    assert {"sft", "article", "kd-t1", "onpolicy", "onpolicy-rs", "feature-onpolicy"} <= set(names)
    assert cfg.seeds == [0, 1, 2] and cfg.eval.n_heldout >= 1000
    for arm in cfg.arms:
        r = arm_recipe(cfg, arm, seed=1)
        assert sum(s.steps for s in r.stages) == cfg.steps and r.batch_size == cfg.batch_size and r.seed == 1
    kinds = {a.name: [s.kind for s in arm_recipe(cfg, a, 0).stages] for a in cfg.arms}
    assert kinds["onpolicy"] == ["logic", "on_policy"] and kinds["feature-onpolicy"][0] == "feature"
    assert kinds["article"] == ["feature", "logic", "output"]
    # the default pair's tokenizers differ: no arm may use a term that needs a shared tokenizer
    names = {loss.name for a in cfg.arms for s in arm_recipe(cfg, a, 0).stages for loss in s.losses}
    assert "attention_kl" not in names


def test_shipped_multi_teacher_yaml_differs_only_in_soft_targets():
    from pathlib import Path

    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_compare_config(root / "recipes/compare/multi-teacher.yaml")
    recipes = {a.name: arm_recipe(cfg, a, seed=0) for a in cfg.arms}
    assert cfg.eval.n_heldout >= 1000 and set(recipes) == {"fused", "qwen0.5b-alone", "qwen1.5b-alone"}
    assert [t.model for t in recipes["fused"].teachers] == ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"]
    # an arm with its own teachers list runs (and records) its first teacher, not the shared one; a teacher
    # alone is the fused path with the other at weight 0
    assert recipes["qwen1.5b-alone"].teacher == "qwen2.5-coder-1.5b"
    assert [t.weight for t in recipes["qwen1.5b-alone"].teachers] == [1.0, 0.0]
    assert recipes["qwen0.5b-alone"].teacher == recipes["fused"].teacher == "qwen2.5-coder-0.5b"
    for r in recipes.values():  # same traces, budget and losses: only the soft targets differ
        assert r.data.path == cfg.traces and sum(s.steps for s in r.stages) == cfg.steps
        assert [[loss.name for loss in s.losses] for s in r.stages] == [["ce", "forward_kl"]]


def test_a_val_problem_repeating_a_train_question_never_enters_the_eval_sets(setup, tmp_path):
    import shutil

    from reasonkd.pipeline.compare_data import _hash_order, prepare_eval_sets
    from reasonkd.pipeline.compare_config import load_compare_config
    from reasonkd.utils.io import read_jsonl, write_jsonl

    root, _, arms = setup
    data = tmp_path / "data"
    shutil.copytree(arms["eval"]["data"], data)
    originals = [
        r for r in read_jsonl(data / "val.jsonl") if r["domain"] == "math" and r.get("kind", "original") == "original"
    ]
    first = _hash_order(originals)[0]  # the first dev problem, unless it is left out
    train = read_jsonl(data / "train.jsonl")  # a train variant that happens to read exactly like a val original
    write_jsonl(
        data / "train.jsonl",
        train + [{**train[0], "id": "twin-cond", "kind": "variant", "question": first["question"]}],
    )
    d = {**arms, "out": str(tmp_path / "out"), "eval": {**arms["eval"], "data": str(data)}}
    p = tmp_path / "arms.yaml"
    p.write_text(yaml.safe_dump(d))
    sets = prepare_eval_sets(load_compare_config(p), tmp_path / "out")
    ids = {r["id"] for name in ("dev", "heldout") for r in read_jsonl(sets[name])}
    assert first["id"] not in ids and len(ids) == arms["eval"]["n_dev"] + arms["eval"]["n_heldout"]


def test_teacher_check_before_any_trace(setup, tmp_path, capsys):
    """Step 1 of an experiment: teacher and untrained student on dev, their gap and discordance, with no
    traces yet (the traces' leak check waits for the arms); exit 1 below the 15-point gap."""
    from reasonkd.cli import main

    root, path, arms = setup
    cfg = dict(arms, traces=str(tmp_path / "not-yet"), out=str(tmp_path / "out"))
    (tmp_path / "arms.yaml").write_text(yaml.safe_dump(cfg))
    rc = main(["compare", str(tmp_path / "arms.yaml"), "--teacher-check"])
    check = json.loads((tmp_path / "out" / "teacher-check.json").read_text())
    assert check["n"] == 3 and check["split"] == "dev" and check["min_gap"] == 0.15
    assert check["teacher_only"] + check["student_only"] <= 3
    assert rc == (0 if check["go"] else 1) and check["go"] == (check["gap"]["diff"] >= 0.15)
    assert "teacher check (dev, n = 3)" in capsys.readouterr().out
    assert not (tmp_path / "out" / "arms").exists()  # nothing trained


def test_shipped_qwen_pair_yaml_gives_every_arm_the_same_budget():
    from pathlib import Path

    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_compare_config(root / "recipes/compare/qwen-pair.yaml", [])
    assert cfg.student == "qwen2.5-coder-0.5b" and cfg.teacher == "qwen2.5-coder-1.5b"
    assert cfg.seeds == [0, 1, 2] and cfg.eval.n_heldout >= 1000
    for arm in cfg.arms:
        r = arm_recipe(cfg, arm, seed=2)
        own = arm.extra_steps if arm.start_from else cfg.steps + arm.extra_steps  # start_from: steps on top of sft's
        assert sum(s.steps for s in r.stages) == own and r.batch_size == cfg.batch_size
        assert r.lora.enabled
        assert r.fused_loss is False  # the experiment began with the plain autograd losses: every arm keeps them
    arms = {a.name: a for a in cfg.arms}
    assert {"sft", "kd", "onpolicy", "sft-n", "article", "trl"} <= set(arms) and arms["trl"].runner == "trl-gkd"
    # on-policy continues the sft arm's student; its control takes the same extra steps of SFT from there
    for name in ("onpolicy", "onpolicy-ct", "sft-n"):
        r = arm_recipe(cfg, arms[name], 1)
        assert arms[name].start_from == "sft" and r.student.endswith("arms/sft/seed-1/final")
        assert [s.steps for s in r.stages] == [arms["onpolicy"].extra_steps] and r.stages[0].lr == cfg.lr
    assert arms["onpolicy-ct"].corrected_teacher and arms["onpolicy-ct"].baseline == "sft-n"
    assert arms["onpolicy"].baseline == "sft-n" and arms["sft-n"].extra_steps == arms["onpolicy"].extra_steps > 0
    # the continuations at a fifth of the lr: each is its lr-1e-4 twin at lr 2e-5, nothing else changed
    from dataclasses import replace as _replace

    for twin, low in (("sft-n", "sft-n-lr2e-5"), ("onpolicy-ct", "onpolicy-ct-lr2e-5")):
        a, b = arm_recipe(cfg, arms[twin], 1), arm_recipe(cfg, arms[low], 1)
        assert b.stages[0].lr == 2e-5 and _replace(b, stages=a.stages, output_dir=a.output_dir) == a
        assert [_replace(s, lr=cfg.lr) for s in b.stages] == a.stages
    assert arms["onpolicy-ct-lr2e-5"].baseline == "sft-n-lr2e-5" and arms["onpolicy-ct-lr2e-5"].corrected_teacher
    # soft targets of kd terms come from the teacher's top-k cache (k >= 64 with the tail mass); CE arms take none
    assert arm_recipe(cfg, arms["kd"], 0).data.logit_cache == cfg.logit_cache != ""
    assert arm_recipe(cfg, arms["sft"], 0).data.logit_cache is None
    # the dev lr sweep: each variant is its arm at another lr, nothing else changed
    from dataclasses import replace

    for base, variants in {"sft": ("sft-lr5e-5", "sft-lr2e-4"), "kd-ct": ("kd-ct-lr5e-5", "kd-ct-lr2e-4")}.items():
        ref = arm_recipe(cfg, arms[base], 0)
        for name in variants:
            r = arm_recipe(cfg, arms[name], 0)
            assert arms[name].corrected_teacher == arms[base].corrected_teacher
            assert r.stages[0].lr != ref.stages[0].lr
            same_lr = replace(r, output_dir=ref.output_dir, stages=[replace(r.stages[0], lr=ref.stages[0].lr)])
            assert same_lr == ref, name


def test_shipped_qwen_pair_recipe_and_demo_train_the_best_distilled_arm_on_dev():
    """recipes/distill/qwen-pair.yaml and the qwen demo preset are the comparison's `kd-ct` arm, key for key
    (so the product cannot drift from the measured arm). The demo runs the corrected teacher online, so it
    may recompute activations (the same values); the distill recipe reads a logit cache, as the arm did."""
    from pathlib import Path

    from reasonkd.config import load_config, to_dict
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config
    from reasonkd.pipeline.config import DemoConfig, preset_path

    root = Path(__file__).resolve().parents[2]
    cfg = load_compare_config(root / "recipes/compare/qwen-pair.yaml", [])
    arm = next(a for a in cfg.arms if a.name == "kd-ct")
    measured = arm_recipe(cfg, arm, 0)
    demo = load_config(DemoConfig, preset_path("qwen-1.5b-to-0.5b"))
    distill = load_config(DistillRecipe, root / "recipes/distill/qwen-pair.yaml")
    for recipe in (distill, demo.distill):
        assert to_dict(recipe)["stages"] == to_dict(measured)["stages"]
        for key in ("batch_size", "grad_accum", "max_length", "lora", "bf16_autocast"):
            assert getattr(recipe, key) == getattr(measured, key), key
    assert distill.gradient_checkpointing == measured.gradient_checkpointing and distill.data.logit_cache
    assert arm.corrected_teacher and demo.teacher_correction.steps == cfg.teacher_correction.steps
    assert demo.teacher_correction.lora_r == cfg.teacher_correction.lora_r


def test_training_time_counts_every_sitting_of_a_stopped_and_resumed_arm(tmp_path):
    """A sitting killed before it closed (kill -9, a machine stop) counts up to its newest checkpoint; work
    after that checkpoint is redone by the next sitting, so it is not counted twice."""
    import json
    import os
    import time

    from reasonkd.pipeline.compare_run import _close_sitting, _open_sitting

    run = tmp_path / "arms" / "kd" / "seed-0"
    _open_sitting(run)  # first sitting (begun 1000 s ago): it died after writing the step-10 checkpoint
    t0 = time.time() - 1000.0
    (run / "timing.json").write_text(json.dumps({"train_s": 0.0, "eval_s": {}, "sitting_start": t0}))
    ckpt = run / "stages" / "1-kd" / "checkpoints" / "step-000010"
    ckpt.mkdir(parents=True)
    os.utime(ckpt, (t0 + 600.0, t0 + 600.0))
    _open_sitting(run)  # second sitting (a resume): the first counts until its checkpoint
    timing = json.loads((run / "timing.json").read_text())
    assert timing["train_s"] == 600.0 and timing["sitting_start"] >= time.time() - 5
    _close_sitting(run)
    timing = json.loads((run / "timing.json").read_text())
    assert "sitting_start" not in timing and 600.0 <= timing["train_s"] < 610.0
    # a sitting killed before any new checkpoint left nothing behind: it adds nothing
    _open_sitting(run)
    _open_sitting(run)
    assert json.loads((run / "timing.json").read_text())["train_s"] == timing["train_s"]


def test_jobs_run_seed_by_seed_so_a_stopped_run_holds_whole_seeds():
    """Seed 0 of every chosen arm (an arm's start_from in the file's order before it) runs before any seed 1."""
    from pathlib import Path

    from reasonkd.pipeline.compare import chosen_arms, job_order
    from reasonkd.pipeline.compare_config import load_compare_config

    root = Path(__file__).resolve().parents[2]
    cfg = load_compare_config(root / "recipes/compare/qwen-pair.yaml", [])
    chosen = chosen_arms(cfg, "heldout", ["onpolicy-ct", "sft-n"])
    order = [(a.name, s) for a, s in job_order(chosen, cfg.seeds)]
    assert order[:3] == [("sft", 0), ("sft-n", 0), ("onpolicy-ct", 0)]
    assert [s for _, s in order] == sorted(s for _, s in order) and len(order) == 3 * len(cfg.seeds)


def test_isolated_jobs_give_the_in_process_results(setup, tmp_path, capfd):
    """`isolate: true` (the default): every job runs in a child process of its own, with the same numbers as
    in this process (the same per-step losses and verdicts); a rerun with everything done starts no child."""
    from reasonkd.cli import main

    _, _, arms = setup
    runs = {}
    for isolate in (False, True):
        out = tmp_path / f"isolate-{isolate}"
        path = tmp_path / f"isolate-{isolate}.yaml"
        path.write_text(yaml.safe_dump(dict(arms, out=str(out), seeds=[0], isolate=isolate)))
        assert main(["compare", str(path)]) == 0
        runs[isolate] = out
    capfd.readouterr()

    def losses(out):
        return [
            json.loads(x)["loss"]
            for f in sorted(out.glob("arms/*/seed-0/stages/*/metrics.jsonl"))
            for x in f.read_text().splitlines()
        ]

    def verdicts(out):
        return {
            str(p.relative_to(out)): json.loads(p.read_text())["verdicts"] for p in sorted(out.glob("**/eval-dev.json"))
        }

    assert losses(runs[True]) == pytest.approx(losses(runs[False]), rel=1e-5) and len(losses(runs[True])) == 4
    assert verdicts(runs[True]) == verdicts(runs[False]) and len(verdicts(runs[True])) == 4  # 2 refs + 2 arms
    # a rerun with everything done reads the cached results here, without a child (nothing is imported again)
    from reasonkd.utils import child

    started = []
    orig = child.run_in_child
    child.run_in_child = lambda *a, **k: started.append(a[0]) or orig(*a, **k)
    try:
        from reasonkd.pipeline import compare

        compare.run_in_child = child.run_in_child
        assert main(["compare", str(tmp_path / "isolate-True.yaml")]) == 0
    finally:
        child.run_in_child = compare.run_in_child = orig
    assert started == []
