"""Why the wrong answers are wrong: first-error classes per model, and what changed between two models.

    reasonkd analyze runs/demo/eval                      # the demo's four models
    reasonkd analyze runs/eval --data data/default --pair student-before,student-after --json errors.json

    from reasonkd.eval.analyze import load_runs, analyze_runs, transitions
    runs, items = load_runs(["runs/demo/eval"])          # saved samples, and the gold items they refer to
    per_run = analyze_runs(runs, items)                  # [{label, task, counts, shares, examples, rows, ...}]
    transitions(per_run[1], per_run[2])                  # fixed / introduced / stayed, by class

Reads what `reasonkd eval --out`, `reasonkd report`, `reasonkd compare` and the demo save: a folder
with results.json, the demo's eval/ folder (<label>.<set>.json, and heldout.jsonl / unseen.jsonl with
the gold steps), samples/<label>/<task>.jsonl trees (a compare folder: one per arm and seed), or one
samples JSONL. Gold items come from --data, from
the data path each run recorded (samples/*/<task>.meta.json), and from item files next to the samples.
Math tasks only (gsm8k and gsm8k_*); the classes and rules are reasonkd.eval.diagnose's.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.eval.diagnose import CLASSES, NEEDS_GOLD, diagnose, excerpt, gold_of

ROLE_PAIRS = [("sft-only", "distilled"), ("student-before", "distilled")]  # the demo's labels
DEMO_ORDER = ("student-before", "sft-only", "distilled", "teacher")
ROW_KEYS = ("id", "completion", "verdict")


@dataclass
class Run:
    label: str
    task: str
    rows: list[dict]
    source: str


def is_math(task: str) -> bool:
    return task == "gsm8k" or task.startswith("gsm8k_")


def _check_rows(rows: list[dict], source: str) -> list[dict]:
    if not rows:
        raise ReasonkdError(f"{source}: no samples (an empty samples file); rerun the evaluation that wrote it")
    for n, r in enumerate(rows, 1):
        missing = [k for k in ROW_KEYS if k not in r]
        if missing:
            raise ReasonkdError(
                f"{source}: sample {n} lacks {missing}; not a samples file written by "
                "`reasonkd eval` (rows need id, completion and verdict)"
            )
    return rows


def _samples_file(path: Path) -> Run:
    from reasonkd.utils.io import read_jsonl

    rows = _check_rows(read_jsonl(path), str(path))
    task = path.stem if is_math(path.stem) else "gsm8k"
    label = path.parent.name if path.parent.parent.name == "samples" else path.stem
    return Run(label, task, rows, str(path))


def _result_runs(results: list[dict], source: str) -> list[Run]:
    runs = []
    for r in results:
        for task, v in (r.get("tasks") or {}).items():
            if is_math(task):
                runs.append(
                    Run(r["label"], task, _check_rows(v.get("samples") or [], f"{source} ({r['label']})"), source)
                )
    return runs


def _folder_runs(folder: Path) -> list[Run]:
    from reasonkd.eval.sample_store import load_run

    if (folder / "results.json").is_file():
        return _result_runs(load_run(folder), str(folder / "results.json"))
    found = []
    for f in sorted(folder.glob("*.json")):  # the demo: <label>.<set>.json, each a whole result
        try:
            r = json.loads(f.read_text())
        except json.JSONDecodeError as e:
            raise ReasonkdError(
                f"{f}: not JSON ({e.msg}, line {e.lineno}); delete it or rerun its evaluation"
            ) from None
        if isinstance(r, dict) and isinstance(r.get("tasks"), dict) and "label" in r:
            found.append((f, r))
    runs = []
    for f, r in found:  # <label>.unseen.json holds gsm8k too: it is the model's gsm8k_unseen (as in the report)
        which = f.stem[len(r["label"]) + 1 :] if f.stem.startswith(f"{r['label']}.") else ""
        if which and which != "heldout":
            r = {**r, "tasks": {(f"{t}_{which}" if t == "gsm8k" else t): v for t, v in r["tasks"].items()}}
        runs += _result_runs([r], str(f))
    order = {lab: i for i, lab in enumerate(DEMO_ORDER)}
    runs.sort(key=lambda x: (order.get(x.label, len(order)), x.label, x.task != "gsm8k", x.task))
    if not runs:
        runs = _samples_tree(folder)
    return runs


def _samples_tree(folder: Path) -> list[Run]:
    """samples/<label>/<task>.jsonl anywhere below `folder` (`reasonkd compare` keeps one tree per arm and
    seed: arms/<arm>/seed-<s>/eval-runs/samples/seed-<s>.<split>/); a label found twice gets its path."""
    files = [p for p in sorted(folder.rglob("samples/*/*.jsonl")) if is_math(p.stem)]
    runs = [_samples_file(p) for p in files]
    names = Counter((r.label, r.task) for r in runs)
    for p, r in zip(files, runs):
        if names[(r.label, r.task)] > 1:
            where = [x for x in p.relative_to(folder).parts[:-3] if x not in ("arms", "eval-runs")]
            r.label = "/".join([*(w for w in where if not r.label.startswith(w)), r.label])
    return runs


def _items_in(path: Path) -> dict[str, dict]:
    """Items by id from a data-engine folder or JSONL, a GSM8K JSONL, or a table the gsm8k task reads
    (Parquet, CSV, ...; `reasonkd.data.external`), ids as the gsm8k task gives them."""
    from reasonkd.data import load_items as load_any
    from reasonkd.data.external import is_table_spec
    from reasonkd.data.load import load_items
    from reasonkd.utils.io import read_jsonl

    if path.is_dir():
        rows = load_items(path) if any((path / f"{s}.jsonl").is_file() for s in ("train", "val", "test")) else []
    elif is_table_spec(str(path)):
        rows = load_any(str(path), split="test")
    else:
        rows = read_jsonl(path)
    out = {}
    for i, r in enumerate(rows):
        if "question" in r:
            out[str(r.get("id", f"gsm8k-{i}"))] = r
    return out


def _recorded_items(folder: Path) -> dict[str, dict]:
    items: dict[str, dict] = {}
    for f in sorted(folder.glob("*.jsonl")):  # the demo keeps its eval sets next to the results
        rows = _items_in(f)
        if rows and any("steps" in r or "meta" in r for r in rows.values()):
            items.update(rows)
    for meta in sorted(folder.rglob("*.meta.json")):  # each run's identity names the data it read
        try:
            data = json.loads(meta.read_text()).get("identity", {}).get("data")
        except (json.JSONDecodeError, AttributeError):
            continue
        if data and data != "None" and Path(data).exists():
            items.update({k: v for k, v in _items_in(Path(data)).items() if k not in items})
    return items


def find_items(folders=(), data=()) -> dict[str, dict]:
    """Gold items by id: from `data` paths (files or folders; missing ones skipped), then those recorded
    in or next to each evaluation folder."""
    items: dict[str, dict] = {}
    for d in data or ():
        if Path(d).exists():
            items.update(_items_in(Path(d)))
    for f in folders or ():
        if Path(f).is_dir():
            items.update({k: v for k, v in _recorded_items(Path(f)).items() if k not in items})
    return items


def load_runs(paths, data=None) -> tuple[list[Run], dict[str, dict]]:
    """The math runs saved under `paths`, and the gold items (by id) they can be matched with."""
    runs: list[Run] = []
    items: dict[str, dict] = {}
    for d in data or []:
        if not Path(d).exists():
            raise ReasonkdError(f"--data {d}: no such file or folder")
        items.update(_items_in(Path(d)))
    for p in map(Path, paths):
        if p.is_file():
            if p.name == "results.json":
                runs += _folder_runs(p.parent)
            elif p.suffix == ".jsonl":
                runs.append(_samples_file(p))
            else:
                raise ReasonkdError(f"{p}: pass an evaluation folder, its results.json or a samples .jsonl file")
            items.update({k: v for k, v in _recorded_items(p.parent).items() if k not in items})
            continue
        if not p.is_dir():
            raise ReasonkdError(f"{p}: no such folder or samples file")
        found = _folder_runs(p)
        if not found:
            raise ReasonkdError(
                f"{p}: no math evaluation samples here (expected results.json, the demo's "
                "<label>.<set>.json files, or samples/<label>/gsm8k.jsonl)"
            )
        runs += found
        items.update({k: v for k, v in _recorded_items(p).items() if k not in items})
    seen = Counter((r.label, r.task) for r in runs)
    if any(n > 1 for n in seen.values()):
        dup = [f"{lab} ({t})" for (lab, t), n in seen.items() if n > 1]
        raise ReasonkdError(f"the same model and task appear twice: {', '.join(dup)}; pass each run once")
    return runs, items


def analyze_rows(rows: list[dict], items: dict[str, dict] | None = None) -> list[dict]:
    """Each row's verdict and, when wrong, its first-error class with the offending step."""
    items = items or {}
    out = []
    for r in rows:
        if r.get("sample", 0):  # greedy evaluations: one sample per problem; pass@k samples are not diagnosed
            continue
        if r["verdict"]:
            out.append({"id": r["id"], "cls": "correct"})
            continue
        item = items.get(str(r["id"]))
        d = diagnose(
            r.get("completion") or "",
            r.get("reference"),
            gold_of(item),
            (item or {}).get("question") or r.get("prompt"),
            r.get("finished"),
        )
        out.append(
            {
                "id": r["id"],
                "cls": d.cls,
                "why": d.why,
                "gold_steps": d.gold_steps,
                "excerpt": excerpt(r.get("completion") or "", d),
            }
        )
    return out


