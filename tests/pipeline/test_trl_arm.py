"""A `runner: trl-gkd` arm of `reasonkd compare`: TRL's GKDTrainer on the same traces, tokens and budget as
our arms (tiny random models), its collator against our encoding, its budget keys, resume."""

from __future__ import annotations

import json

import pytest
import yaml

pytest.importorskip("trl")

from reasonkd.errors import ConfigError, ReasonkdError  # noqa: E402


def test_collator_gives_our_encoding_with_left_padded_prompts(tiny_qwen_dir):
    from transformers import AutoTokenizer

    from reasonkd.models.encoding import encode_example
    from reasonkd.pipeline.trl_arm import _collator

    tok = AutoTokenizer.from_pretrained(tiny_qwen_dir)
    rows = [
        {"prompt": "What is 2+3?", "trace": "2+3 = 5.\n#### 5", "system": ""},
        {"prompt": "A longer question about 7 apples and 4 pears?", "trace": "7+4 = 11\n#### 11", "system": ""},
    ]
    b = _collator(tok, 64)(rows)
    for i, r in enumerate(rows):
        ids, n = encode_example(tok, r["prompt"], r["trace"], None, 64)
        m = int(b["attention_mask"][i].sum())
        assert b["input_ids"][i, :m].tolist() == ids  # the same tokens our arms train on
        assert (b["labels"][i, :n] == -100).all() and b["labels"][i, n:m].tolist() == ids[n:]
        assert (b["labels"][i, m:] == -100).all()
        p = int(b["prompt_attention_mask"][i].sum())
        assert p == n and b["prompts"][i, -n:].tolist() == ids[:n]  # left-padded: generation continues it


def test_trl_arm_config_is_checked(setup, tmp_path):
    from reasonkd.pipeline.compare_config import load_compare_config

    _, _, arms = setup
    bad = [
        ({"name": "t", "runner": "trl", "trl": {}}, "runner must be one of"),
        ({"name": "t", "runner": "trl-gkd", "stages": [{"name": "s", "kind": "logic"}]}, "drop stages"),
        ({"name": "t", "trl": {"lmbda": 0.0}, "stages": [{"name": "s", "kind": "logic"}]}, "need runner: trl-gkd"),
    ]
    for arm, msg in bad:
        (tmp_path / "a.yaml").write_text(yaml.safe_dump(dict(arms, arms=[arms["arms"][0], arm])))
        with pytest.raises(ConfigError, match=msg):
            load_compare_config(tmp_path / "a.yaml")


def test_gkd_config_takes_the_shared_budget_and_refuses_to_change_it(setup, tmp_path):
    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config
    from reasonkd.pipeline.trl_arm import gkd_config

    _, _, arms = setup
    cfg_d = dict(arms, lr=3e-4, warmup=1, arms=[arms["arms"][0], {"name": "trl", "runner": "trl-gkd"}])
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg_d))
    cfg = load_compare_config(tmp_path / "a.yaml")
    recipe = arm_recipe(cfg, cfg.arms[1], seed=1)
    g = gkd_config(recipe, {}, tmp_path / "trl", 2, use_cpu=True)
    assert (g.max_steps, g.per_device_train_batch_size, g.learning_rate, g.warmup_steps, g.seed) == (2, 4, 3e-4, 1, 1)
    assert g.lr_scheduler_type == "cosine_with_min_lr" and g.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    assert (g.lmbda, g.beta) == (0.5, 0.5)  # TRL's documented defaults stand
    assert gkd_config(recipe, {"lmbda": 0.0}, tmp_path / "trl", 2, use_cpu=True).lmbda == 0.0
    with pytest.raises(ReasonkdError, match="shared budget"):
        gkd_config(recipe, {"learning_rate": 1.0}, tmp_path / "trl", 2, use_cpu=True)
    with pytest.raises(ReasonkdError, match="unknown GKDConfig"):
        gkd_config(recipe, {"lambda": 0.5}, tmp_path / "trl", 2, use_cpu=True)
    # micro_batch_size: fewer sequences per forward, the same 4 per optimizer step (gradient accumulation)
    opts = {"micro_batch_size": 2, "lmbda": 0.0}
    g = gkd_config(recipe, opts, tmp_path / "trl", 2, use_cpu=True)
    assert (g.per_device_train_batch_size, g.gradient_accumulation_steps, g.lmbda) == (2, 2, 0.0)
    assert opts == {"micro_batch_size": 2, "lmbda": 0.0}  # the arm's options are not consumed
    for bad in (3, 0, 2.0):
        with pytest.raises(ReasonkdError, match="micro_batch_size must be a whole divisor of .* = 4"):
            gkd_config(recipe, {"micro_batch_size": bad}, tmp_path / "trl", 2, use_cpu=True)


