"""`CompareConfig`: the ARMS.yaml of `reasonkd compare` (every key documented), and each arm's DistillRecipe.

    cfg = load_compare_config("recipes/compare/transfer.yaml", ["seeds=[0,1]", "steps=8"])
    recipe = arm_recipe(cfg, cfg.arms[0], seed=0)       # a DistillRecipe, ready for run_recipe
    reasonkd compare --keys                             # every shared key with its default and meaning

The file holds shared settings (student, teacher, traces, eval sets, the
training budget, seeds) and a list of `arms`. Each arm is a distillation
recipe fragment: its `stages` (StageConfig keys of reasonkd/distill/recipe.py)
or a whole recipe file (`recipe: recipes/distill/...yaml`), merged over the
shared settings. The harness forces what makes arms comparable: every arm and
seed trains the same student on the same traces with the same number of
optimizer steps (`steps`, split over an arm's stages by their `share`, or in
proportion to the steps a recipe file gives them) and the same batch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from reasonkd.config import from_dict, load_config
from reasonkd.distill.recipe import LOGIT_LOSSES, DistillRecipe
from reasonkd.errors import ConfigError
from reasonkd.models.generation import GenerationJob
from reasonkd.pipeline.correct import CorrectionConfig

# set by the harness for every arm alike: an arm may not change them
FORCED = ("student", "teacher", "data", "output_dir", "seed", "batch_size", "grad_accum")
STAGE_EXTRA = ("share",)  # compare-only stage key, removed before the stage reaches the trainer
SPLITS = ("dev", "heldout")
RUNNERS = ("reasonkd", "trl-gkd")
"""Who trains an arm: reasonkd's stages, or TRL's GKDTrainer (the field's reference, reasonkd/pipeline/trl_arm.py)."""
REFERENCES = ("student", "teacher", "teacher-corrected")
"""Models evaluated once beside the arms (CompareConfig.references)."""


@dataclass(kw_only=True)
class EvalSets(GenerationJob):
    """The dev and held-out sets and how they are evaluated: the shared generation settings
    (models.generation.GenerationJob; greedy by default) with the eval's own defaults, plus the sets."""

    dev: str = ""
    """JSONL of the dev problems (recipes are chosen on these); "" = taken from `data`."""
    heldout: str = ""
    """JSONL of the held-out problems (reported once per chosen arm); "" = taken from `data`."""
    data: str = ""
    """When dev / heldout are not given: a built dataset (folder or JSONL) or a data recipe YAML (built into
    OUT/data). Its `split` originals of `domain`, in a stable hash order of ids: the first n_dev are the dev
    set, the next n_heldout the held-out set (disjoint by construction); a problem whose question repeats one
    of another split of `data` is left out first."""
    split: str | None = "val"
    """Split of `data` the eval sets come from (never the split the traces come from)."""
    domain: str | None = "math"
    n_dev: int = 200
    """Dev problems taken from `data`."""
    n_heldout: int = 1000
    """Held-out problems taken from `data`."""
    task: str = "gsm8k"
    """Evaluation task (reasonkd.eval.tasks) the files are scored with."""
    max_new_tokens: int = 200
    dtype: str = "float32"
    engine: str = "auto"
    """Generation engine of the evaluations (reasonkd.models.engines): auto | hf | openvino | vllm. Greedy
    verdicts agree across engines at the same precision (BENCHMARKS.md "Generation"); the engine is part
    of each cached evaluation's identity."""

    def __post_init__(self):
        super().__post_init__()
        if self.n_dev < 1 or self.n_heldout < 1 or self.batch_size < 1:
            raise ConfigError("n_dev, n_heldout and batch_size must be >= 1")
        if not ((self.dev and self.heldout) or self.data):
            raise ConfigError("give dev and heldout (JSONL files) or data (a dataset or data recipe)")


@dataclass
class ArmConfig:
    name: str = ""
    """Arm name (letters, digits, - _ .): folders OUT/arms/<name>/seed-<s>/ and the table rows."""
    description: str = ""
    """One line shown in compare.md."""
    recipe: str | None = None
    """A distill recipe YAML this arm starts from (its stages and training keys; student, teacher, data,
    seed and batch are the shared ones, and the shared `recipe` keys win over the file's).
    Relative paths: from the working directory, else from ARMS.yaml."""
    stages: list[dict] = field(default_factory=list)
    """Stage fragments (StageConfig keys; `steps` or `share` = fraction of the budget); replace the recipe's."""
    overrides: dict = field(default_factory=dict)
    """Other DistillRecipe keys for this arm only (e.g. max_length, lora, balance_losses)."""
    traces: str = ""
    """Another traces file for this arm ("" = the shared traces); give its SFT twin the same file."""
    corrected_teacher: bool = False
    """Use the teacher after `teacher_correction` (a LoRA pass on its own verified traces)."""
    baseline: str = ""
    """The arm this one is compared with ("" = the shared `baseline`)."""
    extra_steps: int = 0
    """Optimizer steps this arm takes beyond the shared `steps`: an arm that continues the shared budget for N
    more steps (SFT then N on-policy steps) and its control (SFT for the same N more steps) set the same N."""
    start_from: str = ""
    """Another arm whose trained student (same seed) this arm continues ("" = the untrained student): its own
    stages then take only `extra_steps`, and its steps, wall time and teacher tokens include that arm's. That
    arm is trained first when missing. E.g. SFT, then N on-policy steps, and its control: SFT, then N more
    SFT steps, both from the `sft` arm's checkpoint."""
    runner: str = "reasonkd"
    """Who trains this arm: reasonkd (its stages) | trl-gkd (TRL's GKDTrainer on the same traces, tokens and
    budget; reasonkd/pipeline/trl_arm.py). A trl-gkd arm takes no stages or recipe."""
    trl: dict = field(default_factory=dict)
    """runner trl-gkd: GKDConfig keys (lmbda, beta, temperature, max_new_tokens, seq_kd, ...); {} = TRL's
    documented defaults. The budget (steps, batch, lr, warm-up, LoRA, max_length, bf16) is the shared one."""

    def __post_init__(self):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", self.name or ""):
            raise ConfigError(f"name must be letters, digits, '-', '_' or '.', got {self.name!r}")
        if self.runner not in RUNNERS:
            raise ConfigError(f"arm {self.name}: runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        if self.runner == "trl-gkd" and (self.stages or self.recipe):
            raise ConfigError(
                f"arm {self.name}: runner trl-gkd trains with TRL's GKD loss; drop stages/recipe "
                "(set GKD's knobs under trl:)"
            )
        if self.trl and self.runner != "trl-gkd":
            raise ConfigError(f"arm {self.name}: trl: options need runner: trl-gkd")
        if self.runner == "reasonkd" and not (self.stages or self.recipe):
            raise ConfigError(f"arm {self.name}: give stages or recipe")
        if self.extra_steps < 0:
            raise ConfigError(f"arm {self.name}: extra_steps must be >= 0, got {self.extra_steps}")
        if self.start_from and (self.runner != "reasonkd" or self.extra_steps < 1):
            raise ConfigError(
                f"arm {self.name}: start_from needs runner reasonkd and extra_steps >= 1 (the steps it adds to "
                f"arm {self.start_from!r}'s)"
            )
        bad = sorted(set(self.overrides) & set(FORCED))
        if bad:
            raise ConfigError(f"overrides: {bad} are shared by every arm (set them at the top level)")


@dataclass
class CompareConfig:
    student: str = "smollm2-135m"
    """Student model every arm starts from."""
    teacher: str = "qwen2.5-coder-0.5b"
    """Teacher model (soft targets, hidden states, on-policy scoring); an arm that sets its own `teachers` list
    in `overrides` (one teacher's cache, or several fused) uses the first of those instead."""
    traces: str = ""
    """Verified teacher traces every arm trains on: a JSONL or a `reasonkd teacher generate` folder."""
    out: str = "runs/compare"
    """Output folder: arms/<arm>/seed-<s>/ (run, eval), eval/, compare.md, compare.json; a rerun resumes."""
    eval: EvalSets = field(default_factory=lambda: EvalSets(data="runs/demo/data"))
    """The dev and held-out problems (disjoint from each other and from the traces)."""
    steps: int = 28
    """Optimizer steps of every arm (split over its stages)."""
    batch_size: int = 8
    """Examples per micro-batch, every arm."""
    grad_accum: int = 1
    """Micro-batches per optimizer step, every arm."""
    lr: float = 2e-4
    """Peak learning rate of a stage that does not set its own `lr`."""
    warmup: int = 5
    """Warm-up steps of a stage that does not set its own (capped at the stage's steps)."""
    seeds: list[int] = field(default_factory=lambda: [0])
    """Each arm is trained once per seed (data order, initialisation)."""
    baseline: str = "sft"
    """The arm the others are compared with (paired differences)."""
    controls: list[str] = field(default_factory=list)
    """Arms every other arm is also paired with in the report, besides its baseline: e.g. `sft-n`, SFT
    continued for the extra steps, the control a distilled arm must beat too. On held-out they run along
    with the chosen arms, like the baseline."""
    recipe: dict = field(default_factory=dict)
    """DistillRecipe keys shared by every arm (e.g. max_length, bf16_autocast, device, save_every)."""
    references: list[str] = field(default_factory=lambda: ["student", "teacher"])
    """Models also evaluated (once): student | teacher (retention is measured between these two) |
    teacher-corrected (the teacher after `teacher_correction`: the ceiling of arms that learn from it)."""
    teacher_correction: CorrectionConfig = field(default_factory=CorrectionConfig)
    """The LoRA pass on the teacher for arms with corrected_teacher: true (reasonkd/pipeline/correct.py)."""
    teacher_tokens: int | None = None
    """Teacher tokens spent on the traces; None = read from the traces folder's stats.json when there."""
    logit_cache: str = ""
    """The teacher's top-k logit cache over `traces` (`reasonkd teacher logits`): arms with a logit term
    (forward_kl, kd, ...) read their soft targets from it (top-k plus the exact tail mass) instead of running
    the teacher at every step; feature and on-policy terms still run it. Arms with corrected_teacher read
    a cache of the corrected teacher with the same settings, built into OUT/teacher-corrected/logits.
    "" = every arm online."""
    isolate: bool = True
    """Run each job (the teacher correction, each reference's evaluation, each arm-seed's training and
    evaluation) in a fresh process of its own that gives its memory back when it ends. A long-lived process
    keeps what earlier jobs left resident: one that had run a correction, five evaluations and two SFT arms
    held 16 GB at the on-policy step a fresh process ran in 8 (docs/qwen-pair.md). Same numbers either way;
    false = every job in this process."""
    arms: list[ArmConfig] = field(default_factory=list)
    """The arms (at least two)."""

    def __post_init__(self):
        if self.steps < 1 or self.batch_size < 1 or self.grad_accum < 1 or self.warmup < 0:
            raise ConfigError("steps, batch_size and grad_accum must be >= 1, warmup >= 0")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: give one or more distinct seeds, got {self.seeds}")
        bad = sorted(set(self.recipe) & set(FORCED))
        if bad:
            raise ConfigError(f"recipe: {bad} are set by the harness (use the top-level keys)")
        bad = [r for r in self.references if r not in REFERENCES]
        if bad:
            raise ConfigError(f"references: unknown {bad}; use {', '.join(REFERENCES)}")
        if "teacher-corrected" in self.references and self.teacher_correction.steps < 1:
            raise ConfigError("references: teacher-corrected needs teacher_correction.steps >= 1")
        names = [a.name for a in self.arms]
        if len(names) < 2:
            raise ConfigError("arms: give at least two arms (one of them the baseline)")
        if len(set(names)) != len(names):
            raise ConfigError(f"arms: names must be unique, got {names}")
        for i, a in enumerate(self.arms):
            base = a.baseline or self.baseline
            key = f"arms.{i}.baseline" if a.baseline else "baseline"
            if base not in names:
                raise ConfigError(f"{key}: no arm named {base!r} (arms: {', '.join(names)})")
        bad = [c for c in self.controls if c not in names]
        if bad:
            raise ConfigError(f"controls: no arm named {bad} (arms: {', '.join(names)})")
        by_name = {a.name: a for a in self.arms}
        for i, a in enumerate(self.arms):
            start = by_name.get(a.start_from) if a.start_from else None
            if a.start_from and (start is None or start is a):
                raise ConfigError(
                    f"arms.{i}.start_from: no other arm named {a.start_from!r} (arms: {', '.join(names)})"
                )
            if start is not None and (start.start_from or start.corrected_teacher or start.runner != "reasonkd"):
                raise ConfigError(
                    f"arms.{i}.start_from: arm {start.name!r} must start from the untrained student, with the plain "
                    "teacher and runner reasonkd"
                )
        if any(a.corrected_teacher for a in self.arms) and self.teacher_correction.steps < 1:
            raise ConfigError("teacher_correction.steps must be >= 1: an arm has corrected_teacher: true")


def _resolve(path: str, base: Path | None) -> Path:
    p = Path(path)
    if p.is_absolute() or p.exists() or base is None:
        return p
    return base / p if (base / p).exists() else p


def _stage_steps(stages: list[dict], total: int, key: str = "stages") -> list[int]:
    """Integer steps per stage summing to `total`: from `share`, else in proportion to given `steps`,
    else equal; largest remainders round up, and every stage gets at least one step."""
    if len(stages) > total:
        raise ConfigError(f"{key}: {len(stages)} stages need at least {len(stages)} steps (steps={total})")
    shares = [s.get("share") for s in stages]
    if all(v is None for v in shares):
        given = [s.get("steps") for s in stages]
        shares = [float(v) for v in given] if all(given) else [1.0] * len(stages)
    elif any(v is None for v in shares) or any(not isinstance(v, (int, float)) or v <= 0 for v in shares):
        raise ConfigError(f"{key}: give every stage a share > 0, or none (got {shares})")
    raw = [total * v / sum(shares) for v in shares]
    steps = [max(1, int(x)) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - int(raw[i]), reverse=True)
    i = 0
    while sum(steps) != total:
        j = order[i % len(order)]
        if sum(steps) < total:
            steps[j] += 1
        elif steps[j] > 1:
            steps[j] -= 1
        i += 1
    return steps


def arm_fragment(cfg: CompareConfig, arm: ArmConfig, key: str = "arm") -> dict:
    """The arm's recipe as a dict before the harness's forced keys: the arm's recipe file, then the shared
    `recipe` keys (the same for every arm: they win over a file), then the arm's stages and overrides."""
    d: dict = {}
    stages = [dict(s) for s in arm.stages]
    if arm.runner == "trl-gkd":  # one stage carries the shared budget (steps, lr, warm-up, schedule) to TRL
        stages = [{"name": "trl-gkd", "kind": "logic", "losses": [{"name": "ce"}]}]
    if arm.recipe:
        path = Path(arm.recipe)
        if not path.is_file():
            raise ConfigError(f"{key}.recipe: file not found: {arm.recipe} (arm {arm.name})")
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f"{key}.recipe: {path}: invalid YAML: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{key}.recipe: {path}: top level must be a mapping of recipe keys")
        d.update({k: v for k, v in data.items() if k not in FORCED and k != "stages"})
        stages = stages or [dict(s) for s in data.get("stages") or []]
    d.update(cfg.recipe)
    d.update(arm.overrides)
    d["stages"] = stages
    return d


def corrected_dir(cfg: CompareConfig) -> Path:
    """OUT/teacher-corrected: the teacher after teacher correction (final/) and its logit cache (logits/)."""
    return Path(cfg.out) / "teacher-corrected"


def arm_dir(cfg: CompareConfig, name: str, seed: int) -> Path:
    """OUT/arms/<name>/seed-<seed>: one arm and seed's run, evaluations and timing."""
    return Path(cfg.out) / "arms" / name / f"seed-{seed}"


def arm_recipe(cfg: CompareConfig, arm: ArmConfig, seed: int, *, teacher: str | None = None) -> DistillRecipe:
    """The DistillRecipe of one arm and seed (validated; errors name the arm)."""
    i = next(n for n, a in enumerate(cfg.arms) if a is arm)
    d = arm_fragment(cfg, arm, f"arms.{i}")
    budget = arm.extra_steps if arm.start_from else cfg.steps + arm.extra_steps
    steps = _stage_steps(d["stages"], budget, f"arms.{i}.stages")
    for st, n in zip(d["stages"], steps):
        for k in STAGE_EXTRA:
            st.pop(k, None)
        st.pop("epochs", None)
        st["steps"] = n
        st.setdefault("lr", cfg.lr)
        st["warmup"] = min(st.get("warmup", cfg.warmup), n)
    own = d.get("teachers") or []  # an arm with its own `teachers` (overrides) runs the first of them
    first = own[0].get("model") if own and isinstance(own[0], dict) else None
    data = {**d.get("data", {}), "path": arm.traces or cfg.traces}
    logit_terms = any(t.get("name") in LOGIT_LOSSES for st in d["stages"] for t in st.get("losses") or [])
    if cfg.logit_cache and logit_terms and not (arm.traces and arm.traces != cfg.traces):
        # the caches score the shared traces only; a corrected teacher has its own
        data.setdefault("logit_cache", str(corrected_dir(cfg) / "logits") if arm.corrected_teacher else cfg.logit_cache)
    d.update(
        student=str(arm_dir(cfg, arm.start_from, seed) / "final") if arm.start_from else cfg.student,
        teacher=teacher or first or cfg.teacher,
        seed=seed,
        batch_size=cfg.batch_size,
        grad_accum=cfg.grad_accum,
        data=data,
        output_dir=str(arm_dir(cfg, arm.name, seed)),
    )
    return from_dict(DistillRecipe, d, prefix=f"arms.{i}.")


def load_compare_config(path: str | Path, overrides: list[str] | tuple = ()) -> CompareConfig:
    """Load ARMS.yaml with key=value overrides and check every arm builds into a valid recipe."""
    cfg = load_config(CompareConfig, path, list(overrides))
    if not cfg.traces and not all(a.traces for a in cfg.arms):
        raise ConfigError("traces is required: the verified teacher traces every arm trains on")
    if cfg.eval.template:  # a shipped prompt file may sit next to ARMS.yaml
        cfg.eval.template = str(_resolve(cfg.eval.template, Path(path).parent))
    for arm in cfg.arms:
        if arm.recipe:  # resolved once, so later reads do not depend on where ARMS.yaml was
            arm.recipe = str(_resolve(arm.recipe, Path(path).parent))
        arm_recipe(cfg, arm, cfg.seeds[0])
    return cfg