def summarize(label: str, task: str, diagnosed: list[dict], n_examples: int = 2) -> dict:
    wrong = [d for d in diagnosed if d["cls"] != "correct"]
    counts = Counter(d["cls"] for d in wrong)
    examples = {
        c: [{"id": d["id"], "excerpt": d["excerpt"], "why": d["why"]} for d in wrong if d["cls"] == c][:n_examples]
        for c in CLASSES
        if counts[c]
    }
    return {
        "label": label,
        "task": task,
        "n": len(diagnosed),
        "wrong": len(wrong),
        "counts": {c: counts[c] for c in CLASSES},
        "shares": {c: counts[c] / len(wrong) if wrong else 0.0 for c in CLASSES},
        "no_gold": sum(1 for d in wrong if not d["gold_steps"]),
        "examples": examples,
        "rows": {str(d["id"]): d for d in diagnosed},
    }


def analyze_runs(runs: list[Run], items: dict[str, dict] | None = None, n_examples: int = 2) -> list[dict]:
    return [summarize(r.label, r.task, analyze_rows(r.rows, items), n_examples) for r in runs]


def analyze_results(results: list[dict], items: dict[str, dict] | None = None) -> list[dict]:
    """analyze_runs over result dicts (reasonkd.eval.evaluate_model / load_run), math tasks only."""
    return analyze_runs(
        _result_runs(
            [r for r in results if any(is_math(t) and v.get("samples") for t, v in r["tasks"].items())], "results"
        ),
        items,
    )


