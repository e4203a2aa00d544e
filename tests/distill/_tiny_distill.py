"""Tiny teacher/student pair, traces and recipe for the distillation-engine tests (no downloads).

Teacher: Llama, hidden 96, 3 layers, 6 heads; student: Llama, hidden 64, 2 layers, 4 heads. Both use
tokenizer flavour "a", so they share the tokenizer (same-vocabulary KD, identity alignment).
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.utils.io import write_jsonl

QUESTIONS = [
    (
        "A farmer has {a} chickens and {b} rabbits. How many heads?",
        "Step 1: {a} + {b} = {s}. The answer is {s}. #### {s}",
    ),
    (
        "The store sold {a} pens and then {b} more. How many pens in total?",
        "Step 1: {a} + {b} = {s}. So we add. #### {s}",
    ),
]


def write_traces(path: Path, n: int = 24) -> Path:
    rows = []
    for i in range(n):
        q, t = QUESTIONS[i % len(QUESTIONS)]
        a, b = 3 + i % 5, 4 + i % 3
        rows.append(
            {"id": f"q{i}", "prompt": q.format(a=a, b=b), "trace": t.format(a=a, b=b, s=a + b), "answer": str(a + b)}
        )
    write_jsonl(path, rows)
    return path


def build_pair(root: Path) -> tuple[Path, Path]:
    from tiny_models import build_tiny_model

    teacher = build_tiny_model(
        root / "teacher", arch="llama", tokenizer="a", hidden=96, layers=3, heads=6, kv_heads=2, seed=1
    )
    student = build_tiny_model(
        root / "student", arch="llama", tokenizer="a", hidden=64, layers=2, heads=4, kv_heads=2, seed=2
    )
    return teacher, student


def recipe_head(save_every: int = 0, chunk_rows: int | None = None) -> str:
    """Top of the tiny fp32 distill recipes (a `str.format` template: student, teacher, data, out) up to
    `stages:`; the stages follow."""
    return (
        "student: {student}\nteacher: {teacher}\ndata: {{path: {data}}}\noutput_dir: {out}\n"
        "bf16_autocast: false\nteacher_dtype: float32\nmax_length: 96\nbatch_size: 4\n"
        f"save_every: {save_every}\n" + (f"chunk_rows: {chunk_rows}\n" if chunk_rows else "") + "stages:\n"
    )


ONPOLICY_HEAD = recipe_head(save_every=2, chunk_rows=16)
"""Top of the tiny on-policy recipes; stages follow."""

TINY_RECIPE = """\
student: {student}
teacher: {teacher}
data: {{path: {data}}}
output_dir: {out}
seed: 0
bf16_autocast: false
teacher_dtype: float32
max_length: 96
batch_size: 4
save_every: {save_every}
log_every: 5
chunk_rows: 32
stages:
  - {{name: feature, kind: feature, steps: {steps}, lr: 0.003, warmup: 2, lr_schedule: constant}}
  - {{name: logic, kind: logic, steps: {steps}, lr: 0.003, warmup: 2, lr_schedule: constant}}
  - {{name: output, kind: output, steps: {steps}, lr: 0.003, warmup: 2, lr_schedule: constant,
      temperature: {{kind: linear, start: 5.0, end: 1.0}}}}
"""


def write_recipe(
    path: Path, teacher: Path, student: Path, data: Path, out: Path, steps: int = 20, save_every: int = 5
) -> Path:
    path.write_text(
        TINY_RECIPE.format(teacher=teacher, student=student, data=data, out=out, steps=steps, save_every=save_every)
    )
    return path


_REFERENCE: dict = {}


def reference_run(tmp_path_factory) -> Path:
    """An uninterrupted 3-stage run of the tiny recipe (20 steps per stage), made once per session."""
    if "out" not in _REFERENCE:
        from reasonkd.distill.stages import run_recipe

        root = tmp_path_factory.mktemp("distill_ref")
        teacher, student = build_pair(root)
        data = write_traces(root / "traces.jsonl")
        recipe = write_recipe(root / "tiny.yaml", teacher, student, data, root / "run")
        run_recipe(recipe, progress=False)
        _REFERENCE.update(out=root / "run", root=root, teacher=teacher, student=student, data=data)
    return _REFERENCE["out"]


def reference_parts() -> dict:
    return dict(_REFERENCE)


def summary(out: Path) -> dict:
    import json

    return json.loads((out / "summary.json").read_text())


def metric_rows(out: Path, stage: str) -> list[dict]:
    import json

    return [json.loads(line) for line in (out / "stages" / stage / "metrics.jsonl").read_text().splitlines()]


def one_thread():
    """Generator for an autouse fixture: tiny models run ~8x faster on one thread when the 2 shared
    cores are busy (OpenMP threads spin against each other); restores the old setting."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


SUBPROCESS_ENV = {
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "HF_HUB_OFFLINE": "1",
}
