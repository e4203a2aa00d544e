"""recipes/accelerate/ presets (DDP, FSDP, DeepSpeed ZeRO-3) are valid accelerate configs, and
`reasonkd distill RECIPE --accelerate-config FILE` re-launches the same command through `accelerate launch`."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reasonkd.distill.launch import check_accelerate_config, launch_command
from reasonkd.errors import ConfigError
from tests.distill._tiny_distill import recipe_head

ROOT = Path(__file__).resolve().parents[2]
PRESETS = ROOT / "recipes" / "accelerate"


@pytest.mark.parametrize("name,kind", [("ddp", "MULTI_GPU"), ("fsdp", "FSDP"), ("deepspeed-zero3", "DEEPSPEED")])
def test_presets_are_valid(name, kind):
    cfg = check_accelerate_config(PRESETS / f"{name}.yaml")
    assert cfg["distributed_type"] == kind
    if kind == "FSDP":
        assert cfg["fsdp_config"]["fsdp_version"] == 2
        assert cfg["fsdp_config"]["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
    if kind == "DEEPSPEED":
        assert cfg["deepspeed_config"]["zero_stage"] == 3


def test_bad_configs_are_refused(tmp_path):
    def bad(text, match, raw=None):
        p = tmp_path / "c.yaml"
        p.write_bytes(raw if raw is not None else text.encode())
        with pytest.raises(ConfigError, match=match):
            check_accelerate_config(p)

    ddp = yaml.safe_load((PRESETS / "ddp.yaml").read_text())
    bad(yaml.safe_dump({**ddp, "distributed_type": "TPU_POD"}), "distributed_type must be one of")
    bad(yaml.safe_dump({**ddp, "bogus_key": 1}), "accelerate rejects it")
    fsdp = yaml.safe_load((PRESETS / "fsdp.yaml").read_text())
    bad(yaml.safe_dump({**fsdp, "fsdp_config": {**fsdp["fsdp_config"], "fsdp_version": 1}}), "fsdp_version must be 2")
    bad("", "empty file")
    bad("", "binary data", raw=b"\x00\x01\x02")
    with pytest.raises(ConfigError, match="does not exist"):
        check_accelerate_config(tmp_path / "missing.yaml")


def test_launch_command_keeps_the_arguments():
    args = argparse.Namespace(recipe="r.yaml", overrides=["stages.0.steps=2"], resume=True, quiet=True)
    cmd = launch_command(PRESETS / "fsdp.yaml", args)
    assert cmd[1:5] == ["-m", "accelerate.commands.launch", "--config_file", str(PRESETS / "fsdp.yaml")]
    assert cmd[5:] == ["-m", "reasonkd", "distill", "r.yaml", "stages.0.steps=2", "--resume", "--quiet"]


RECIPE = (
    recipe_head()
    + """\
  - {{name: output, kind: output, steps: 2, lr: 0.003, warmup: 1, lr_schedule: constant}}
"""
)


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
@pytest.mark.timeout(400)
def test_accelerate_config_flag_runs_two_processes(tmp_path):
    from _tiny_distill import SUBPROCESS_ENV, build_pair, summary, write_traces

    teacher, student = build_pair(tmp_path)
    data = write_traces(tmp_path / "traces.jsonl", n=16)
    out = tmp_path / "run"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.format(student=student, teacher=teacher, data=data, out=out))
    config = tmp_path / "ddp.yaml"  # the preset on its own port
    preset = (PRESETS / "ddp.yaml").read_text()
    config.write_text(preset.replace("main_process_port: 29500", "main_process_port: 29527"))
    env = {**os.environ, **SUBPROCESS_ENV, "REASONKD_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-m", "reasonkd.cli", "distill", str(recipe), "--accelerate-config", str(config), "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=380,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "running: accelerate.commands.launch --config_file" in done.stdout
    assert summary(out)["total"]["world_size"] == 2
