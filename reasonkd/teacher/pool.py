"""Several teachers: each solves the training problems, their verified traces are pooled per problem.

    reasonkd teacher generate --teacher qwen2.5-coder-0.5b --teacher qwen2.5-coder-1.5b \
        --data runs/data --out runs/traces-mt --prefer shortest       # all | shortest | best_family

    from reasonkd.teacher.pool import TeacherSpec, generate_pooled, pool_traces
    stats = generate_pooled(settings, [TeacherSpec("qwen2.5-coder-0.5b"), TeacherSpec("qwen2.5-coder-1.5b")])

One teacher at a time (its weights are released before the next loads), each
into its own ordinary resumable folder OUT/teachers/<name>/ with every
verified sample kept; then the pool is written to OUT. Per problem the policy
keeps:

    all          every verified trace of every teacher
    shortest     the one verified trace with the fewest tokens (ties: teacher order, then sample index)
    best_family  the verified traces of the teacher right most often on the problem's family
                 (domain/template); if that teacher missed this problem, the next best one that solved it

OUT/traces.jsonl rows are ordinary trace rows with `teacher` (who wrote it)
and `sample_idx` renumbered per problem (the teacher's own index is kept as
`teacher_sample_idx`), so ids stay unique. OUT/stats.json adds a `pool` block
per teacher: acceptance rate, mean length, problems solved, problems only it
solved, traces kept. OUT/pool.json holds each teacher's verdict per problem
(verification-weighted logit fusion reads it: reasonkd/distill/fusion.py).
Rerun the same command to resume (each teacher folder resumes; the pool is rebuilt).
"""

from __future__ import annotations

import dataclasses
import gc
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.teacher.generate import GenerateSettings, generate_traces
from reasonkd.teacher.selection import selection_stats
from reasonkd.teacher.stats import compute_stats
from reasonkd.utils.io import read_json, read_jsonl, write_json, write_jsonl

POLICIES = ("all", "shortest", "best_family")
BACKENDS = ("hf", "vllm", "openai")
DTYPES = ("auto", "bfloat16", "float32", "float16")


