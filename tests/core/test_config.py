"""Config system: YAML + dotted overrides over documented dataclasses."""

from dataclasses import dataclass, field

import pytest

from reasonkd.config import ConfigError, config_help, load_config, save_config
from reasonkd.cli import main


@dataclass
class Sched:
    kind: str = "constant"
    """constant | linear"""
    start: float = 5.0
    """temperature at step 0"""


@dataclass
class Stage:
    name: str = "s"
    steps: int = 10
    """optimizer steps"""


@dataclass
class Distill:
    temperature: float = 3.0
    """softmax temperature, > 0"""
    alpha: float = 0.7
    sched: Sched = field(default_factory=Sched)

    def __post_init__(self):
        if self.temperature <= 0:
            raise ConfigError(f"temperature must be > 0, got {self.temperature}")


@dataclass
class Recipe:
    student: str = "smollm2-135m"
    distill: Distill = field(default_factory=Distill)
    stages: list[Stage] = field(default_factory=lambda: [Stage("a"), Stage("b")])


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("distill:\n  alpha: 0.5\nstages:\n  - {name: x, steps: 3}\n")
    cfg = load_config(Recipe, p, ["distill.temperature=2.0", "stages.0.steps=7", "distill.sched.kind=linear"])
    assert cfg.distill.temperature == 2.0 and cfg.distill.alpha == 0.5
    assert cfg.stages[0].steps == 7 and cfg.stages[0].name == "x" and len(cfg.stages) == 1
    assert cfg.distill.sched.kind == "linear"
    out = save_config(cfg, tmp_path / "run")
    again = load_config(Recipe, out)
    assert again == cfg


def test_unknown_key_names_key_and_suggestion():
    with pytest.raises(ConfigError) as e:
        load_config(Recipe, None, ["distill.temprature=2"])
    assert "distill.temprature" in str(e.value) and "temperature" in str(e.value)
    assert e.value.exit_code == 2


def test_unknown_yaml_key(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("distill:\n  alpah: 0.5\n")
    with pytest.raises(ConfigError, match=r"distill\.alpah.*alpha"):
        load_config(Recipe, p)


def test_validation_names_full_key():
    with pytest.raises(ConfigError, match=r"distill\.temperature must be > 0, got -1"):
        load_config(Recipe, None, ["distill.temperature=-1"])


def test_type_error_and_index_range():
    with pytest.raises(ConfigError, match="stages.0.steps"):
        load_config(Recipe, None, ["stages.0.steps=abc"])
    with pytest.raises(ConfigError, match="index out of range"):
        load_config(Recipe, None, ["stages.5.steps=1"])


def test_help_uses_field_docstrings():
    text = config_help(Recipe)
    assert "distill.temperature" in text and "softmax temperature" in text


def test_cli_without_command_exits_2(capsys):
    assert main([]) == 2


def test_an_empty_list_entry_names_its_key(tmp_path):
    """`stages:` then a bare `-` (a file cut mid-line): one error naming stages.0, not an AttributeError."""
    from reasonkd.distill.recipe import DistillRecipe

    p = tmp_path / "r.yaml"
    p.write_text("student: a\nstages:\n  - {name: s, kind: logic, steps: 1}\n  -\n")
    with pytest.raises(ConfigError, match=r"stages\.1 is empty; give a mapping of StageConfig fields"):
        load_config(DistillRecipe, p)
