"""Temperature and learning-rate schedules: pure functions of (step, total steps).

    temperature_at(TemperatureSchedule("linear", 5.0, 1.0), step=0, total=100)   # 5.0 (recipes/distill/article.yaml: T 5 -> 1)
    lr_factor(step, total, warmup=10, kind="cosine", min_ratio=0.1)             # multiplier of the peak lr

`step` is the 0-based optimizer step within a stage, `total` the stage's step
count; the value at step 0 is `start` and at step total - 1 is `end`, so the
last step really trains at the final temperature. Tests: tests/distill/test_schedules.py.

`TemperatureSchedule` is the recipe's `stages.N.temperature` block (reasonkd.distill.recipe.StageConfig).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field

from reasonkd.errors import ConfigError


@dataclass
class TemperatureSchedule:
    """How T moves over a stage, or a name of NAMED (`temperature: kd_anneal`, the classic KD schedule)."""

    NAMED = {"kd_anneal": {"kind": "linear", "start": 5.0, "end": 1.0}}

    kind: str = "constant"
    """constant | linear | cosine | step: how T moves from `start` to `end` over the stage's steps."""
    start: float = 1.0
    """Temperature at the first step of the stage."""
    end: float | None = None
    """Temperature at the last step (default: = start)."""
    milestones: list[float] = field(default_factory=list)
    """kind=step: where T drops, as fractions of the stage (0 < m < 1, e.g. [0.33, 0.66]) or step numbers (>= 1)."""
    values: list[float] = field(default_factory=list)
    """kind=step: T after each milestone (default: evenly spaced from start to end)."""

    def __post_init__(self):
        if self.kind not in ("constant", "linear", "cosine", "step"):
            raise ConfigError(f"kind must be constant, linear, cosine or step, got {self.kind!r}")
        if self.end is None:
            self.end = self.start
        if not (self.start > 0 and self.end > 0):
            raise ConfigError(f"start and end must be > 0, got start={self.start}, end={self.end}")
        if any(v <= 0 for v in self.values):
            raise ConfigError(f"values must all be > 0, got {self.values}")
        if self.kind == "step":
            if not self.milestones:
                raise ConfigError("kind=step needs milestones (fractions of the stage or step numbers)")
            if list(self.milestones) != sorted(self.milestones) or any(m <= 0 for m in self.milestones):
                raise ConfigError(f"milestones must be increasing and > 0, got {self.milestones}")
            if self.values and len(self.values) != len(self.milestones):
                raise ConfigError(
                    f"values needs one temperature per milestone ({len(self.milestones)}), got {len(self.values)}"
                )


def _progress(step: int, total: int) -> float:
    """Fraction of the stage done at `step`: 0 at the first step, 1 at the last."""
    return min(max(step / (total - 1), 0.0), 1.0) if total > 1 else 1.0


def temperature_at(schedule: TemperatureSchedule, step: int, total: int) -> float:
    """Temperature in force at 0-based `step` of a stage of `total` steps.

    constant: start.  linear: start + (end - start) * p.  cosine: end + (start - end) * (1 + cos(pi p)) / 2,
    with p = step / (total - 1).  step: start until the first milestone, then values[i] (or evenly
    spaced levels from start to end) from milestone i on; milestones < 1 are fractions of the
    stage (converted with round(m * total)), milestones >= 1 are step numbers.
    """
    start, end = float(schedule.start), float(schedule.end if schedule.end is not None else schedule.start)
    p = _progress(step, total)
    if schedule.kind == "constant":
        return start
    if schedule.kind == "linear":
        return start + (end - start) * p
    if schedule.kind == "cosine":
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * p))
    if schedule.kind == "step":
        marks = [round(m * total) if m < 1 else int(m) for m in schedule.milestones]
        n = len(marks)
        levels = list(schedule.values) or [start + (end - start) * (i + 1) / n for i in range(n)]
        passed = bisect.bisect_right(marks, step)
        return start if passed == 0 else float(levels[passed - 1])
    raise ValueError(f"unknown temperature schedule {schedule.kind!r}")


def lr_factor(step: int, total: int, warmup: int = 0, kind: str = "cosine", min_ratio: float = 0.0) -> float:
    """Multiplier of the peak learning rate at 0-based optimizer `step`.

    Warm-up: (step + 1) / (warmup + 1) for step < warmup (never 0, so step 0 already moves).
    Then over the remaining steps, with p from 0 to 1: constant 1; linear 1 - (1 - min_ratio) p;
    cosine min_ratio + (1 - min_ratio) (1 + cos(pi p)) / 2.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if kind == "constant":
        return 1.0
    p = _progress(step - warmup, total - warmup)
    if kind == "linear":
        return 1.0 - (1.0 - min_ratio) * p
    if kind == "cosine":
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * p))
    raise ValueError(f"unknown lr schedule {kind!r}")