@dataclass
class TeacherSpec:
    model: str = ""
    """Teacher model: alias, save_pretrained folder, .gguf or hub id."""
    weight: float = 1.0
    """Relative weight of this teacher in logit fusion (normalised over the teachers)."""
    dtype: str = "auto"
    """Weights when it runs: auto | bfloat16 | float32 | float16."""
    backend: str = "hf"
    """Trace generation backend: hf | vllm | openai."""
    logit_cache: str | None = None
    """Its top-k logit cache (`reasonkd teacher logits --teacher MODEL ...`): offline fused soft targets."""

    def __post_init__(self):
        if not self.model:
            raise ConfigError("model is required (alias, folder, .gguf or hub id)")
        if not self.weight >= 0:
            raise ConfigError(f"weight must be >= 0, got {self.weight}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


def teacher_slug(model: str) -> str:
    """A folder name for a teacher (alias or path): its last path part, safe characters only."""
    name = Path(str(model).rstrip("/")).name or str(model)
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


def generate_pooled(settings: GenerateSettings, teachers: list[TeacherSpec], backends: dict | None = None) -> dict:
    """Run every teacher on the problems (one at a time) into OUT/teachers/<name>, then pool them into OUT
    with the policy `settings.prefer`. backends: {model: backend} already built (tests). Returns stats.json."""
    if len(teachers) < 1:
        raise ReasonkdError("give at least one teacher")
    if settings.prefer not in POLICIES:
        raise ReasonkdError(f"--prefer {settings.prefer!r}: choose one of {', '.join(POLICIES)}")
    slugs = [teacher_slug(t.model) for t in teachers]
    if len(set(slugs)) != len(slugs):
        raise ReasonkdError(f"--teacher: each teacher once, and folder names must differ, got {slugs}")
    out = Path(settings.out)
    folders = {}
    for spec, slug in zip(teachers, slugs):
        one = dataclasses.replace(
            settings,
            teacher=spec.model,
            dtype=spec.dtype,
            backend=spec.backend,
            prefer="all",
            out=str(out / "teachers" / slug),
        )
        generate_traces(one, backend=(backends or {}).get(spec.model))
        gc.collect()  # the backend (and its weights) went out of scope: free them before the next teacher
        folders[spec.model] = out / "teachers" / slug
    return pool_traces(folders, out, settings.prefer)


def _teacher_rows(folder: Path) -> list[dict]:
    """Every sample of one teacher folder, accepted (traces.jsonl) and rejected (negatives.jsonl)."""
    if not (folder / "stats.json").is_file():
        raise ReasonkdError(
            f"{folder}: not a finished `reasonkd teacher generate` folder (no stats.json); "
            "rerun the command to finish it"
        )
    rows = [{**r, "accepted": True, "error_type": None} for r in read_jsonl(folder / "traces.jsonl")]
    rows += [{**r, "accepted": False} for r in read_jsonl(folder / "negatives.jsonl")]
    return rows


def family(row: dict) -> str:
    """The problem family a row belongs to: domain/template (domain/difficulty without a template)."""
    return f"{row.get('domain')}/{row.get('template') or row.get('difficulty')}"


def _select(by_problem: dict, order: list[str], policy: str, family_rate: dict) -> list[dict]:
    """The kept verified rows of one problem (by_problem: {teacher: [verified rows]})."""
    solvers = [t for t in order if by_problem.get(t)]
    if not solvers:
        return []
    if policy == "all":
        return [r for t in solvers for r in by_problem[t]]
    if policy == "shortest":
        rank = {t: i for i, t in enumerate(order)}
        return [
            min(
                (r for t in solvers for r in by_problem[t]),
                key=lambda r: (r["tokens"], rank[r["teacher"]], r["sample_idx"]),
            )
        ]
    fam = family(by_problem[solvers[0]][0])
    best = max(solvers, key=lambda t: (family_rate[fam].get(t, 0.0), -order.index(t)))
    return list(by_problem[best])


def pool_traces(folders: dict[str, str | Path], out: str | Path, policy: str = "all") -> dict:
    """Pool finished teacher folders {teacher name: folder} into out/ (traces.jsonl, negatives.jsonl,
    stats.json, pool.json); teachers in the order given. Returns stats.json's content."""
    if policy not in POLICIES:
        raise ReasonkdError(f"policy {policy!r}: choose one of {', '.join(POLICIES)}")
    out, order = Path(out), list(folders)
    rows_of = {name: _teacher_rows(Path(f)) for name, f in folders.items()}
    for name, rows in rows_of.items():
        for r in rows:
            r["teacher"] = name  # the name the recipe uses, whatever the folder recorded
    verdicts: dict[str, dict[str, bool]] = defaultdict(dict)
    verified: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    fam_count: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for name in order:
        for r in rows_of[name]:
            verdicts[r["id"]][name] = verdicts[r["id"]].get(name, False) or r["accepted"]
            if r["accepted"]:
                verified[r["id"]][name].append(r)
        solved = {pid: v[name] for pid, v in verdicts.items() if name in v}
        fams = {r["id"]: family(r) for r in rows_of[name]}
        for pid, ok in solved.items():
            fam_count[fams[pid]][name][0] += int(ok)
            fam_count[fams[pid]][name][1] += 1
    family_rate = {f: {t: c[0] / c[1] for t, c in d.items()} for f, d in fam_count.items()}
    kept = []
    for pid in verdicts:  # first-seen order: the first teacher's problem order
        for i, r in enumerate(_select(verified.get(pid, {}), order, policy, family_rate)):
            kept.append({**r, "teacher_sample_idx": r["sample_idx"], "sample_idx": i})
    all_rows = [r for name in order for r in rows_of[name]]
    traces = [{k: v for k, v in r.items() if k not in ("accepted", "error_type")} for r in kept]
    negatives = [{k: v for k, v in r.items() if k != "accepted"} for r in all_rows if not r["accepted"]]
    stats = {
        "teacher": " + ".join(order),
        **compute_stats(all_rows),
        "generation": _generation(folders),
        "selection": selection_stats(all_rows, kept, policy),
        "pool": {
            "policy": policy,
            "problems": len(verdicts),
            "solved_by_any": sum(any(v.values()) for v in verdicts.values()),
            "teachers": {t: _teacher_stats(t, rows_of[t], verdicts, kept) for t in order},
        },
    }
    write_jsonl(out / "traces.jsonl", traces)
    write_jsonl(out / "negatives.jsonl", negatives)
    write_json(
        out / "pool.json",
        {
            "policy": policy,
            "teachers": order,
            "folders": {t: str(f) for t, f in folders.items()},
            "verdicts": verdicts,
            "family_rate": family_rate,
        },
    )
    write_json(out / "stats.json", stats)
    return stats


def _teacher_stats(name: str, rows: list[dict], verdicts: dict, kept: list[dict]) -> dict:
    acc = [r for r in rows if r["accepted"]]
    only = sorted(pid for pid, v in verdicts.items() if v.get(name) and sum(v.values()) == 1)
    return {
        "samples": len(rows),
        "accepted": len(acc),
        "acceptance_rate": round(len(acc) / len(rows), 4) if rows else 0.0,
        "problems_solved": sum(bool(v.get(name)) for v in verdicts.values()),
        "mean_tokens": round(sum(r["tokens"] for r in rows) / len(rows), 1) if rows else 0.0,
        "verified_mean_tokens": round(sum(r["tokens"] for r in acc) / len(acc), 1) if acc else 0.0,
        "only_it_solved": len(only),
        "only_it_solved_ids": only[:20],
        "kept": sum(r["teacher"] == name for r in kept),
    }


def _generation(folders: dict) -> dict:
    tokens = seconds = 0.0
    for f in folders.values():
        g = read_json(Path(f) / "stats.json", "teacher stats.json").get("generation", {})
        tokens += g.get("new_tokens", 0) or 0
        seconds += g.get("seconds", 0) or 0
    return {
        "new_tokens": int(tokens),
        "seconds": round(seconds, 2),
        "tokens_per_s": round(tokens / seconds, 2) if seconds else None,
    }


def load_verdicts(path: str | Path) -> dict[str, dict[str, bool]]:
    """{problem id: {teacher: solved}} from a pooled folder (or its pool.json)."""
    p = Path(path)
    f = p / "pool.json" if p.is_dir() else p
    if not f.is_file():
        raise ReasonkdError(
            f"fusion.verdicts {path}: no pool.json; give the --out folder of "
            "`reasonkd teacher generate --teacher A --teacher B`"
        )
    return read_json(f, "pool.json")["verdicts"]


def format_pool(stats: dict) -> str:
    """The per-teacher lines printed after pooling."""
    p = stats["pool"]
    lines = [
        f"pool ({p['policy']}): {p['solved_by_any']}/{p['problems']} problems solved by at least one teacher; "
        f"{stats['selection']['kept']} traces kept"
    ]
    for t, s in p["teachers"].items():
        lines.append(
            f"  {t}: acceptance {100 * s['acceptance_rate']:.1f}% ({s['accepted']}/{s['samples']}), "
            f"solved {s['problems_solved']}, only it solved {s['only_it_solved']}, mean length "
            f"{s['mean_tokens']:.0f} tokens, kept {s['kept']}"
        )
    return "\n".join(lines)
