"""`reasonkd eval` and `reasonkd report`.

    reasonkd eval --model smollm2-135m --model runs/student --label student-before --label student-after \\
        --tasks gsm8k,humaneval --data data/default --limit 50 --out runs/eval
    reasonkd eval --tasks humaneval --samples samples.jsonl --out runs/he     # score completions, no model
    reasonkd report runs/eval-a runs/eval-b --out runs/report
    reasonkd analyze runs/demo/eval                                         # why the wrong answers are wrong

`--data` and `--samples` take either one PATH (for every task that needs one)
or TASK=PATH, repeated.
"""

from __future__ import annotations

import argparse


def _per_task(values: list[str] | None, tasks: list[str], flag: str):
    """['PATH'] or ['gsm8k=PATH', ...] -> {task: PATH} ('*' = every task)."""
    from reasonkd.errors import ReasonkdError

    out: dict[str, str] = {}
    for v in values or []:
        name, sep, path = v.partition("=")
        if sep and name in tasks:
            out[name] = path
        elif sep and name.isidentifier():
            raise ReasonkdError(f"{flag} {v}: {name!r} is not one of the requested --tasks ({','.join(tasks)})")
        else:
            out["*"] = v
    return out


def _print_summary(results, paths) -> None:
    for r in results:
        for t, v in r["tasks"].items():
            m = v["metrics"]
            key = "pass@1" if t in ("humaneval", "code") else "accuracy"
            extra = "".join(f"  {k}={m[k]:.3f}" for k in m if k.startswith("pass@") and k != "pass@1")
            if len(m.get("verifiers") or {}) > 1 or "math_latex" in (m.get("verifiers") or {}):
                extra += "  graded by " + ", ".join(f"{k} ({n})" for k, n in sorted(m["verifiers"].items()))
            print(
                f"{r['label']:<24} {t:<10} {key} = {m.get(key, m['accuracy']):.3f} "
                f"[{m['ci'][0]:.3f}, {m['ci'][1]:.3f}] (n={m['n']}){extra}"
            )
    # the first markdown table of report.md (notes such as the precision line may come before it)
    blocks = paths["markdown"].read_text().split("\n\n")
    print(next((b for b in blocks if b.lstrip().startswith("|")), blocks[min(1, len(blocks) - 1)]))
    for k, p in paths.items():
        print(f"{k}: {p}")


def _eval(args) -> int:
    from reasonkd.errors import ReasonkdError
    from reasonkd.eval.analyze import find_items
    from reasonkd.eval.report import write_report
    from reasonkd.eval.runner import evaluate_model, evaluate_samples
    from reasonkd.eval.tasks import TASKS

    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]

    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ReasonkdError(f"unknown task(s) {', '.join(unknown)}; known tasks: {', '.join(sorted(TASKS))}")
    if not args.model and not args.samples:
        raise ReasonkdError("give --model (one or more) or --samples FILE")
    data = _per_task(args.data, tasks, "--data")
    samples = _per_task(args.samples, tasks, "--samples")
    if "*" in samples:
        if len(tasks) != 1:
            raise ReasonkdError("--samples FILE with several --tasks is ambiguous; use --samples TASK=FILE")
        samples = {tasks[0]: samples.pop("*")}
    labels = list(args.label or [])
    n_runs = len(args.model or []) + len(samples)
    if labels and len(labels) != n_runs:
        raise ReasonkdError(f"--label given {len(labels)} times for {n_runs} runs (models, then samples files)")
    results = []
    common = dict(limit=args.limit, out_dir=args.out)
    for i, model in enumerate(args.model or []):
        results.append(
            evaluate_model(
                model,
                tasks,
                data=data,
                label=labels[i] if labels else None,
                batch_size=args.batch_size,
                max_new_tokens=args.max_new_tokens,
                temperature=args.temperature,
                n_samples=args.n_samples,
                few_shot=args.few_shot,
                dtype=args.dtype,
                template=args.template,
                latency_problems=args.latency_problems,
                latency_tokens=args.latency_tokens,
                cases=not args.no_cases,
                case_tokens=args.case_tokens,
                timeout=args.timeout,
                workers=args.workers,
                seed=args.seed,
                engine=args.engine,
                window=args.window,
                sinks=args.sinks,
                per_type=args.per_type,
                **common,
            )
        )
    offset = len(args.model or [])
    for j, (task, path) in enumerate(samples.items()):
        label = labels[offset + j] if labels else None
        results.append(
            evaluate_samples(
                task,
                path,
                data=data,
                label=label,
                timeout=args.timeout,
                workers=args.workers,
                few_shot=args.few_shot,
                template=args.template,
                per_type=args.per_type,
                **common,
            )
        )
    gold = find_items(data=[p for t, p in data.items() if t != "humaneval"])  # gold steps for the error analysis
    paths = write_report(results, args.out, title=args.title, gold=gold)
    _print_summary(results, paths)
    return 0


def _report(args) -> int:
    from pathlib import Path

    from reasonkd.eval.analyze import find_items
    from reasonkd.eval.report import write_report
    from reasonkd.eval.sample_store import load_run

    results = [r for run in args.runs for r in load_run(run)]
    gold = find_items(folders=[p if Path(p).is_dir() else Path(p).parent for p in args.runs])
    paths = write_report(results, args.out, labels=args.label or None, title=args.title, gold=gold)
    _print_summary(results if not args.label else [{**r, "label": lab} for r, lab in zip(results, args.label)], paths)
    return 0


def _pairs(values: list[str] | None, labels: list[str]) -> list[tuple[str, str]] | None:
    from reasonkd.errors import ReasonkdError

    if not values:
        return None
    out = []
    for v in values:
        before, sep, after = v.partition(",")
        if not sep or before not in labels or after not in labels:
            raise ReasonkdError(f"--pair {v}: give BEFORE,AFTER, two of the labels found: {', '.join(labels)}")
        out.append((before, after))
    return out


