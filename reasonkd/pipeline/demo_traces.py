"""The demo's step 3, teacher traces (`reasonkd demo`, reasonkd.pipeline.demo): the teacher asked on the
train problems (optionally with worked examples of the same family in front: teacher_shots), its verified
traces turned into the student's training rows on the zero-shot prompt, and the `traces_fallback` fill-up
with the data engine's reference solutions. Also the prompt file every step shares (prompt_template)."""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from pathlib import Path

import yaml

from reasonkd.data import load_items, solution_text
from reasonkd.data.prompts import load_template, render
from reasonkd.data.verify import reference_answer
from reasonkd.errors import ReasonkdError
from reasonkd.pipeline.config import DemoConfig
from reasonkd.pipeline.eta import resolve_device
from reasonkd.teacher.generate import GenerateSettings, generate_traces, select_items
from reasonkd.utils.io import atomic_write, read_jsonl, write_jsonl

log = logging.getLogger(__name__)


def hash_order(rows: list[dict]) -> list[dict]:
    # a stable order that mixes the families (sorting by id would take the first families only)
    return sorted(rows, key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())


def prompt_template(cfg: DemoConfig, out: Path) -> str:
    """OUT/prompt.yaml: the template file (reasonkd.data.prompts format) that the teacher traces and
    every evaluation use."""
    path = out / "prompt.yaml"
    body = {"system": cfg.system_prompt or None, "math": cfg.prompt, "default": cfg.prompt}
    with atomic_write(path) as f:
        f.write(yaml.safe_dump(body, sort_keys=False, allow_unicode=True))
    return str(path)


# ------------------------------------------------------------------ step 3: teacher traces

TRACE_KEYS = ("id", "sample_idx", "prompt", "system", "trace")


SHOT = "Problem: {question}\nSolution:\n{solution}\n\n"
SHOT_INTRO = "Here are solved examples of this kind of problem:\n\n"
SHOT_ASK = (
    "Solve the next problem the same way: short steps, one calculation each, then the final line "
    '"#### <number>".\n\nProblem: {question}'
)


def teacher_problems(cfg: DemoConfig, out: Path) -> tuple[str, str | None]:
    """(data, template) for the teacher. teacher_shots = 0: the dataset and the demo prompt as they are.
    Else OUT/teacher_problems.jsonl: each train problem's question preceded by `teacher_shots` worked
    solutions (the data engine's verified ones) of OTHER problems of the same family, asked with the
    bare template "{question}". Only the teacher sees the examples: the training rows get the zero-shot
    prompt back (step_traces), so the student learns to answer without them (context distillation)."""
    if cfg.teacher_shots == 0:
        return str(out / "data"), prompt_template(cfg, out)
    rows = [r for r in load_items(out / "data", split="train") if r["domain"] == "math" and r["kind"] != "negative"]
    path = out / "teacher_problems.jsonl"
    write_jsonl(path, with_shots(rows, rows, cfg.teacher_shots))
    template = out / "teacher_prompt.yaml"
    with atomic_write(template) as f:
        f.write(yaml.safe_dump({"system": cfg.system_prompt or None, "math": "{question}", "default": "{question}"}))
    return str(path), str(template)


def with_shots(rows: list[dict], pool: list[dict], shots: int) -> list[dict]:
    """`rows` with each question preceded by `shots` worked solutions of OTHER originals of its family
    in `pool` (never the row itself or the original it derives from), in a stable hash order."""
    family: dict[str, list[dict]] = {}
    for r in hash_order([r for r in pool if r["kind"] == "original"]):
        family.setdefault(r["template"], []).append(r)
    problems = []
    for r in rows:
        own = {r["id"], r.get("parent_id")}
        chosen = [x for x in family.get(r["template"], []) if x["id"] not in own][:shots]
        body = "".join(SHOT.format(question=x["question"], solution=solution_text(x)) for x in chosen)
        problems.append(
            {**r, "question": (SHOT_INTRO + body if chosen else "") + SHOT_ASK.format(question=r["question"])}
        )
    return problems


def student_rows(accepted: list[dict], items: dict[str, dict], template: str) -> list[dict]:
    """Verified teacher traces as training rows: the student is trained (and evaluated) on the zero-shot
    prompt of `template` over its problem in `items` (by id), whatever the teacher was shown."""
    zero_shot = load_template(template)
    rows = []
    for r in accepted:
        system, user = render(zero_shot, items[r["id"]])
        rows.append({**r, "prompt": user, "system": system, "source": "teacher"})
    return rows


def step_traces(cfg: DemoConfig, out: Path) -> dict:
    template = prompt_template(cfg, out)
    data, teacher_template = teacher_problems(cfg, out)
    stats = generate_traces(
        GenerateSettings(
            teacher=cfg.teacher,
            data=data,
            out=str(out / "traces"),
            split="train",
            domain="math",
            limit=cfg.n_traces,
            max_new_tokens=cfg.teacher_max_new_tokens,
            batch_size=cfg.teacher_batch_size,
            dtype=cfg.dtype,
            device=resolve_device(cfg.device),
            template=teacher_template,
            engine=cfg.engine,
        )
    )
    accepted = read_jsonl(out / "traces" / "traces.jsonl") if (out / "traces" / "traces.jsonl").is_file() else []
    for n, row in enumerate(accepted, 1):
        missing = [k for k in TRACE_KEYS if k not in row]
        if missing:
            raise ReasonkdError(
                f"{out / 'traces' / 'traces.jsonl'}:{n}: lacks {missing}; the teacher output "
                "format changed (reasonkd.teacher.traces.load_traces needs them)"
            )
    rows = student_rows(accepted, {r["id"]: r for r in load_items(out / "data", split="train")}, template)
    solved = {r["id"] for r in accepted}
    n_ref = 0
    if len(solved) < cfg.min_traces:
        if cfg.traces_fallback != "reference":
            raise ReasonkdError(
                f"the teacher {cfg.teacher} was verified on only {len(solved)} of {cfg.n_traces} problems "
                f"(min_traces={cfg.min_traces}); see {out / 'traces' / 'stats.json'}. Raise n_traces or "
                "teacher_max_new_tokens, use a stronger teacher, or set traces_fallback=reference to fill up "
                "with the data engine's reference solutions (reported as such)"
            )
        for item in select_items(str(out / "data"), "train", "math", cfg.n_traces):
            if len(solved) >= cfg.min_traces:
                break
            if item["id"] in solved:
                continue
            system, user = render(load_template(template), item)
            rows.append(
                {
                    "id": item["id"],
                    "sample_idx": 0,
                    "prompt": user,
                    "system": system,
                    "trace": solution_text(item),
                    "answer": reference_answer(item),
                    "source": "reference",
                }
            )
            solved.add(item["id"])
            n_ref += 1
        log.warning(
            "traces_fallback=reference: %d reference solutions added to %d teacher traces", n_ref, len(accepted)
        )
    write_jsonl(out / "train_traces.jsonl", rows)
    return {
        "teacher_accepted": len(accepted),
        "reference": n_ref,
        "train_rows": len(rows),
        "acceptance_rate": stats["overall"]["acceptance_rate"],
        "problems": stats["overall"]["problems"],
        "by_teacher": dict(sorted(Counter(r.get("teacher") or cfg.teacher for r in accepted).items())),
    }
