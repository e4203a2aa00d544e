"""`DemoConfig`: every setting of `reasonkd demo` (each key documented), and where its presets live.

    cfg = load_demo_config(quick=True, overrides=["n_traces=32"])
    reasonkd demo --keys                      # every key with its default and meaning

Presets are YAML files in recipes/demo/ of the repository (default.yaml,
quick.yaml, qwen-1.5b-to-0.5b.yaml); `reasonkd demo` finds them relative to
the installed package (editable install: the repo). The defaults of this
dataclass ARE the default preset (a test keeps them equal), so
`reasonkd demo` works even where recipes/ is not shipped.

Note on `data`: it is a full `DataRecipe` (reasonkd/data/recipe.py). In a
YAML file, keys you leave out of a `data:` section take DataRecipe's own
defaults (which include code and logic), so a preset writes its data section
out in full; dotted overrides (`data.math.per_family=50`) change one key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reasonkd.data.recipe import (AugmentConfig, CodeConfig, DataRecipe, DecontamConfig, LogicConfig, MathConfig,
                                  SplitConfig)
from reasonkd.errors import ConfigError

# The user prompt of every problem, for the teacher's traces and every evaluation alike. The 0.5B coder
# teacher answers the generic "think step by step" prompt with LaTeX and Python (mean ~250 tokens, 36%
# verified at a 256 cap); this one gave 12/32 verified at a 200 cap with ~145 tokens (2026-11-28).
DEMO_MATH_PROMPT = ('{question}\n\nAnswer with brief numbered steps (one short sentence with its calculation each), '
                    'no LaTeX, then the final line "#### <number>".')

# math families whose problems form the unseen-template test split (never trained on)
UNSEEN_FAMILIES = ["zoo_tickets", "leaky_tank", "garden_fence"]


def demo_data_recipe() -> DataRecipe:
    """The default demo dataset: math word problems only (11 trained families, 3 held-out families)."""
    return DataRecipe(
        seed=0, math=MathConfig(per_family=120, gsm_symbolic=0), code=CodeConfig(per_task=0, bugfix=False),
        logic=LogicConfig(zebra=0, sudoku=0),
        augment=AugmentConfig(variants=1, conditions=0.5, distractors=0.2, negatives=0.0, subtasks=0.0),
        split=SplitConfig(test_templates=list(UNSEEN_FAMILIES), val_fraction=0.2),
        decontam=DecontamConfig(enabled=True, humaneval=False), parquet=False)


@dataclass
class DemoConfig:
    student: str = "smollm2-135m"
    """Student model: alias, save_pretrained folder or hub id."""
    teacher: str = "qwen2.5-coder-0.5b"
    """Teacher model (writes the traces, gives soft targets and hidden states)."""
    out: str = "runs/demo"
    """Run folder; rerunning with the same settings resumes (changed settings are refused)."""
    seed: int = 0
    """Seed of the distillation and SFT runs (data order, initialisation)."""
    data: DataRecipe = field(default_factory=demo_data_recipe)
    """Dataset recipe (reasonkd/data/recipe.py); val originals = held-out set, test originals = unseen set."""
    prompt: str = DEMO_MATH_PROMPT
    """User prompt for every math problem ({question} = the problem), used for the teacher's traces and for
    every evaluation, so the students are trained and tested on the same prompt."""
    system_prompt: str = ""
    """System prompt for traces and evaluation ("" = the chat template's default)."""
    n_test: int = 200
    """Held-out problems (math originals of the val split: trained families, new numbers)."""
    n_unseen: int = 0
    """Unseen-template problems (test split: families never trained on); 0 = skip that set."""
    teacher_shots: int = 1
    """Worked examples (the data engine's verified solutions of other problems of the same family) shown
    to the teacher before each problem; the training rows keep the zero-shot prompt (context
    distillation). 0 = the teacher sees the demo prompt alone."""
    n_traces: int = 160
    """Train problems the teacher solves (stable hash order); only verified traces are kept."""
    min_traces: int = 8
    """Fewer accepted traces than this stops the run (or triggers traces_fallback)."""
    traces_fallback: str = "off"
    """off | reference: when the teacher is accepted on fewer than min_traces problems, fill up with
    the data engine's own verified solutions (marked source=reference in the report). Tests use it:
    tiny random teachers never solve anything."""
    teacher_max_new_tokens: int = 200
    """Cap on a teacher trace; a trace that hits it is rejected as truncated."""
    teacher_batch_size: int = 16
    """Prompts per teacher generation batch."""
    eval_max_new_tokens: int = 200
    """Cap on each evaluated answer."""
    eval_batch_size: int = 16
    """Prompts per evaluation batch (throughput column)."""
    latency_problems: int = 3
    """Problems timed at batch 1 for the latency column."""
    case_tokens: int = 192
    """Cap on the answers to the two qualitative cases."""
    dtype: str = "bfloat16"
    """Weights for generation (teacher traces, evaluation): bfloat16 | float32 | auto (bf16 is faster on CPU too)."""
    feature_steps: int = 4
    """Optimizer steps of the feature stage (hidden states)."""
    logic_steps: int = 12
    """Optimizer steps of the logic stage (ce + forward KL)."""
    output_steps: int = 12
    """Optimizer steps of the output stage (KD, temperature 5 -> 1)."""
    feature_losses: list[str] = field(default_factory=lambda: ["hidden_mse"])
    """Feature-stage terms besides a 0.1-weighted ce: hidden_mse, hidden_cosine, attention_kl (same tokenizer only)."""
    lr: float = 2e-4
    """Peak learning rate of every stage (and of the SFT baseline)."""
    output_lr_scale: float = 0.5
    """The output stage's learning rate as a fraction of lr (its KD at T = 5 -> 1 is the most disruptive)."""
    warmup: int = 5
    """Warm-up steps per stage."""
    batch_size: int = 8
    """Examples per micro-batch (distillation and SFT alike)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_length: int = 384
    """Tokens per training example (prompt + trace)."""
    bf16_autocast: bool = True
    """fp32 master weights with bf16 autocast while training."""
    lora: bool = False
    """Train LoRA adapters on the student instead of every weight (large students)."""
    lora_r: int = 16
    """LoRA rank when lora is on."""
    save_every: int = 5
    """Training checkpoint every N steps (what a kill -9 can lose)."""
    device: str = "auto"
    """auto (cuda if present, else cpu) | cpu | cuda."""

    def __post_init__(self):
        for key in ("n_test", "n_traces", "min_traces", "teacher_max_new_tokens", "teacher_batch_size",
                    "eval_max_new_tokens", "eval_batch_size", "feature_steps", "logic_steps", "output_steps",
                    "batch_size", "grad_accum", "max_length", "case_tokens"):
            if getattr(self, key) < (0 if key.endswith("_steps") else 1):
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n_unseen < 0 or self.latency_problems < 0 or self.warmup < 0 or self.save_every < 0:
            raise ConfigError("n_unseen, latency_problems, warmup and save_every must be >= 0")
        if self.feature_steps + self.logic_steps + self.output_steps == 0:
            raise ConfigError("feature_steps + logic_steps + output_steps must be > 0")
        if self.teacher_shots < 0:
            raise ConfigError(f"teacher_shots must be >= 0, got {self.teacher_shots}")
        if self.traces_fallback not in ("off", "reference"):
            raise ConfigError(f"traces_fallback must be off or reference, got {self.traces_fallback!r}")
        if self.dtype not in ("bfloat16", "float32", "float16", "auto"):
            raise ConfigError(f"dtype must be bfloat16, float32, float16 or auto, got {self.dtype!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        bad = [n for n in self.feature_losses if n not in ("hidden_mse", "hidden_cosine", "attention_kl")]
        if bad:
            raise ConfigError(f"feature_losses: unknown {bad}; use hidden_mse, hidden_cosine, attention_kl")


def recipes_dir() -> Path:
    """recipes/demo of the repository this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "recipes" / "demo"


def preset_path(name: str) -> Path:
    p = recipes_dir() / f"{name}.yaml"
    if not p.is_file():
        raise ConfigError(f"demo preset {p} not found (recipes/ ships with the repository); "
                          "pass --config FILE or set keys as key=value")
    return p


def load_demo_config(config: str | None = None, quick: bool = False, overrides=()) -> DemoConfig:
    """--config FILE, else --quick (recipes/demo/quick.yaml), else the defaults; then key=value overrides."""
    from reasonkd.config import load_config

    if config and quick:
        raise ConfigError("give --quick or --config FILE, not both")
    path = config or (preset_path("quick") if quick else None)
    return load_config(DemoConfig, path, list(overrides))