def transitions(before: dict, after: dict) -> dict:
    """Per class, on the problems both were asked: fixed (before wrong with it, after right), introduced
    (before right, after wrong with it) and stayed (wrong in both; `same`: with the same class)."""
    a, b = before["rows"], after["rows"]
    shared = sorted(set(a) & set(b))
    by = {c: {"fixed": 0, "introduced": 0, "stayed": 0, "same": 0} for c in CLASSES}
    matrix: Counter = Counter()
    for k in shared:
        ca, cb = a[k]["cls"], b[k]["cls"]
        matrix[(ca, cb)] += 1
        if ca != "correct" and cb == "correct":
            by[ca]["fixed"] += 1
        elif ca == "correct" and cb != "correct":
            by[cb]["introduced"] += 1
        elif ca != "correct":
            by[ca]["stayed"] += 1
            by[ca]["same"] += ca == cb
    return {
        "before": before["label"],
        "after": after["label"],
        "task": before["task"],
        "shared": len(shared),
        "fixed": sum(v["fixed"] for v in by.values()),
        "introduced": sum(v["introduced"] for v in by.values()),
        "stayed": sum(v["stayed"] for v in by.values()),
        "by_class": by,
        "matrix": {f"{x}->{y}": n for (x, y), n in sorted(matrix.items())},
    }


def default_pairs(summaries: list[dict]) -> list[tuple[str, str]]:
    """The demo's SFT-only -> distilled and before -> distilled when those labels are there, else every
    model against the first."""
    labels = [s["label"] for s in summaries]
    pairs = [p for p in ROLE_PAIRS if p[0] in labels and p[1] in labels]
    if pairs:
        return pairs
    return [(labels[0], lab) for lab in dict.fromkeys(labels[1:]) if lab != labels[0]] if labels else []


def pair_transitions(summaries: list[dict], pairs: list[tuple[str, str]] | None = None) -> list[dict]:
    out = []
    for before, after in pairs if pairs is not None else default_pairs(summaries):
        for s in summaries:
            if s["label"] != before:
                continue
            match = next((t for t in summaries if t["label"] == after and t["task"] == s["task"]), None)
            if match:
                out.append(transitions(s, match))
    return out


def gold_note(summaries: list[dict]) -> str | None:
    n = sum(s["no_gold"] for s in summaries)
    if not n:
        return None
    return (
        f"{n} wrong answers have no gold steps (no data-engine item found for them; pass --data): "
        f"{' and '.join(NEEDS_GOLD)} cannot be told there, such errors count as other."
    )