def test_trl_arm_trains_evaluates_and_resumes(setup, tmp_path, caplog):
    """The arm runs through `reasonkd compare` next to sft (one on-policy step and one trace step, lmbda 0.5),
    lands in the table with teacher tokens; a stopped run resumes from TRL's newest checkpoint."""
    from reasonkd.cli import main
    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config
    from reasonkd.pipeline.trl_arm import train_trl_arm

    _, _, arms = setup
    cfg_d = dict(
        arms,
        out=str(tmp_path / "out"),
        seeds=[0],
        arms=[arms["arms"][0], {"name": "trl", "runner": "trl-gkd", "trl": {"max_new_tokens": 4}}],
    )
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg_d))
    assert main(["compare", str(tmp_path / "a.yaml")]) == 0
    out = tmp_path / "out"
    run = out / "arms" / "trl" / "seed-0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["runner"] == "trl-gkd" and summary["total"]["steps"] == 2 and summary["gkd"]["lmbda"] == 0.5
    assert (run / "final" / "config.json").is_file() and (run / "eval-dev.json").is_file()
    assert not (run / "trl").exists()  # checkpoints go once final/ is written
    dev = json.loads((out / "compare.json").read_text())["splits"]["dev"]
    trl = next(r for r in dev["arms"] if r["arm"] == "trl")
    assert trl["teacher_read_tokens"] > 0 and trl["vs_baseline"]["pooled"]["n"] == 3

    # resume: one step with a checkpoint, then the same arm asked for two continues from step 1
    cfg = load_compare_config(tmp_path / "a.yaml", [f"out={tmp_path / 'resume'}", "recipe.save_every=1"])
    recipe = arm_recipe(cfg, cfg.arms[1], seed=0)
    train_trl_arm(recipe, {"max_new_tokens": 4}, 1, progress=False)
    ckpt = tmp_path / "resume" / "arms" / "trl" / "seed-0" / "trl"
    assert (ckpt / "checkpoint-1" / "trainer_state.json").is_file()
    with caplog.at_level("INFO", logger="reasonkd.pipeline.trl_arm"):
        train_trl_arm(recipe, {"max_new_tokens": 4}, 2, progress=False)
    assert "resuming from" in caplog.text and "checkpoint-1" in caplog.text
    state = json.loads((ckpt / "checkpoint-2" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and len([h for h in state["log_history"] if "loss" in h]) == 2


def test_micro_batches_train_as_one_batch(setup, tmp_path):
    """micro_batch_size is memory only: off-policy (lmbda 0), 2 micro-batches of 2 log the same losses and give
    the same student as one batch of 4 (TRL divides each forward's summed loss by the step's label tokens)."""
    import torch
    from safetensors.torch import load_file

    from reasonkd.pipeline.compare_config import arm_recipe, load_compare_config
    from reasonkd.pipeline.trl_arm import train_trl_arm

    _, _, arms = setup
    cfg_d = dict(arms, seeds=[0], arms=[arms["arms"][0], {"name": "trl", "runner": "trl-gkd"}])
    (tmp_path / "a.yaml").write_text(yaml.safe_dump(cfg_d))
    runs = {}
    for micro in (4, 2):
        cfg = load_compare_config(tmp_path / "a.yaml", [f"out={tmp_path / str(micro)}", "recipe.bf16_autocast=false"])
        recipe = arm_recipe(cfg, cfg.arms[1], seed=0)
        assert recipe.batch_size * recipe.grad_accum == 4
        final = train_trl_arm(recipe, {"lmbda": 0.0, "micro_batch_size": micro}, 2, progress=False)
        runs[micro] = (json.loads((final.parent / "trl-loss.json").read_text()), load_file(final / "model.safetensors"))
    (loss4, w4), (loss2, w2) = runs[4], runs[2]
    assert len(loss4) == len(loss2) == 2 and loss4 == pytest.approx(loss2, rel=1e-4)
    for k, v in w4.items():
        torch.testing.assert_close(w2[k], v, rtol=1e-4, atol=1e-6)
    w0 = load_file(f"{arms['student']}/model.safetensors")
    assert any(not torch.equal(w4[k], w0[k]) for k in w0)  # the two steps trained
