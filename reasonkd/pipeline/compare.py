"""`reasonkd compare ARMS.yaml`: train several recipes on the same traces and budget, evaluate all on the
same problems, and write a table of paired differences (docs/compare.md).

    reasonkd compare recipes/compare/transfer.yaml                       # every arm, every seed, dev split
    reasonkd compare recipes/compare/transfer.yaml --split heldout --arms onpolicy   # once, for the chosen
    reasonkd compare ARMS.yaml seeds=[0,1,2] steps=56 --out runs/cmp     # key=value overrides
    from reasonkd.pipeline.compare import run_compare; run_compare(load_compare_config("ARMS.yaml"))

For each arm and seed: OUT/arms/<arm>/seed-<s>/ holds the distillation run (run_recipe's folder,
final/ = the trained student), eval-<split>.json (per-problem verdicts) and timing.json. The untrained
student and the teacher are evaluated once (OUT/references/) for retention. OUT/compare.md and
compare.json hold, per split: accuracy with a 95% CI per arm and seed, the paired difference to the
baseline arm (paired bootstrap 95% CI, exact McNemar p) per seed and pooled over seeds, retention,
wall time (train + eval) and teacher tokens. Everything is resumable: a trained run, or an
evaluation whose settings and problems are unchanged, is skipped on a rerun. With `isolate: true` (the
default) each job (the teacher correction, a reference's evaluation, an arm-seed's training + evaluation) runs
in a process of its own (reasonkd/utils/child.py), so memory one job leaves behind cannot starve the next.
One job (train an arm-seed, evaluate a model, their bookkeeping) is reasonkd/pipeline/compare_run.py; this file
chains the jobs, the teacher check and the teacher correction, and writes the report.
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.config import save_config, to_dict
from reasonkd.errors import ReasonkdError
from reasonkd.eval.metrics import paired_diff_ci
from reasonkd.pipeline.compare_config import SPLITS, ArmConfig, CompareConfig, arm_dir, arm_recipe, corrected_dir
from reasonkd.pipeline.compare_data import prepare_eval_sets
from reasonkd.pipeline.compare_report import summarize_split, write_outputs
from reasonkd.pipeline.compare_run import (
    cached_eval,
    evaluate,
    is_trained,
    job_done,
    read_timing,
    run_info,
    train_and_evaluate,
)
from reasonkd.pipeline.correct import correct_teacher_with_cache
from reasonkd.pipeline.eta import resolve_device
from reasonkd.utils.child import run_in_child
from reasonkd.utils.io import read_jsonl, write_json

MIN_GAP = 0.15
"""Teacher minus untrained student (accuracy) below which the teacher check says there is little to distil."""


# ------------------------------------------------------------------ the job


def chosen_arms(cfg: CompareConfig, split: str, names: list[str] | None) -> list[ArmConfig]:
    """Arms to run: all on dev; on held-out the named ones (`all` = every arm) plus their baselines, the
    main baseline (`baseline`) and the `controls`, so that every arm is paired with them on the same problems."""
    if split not in SPLITS:
        raise ReasonkdError(f"--split {split!r}: choose dev or heldout")
    if split == "heldout" and not names:
        raise ReasonkdError(
            "--split heldout needs --arms NAME[,NAME] (the arms chosen on dev; `all` for every "
            "arm): the held-out set is reported once per chosen recipe"
        )
    if not names or names == ["all"]:
        return list(cfg.arms)
    by_name = {a.name: a for a in cfg.arms}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ReasonkdError(f"--arms: unknown {unknown}; arms: {', '.join(by_name)}")
    wanted = set(names) | {by_name[n].baseline or cfg.baseline for n in names} | {cfg.baseline}
    wanted |= set(getattr(cfg, "controls", []))
    return [a for a in cfg.arms if a.name in wanted]


def teacher_check(cfg: CompareConfig, split: str = "dev", *, log_fn=print, progress: bool = True) -> dict:
    """Step 1 of an experiment, before any trace or training: the teacher and the untrained student on
    the same problems and prompt. Their gap (teacher - student, paired CI) and discordance say whether
    there is anything to distil: below MIN_GAP the experiment should stop. Writes OUT/teacher-check.json."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    eval_file = prepare_eval_sets(cfg, out, [])[split]
    runs = {}
    for name, model in (("student", cfg.student), ("teacher", cfg.teacher)):
        log_fn(f"teacher check: {name} ({model}) on {split}")
        runs[name] = evaluate(cfg, model, out / "references" / name, split, eval_file, cfg.seeds[0], progress)
    ids = sorted(runs["teacher"]["verdicts"])
    t, st = ([runs[n]["verdicts"][i] for i in ids] for n in ("teacher", "student"))
    gap = paired_diff_ci([float(x) for x in t], [float(x) for x in st])
    check = {
        "split": split,
        "n": len(ids),
        "teacher": runs["teacher"]["metrics"]["accuracy"],
        "student": runs["student"]["metrics"]["accuracy"],
        "gap": gap,
        "teacher_only": sum(a and not b for a, b in zip(t, st)),
        "student_only": sum(b and not a for a, b in zip(t, st)),
        "min_gap": MIN_GAP,
        "seconds": {n: r.get("seconds") for n, r in runs.items()},
    }
    check["go"] = gap["diff"] >= MIN_GAP
    write_json(out / "teacher-check.json", check)
    log_fn(
        f"teacher check ({split}, n = {len(ids)}): teacher {100 * check['teacher']:.1f}%, student "
        f"{100 * check['student']:.1f}%, gap {100 * gap['diff']:+.1f} points [{100 * gap['lo']:+.1f}, "
        f"{100 * gap['hi']:+.1f}]; discordant: teacher only {check['teacher_only']}, student only "
        f"{check['student_only']} -> "
        + ("go on" if check["go"] else f"below {100 * MIN_GAP:.0f} points: little to distil, stop here")
    )
    return check