def _analyze(args) -> int:
    from reasonkd.eval.analyze import analyze_runs, load_runs, pair_transitions
    from reasonkd.eval.analyze_report import text_report
    from reasonkd.eval.diagnose import CLASSES
    from reasonkd.utils.io import write_json

    runs, items = load_runs(args.eval_dirs, args.data)
    summaries = analyze_runs(runs, items, n_examples=args.examples)
    trans = pair_transitions(summaries, _pairs(args.pair, list(dict.fromkeys(r.label for r in runs))))
    print(text_report(summaries, trans), end="")
    if args.json:
        write_json(args.json, {"classes": CLASSES, "models": summaries, "transitions": trans})
        print(f"json: {args.json}")
    return 0


def register(sub) -> None:
    """Add this package's subcommands to the top-level parser."""
    _add_eval(sub)

    r = sub.add_parser("report", help="combine earlier eval runs into one report (markdown, HTML, JSON)")
    r.add_argument("runs", nargs="+", help="folders written by `reasonkd eval --out`")
    r.add_argument("--out", required=True, help="report folder")
    r.add_argument("--label", action="append", help="relabel the models, in order")
    r.add_argument("--title", default="reasonkd evaluation", help="report title")
    r.set_defaults(func=_report)

    _add_analyze(sub)


def _add_eval(sub) -> None:
    """`reasonkd eval`: models or stored completions, tasks, generation settings, measurements."""
    p = sub.add_parser(
        "eval",
        help="evaluate models (or existing completions) on GSM8K, HumanEval, logic, code",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", action="append", help="alias, folder or .gguf; repeat to compare models")
    p.add_argument("--label", action="append", help="row label per --model (then per --samples), e.g. student-before")
    p.add_argument(
        "--tasks", default="gsm8k", help="comma list of: gsm8k, humaneval, logic, code, robustness, longmath"
    )
    p.add_argument(
        "--data",
        action="append",
        help="PATH or TASK=PATH: GSM8K JSONL, a data-engine folder, or any "
        "dataset: hf:NAME[@SPLIT], a Parquet / JSON / Arrow file",
    )
    p.add_argument("--samples", action="append", help="FILE or TASK=FILE: score these completions, no model")
    p.add_argument("--limit", type=int, default=None, help="first N examples of each task")
    p.add_argument("--out", default="runs/eval", help="output folder (results.json, samples/, report.*)")
    p.add_argument(
        "--per-type",
        type=int,
        default=None,
        help="robustness: each perturbation type on the first K problems that take it",
    )
    p.add_argument("--batch-size", type=int, default=16, help="generation batch size")
    p.add_argument("--max-new-tokens", type=int, default=512, help="answer length cap")
    p.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    p.add_argument("--n-samples", type=int, default=1, help="completions per problem (pass@k; needs temperature)")
    p.add_argument("--few-shot", type=int, default=0, help="GSM8K exemplars to prepend (0-8)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 where native, else fp32) | float32 | bfloat16 | float16")
    p.add_argument("--template", default=None, help="prompt template file (same format as the teacher's)")
    p.add_argument(
        "--engine",
        default="auto",
        choices=["hf", "openvino", "vllm", "auto"],
        help="generation engine: auto (default: vllm on a GPU, openvino on a CPU with the export extra, "
        "else hf), hf (transformers), openvino (CPU, converted once per weights; bf16 compute where "
        "the CPU has native bf16), vllm (GPU)",
    )
    p.add_argument(
        "--window",
        type=int,
        default=None,
        help="sliding-window attention: keep W tokens of KV cache (hf engine; docs/long_inputs.md)",
    )
    p.add_argument("--sinks", type=int, default=4, help="attention-sink tokens kept at the start (with --window)")
    p.add_argument("--latency-problems", type=int, default=5, help="problems timed at batch 1 (0 = skip)")
    p.add_argument("--latency-tokens", type=int, default=64, help="new-token cap for the latency runs")
    p.add_argument("--no-cases", action="store_true", help="skip the two qualitative cases")
    p.add_argument("--case-tokens", type=int, default=384, help="new-token cap for the qualitative cases")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per sandboxed test program")
    p.add_argument("--workers", type=int, default=2, help="parallel sandboxed programs")
    p.add_argument("--seed", type=int, default=0, help="sampling and bootstrap seed")
    p.add_argument("--title", default="reasonkd evaluation", help="report title")
    p.set_defaults(func=_eval)


def _add_analyze(sub) -> None:
    """`reasonkd analyze`: first-error classes of wrong math answers, per model and between two."""
    a = sub.add_parser(
        "analyze",
        help="why wrong math answers are wrong: first-error classes per model, and what changed between two models",
        description=__import__("reasonkd.eval.analyze").eval.analyze.__doc__,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    a.add_argument(
        "eval_dirs",
        nargs="+",
        metavar="EVAL_DIR",
        help="folder written by `reasonkd eval --out` / `report` / `compare`, the demo's eval/ folder, "
        "or a samples .jsonl file",
    )
    a.add_argument(
        "--data",
        action="append",
        help="gold items: a data-engine folder or JSONL, or a GSM8K JSONL "
        "(repeat; found by themselves where a run recorded its data)",
    )
    a.add_argument(
        "--pair",
        action="append",
        help="BEFORE,AFTER labels: the transitions between two models "
        "(repeat; default: sft-only,distilled and student-before,distilled, else each vs the first)",
    )
    a.add_argument("--examples", type=int, default=2, help="example excerpts per class and model")
    a.add_argument("--json", default=None, help="also write the whole analysis (every problem's class) here")
    a.set_defaults(func=_analyze)
