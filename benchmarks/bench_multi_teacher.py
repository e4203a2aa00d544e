"""Two teachers fused vs each teacher alone, on the shipped models: accuracy and wall time.

    .venv/bin/python benchmarks/bench_multi_teacher.py [--arms recipes/compare/multi-teacher.yaml] [--limit 160]

Teachers qwen2.5-coder-0.5b + qwen2.5-coder-1.5b, student smollm2-135m. Every step is a reasonkd command,
run in turn and resumable (rerun the script after an interruption):

1. `reasonkd models pull qwen2.5-coder-1.5b` and `reasonkd data build` (the transfer comparison's data);
2. `reasonkd teacher generate` with both teachers on `--limit` train problems (verified traces pooled,
   the shortest verified trace per problem kept; OpenVINO engine, INT8 teacher weights: traces are
   verified anyway);
3. `reasonkd teacher logits` with both teachers over the pooled traces (one top-k cache per teacher);
4. `reasonkd compare ARMS --split heldout --arms all`: the fused arm and each teacher alone, same traces,
   same steps, same 1000 held-out problems.

Then the table that matters here: fused minus each teacher alone on the same problems (paired bootstrap
95% CI, exact McNemar p), with each arm's training and evaluation time and each teacher's generation
time. Writes the "Multi-teacher" section of BENCHMARKS.md (the memory measurement of building two
caches is "Multi-teacher memory", benchmarks/bench_multi_teacher_rss.py).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, git_rev, machine, record_section  # noqa: E402

from reasonkd.pipeline.compare_config import load_compare_config  # noqa: E402
from reasonkd.pipeline.compare_report import split_markdown  # noqa: E402

TEACHERS = ("qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b")


def _steps(cfg, arms_yaml: str, limit: int) -> list[tuple[str, list[str]]]:
    teachers = [a for t in TEACHERS for a in ("--teacher", t)]
    logits = str(Path(cfg.traces).parent / "logits")
    return [
        ("pull", ["models", "pull", TEACHERS[1]]),
        ("data", ["data", "build", "recipes/compare/transfer-data.yaml", "--out", cfg.eval.data]),
        (
            "traces",
            [
                "teacher",
                "generate",
                *teachers,
                "--data",
                cfg.eval.data,
                "--split",
                "train",
                "--domain",
                "math",
                "--limit",
                str(limit),
                "--template",
                cfg.eval.template,
                "--max-new-tokens",
                "200",
                "--engine",
                "openvino",
                "--teacher-int8",
                "--prefer",
                "shortest",
                "--out",
                cfg.traces,
                "--no-progress",
            ],
        ),
        (
            "logits",
            ["teacher", "logits", *teachers, "--traces", cfg.traces, "--out", logits, "--k", "20", "--dtype", "auto"],
        ),
        ("compare", ["compare", arms_yaml, "--split", "heldout", "--arms", "all"]),
    ]


def _run(name: str, argv: list[str], times: dict, times_file: Path) -> None:
    """Run one step; its wall time is kept from the run that did the work (a resumed step that finds its
    output finished takes seconds, and does not overwrite the time measured before)."""
    print(f"== {name}: reasonkd {' '.join(argv)}", flush=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reasonkd", *argv], cwd=ROOT, check=True)
    seconds = round(time.perf_counter() - t0, 1)
    if seconds > times.get(name, 0.0):
        times[name] = seconds
        times_file.write_text(json.dumps(times, indent=1))


def _fused_minus_each(summary: dict, fused: str, seed: int) -> list[tuple[str, dict]]:
    """(arm, fused - arm on the same problems) from the compare summary, whose rows hold arm - fused (the
    baseline): the same paired bootstrap, negated; McNemar p and the discordant counts are symmetric."""
    out = []
    for row in summary["arms"]:
        if row["arm"] == fused:
            continue
        d = row["vs_baseline"]["per_seed"][str(seed)]
        out.append(
            (
                row["arm"],
                {
                    "diff": -d["diff"],
                    "lo": -d["hi"],
                    "hi": -d["lo"],
                    "p": d["mcnemar_p"],
                    "same": summary["n_problems"] - d["a_only"] - d["b_only"],
                },
            )
        )
    return out


def _diff_rows(diffs: list[tuple[str, dict]], fused: str, n: int) -> list[str]:
    return [
        f"| {fused} - {arm} | {n} | {100 * d['diff']:+.1f} | [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] | "
        f"{d['p']:.3f} | {d['same']}/{n} |"
        for arm, d in diffs
    ]


def _reading(diffs: list[tuple[str, dict]], seeds: int, traces: Path) -> str:
    """What the numbers say, and what limits them (computed from this run's files)."""
    words = [
        f"the fused student {'beats' if d['lo'] > 0 else 'loses to' if d['hi'] < 0 else 'ties (the CI includes zero)'}"
        f" `{arm}`"
        for arm, d in diffs
    ]
    pool = json.loads((traces / "pool.json").read_text())
    by_teacher = {t: sum(v.get(t, False) for v in pool["verdicts"].values()) for t in pool["teachers"]}
    kept = [json.loads(line).get("teacher") for line in (traces / "traces.jsonl").read_text().splitlines()]
    both = sum(all(v.values()) for v in pool["verdicts"].values())
    one = sum(sum(v.values()) == 1 for v in pool["verdicts"].values())
    solved = ", ".join(f"{t} {n}" for t, n in by_teacher.items())
    share = ", ".join(f"{t} {kept.count(t)}" for t in pool["teachers"])
    return (
        f"Reading: {'; '.join(words)}. Limits: {seeds} seed{'s' if seeds > 1 else ''}; the pooled traces are "
        f"mostly one teacher's text (problems solved: {solved}; both: {both}; traces kept: {share}), so every "
        "arm learns mostly from the same chains and only the soft targets differ; with verification weighting "
        f"the fused target on a problem only one teacher solved is that teacher's alone ({one} of the "
        f"{len(kept)} traced problems); the traces came from INT8 teacher weights (verified), the soft targets "
        "from fp32 weights."
    )


def _teacher_stats(traces: Path) -> list[str]:
    rows = []
    for t in TEACHERS:
        s = json.loads((traces / "teachers" / t / "stats.json").read_text())
        g, o = s["generation"], s["overall"]
        rows.append(
            f"| {t} | {o['problems']} | {o['accepted']} ({100 * o['acceptance_rate']:.0f}%) | "
            f"{o['mean_tokens']:.0f} | {g['new_tokens']} | {g['seconds'] / 60:.1f} | {g['tokens_per_s']:.1f} |"
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arms", default="recipes/compare/multi-teacher.yaml", help="the compare ARMS.yaml")
    ap.add_argument("--limit", type=int, default=160, help="train problems both teachers solve for traces")
    ap.add_argument("--fused", default="fused", help="the arm with both teachers")
    args = ap.parse_args()
    cfg = load_compare_config(args.arms)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    times_file = out / "bench-steps.json"
    times = json.loads(times_file.read_text()) if times_file.is_file() else {}
    for name, argv in _steps(cfg, args.arms, args.limit):
        if name == "data" and (Path(cfg.eval.data) / "stats.json").is_file():
            continue  # a built dataset is written atomically: present means complete (as in the demo)
        _run(name, argv, times, times_file)

    summary = json.loads((out / "compare.json").read_text())["splits"]["heldout"]
    diffs = _fused_minus_each(summary, args.fused, cfg.seeds[0])
    # training and evaluation times are the compare table's (per arm); the other steps' times are measured here
    steps_line = ", ".join(f"{k} {v / 60:.1f} min" for k, v in times.items() if k != "compare")
    body = f"""\
Teachers qwen2.5-coder-0.5b + qwen2.5-coder-1.5b fused into smollm2-135m vs each teacher alone. Every arm:
the same pooled verified traces (both teachers solved {args.limit} train problems; the shortest verified trace
per problem kept), the same 28 steps of batch 8 (the demo's budget), the same recipe
(`recipes/distill/multi-teacher.yaml`: CE on the trace + forward KL at T = 1 to the cached top-20 soft
targets); only the soft targets differ (fused: verification-weighted, a teacher wrong on the problem gets
weight 0). Evaluated on the same {cfg.eval.n_heldout} held-out problems (val split of the transfer data,
disjoint from the traces), greedy, <= {cfg.eval.max_new_tokens} new tokens, OpenVINO engine, seeds {cfg.seeds}.

Traces (`reasonkd teacher generate`, OpenVINO, INT8 teacher weights):

| teacher | problems | verified | mean tokens | new tokens | minutes | tokens/s |
|---|---|---|---|---|---|---|
{chr(10).join(_teacher_stats(Path(cfg.traces)))}

Fused minus each teacher alone, paired on the same problems:

| difference | n | points | 95% paired CI | McNemar p | same verdict |
|---|---|---|---|---|---|
{chr(10).join(_diff_rows(diffs, args.fused, summary["n_problems"]))}

{_reading(diffs, len(cfg.seeds), Path(cfg.traces))}

The compare table (`{out}/compare.md`, baseline: the fused arm):

{split_markdown(summary).split(chr(10), 1)[1].strip()}

Wall time of the steps before training (the run that did the work): {steps_line}; training and
evaluation: the table's wall column (untrained student: its evaluation only).

Reproduce: `.venv/bin/python benchmarks/bench_multi_teacher.py --arms {args.arms} --limit {args.limit}`
(commit {git_rev()}; {machine()}).
"""
    record_section("Multi-teacher", body)
    print(body)


if __name__ == "__main__":
    main()