def _correction_plan(cfg: CompareConfig, chosen: list[ArmConfig]) -> tuple[Path, bool, bool] | None:
    """(folder, reads_cache, done) of the teacher correction, or None when no chosen arm or reference needs it."""
    arms = [a for a in chosen if a.corrected_teacher]
    if not arms and "teacher-corrected" not in cfg.references:
        return None
    folder = corrected_dir(cfg)
    reads = any(arm_recipe(cfg, a, cfg.seeds[0]).data.logit_cache == str(folder / "logits") for a in arms)
    done = is_trained(folder)
    return folder, reads, done and (not reads or (folder / "logits" / "meta.json").is_file())


def _corrected_teacher(cfg: CompareConfig, chosen: list[ArmConfig], log_fn, progress: bool) -> str | None:
    """The teacher after teacher correction (trained once, OUT/teacher-corrected/final) when a chosen arm or
    a reference needs it, with its logit cache (same k, length and storage as `logit_cache`) when a chosen
    arm reads one."""
    plan = _correction_plan(cfg, chosen)
    if plan is None:
        return None
    folder, reads, _ = plan
    final = correct_teacher_with_cache(
        cfg.teacher,
        cfg.traces,
        folder,
        cfg.teacher_correction,
        like_cache=cfg.logit_cache if reads else None,
        device=resolve_device(cfg.recipe.get("device", "auto")),
        progress=progress,
        log_fn=log_fn,
    )
    return str(final)


def _earlier_runs(
    cfg: CompareConfig, chosen: list[ArmConfig], split: str, eval_file: Path, corrected: str | None, results: dict
) -> list[ArmConfig]:
    """Arms left out of this run (`--arms`) whose seeds were trained and evaluated on this very split
    earlier: their cached results join `results`, so the report of a split keeps every arm run on it."""
    found = []
    for arm in cfg.arms:
        if arm in chosen:
            continue
        teacher = corrected if arm.corrected_teacher else None
        for seed in cfg.seeds:
            run_dir = arm_dir(cfg, arm.name, seed)
            if not is_trained(run_dir):
                continue
            r = cached_eval(cfg, str(run_dir / "final"), run_dir, split, eval_file, seed)
            if r is not None:
                results["arms"].setdefault(arm.name, {})[seed] = {**r, **run_info(cfg, arm, seed, teacher)}
        if arm.name in results["arms"]:
            found.append(arm)
    return found


