"""Evaluation tasks: one file holds a dataset and its grader (as nanochat's tasks/).

    from reasonkd.eval.tasks import get_task, TASKS
    task = get_task("gsm8k", data="gsm8k/test.jsonl")
    examples = task.examples()                       # [{"idx", "id", "question", ...}]
    rows = task.score_many(examples, completions)    # [{"verdict": bool, "extracted": ...}]
    task.metrics(rows)                               # {"accuracy", "ci", "n", "pass@k", ...}

A task registers itself with `@register("name")`; `get_task` with an unknown
name lists the known ones. Prompts are the teacher's default templates
(reasonkd.data.prompts.DEFAULT_TEMPLATE, or `template=` a file in the same
format), so a distilled student is asked the way its training traces were.
"""

from __future__ import annotations

# the base and registry live in base.py; importing the task modules registers them
from reasonkd.eval.tasks import gsm8k, humaneval, longmath, robustness, suites  # noqa: F401
from reasonkd.eval.tasks.base import TASKS, Task, data_path, get_task, grouped_metrics, register

__all__ = ["TASKS", "Task", "data_path", "get_task", "grouped_metrics", "register"]
