"""Numbers and tables of `reasonkd compare`: accuracy per arm and seed, paired differences, McNemar.

    summary = summarize_split(cfg, arms, results, "dev", "runs/cmp/eval/dev.jsonl")
    md = write_outputs(Path("runs/cmp"), "dev", summary, to_dict(cfg), command)   # compare.md + compare.json

Statistics (reasonkd.eval.metrics): accuracy with a percentile bootstrap 95%
CI over problems; an arm against its baseline on the same problems with the
same seed: paired bootstrap 95% CI of the difference and the exact McNemar
p. Pooled over seeds: each problem's mean verdict over the seeds, so the
bootstrap resamples problems (the unit that varies) and the CI does not
pretend that seeds are new problems; the pooled McNemar stacks the seeds'
pairs and is only a guide (repeats of one problem are not independent).
Where the eval rows carry a `difficulty`, every model's pooled accuracy is
also given per level (where an arm gains or loses, and how many problems
each level holds: a level's CI is wide when it is small).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.eval.metrics import bootstrap_ci, mcnemar_exact, paired_diff_ci
from reasonkd.utils.io import atomic_write, read_jsonl, write_json


def _vec(verdicts: dict, ids: list[str]) -> list[float]:
    return [float(verdicts[i]) for i in ids]


def _pooled(runs: dict, ids: list[str]) -> list[float]:
    """Each problem's mean verdict over the seeds of one arm."""
    return [sum(r["verdicts"][i] for r in runs.values()) / len(runs) for i in ids]


def _paired(a: dict, b: dict, ids: list[str]) -> dict:
    """Arm runs `a` against baseline runs `b` (both {seed: run}): per common seed and pooled."""
    seeds = [s for s in a if s in b]
    per_seed = {}
    for s in seeds:
        va, vb = _vec(a[s]["verdicts"], ids), _vec(b[s]["verdicts"], ids)
        per_seed[s] = {**paired_diff_ci(va, vb), "mcnemar_p": mcnemar_exact(va, vb)["p_value"]}
    if not seeds:
        return {"per_seed": {}, "pooled": None}
    pa, pb = _pooled({s: a[s] for s in seeds}, ids), _pooled({s: b[s] for s in seeds}, ids)
    stacked_a = [v for s in seeds for v in _vec(a[s]["verdicts"], ids)]
    stacked_b = [v for s in seeds for v in _vec(b[s]["verdicts"], ids)]
    pooled = {
        **paired_diff_ci(pa, pb),
        "mcnemar_p": mcnemar_exact(stacked_a, stacked_b)["p_value"],
        "seeds": len(seeds),
    }
    return {"per_seed": per_seed, "pooled": pooled}


def _levels(eval_file: str, ids: list[str]) -> dict[str, list[str]]:
    """Problem ids per difficulty level (the eval rows' `difficulty`), levels in order; {} when any
    problem has none (a level table over part of the problems would mislead)."""
    try:
        level = {r.get("id"): r.get("difficulty") for r in read_jsonl(eval_file)}
    except (OSError, ValueError, ReasonkdError):
        return {}
    groups: dict[str, list[str]] = {}
    for i in ids:
        if level.get(i) is None:
            return {}
        groups.setdefault(str(level[i]), []).append(i)
    return dict(sorted(groups.items(), key=lambda kv: (len(kv[0]), kv[0])))


def _by_level(results: dict, arm_names: list[str], groups: dict[str, list[str]]) -> dict:
    """{level: {"n": problems, "models": {name: pooled accuracy}}}: references, then arms."""
    out = {}
    for lvl, lids in groups.items():
        models = {name: sum(_vec(r["verdicts"], lids)) / len(lids) for name, r in results["references"].items()}
        for name in arm_names:
            runs = results["arms"].get(name, {})
            if runs:
                models[name] = sum(_pooled(runs, lids)) / len(lids)
        out[lvl] = {"n": len(lids), "models": models}
    return out


