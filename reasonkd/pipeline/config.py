"""`DemoConfig`: every setting of `reasonkd demo` (each key documented), and where its presets live.

    cfg = load_demo_config(quick=True, overrides=["n_traces=32", "distill.stages.1.steps=8"])
    reasonkd demo --keys                      # every key with its default and meaning

Presets are YAML files in recipes/demo/ of the repository (default.yaml,
quick.yaml, qwen-1.5b-to-0.5b.yaml); `reasonkd demo` finds them relative to
the installed package (editable install: the repo). The defaults of this
dataclass ARE the default preset (a test keeps them equal), so
`reasonkd demo` works even where recipes/ is not shipped.

Two sections are whole recipes of the steps they drive: `data` is a
`DataRecipe` (reasonkd/data/recipe.py) and `distill` a `DistillRecipe`
(reasonkd/distill/recipe.py): the distillation stages, their losses, steps,
learning rates and temperatures live there and nowhere else. The demo sets the
recipe's student, teacher, seed and device from its own keys (a different
value under `distill.` is refused, naming the top-level key), its data and
output folder per run, and derives the SFT baseline from it (the same total
steps, ce only). In a YAML file, keys you leave out of such a section take that
recipe's own defaults, not the demo's, so a preset writes both sections out in
full; dotted overrides (`data.math.per_family=50`, `distill.stages.2.steps=20`)
change one key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from reasonkd.config import from_dict, load_config
from reasonkd.data.recipe import (
    AugmentConfig,
    CodeConfig,
    DataRecipe,
    DecontamConfig,
    LogicConfig,
    MathConfig,
    SplitConfig,
)
from reasonkd.distill.recipe import DistillRecipe
from reasonkd.errors import ConfigError
from reasonkd.pipeline.correct import CorrectionConfig

# The user prompt of every problem, for the teacher's traces and every evaluation alike. The 0.5B coder
# teacher answers the generic "think step by step" prompt with LaTeX and Python (mean ~250 tokens, 36%
# verified at a 256 cap); this one gave 12/32 verified at a 200 cap with ~145 tokens (2026-11-28).
DEMO_MATH_PROMPT = (
    "{question}\n\nAnswer with brief numbered steps (one short sentence with its calculation each), "
    'no LaTeX, then the final line "#### <number>".'
)

# math families whose problems form the unseen-template test split (never trained on)
UNSEEN_FAMILIES = ["zoo_tickets", "leaky_tank", "garden_fence"]


def demo_data_recipe() -> DataRecipe:
    """The default demo dataset: math word problems only (11 trained families, 3 held-out families)."""
    return DataRecipe(
        seed=0,
        math=MathConfig(per_family=120, gsm_symbolic=0),
        code=CodeConfig(per_task=0, bugfix=False),
        logic=LogicConfig(zebra=0, sudoku=0),
        augment=AugmentConfig(variants=1, conditions=0.5, distractors=0.2, negatives=0.0, subtasks=0.0),
        split=SplitConfig(test_templates=list(UNSEEN_FAMILIES), val_fraction=0.2),
        decontam=DecontamConfig(enabled=True, humaneval=False),
        parquet=False,
    )


def demo_distill_recipe() -> DistillRecipe:
    """The default demo's training: feature (4 steps) -> logic (12) -> output (12), full fine-tuning.

    The output stage runs at half the learning rate: its KD at T = 5 -> 1 is the most disruptive.
    Across tokenizers its kd term reads the teacher's top 20 tokens (`cross: topk`).
    """
    return from_dict(
        DistillRecipe,
        {
            "stages": [
                {
                    "name": "feature",
                    "kind": "feature",
                    "steps": 4,
                    "lr": 2e-4,
                    "warmup": 4,
                    "losses": [{"name": "hidden_mse", "options": {"normalize": True}}, {"name": "ce", "weight": 0.1}],
                },
                {
                    "name": "logic",
                    "kind": "logic",
                    "steps": 12,
                    "lr": 2e-4,
                    "warmup": 5,
                    "losses": [{"name": "ce"}, {"name": "forward_kl"}],
                },
                {
                    "name": "output",
                    "kind": "output",
                    "steps": 12,
                    "lr": 1e-4,
                    "warmup": 5,
                    "temperature": "kd_anneal",
                    "losses": [{"name": "kd", "options": {"alpha": 0.7, "cross": "topk", "k": 20}}],
                },
            ],
            "batch_size": 8,
            "max_length": 384,
            "save_every": 5,
            "prune_finished_checkpoints": True,  # ~1.6 GB of optimizer state per finished stage for smollm2
        },
    )


DEMO_OWNED_KEYS = ("student", "teacher", "seed", "device")
"""Keys of the distill recipe that the demo sets from its own top-level keys of the same name."""
_DISTILL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(DistillRecipe) if f.name in DEMO_OWNED_KEYS}


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
    n_robust: int = 0
    """Robustness (docs/robustness.md): every model also answers each GSM-Plus perturbation type on the
    first N problems of the unseen-template test split that take it, and those originals (`reasonkd eval
    --tasks robustness --per-type N`, about 9.5 prompts per N); the report gets its section and plot.
    0 = skip. n_robust=20 adds about 8 min on 2 AVX2 cores, most of it the teacher's."""
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
    dtype: str = "auto"
    """Weights for generation (teacher traces, evaluation): auto | bfloat16 | float32 | float16. auto = bf16
    where the hardware has it natively (AVX-512-BF16 / AMX CPUs, bf16 GPUs), else fp32 (`reasonkd doctor`)."""
    engine: str = "auto"
    """Generation engine of the evaluations and teacher traces: hf | openvino | vllm | auto (vllm on a GPU,
    openvino on a CPU with the export extra, else hf). openvino converts each model once per weights
    (counted in the step's time) and runs them as trained, fp32 (reasonkd.models.engines)."""
    distill: DistillRecipe = field(default_factory=demo_distill_recipe)
    """Training of the distilled student (reasonkd/distill/recipe.py: stages, losses, steps, lr, batch,
    LoRA, precision); student, teacher, seed and device are set from this config's own keys (distill.<key> set
    to another value is refused). The SFT baseline trains with ce only for the same total steps at the
    stages' peak lr and longest warm-up."""
    teacher_correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    """Teacher correction before distilling (reasonkd/pipeline/correct.py): a LoRA pass of the teacher on the
    demo's verified traces, merged into OUT/teacher-corrected/final, which then teaches the student (soft
    targets, on-policy scores). steps 0 = off: the plain teacher teaches. The SFT baseline reads no teacher;
    the table's teacher row stays the plain teacher that wrote the traces."""
    device: str = "auto"
    """auto (cuda if present, else cpu) | cpu | cuda."""
    isolate: bool = True
    """Run each heavy step (evaluations, traces, correction, training) in a fresh process of its own that
    gives its memory back when it ends (reasonkd/utils/child.py): a long-lived process keeps what earlier
    steps left resident. Same results either way (not part of the run's settings); false = all in this
    process."""

    def __post_init__(self):
        for key in (
            "n_test",
            "n_traces",
            "min_traces",
            "teacher_max_new_tokens",
            "teacher_batch_size",
            "eval_max_new_tokens",
            "eval_batch_size",
            "case_tokens",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be >= 1, got {getattr(self, key)}")
        if self.n_unseen < 0 or self.n_robust < 0 or self.latency_problems < 0:
            raise ConfigError("n_unseen, n_robust and latency_problems must be >= 0")
        for i, stage in enumerate(self.distill.stages):  # the SFT baseline and the ETA count steps
            if stage.steps < 1:
                raise ConfigError(
                    f"distill.stages.{i}.steps must be >= 1 in the demo (epochs are not used), got {stage.steps}"
                )
        if self.teacher_shots < 0:
            raise ConfigError(f"teacher_shots must be >= 0, got {self.teacher_shots}")
        if self.traces_fallback not in ("off", "reference"):
            raise ConfigError(f"traces_fallback must be off or reference, got {self.traces_fallback!r}")
        if self.dtype not in ("bfloat16", "float32", "float16", "auto"):
            raise ConfigError(f"dtype must be bfloat16, float32, float16 or auto, got {self.dtype!r}")
        if self.engine not in ("hf", "openvino", "vllm", "auto"):
            raise ConfigError(f"engine must be hf, openvino, vllm or auto, got {self.engine!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"device must be auto, cpu or cuda, got {self.device!r}")
        self._own_distill_keys()

    def _own_distill_keys(self) -> None:
        """The recipe trains this demo's pair, with its seed, on its device (so config.yaml shows the recipe
        that runs). bf16_autocast is passed on as the recipe asked for it ("auto" is resolved again, for
        this device, with its reason). A demo-owned key set under distill. to another value than the
        demo's own is refused, naming the top-level key: it never silently loses to it."""
        d = self.distill
        given = {key: d.asked.get(key, getattr(d, key)) for key in DEMO_OWNED_KEYS}  # as the user wrote them
        for key, value in given.items():
            if value != _DISTILL_DEFAULTS[key] and value != getattr(self, key):
                raise ConfigError(
                    f"distill.{key}={value!r}: the demo sets its recipe's {key} from its own "
                    f"top-level key ({key}={getattr(self, key)!r}); set {key}={value} instead and "
                    f"leave distill.{key} out"
                )
        self.distill = dataclasses.replace(
            d,
            student=self.student,
            teacher=self.teacher,
            seed=self.seed,
            device=self.device,
            bf16_autocast=d.asked["bf16_autocast"],
        )
        # loading applies overrides to the keys as given (config.load_config), so a distill.<key> set there
        # is still seen here
        self.distill.asked.update(given)

    @property
    def bf16_autocast(self) -> bool:
        """The training precision (distill.bf16_autocast), read by reasonkd.utils.hardware.precision_lines."""
        return self.distill.bf16_autocast

    @property
    def autocast_reason(self) -> str:
        return self.distill.autocast_reason

    @property
    def train_steps(self) -> int:
        """Optimizer steps of the distillation (all stages); the SFT baseline runs as many."""
        return sum(stage.steps for stage in self.distill.stages)


def recipes_dir() -> Path:
    """recipes/demo of the repository this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2] / "recipes" / "demo"


def preset_path(name: str) -> Path:
    p = recipes_dir() / f"{name}.yaml"
    if not p.is_file():
        raise ConfigError(
            f"demo preset {p} not found (recipes/ ships with the repository); "
            "pass --config FILE or set keys as key=value"
        )
    return p


def load_demo_config(config: str | None = None, quick: bool = False, overrides=()) -> DemoConfig:
    """--config FILE, else --quick (recipes/demo/quick.yaml), else the defaults; then key=value overrides."""
    if config and quick:
        raise ConfigError("give --quick or --config FILE, not both")
    path = config or (preset_path("quick") if quick else None)
    return load_config(DemoConfig, path, list(overrides))
