"""`DistillRecipe`: what `reasonkd distill RECIPE.yaml [key=value ...]` trains (every key documented).

    recipe = load_config(DistillRecipe, "recipes/distill/default.yaml", ["stages.1.steps=50"])
    reasonkd distill recipes/distill/default.yaml student=smollm2-135m --help-config   # every key

A recipe names a student, a teacher and a JSONL of teacher traces, then a list
of stages run in order: each stage starts from the previous stage's
student and has its own steps, learning rate, losses and temperature schedule.
A stage with no `losses` gets the defaults of its `kind` (STAGE_DEFAULTS):

    feature  hidden_mse (+ projector where widths differ) + attention_kl
    logic    ce on the trace + forward_kl to the teacher's soft targets
    output   kd: alpha * T^2 * KL + (1 - alpha) * CE at T = 1
    on_policy  onpolicy_rkl (clip 5, anchor_ce 0.1): the teacher scores the student's own samples

Every logit term defaults to T = 1. The classic high-temperature schedule
(T = 5 -> 1 over the output stage; `temperature: kd_anneal`) is the named recipe
recipes/distill/article.yaml.

Loss names: the registry `reasonkd.distill.terms.LOSSES` (hidden_mse,
hidden_cosine, attention_kl, ce, kd, unlikelihood, preference, onpolicy_rkl and
every divergence: forward_kl, reverse_kl, generalized_jsd, skew_kl,
skew_reverse_kl, tvd). docs/distill.md has the table of options per loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reasonkd.distill.chunk_kd import onpolicy_options
from reasonkd.distill.compile import check_setting as check_compile
from reasonkd.distill.data import DataConfig
from reasonkd.distill.fusion import FusionConfig
from reasonkd.distill.schedules import TemperatureSchedule
from reasonkd.distill.terms import LOSSES, names_needing
from reasonkd.errors import ConfigError
from reasonkd.models.generation import Sampling
from reasonkd.teacher.pool import TeacherSpec
from reasonkd.utils.hardware import resolve_autocast

# groups of the registry's names (terms.LOSSES declares what each term needs)
FEATURE_LOSSES = names_needing("hidden") + names_needing("attentions")
LOGIT_LOSSES = names_needing("soft_targets")
NEGATIVE_LOSSES = names_needing("negatives")
ONPOLICY_LOSSES = names_needing("teacher_tokens")
LOSS_NAMES = tuple(LOSSES)
STAGE_KINDS = ("feature", "logic", "output", "on_policy")
SOFT_SOURCES = ("auto", "online", "cache")
TRACKERS = ("tensorboard", "trackio", "wandb")


@dataclass
class LossSpec:
    name: str = "ce"
    """Loss term: hidden_mse | hidden_cosine | attention_kl | ce | kd | a divergence name (forward_kl, ...) |
    unlikelihood | preference (wrong traces from data.negatives; reasonkd/distill/negatives.py) |
    onpolicy_rkl (on_policy stages: the teacher scores the student's own samples; chunk_kd.py)."""
    weight: float = 1.0
    """Multiplier of this term in the stage's total loss."""
    options: dict = field(default_factory=dict)
    """Keyword options of the term, e.g. {alpha: 0.7} for kd, {beta: 0.5} for generalized_jsd,
    {normalize: true} for hidden_mse, {source: cache} for a logit term (see docs/distill.md)."""

    def __post_init__(self):
        if self.name not in LOSS_NAMES:
            raise ConfigError(f"name: unknown loss {self.name!r}; known: {', '.join(LOSS_NAMES)}")
        if not self.weight >= 0:
            raise ConfigError(f"weight must be >= 0, got {self.weight}")
        source = self.options.get("source", "auto")
        if source not in SOFT_SOURCES:
            raise ConfigError(f"options.source must be one of {', '.join(SOFT_SOURCES)}, got {source!r}")


@dataclass(kw_only=True)
class RolloutConfig(Sampling):
    """An on-policy stage's own completions: the shared sampling settings, with its defaults, plus `fraction`."""

    fraction: float = 1.0
    """On-policy stages: share of micro-batches whose traces the student writes itself (GKD's lambda);
    the rest train on the teacher's traces."""
    temperature: float = 1.0
    max_new_tokens: int = 128

    def __post_init__(self):
        super().__post_init__()
        if not 0 <= self.fraction <= 1:
            raise ConfigError(f"fraction must be in [0, 1], got {self.fraction}")


@dataclass
class StageConfig:
    name: str = "stage"
    """Name of the stage (its folder is stages/<index>-<name>)."""
    kind: str = "output"
    """feature | logic | output | on_policy (the student samples, the teacher scores its text: onpolicy.py):
    sets the default losses and temperature when those are left out."""
    steps: int = 0
    """Optimizer steps of this stage (0 = use `epochs`)."""
    epochs: float = 0.0
    """Passes over the data, when steps = 0 (fractions allowed)."""
    lr: float = 1e-4
    """Peak learning rate (AdamW)."""
    warmup: int = 0
    """Linear warm-up steps from 0 to lr."""
    lr_schedule: str = "cosine"
    """After warm-up: constant | linear | cosine decay to min_lr_ratio * lr at the last step."""
    min_lr_ratio: float = 0.1
    """Final learning rate as a fraction of lr (linear / cosine schedules)."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    losses: list[LossSpec] = field(default_factory=list)
    """Loss terms summed with their weights; empty = the defaults of `kind` (see module docstring)."""
    temperature: TemperatureSchedule | None = None
    """Temperature schedule of the logit terms (default: constant 1; recipes/distill/article.yaml has 5 -> 1)."""
    heads: Any = None
    """Selective attention distillation: path to a heads.json from `reasonkd heads` (best `heads_top_k`),
    or a list of [teacher_layer, head] pairs; None = every head."""
    heads_top_k: int = 16
    """How many of the ranked heads to distill when `heads` is a heads.json."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """kind=on_policy: how the student's completions are sampled (reasonkd/distill/onpolicy.py)."""
    layer_map: Any = "uniform"
    """Student -> teacher layers for feature losses: "uniform" (proportional depth) or a list of
    [student_layer, teacher_layer] pairs / one teacher layer per student layer."""

    def __post_init__(self):
        if self.kind not in STAGE_KINDS:
            raise ConfigError(f"kind must be one of {', '.join(STAGE_KINDS)}, got {self.kind!r}")
        if self.steps < 0 or self.epochs < 0 or (self.steps == 0 and self.epochs == 0):
            raise ConfigError(f"give steps > 0 or epochs > 0 (got steps={self.steps}, epochs={self.epochs})")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        if self.lr_schedule not in ("constant", "linear", "cosine"):
            raise ConfigError(f"lr_schedule must be constant, linear or cosine, got {self.lr_schedule!r}")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        if self.heads_top_k < 1:
            raise ConfigError(f"heads_top_k must be >= 1, got {self.heads_top_k}")
        if not self.losses:
            self.losses = [LossSpec(**d) for d in STAGE_DEFAULTS[self.kind]]
        if self.kind == "on_policy":
            bad = [n for n in self.loss_names if n not in LOGIT_LOSSES + ONPOLICY_LOSSES]
            if bad or any(spec.options.get("source") == "cache" for spec in self.losses):
                raise ConfigError(
                    f"kind=on_policy: the teacher scores the student's own completions online, so "
                    f"only {', '.join(ONPOLICY_LOSSES)} and online logit losses "
                    f"({', '.join(LOGIT_LOSSES)}) apply; got {self.loss_names}"
                )
        elif set(self.loss_names) & set(ONPOLICY_LOSSES):
            raise ConfigError(
                f"{', '.join(ONPOLICY_LOSSES)} scores the student's own samples: only a stage of "
                f"kind on_policy makes them (this one is {self.kind})"
            )
        for spec in (s for s in self.losses if s.name in ONPOLICY_LOSSES):
            onpolicy_options(spec.options)
        if len(set(self.loss_names)) != len(self.loss_names):
            raise ConfigError(f"losses: each loss name may appear once per stage, got {self.loss_names}")
        if self.temperature is None:
            self.temperature = TemperatureSchedule("constant", 1.0)

    @property
    def loss_names(self) -> list[str]:
        return [spec.name for spec in self.losses]


STAGE_DEFAULTS: dict[str, list[dict]] = {
    "feature": [
        {"name": "hidden_mse", "weight": 1.0, "options": {"normalize": True}},
        {"name": "attention_kl", "weight": 1.0},
    ],
    "logic": [{"name": "ce", "weight": 1.0}, {"name": "forward_kl", "weight": 1.0}],
    "output": [{"name": "kd", "weight": 1.0, "options": {"alpha": 0.7}}],
    "on_policy": [{"name": "onpolicy_rkl", "weight": 1.0, "options": {"clip": 5.0, "anchor_ce": 0.1}}],
}


@dataclass
class LoraConfig:
    enabled: bool = False
    """Train LoRA adapters (peft) instead of every weight; merged into the student at each stage's end."""
    r: int = 16
    """LoRA rank."""
    alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    dropout: float = 0.0
    """Dropout on the LoRA input."""
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    """Module names that get adapters (Llama / Qwen2 naming)."""

    def __post_init__(self):
        if self.r < 1 or self.alpha < 1:
            raise ConfigError(f"r and alpha must be >= 1, got r={self.r}, alpha={self.alpha}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


@dataclass
class DistillRecipe:
    student: str = ""
    """Student model: alias, save_pretrained folder, .gguf file or hub id."""
    teacher: str = ""
    """Teacher model: alias, folder, .gguf or hub id (loaded only if a stage needs it online)."""
    teachers: list[TeacherSpec] = field(default_factory=list)
    """Several teachers [{model, weight, dtype, backend, logit_cache}]: logit terms read the mixture of their
    cached distributions in the student's vocabulary (docs/distill.md "Several teachers"); online stages use
    `teacher` (default: the first one). One entry is the same as `teacher:`."""
    fusion: FusionConfig = field(default_factory=FusionConfig)
    """How several teachers' distributions are weighted: static | verification | confidence."""
    data: DataConfig = field(default_factory=DataConfig)
    """Training traces and optional logit cache."""
    output_dir: str = "runs/distill"
    """Run folder: resolved config, stages/<i>-<name>/ (checkpoints, metrics.jsonl, student), final/."""
    seed: int = 0
    """Seed for initialisation (LoRA, projectors) and data order."""
    stages: list[StageConfig] = field(default_factory=lambda: [StageConfig(**s) for s in DEFAULT_STAGES])
    """Stages run in order, each starting from the previous stage's student."""
    lora: LoraConfig = field(default_factory=LoraConfig)
    """LoRA instead of full fine-tuning."""
    bf16_autocast: bool | str = "auto"
    """fp32 master weights with bf16 autocast (pure bf16 weights do not train: updates vanish in rounding):
    true | false | auto (on where bf16 is native: AVX-512-BF16 / AMX CPUs, bf16 GPUs; resolved on load)."""
    teacher_dtype: str = "auto"
    """Teacher weights: float32 | bfloat16 | auto (bfloat16 when bf16_autocast, it is frozen)."""
    max_length: int = 512
    """Tokens per example (prompt + trace); longer traces are cut at the end."""
    batch_size: int = 4
    """Examples per micro-batch on each process."""
    grad_accum: int = 1
    """Micro-batches per optimizer step."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm (0 = off)."""
    save_every: int = 100
    """Write a resumable checkpoint every N optimizer steps within a stage (0 = only at stage ends)."""
    keep_checkpoints: int = 1
    """How many mid-stage checkpoints to keep per stage (the newest)."""
    prune_finished_checkpoints: bool = False
    """Delete a stage's mid-stage checkpoints (weights + optimizer state) once the stage is done.
    A finished stage never resumes from them (its student/ folder is kept); the demo turns this on."""
    log_every: int = 10
    """Refresh the progress bar's loss figures every N steps (metrics.jsonl gets every step)."""
    balance_losses: bool = False
    """Scale each term by (geometric mean of all terms' running magnitudes) / (its own), so no term is
    silently 100x smaller than another; weights then set the relative strength (docs/distill.md)."""
    chunk_rows: int = 1024
    """Logit losses are computed this many token rows at a time under activation checkpointing
    (bounds fp32 softmax memory at large vocabularies); 0 = all rows at once."""
    fused_loss: bool = True
    """CE and plain forward KL rows compute their gradient in the forward (reasonkd/distill/losses/fused.py):
    the same loss values, gradients equal up to fp32 rounding, no recompute; false = plain autograd."""
    gradient_checkpointing: bool = False
    """Recompute the student's activations in backward (less memory, ~30% slower)."""
    compile: bool | str = "auto"
    """torch.compile (inductor) the student's decoder layers: true | false | auto (stages of at least
    compile_min_steps steps; reasonkd/distill/compile.py)."""
    compile_min_steps: int = 0
    """compile: auto compiles a stage of at least this many steps (0 = never: compiling did not pay on CPU)."""
    device: str = "auto"
    """auto (cuda if present, else cpu) | cpu | cuda."""
    report_to: list[str] = field(default_factory=list)
    """Experiment trackers through accelerate (reasonkd/distill/tracking.py): any of tensorboard | trackio |
    wandb (offline/local modes); logs to output_dir/tracking. [] = none."""

    def __post_init__(self):
        # "auto" becomes true/false here, once, so everything downstream reads a plain bool
        # keys as given, before this machine resolved them: configs built from this one (dataclasses.replace,
        # reasonkd.config.to_dict(requested=True)) pass "auto" on, so it is resolved again with its reason
        self.asked = {"bf16_autocast": self.bf16_autocast}
        self.bf16_autocast, self.autocast_reason = resolve_autocast(self.bf16_autocast, self.device)
        if self.max_length < 8:
            raise ConfigError(f"max_length must be >= 8, got {self.max_length}")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError(f"batch_size and grad_accum must be >= 1, got {self.batch_size}, {self.grad_accum}")
        if self.save_every < 0 or self.log_every < 1 or self.keep_checkpoints < 1:
            raise ConfigError("save_every must be >= 0, log_every and keep_checkpoints >= 1")
        if self.teacher_dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"teacher_dtype must be auto, float32 or bfloat16, got {self.teacher_dtype!r}")
        check_compile(self.compile)
        if self.compile_min_steps < 0:
            raise ConfigError(f"compile_min_steps must be >= 0, got {self.compile_min_steps}")
        if self.chunk_rows < 0:
            raise ConfigError(f"chunk_rows must be >= 0, got {self.chunk_rows}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        if isinstance(self.report_to, str):  # report_to=tensorboard on the command line
            self.report_to = [self.report_to] if self.report_to else []
        if bad := [t for t in self.report_to if t not in TRACKERS]:
            raise ConfigError(f"report_to: unknown tracker {bad[0]!r}; known: {', '.join(TRACKERS)}")
        if not self.stages:
            raise ConfigError("stages: give at least one stage")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ConfigError(f"stages: names must be unique, got {names}")

    def resolve_teachers(self) -> None:
        """`teachers:` -> `teacher` (online stages run the first one; one entry is exactly `teacher:`). At run
        start only: overrides rebuild a parsed recipe from its dict, which must not freeze a derived teacher."""
        if not self.teachers:
            return
        self.teacher = self.teacher or self.teachers[0].model
        one = self.teachers[0] if len(self.teachers) == 1 else None
        if one is not None and one.logit_cache and not self.data.logit_cache:
            self.data.logit_cache = one.logit_cache
        if one is not None and self.teacher_dtype == "auto" and one.dtype in ("float32", "bfloat16"):
            self.teacher_dtype = one.dtype

    def check_ready(self) -> None:
        """Fields that have no usable default (checked when a run starts, not when a file is parsed)."""
        self.resolve_teachers()
        for key in ("student", "data.path"):
            value = self.student if key == "student" else self.data.path
            if not value:
                raise ConfigError(f"{key} is required (set it in the recipe or as {key}=...)")
        for i, stage in enumerate(self.stages):
            for j, spec in enumerate(stage.losses):
                if spec.name in LOGIT_LOSSES:
                    try:
                        source = soft_source(spec, self)
                    except ConfigError as e:
                        raise ConfigError(f"stages.{i}.losses.{j}: {e}") from None
                    if stage.kind == "on_policy" and source != "online":
                        raise ConfigError(
                            f"stages.{i}.losses.{j}: an on_policy stage scores the student's own "
                            "completions, which no cache holds; set options.source: online"
                        )
        if not self.data.negatives and any(n in NEGATIVE_LOSSES for s in self.stages for n in s.loss_names):
            raise ConfigError("data.negatives is required: a stage uses the unlikelihood / preference loss")
        if not self.teacher and any(needs_teacher_online(s, self) for s in self.stages):
            raise ConfigError("teacher is required: a stage has feature losses or online soft targets")


DEFAULT_STAGES = [
    {"name": "feature", "kind": "feature", "steps": 50, "lr": 1e-4, "warmup": 5},
    {"name": "logic", "kind": "logic", "steps": 100, "lr": 1e-4, "warmup": 5},
    {"name": "output", "kind": "output", "steps": 100, "lr": 5e-5, "warmup": 5},
]


def soft_source(spec: LossSpec, recipe: DistillRecipe) -> str:
    """Where a logit term's teacher distribution comes from: "online" (teacher forward) or "cache"."""
    source = spec.options.get("source", "auto")
    cached = recipe.data.logit_cache or fused_caches(recipe)
    if source == "auto":
        return "cache" if cached else "online"
    if source == "cache" and not cached:
        raise ConfigError(
            f"loss {spec.name}: options.source=cache needs data.logit_cache (or a logit_cache for "
            "each of several teachers)"
        )
    return source


def needs_teacher_online(stage: StageConfig, recipe: DistillRecipe) -> bool:
    """True when the stage runs the teacher model at every step."""
    return any(
        s.name in FEATURE_LOSSES + ONPOLICY_LOSSES or (s.name in LOGIT_LOSSES and soft_source(s, recipe) == "online")
        for s in stage.losses
    )


def fused_caches(recipe: DistillRecipe) -> bool:
    """True when several teachers each name a logit cache: logit terms read their fused mixture."""
    if len(recipe.teachers) > 1 and recipe.data.logit_cache:
        raise ConfigError(
            "data.logit_cache holds one teacher's cache; with several teachers give each its own teachers.N.logit_cache"
        )
    if len(recipe.teachers) > 1 and not all(t.logit_cache for t in recipe.teachers):
        raise ConfigError(
            "teachers: several teachers are fused offline: give every one a logit_cache "
            "(`reasonkd teacher logits --teacher A --teacher B ...`)"
        )
    return len(recipe.teachers) > 1