def _isolated(cfg: CompareConfig, what: str, done: bool, fn, *args):
    """fn(*args) in a child process of its own when cfg.isolate and there is work to do (`done`: only cached
    results to read, which this process does at once), else here."""
    return run_in_child(what, fn, *args) if cfg.isolate and not done else fn(*args)


def report_compare(cfg: CompareConfig, split: str = "dev", *, command: str = "reasonkd compare", log_fn=print) -> dict:
    """`--report`: the split's tables (compare.md, compare.json) from the evaluations cached so far, while a
    long run is part-way; loads no model and trains nothing. Every arm with at least one seed evaluated on
    `split` is shown; its seeds not yet evaluated are listed under `missing` (pooled differences use the seeds
    both sides have). The run's own end rewrites the split's tables in full."""
    out = Path(cfg.out)
    eval_file = out / "eval" / f"{split}.jsonl"
    if not eval_file.is_file():
        raise ReasonkdError(f"{eval_file}: no {split} problems yet; run `reasonkd compare` on --split {split} first")
    final = corrected_dir(cfg) / "final"
    corrected = str(final) if (final / "config.json").is_file() else None
    models = {"student": cfg.student, "teacher": cfg.teacher, "teacher-corrected": corrected}
    results: dict = {"arms": {}, "references": {}}
    for name in cfg.references:
        r = models[name] and cached_eval(cfg, models[name], out / "references" / name, split, eval_file, cfg.seeds[0])
        if r:
            results["references"][name] = r
    shown = _earlier_runs(cfg, [], split, eval_file, corrected, results)
    if not shown:
        raise ReasonkdError(f"no arm of {out} is trained and evaluated on {split} yet: nothing to report")
    summary = summarize_split(cfg, shown, results, split, str(eval_file))
    summary["missing"] = [f"{a.name} seed {s}" for a in shown for s in cfg.seeds if s not in results["arms"][a.name]]
    md = write_outputs(out, split, summary, to_dict(cfg), command)
    log_fn(md)
    log_fn(f"wrote {out / 'compare.md'} and {out / 'compare.json'} (from the evaluations done so far)")
    return summary


def job_order(chosen: list[ArmConfig], seeds: list[int]) -> list[tuple[ArmConfig, int]]:
    """(arm, seed) in the order they run: seed by seed, each seed's arms in the file's order (an arm's
    `start_from` run is trained first when missing). A run stopped part-way then holds whole seeds, so the paired
    comparison of every chosen arm on the first seed is ready before the later seeds' training starts."""
    return [(a, s) for s in seeds for a in chosen]


def time_left(cfg: CompareConfig, jobs: list[tuple[ArmConfig, int]], split: str) -> tuple[float, int]:
    """(seconds, untimed) that `jobs` still need on `split`, from the timing.json of the runs done so far: a run
    not yet trained costs its arm's mean training time over its trained seeds, a run not yet evaluated the mean
    evaluation time on `split` over every run. Jobs whose arm or split has no figure yet are counted in
    `untimed` (arms train at very different speeds: an on-policy step is ~10x an SFT step)."""
    train: dict[str, list[float]] = {}
    evals: list[float] = []
    for arm in cfg.arms:
        for seed in cfg.seeds:
            run = arm_dir(cfg, arm.name, seed)
            timing = read_timing(run)
            if is_trained(run) and timing.get("train_s") and "sitting_start" not in timing:
                train.setdefault(arm.name, []).append(timing["train_s"])
            if split in timing.get("eval_s", {}):
                evals.append(timing["eval_s"][split])
    seconds, untimed = 0.0, 0
    for arm, seed in jobs:
        run = arm_dir(cfg, arm.name, seed)
        if (run / f"eval-{split}.json").is_file():
            continue
        if not evals or not (is_trained(run) or train.get(arm.name)):
            untimed += 1
            continue
        need = 0.0 if is_trained(run) else sum(train[arm.name]) / len(train[arm.name])
        seconds += need + sum(evals) / len(evals)
    return seconds, untimed