def summarize_split(cfg, arms: list, results: dict, split: str, eval_file: str) -> dict:
    """Every number of one split (compare.json's splits.<split>)."""
    ids = None
    for runs in results["arms"].values():
        for r in runs.values():
            ids = ids or sorted(r["verdicts"])
    ids = ids or []
    refs = {}
    for name, r in results["references"].items():
        ci = bootstrap_ci(_vec(r["verdicts"], ids))
        refs[name] = {"accuracy": ci["mean"], "ci": [ci["lo"], ci["hi"]], "n": ci["n"], "eval_s": r["seconds"]}
    before, teacher = refs.get("student", {}).get("accuracy"), refs.get("teacher", {}).get("accuracy")
    corrected = refs.get("teacher-corrected", {}).get("accuracy")
    rows = []
    for arm in arms:
        runs = results["arms"].get(arm.name, {})
        if not runs:
            continue
        base = arm.baseline or cfg.baseline
        per_seed = {}
        for s, r in runs.items():
            ci = bootstrap_ci(_vec(r["verdicts"], ids))
            t = r["timing"]
            per_seed[s] = {
                "accuracy": ci["mean"],
                "ci": [ci["lo"], ci["hi"]],
                "n": ci["n"],
                "train_s": t.get("train_s", 0.0),
                "eval_s": t.get("eval_s", {}).get(split),
                "steps": r["steps"],
                "teacher_read_tokens": r["teacher_read_tokens"],
            }
        pooled = bootstrap_ci(_pooled(runs, ids))
        base_arm = next((a for a in cfg.arms if a.name == base), arm)
        row = {
            "arm": arm.name,
            "description": arm.description,
            "baseline": base,
            "seeds": sorted(runs),
            "same_traces": (arm.traces or cfg.traces) == (base_arm.traces or cfg.traces),
            "per_seed": per_seed,
            "accuracy": pooled["mean"],
            "ci": [pooled["lo"], pooled["hi"]],
            "teacher_tokens": next(iter(runs.values()))["teacher_tokens"],
            "teacher_read_tokens": sum(r["teacher_read_tokens"] for r in runs.values()),
            "wall_s": round(sum(p["train_s"] + (p["eval_s"] or 0.0) for p in per_seed.values()), 1),
            "vs_baseline": None,
            "vs_main": None,
            "vs_controls": {},
            "retention": None,
            "retention_own": None,
        }
        if base != arm.name and base in results["arms"]:
            row["vs_baseline"] = _paired(runs, results["arms"][base], ids)
        if cfg.baseline not in (base, arm.name) and cfg.baseline in results["arms"]:
            # an arm with its own baseline (e.g. on-policy vs sft + N steps) is also paired with the main one
            row["vs_main"] = _paired(runs, results["arms"][cfg.baseline], ids)
        for c in getattr(cfg, "controls", []):  # e.g. sft + N steps: the control a distilled arm must beat too
            if arm.name != cfg.baseline and c not in (base, arm.name) and c in results["arms"]:
                row["vs_controls"][c] = _paired(runs, results["arms"][c], ids)
        if before is not None and teacher is not None and teacher != before:
            row["retention"] = (pooled["mean"] - before) / (teacher - before)
        if getattr(arm, "corrected_teacher", False) and before is not None and corrected not in (None, before):
            # the teacher this arm learned from: retention of the gap it could have closed
            row["retention_own"] = (pooled["mean"] - before) / (corrected - before)
        rows.append(row)
    return {
        "split": split,
        "eval_file": eval_file,
        "n_problems": len(ids),
        "baseline": cfg.baseline,
        "seeds": list(cfg.seeds),
        "steps": cfg.steps,
        "batch_size": cfg.batch_size,
        "grad_accum": cfg.grad_accum,
        "references": refs,
        "arms": rows,
        "by_level": _by_level(results, [r["arm"] for r in rows], _levels(eval_file, ids)),
        "written_at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def _pct(x) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def _ci(d: dict) -> str:
    return f"{_pct(d['accuracy'])}% [{_pct(d['ci'][0])}, {_pct(d['ci'][1])}]"


def _diff(d: dict | None) -> str:
    if not d:
        return "—"
    return f"{100 * d['diff']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]"


def _tokens(n) -> str:
    return "n/a" if n is None else f"{n:,}"


def split_markdown(s: dict) -> str:
    """The tables of one split."""
    title = {"dev": "Dev split (choose recipes here)", "heldout": "Held-out split (reported once per chosen arm)"}
    lines = [
        f"## {title[s['split']]}",
        "",
        f"{s['n_problems']} problems ({s['eval_file']}); seeds {s['seeds']}; every arm {s['steps']} optimizer "
        f"steps of batch {s['batch_size']} x {s['grad_accum']}; written {s['written_at']}.",
        "",
        *(
            [
                "**Part-way** (`--report`, from the evaluations done so far): not yet evaluated: "
                + ", ".join(s["missing"])
                + ". Pooled differences use the seeds both sides have.",
                "",
            ]
            if s.get("missing")
            else []
        ),
        "| arm | accuracy, pooled (95% CI) | − baseline, pooled [95% CI] | McNemar p | retention | "
        "wall min (train + eval) | teacher tokens (traces / read in training) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, r in s["references"].items():
        label = {"student": "student (untrained)", "teacher-corrected": "teacher, corrected"}.get(name, name)
        lines.append(f"| {label} | {_ci(r)} | — | — | — | {r['eval_s'] / 60:.1f} (eval) | — |")
    for row in s["arms"]:
        vs = row["vs_baseline"] or {}
        pooled = vs.get("pooled")
        p = f"{pooled['mcnemar_p']:.3g}" if pooled else "—"
        base = f" vs {row['baseline']}{'' if row.get('same_traces', True) else ' (other traces)'}" if pooled else ""
        main = (row.get("vs_main") or {}).get("pooled")
        if main:
            base += f"; {_diff(main)} vs {s.get('baseline', 'the main baseline')}"
            p += f"; {main['mcnemar_p']:.3g}"
        for c, vc in (row.get("vs_controls") or {}).items():
            if vc.get("pooled"):
                base += f"; {_diff(vc['pooled'])} vs {c}"
                p += f"; {vc['pooled']['mcnemar_p']:.3g}"
        ret = "n/a" if row["retention"] is None else f"{100 * row['retention']:.1f}%"
        if row.get("retention_own") is not None:
            ret += f" ({100 * row['retention_own']:.1f}% of the corrected teacher's gap)"
        lines.append(
            f"| {row['arm']} | {_ci(row)} | {_diff(pooled)}{base} | {p} | {ret} | {row['wall_s'] / 60:.1f} | "
            f"{_tokens(row['teacher_tokens'])} / {_tokens(row['teacher_read_tokens'])} |"
        )
    lines += [
        "",
        "Per seed:",
        "",
        "| arm | seed | accuracy (95% CI) | − baseline [95% CI] | McNemar p | "
        "only arm right / only baseline right | train min | eval min |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in s["arms"]:
        per = (row["vs_baseline"] or {}).get("per_seed", {})
        for seed, r in row["per_seed"].items():
            d = per.get(seed)
            disc = f"{d['a_only']} / {d['b_only']}" if d else "—"
            p = f"{d['mcnemar_p']:.3g}" if d else "—"
            ev = "n/a" if r["eval_s"] is None else f"{r['eval_s'] / 60:.1f}"
            lines.append(
                f"| {row['arm']} | {seed} | {_ci(r)} | {_diff(d)} | {p} | {disc} | {r['train_s'] / 60:.1f} | {ev} |"
            )
    levels = s.get("by_level") or {}
    if levels:
        names = list(next(iter(levels.values()))["models"])
        lines += [
            "",
            "By difficulty level (accuracy pooled over seeds, %):",
            "",
            "| level | problems | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names),
        ]
        for lvl, d in levels.items():
            cells = " | ".join(_pct(d["models"].get(n)) for n in names)
            lines.append(f"| {lvl} | {d['n']} | {cells} |")
    descs = [f"- `{r['arm']}`: {r['description']}" for r in s["arms"] if r["description"]]
    return "\n".join(lines + ([""] + descs if descs else []))


def write_outputs(out: Path, split: str, summary: dict, config: dict, command: str) -> str:
    """Merge this split into OUT/compare.json and rewrite OUT/compare.md; returns the split's markdown."""
    path = out / "compare.json"
    data = json.loads(path.read_text()) if path.is_file() else {"splits": {}}
    data["splits"][split] = json.loads(json.dumps(summary))  # seed keys become strings, as on reload
    data.update(config=config, command=command)
    write_json(path, data)
    parts = [
        "# reasonkd compare",
        "",
        f"Command: `{command}`",
        "",
        "Recipes are chosen on the dev split; the held-out split is evaluated once for the chosen arms "
        "(`--split heldout --arms ...`). Differences are paired (same problems, same seed): paired "
        "bootstrap 95% CI and exact McNemar p; pooled = each problem's mean over the seeds.",
        "",
    ]
    for name in ("dev", "heldout"):
        if name in data["splits"]:
            parts += [split_markdown(data["splits"][name]), ""]
    with atomic_write(out / "compare.md") as f:
        f.write("\n".join(parts))
    return split_markdown(summary)
