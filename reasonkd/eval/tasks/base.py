"""The task base class and registry (`Task`, `@register`, `TASKS`), below the task modules.

Task modules import from here; reasonkd.eval.tasks imports them to fill the registry, so the
registry and the tasks do not import each other.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from reasonkd.data.prompts import load_template, render
from reasonkd.errors import ReasonkdError
from reasonkd.eval.metrics import bootstrap_ci, pass_at_k

TASKS: dict[str, type["Task"]] = {}


def register(name: str):
    """Class decorator: make a Task available under `name`."""

    def deco(cls):
        cls.name = name
        TASKS[name] = cls
        return cls

    return deco


def get_task(name: str, **options) -> "Task":
    if name not in TASKS:
        raise ReasonkdError(f"unknown task {name!r}; known tasks: {', '.join(sorted(TASKS))}")
    return TASKS[name](**options)


class Task:
    """Base task: examples -> prompts -> completions -> verdicts -> metrics."""

    name = ""
    sample_key = "idx"
    """Field of a --samples row that names its example (HumanEval: task_id)."""
    identity_options: tuple[str, ...] = ()
    """Options that change which examples the task asks: part of the cached samples' identity when set."""

    def __init__(
        self,
        data: str | None = None,
        limit: int | None = None,
        template: str | None = None,
        timeout: float = 10.0,
        workers: int = 2,
        **options,
    ):
        self.data, self.limit, self.timeout, self.workers = data, limit, timeout, workers
        self.options = options
        self.template = load_template(template)
        self._examples: list[dict] | None = None

    # -- data
    def load(self) -> list[dict]:
        """All examples, each with at least idx (0-based position), id and question."""
        raise NotImplementedError

    def examples(self) -> list[dict]:
        if self._examples is None:
            rows = self.load()
            self._examples = rows[: self.limit] if self.limit else rows
        return self._examples

    # -- prompting and scoring
    def prompt(self, ex: dict) -> str:
        """The user message for one example."""
        return render(
            self.template,
            {"domain": ex.get("domain", "math"), "question": ex["question"], "verifier": ex.get("verifier")},
        )[1]

    def system(self) -> str | None:
        return self.template.get("system") or None

    def score(self, ex: dict, completion: str) -> dict:
        raise NotImplementedError

    def score_many(self, examples: list[dict], completions: list[str]) -> list[dict]:
        return [self.score(e, c) for e, c in zip(examples, completions)]

    def reference(self, ex: dict):
        return ex.get("reference")

    # -- aggregation
    def metrics(self, rows: list[dict], seed: int = 0) -> dict:
        """Accuracy over examples (mean over their samples) with a bootstrap CI, and pass@k when n > 1."""
        return grouped_metrics(rows, seed=seed)

    # -- scoring existing completions (--samples)
    def match_samples(self, samples: list[dict], source: str) -> list[tuple[dict, str]]:
        """Pair --samples rows with examples by `sample_key`; errors name the file and row."""
        by_key = {ex[self.sample_key]: ex for ex in self.load()}
        pairs = []
        for i, row in enumerate(samples, 1):
            if self.sample_key not in row or "completion" not in row:
                raise ReasonkdError(
                    f"{source}: row {i} needs '{self.sample_key}' and 'completion' for task {self.name}"
                )
            key = row[self.sample_key]
            if key not in by_key:
                raise ReasonkdError(
                    f"{source}: row {i}: {self.sample_key}={key!r} is not an example of {self.name} "
                    f"({len(by_key)} examples)"
                )
            pairs.append((by_key[key], str(row["completion"] or "")))
        if self.limit:
            keep = {ex[self.sample_key] for ex in self.examples()}
            pairs = [p for p in pairs if p[0][self.sample_key] in keep]
        return pairs


def grouped_metrics(rows: list[dict], seed: int = 0) -> dict:
    """Per-example pass rate (several samples of one example are grouped by idx) -> mean, CI, pass@k."""
    groups: dict = defaultdict(list)
    for r in rows:
        groups[r["idx"]].append(bool(r["verdict"]))
    per_example = [sum(v) / len(v) for v in groups.values()]
    ci = bootstrap_ci(per_example, seed=seed)
    out = {"accuracy": ci["mean"], "ci": [ci["lo"], ci["hi"]], "n": len(groups), "samples": len(rows)}
    n_min = min((len(v) for v in groups.values()), default=0)
    if n_min > 1:
        for k in (1, 2, 5, 10, 20, 50, 100):
            if k <= n_min:
                vals = [pass_at_k(len(v), sum(v), k) for v in groups.values()]
                out[f"pass@{k}"] = sum(vals) / len(vals)
    else:
        out["pass@1"] = out["accuracy"]
    return out


def data_path(data: str | None, task: str, what: str) -> Path:
    if not data:
        raise ReasonkdError(f"task {task} needs --data: {what}")
    p = Path(data).expanduser()
    if not p.exists():
        raise ReasonkdError(f"task {task}: --data {data}: no such file or folder")
    return p