def _eta(cfg: CompareConfig, jobs: list[tuple[ArmConfig, int]], split: str) -> str:
    seconds, untimed = time_left(cfg, jobs, split)
    left = sum(not (arm_dir(cfg, a.name, s) / f"eval-{split}.json").is_file() for a, s in jobs)
    if not left:
        return ""
    timed = f"ETA ~{seconds / 60:.0f} min for {left - untimed} more" if left > untimed else ""
    rest = f"{untimed} more not yet timed (no run of their arm has finished)" if untimed else ""
    return "; " + ", ".join(x for x in (timed, rest) if x)


def run_compare(
    cfg: CompareConfig,
    split: str = "dev",
    arms: list[str] | None = None,
    *,
    command: str = "reasonkd compare",
    log_fn=print,
    progress: bool = True,
) -> dict:
    """Train and evaluate the chosen arms (each seed) on `split`; returns that split's summary. With
    cfg.isolate the jobs run in child processes: `log_fn` must then pickle (print, a logger's method)."""
    out = Path(cfg.out)
    chosen = chosen_arms(cfg, split, arms)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out, "compare-config.yaml")
    eval_files = prepare_eval_sets(cfg, out, chosen)
    plan = _correction_plan(cfg, chosen)
    done = plan is None or plan[2]
    corrected = _isolated(cfg, "teacher correction", done, _corrected_teacher, cfg, chosen, log_fn, progress)
    jobs = job_order(chosen, cfg.seeds)
    models = {"student": cfg.student, "teacher": cfg.teacher, "teacher-corrected": corrected}
    refs = [(name, models[name]) for name in cfg.references]
    n_problems = len(read_jsonl(eval_files[split]))
    log_fn(
        f"reasonkd compare: {len(chosen)} arms x {len(cfg.seeds)} seeds, {cfg.steps} steps of batch "
        f"{cfg.batch_size} x {cfg.grad_accum}; split {split} ({n_problems} problems) -> {out}"
    )
    results: dict = {"arms": {}, "references": {}}
    for k, (name, model) in enumerate(refs, 1):
        log_fn(f"[ref {k}/{len(refs)}] {name} ({model}): evaluating")
        folder, seed = out / "references" / name, cfg.seeds[0]
        done = cached_eval(cfg, model, folder, split, eval_files[split], seed) is not None
        results["references"][name] = _isolated(
            cfg, f"evaluation of {name}", done, evaluate, cfg, model, folder, split, eval_files[split], seed, progress
        )
    for k, (arm, seed) in enumerate(jobs, 1):
        teacher = corrected if arm.corrected_teacher else None
        run_dir = arm_dir(cfg, arm.name, seed)
        fresh = not (run_dir / f"eval-{split}.json").is_file()
        log_fn(f"[{k}/{len(jobs)}] {arm.name} seed {seed}: {'training + evaluating' if fresh else 'done earlier'}")
        done = job_done(cfg, arm, seed, split, eval_files[split])
        job = (cfg, arm, seed, teacher, split, eval_files[split], progress)
        r = _isolated(cfg, f"{arm.name} seed {seed}", done, train_and_evaluate, *job)
        results["arms"].setdefault(arm.name, {})[seed] = {**r, **run_info(cfg, arm, seed, teacher)}
        eta = _eta(cfg, jobs[k:], split)
        m = r["metrics"]
        log_fn(
            f"[{k}/{len(jobs)}] {arm.name} seed {seed}: accuracy {100 * m['accuracy']:.1f}% "
            f"[{100 * m['ci'][0]:.1f}, {100 * m['ci'][1]:.1f}] (n={m['n']}){eta}"
        )
    shown = chosen + _earlier_runs(cfg, chosen, split, eval_files[split], corrected, results)
    shown = [a for a in cfg.arms if a in shown]  # the file's order
    summary = summarize_split(cfg, shown, results, split, str(eval_files[split]))
    md = write_outputs(out, split, summary, to_dict(cfg), command)
    log_fn("\n" + md)
    log_fn(f"wrote {out / 'compare.md'} and {out / 'compare.json'}")
    return summary
