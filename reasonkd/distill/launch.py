"""`reasonkd distill RECIPE --accelerate-config FILE`: check an accelerate config, re-launch through it.

    reasonkd distill recipes/distill/default.yaml --accelerate-config recipes/accelerate/fsdp.yaml
    # runs: accelerate launch --config_file recipes/accelerate/fsdp.yaml -m reasonkd distill RECIPE ...
    check_accelerate_config("recipes/accelerate/deepspeed-zero3.yaml")   # -> the parsed dict, or ConfigError

The presets (recipes/accelerate/): ddp.yaml, fsdp.yaml (FSDP2 full shard, auto-wrap by decoder
layer; teacher replicated), deepspeed-zero3.yaml. See docs/distill.md "Several processes".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from reasonkd.errors import ConfigError
from reasonkd.utils.io import read_text

KNOWN_TYPES = ("NO", "MULTI_GPU", "MULTI_CPU", "FSDP", "DEEPSPEED")
ZERO_STAGES = (0, 1, 2, 3)


def check_accelerate_config(path: str | Path) -> dict:
    """Parse and check an accelerate config file (the keys reasonkd relies on); returns the dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"--accelerate-config: {path} does not exist (presets: recipes/accelerate/*.yaml)")
    text = read_text(path, "accelerate config (YAML)", ConfigError)
    try:
        cfg = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"--accelerate-config: {path} is not valid YAML: {e}") from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"--accelerate-config: {path} must hold a mapping (accelerate config keys)")
    kind = cfg.get("distributed_type")
    if kind not in KNOWN_TYPES:
        raise ConfigError(f"{path}: distributed_type must be one of {', '.join(KNOWN_TYPES)}, got {kind!r}")
    n = cfg.get("num_processes", 1)
    if not isinstance(n, int) or n < 1:
        raise ConfigError(f"{path}: num_processes must be an integer >= 1, got {n!r}")
    if kind == "FSDP":
        fsdp = cfg.get("fsdp_config") or {}
        if fsdp.get("fsdp_version", 1) != 2:
            raise ConfigError(f"{path}: fsdp_config.fsdp_version must be 2 (FSDP2 / fully_shard)")
        if fsdp.get("fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP") != "TRANSFORMER_BASED_WRAP":
            raise ConfigError(
                f"{path}: fsdp_config.fsdp_auto_wrap_policy must be TRANSFORMER_BASED_WRAP (one unit per decoder layer)"
            )
    if kind == "DEEPSPEED":
        ds = cfg.get("deepspeed_config") or {}
        if ds.get("zero_stage") not in ZERO_STAGES:
            raise ConfigError(f"{path}: deepspeed_config.zero_stage must be one of {ZERO_STAGES}")
    from accelerate.commands.config.config_args import load_config_from_file

    try:  # accelerate's own reader: unknown keys and bad values are refused as `accelerate launch` would
        load_config_from_file(str(path))
    except (ValueError, TypeError, KeyError) as e:
        raise ConfigError(f"--accelerate-config {path}: accelerate rejects it: {e}") from None
    return cfg


def launch_command(config: str | Path, args) -> list[str]:
    """The `accelerate launch` command line that runs this `reasonkd distill` invocation."""
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(config),
        "-m",
        "reasonkd",
        "distill",
        str(args.recipe),
        *args.overrides,
    ]
    if args.resume:
        cmd.append("--resume")
    if args.quiet:
        cmd.append("--quiet")
    return cmd


def relaunch(config: str | Path, args) -> int:
    """Check `config`, then run the same command under `accelerate launch`; returns its exit code."""
    cfg = check_accelerate_config(config)
    if cfg["distributed_type"] == "DEEPSPEED":
        try:
            import deepspeed  # noqa: F401  (only to say clearly what is missing before launching)
        except ImportError:
            raise ConfigError(f"{config} uses DeepSpeed: pip install deepspeed (needs CUDA GPUs)") from None
    if os.environ.get("LOCAL_RANK") is not None:
        raise ConfigError("--accelerate-config inside an already launched process: drop the flag")
    cmd = launch_command(config, args)
    print("running: " + " ".join(cmd[2:]), flush=True)
    return subprocess.call(cmd)
