"""The demo's last step: the results table, retention, paired differences, cases, timings.

    summary = summarize(results, cfg, traces_info)      # results: student-before, sft-only, distilled, teacher
    demo_markdown(summary)                              # what OUT/report/demo.md holds

Owns the layout of the per-model eval JSONs (OUT/eval/<label>.<set>.json:
`eval_file`, written by reasonkd.pipeline.demo, read back by `load_eval`), and
writes the full evaluation report (reasonkd.eval.write_report: report.html, copied to
index.html, report.md, results.json, samples/; with the first-error analysis of every model and the
distilled - SFT-only comparison) and the demo summary
(demo.md, demo.json). OUT/timings.md (for BENCHMARKS.md) comes from state.json.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from reasonkd.config import to_dict
from reasonkd.errors import ReasonkdError
from reasonkd.eval.metrics import paired_diff_ci
from reasonkd.eval.report import write_report
from reasonkd.utils.hardware import precision_lines
from reasonkd.utils.io import atomic_write, read_jsonl, write_json

ORDER = ("student-before", "sft-only", "distilled", "teacher")
# compared in the report besides each model vs student-before: what distillation adds over SFT on the same traces
PAIRS = [("sft-only", "distilled"), ("student-before", "distilled")]
SETS = {"gsm8k": "held-out", "gsm8k_unseen": "unseen templates"}


def eval_sets(cfg) -> list[str]:
    return ["heldout"] + (["unseen"] if cfg.n_unseen > 0 else []) + (["robustness"] if cfg.n_robust > 0 else [])


def eval_file(out: Path, label: str, which: str) -> Path:
    return out / "eval" / f"{label}.{which}.json"


def load_eval(cfg, out: Path, label: str) -> dict:
    """One result dict per model for the report: held-out as task gsm8k, unseen as gsm8k_unseen, and the
    robustness task as itself."""
    merged = None
    for which in eval_sets(cfg):
        path = eval_file(out, label, which)
        if not path.is_file():
            raise ReasonkdError(f"{path} is missing; delete {out / 'state.json'} to rerun the evaluations")
        r = json.loads(path.read_text())
        if merged is None:
            merged = r
        else:
            task = "gsm8k_unseen" if which == "unseen" else which
            merged["tasks"][task] = r["tasks"]["gsm8k" if which == "unseen" else which]
            speeds = list(r.get("throughput", {}).values())
            if speeds:  # the last model's, under this task's name
                merged["throughput"][task] = speeds[-1]
    return merged


def _acc(r: dict, task: str) -> dict | None:
    if task not in r["tasks"]:
        return None
    m = r["tasks"][task]["metrics"]
    return {"acc": m["accuracy"], "lo": m["ci"][0], "hi": m["ci"][1], "n": m["n"]}


def _verdicts(r: dict, task: str) -> dict[str, float]:
    # one greedy sample per problem; the primary verdict is gsm8k's "final" extraction
    return {s["id"]: float(bool(s["verdict"])) for s in r["tasks"].get(task, {}).get("samples", [])}


def _paired(a: dict, b: dict, task: str) -> dict | None:
    va, vb = _verdicts(a, task), _verdicts(b, task)
    keys = sorted(set(va) & set(vb))
    return paired_diff_ci([va[k] for k in keys], [vb[k] for k in keys]) if keys else None


def _tokens_per_s(r: dict) -> float | None:
    tp = [v for v in (r.get("throughput") or {}).values() if v.get("seconds")]
    secs = sum(v["seconds"] for v in tp)
    return sum(v["new_tokens"] for v in tp) / secs if secs else None


def summarize(results: dict[str, dict], cfg, traces: dict | None) -> dict:
    """All the demo's numbers (demo.json) from the four result dicts keyed by ORDER's labels."""
    rows = []
    for label in ORDER:
        r = results[label]
        rows.append(
            {
                "label": label,
                "model": r["model"],
                "heldout": _acc(r, "gsm8k"),
                "unseen": _acc(r, "gsm8k_unseen"),
                "ms_per_token": (r.get("latency") or {}).get("ms_per_token"),
                "tokens_per_s": _tokens_per_s(r),
                "params": r.get("params"),
            }
        )
    acc = {row["label"]: row["heldout"]["acc"] for row in rows}
    gap = acc["teacher"] - acc["student-before"]
    retention = (acc["distilled"] - acc["student-before"]) / gap if abs(gap) > 1e-12 else None
    paired = {}
    for task, name in SETS.items():
        if task in results["student-before"]["tasks"]:
            paired[name] = {
                "distilled - student-before": _paired(results["distilled"], results["student-before"], task),
                "distilled - sft-only": _paired(results["distilled"], results["sft-only"], task),
            }
    before_cases = {c["name"]: c for c in results["student-before"].get("cases") or []}
    cases = [
        {
            "name": c["name"],
            "title": c["title"],
            "prompt": c["prompt"],
            "reference": c.get("reference"),
            "before": before_cases.get(c["name"], {}).get("answer"),
            "before_check": before_cases.get(c["name"], {}).get("check"),
            "after": c["answer"],
            "after_check": c["check"],
        }
        for c in results["distilled"].get("cases") or []
    ]
    summary = {
        "student": cfg.student,
        "teacher": cfg.teacher,
        "rows": rows,
        "retention": retention,
        "paired": paired,
        "traces": traces,
        "cases": cases,
        "config": to_dict(cfg),
    }
    summary["table"] = table_markdown(summary)
    return summary


def _pct(a: dict | None) -> str:
    if not a:
        return "-"
    return f"{100 * a['acc']:.1f}% [{100 * a['lo']:.1f}, {100 * a['hi']:.1f}] (n={a['n']})"


def _num(x, fmt: str) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else fmt.format(x)


def _params(n) -> str:
    return "-" if not n else (f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M")


def table_markdown(s: dict) -> str:
    lines = [
        "| Model | Held-out acc (95% CI) | Unseen-template acc (95% CI) | Latency ms/token (batch 1) "
        "| Tokens/s (batched) | Params |",
        "|---|---|---|---|---|---|",
    ]
    for row in s["rows"]:
        lines.append(
            f"| {row['label']} ({row['model']}) | {_pct(row['heldout'])} | {_pct(row['unseen'])} | "
            f"{_num(row['ms_per_token'], '{:.1f}')} | {_num(row['tokens_per_s'], '{:.1f}')} | "
            f"{_params(row['params'])} |"
        )
    ret = s["retention"]
    lines += [
        "",
        "Retention (held-out) = (distilled - before) / (teacher - before): "
        + ("undefined (teacher = student before)" if ret is None else f"{100 * ret:.1f}%"),
    ]
    return "\n".join(lines)


def _diff(d: dict | None) -> str:
    if not d:
        return "-"
    return (
        f"{100 * d['diff']:+.1f} pts [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}], p={d['p_value']:.3f}, "
        f"n={d['n']} (only A right: {d['a_only']}, only B right: {d['b_only']})"
    )


def _fence(text: str | None, limit: int = 1500) -> str:
    text = (text or "").strip()
    if len(text) > limit:
        text = text[:limit] + " [...]"
    return "```text\n" + text.replace("```", "'''") + "\n```"


def demo_markdown(s: dict) -> str:
    lines = [
        f"# reasonkd demo: {s['student']} <- {s['teacher']}",
        "",
        s["table"],
        "",
        *[f"Precision: {n}  " for n in s.get("precision", [])],
        "",
        "## Paired differences (same problems, A - B, 95% paired bootstrap CI)",
        "",
    ]
    for name, diffs in s["paired"].items():
        for what, d in diffs.items():
            lines.append(f"- {name}: {what}: {_diff(d)}")
    t = s.get("traces") or {}
    if t:
        lines += [
            "",
            "## Training traces",
            "",
            f"{t['teacher_accepted']} teacher traces verified out of {t['problems']} train problems "
            f"(acceptance {100 * t['acceptance_rate']:.1f}%).",
        ]
        if t.get("by_teacher"):  # which teacher wrote the training traces (the `teacher` field of each row)
            lines.append("By teacher: " + ", ".join(f"{k} {v}" for k, v in t["by_teacher"].items()) + ".")
        if t.get("reference"):
            lines.append(
                f"**{t['reference']} rows are the data engine's reference solutions, not teacher "
                "traces** (traces_fallback=reference): the teacher solved too few problems."
            )
    lines += ["", "## Qualitative cases (student before vs distilled)"]
    for c in s["cases"]:
        lines += [
            "",
            f"### {c['title']}",
            "",
            _fence(c["prompt"]),
            "",
            f"Before (rough check {'passed' if c['before_check'] else 'failed'}):",
            "",
            _fence(c["before"]),
            "",
            f"Distilled (rough check {'passed' if c['after_check'] else 'failed'}):",
            "",
            _fence(c["after"]),
        ]
    lines += [
        "",
        "Accuracy: greedy, zero-shot, exact numeric match of the final answer (gsm8k task, 'final' "
        "extraction) with a seeded 95% bootstrap interval. Held-out: new problems of the trained "
        "template families; unseen: template families never trained on. Full report: index.html.",
    ]
    return "\n".join(lines) + "\n"


def write_timings(state: dict, path: Path, machine: str, command: str) -> None:
    lines = ["| Step | Wall time | Finished at |", "|---|---|---|"]
    total = 0.0
    for name, st in state.get("steps", {}).items():
        total += st.get("seconds", 0.0)
        lines.append(f"| {name} | {st.get('seconds', 0.0) / 60:.1f} min | {st.get('finished_at', '')} |")
    lines += [f"| total | {total / 60:.1f} min | |", "", f"Machine: {machine}", "", f"Command: `{command}`"]
    with atomic_write(path) as f:
        f.write("\n".join(lines) + "\n")


def step_report(cfg, out: Path, runner) -> dict:
    results = {label: load_eval(cfg, out, label) for label in ORDER}
    rep = out / "report"
    precision = precision_lines(cfg)  # generation dtype and training autocast on this machine, and why
    gold = {
        r["id"]: r
        for which in ("heldout", "unseen")
        if (out / "eval" / f"{which}.jsonl").is_file()
        for r in read_jsonl(out / "eval" / f"{which}.jsonl")
    }  # gold steps for the first-error analysis
    paths = write_report(
        [results[k] for k in ORDER],
        rep,
        title=f"reasonkd demo: {cfg.student} <- {cfg.teacher}",
        notes=precision,
        gold=gold,
        pairs=PAIRS,
    )
    with atomic_write(rep / "index.html") as f:
        f.write(Path(paths["html"]).read_text())
    summary = summarize(results, cfg, runner.result("traces"))
    if cfg.distill.report_to:  # the eval table goes to the trackers the distillation run logged to
        from reasonkd.distill.tracking import log_eval_to

        log_eval_to(
            cfg.distill.report_to,
            out / "distill",
            [
                {
                    "model": r["label"],
                    "heldout_acc": (r["heldout"] or {}).get("acc"),
                    "ms_per_token": r["ms_per_token"],
                    "tokens_per_s": r["tokens_per_s"],
                    "params": r["params"],
                }
                for r in summary["rows"]
            ],
        )
    summary["precision"] = precision
    write_json(rep / "demo.json", summary)
    with atomic_write(rep / "demo.md") as f:
        f.write(demo_markdown(summary))
    return {
        "demo_md": str(rep / "demo.md"),
        "demo_json": str(rep / "demo.json"),
        "index": str(rep / "index.html"),
        "retention": summary["retention"],
    }


def load_summary(out: Path) -> dict:
    return json.loads((Path(out) / "report" / "demo.json").read_text())
