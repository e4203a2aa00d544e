"""`reasonkd teacher import`: a trace dataset (OpenR1-Math's generations, any chat / <think> traces) as the
verified traces folder `teacher generate` writes (reasonkd.teacher.importer).

    reasonkd teacher import hf:open-r1/OpenR1-Math-220k@train --out runs/traces \\
        --traces-column generations --correct-column correctness_math_verify --limit 1000
    reasonkd teacher import r1.parquet --out runs/traces --columns question=problem answer=answer \\
        --thinking cut --max-tokens 2048 --tokenizer smollm2-135m
"""

from __future__ import annotations


def _import(args) -> int:
    from reasonkd.data.external import parse_columns
    from reasonkd.teacher.stats import format_stats
    from reasonkd.teacher.importer import ImportSettings, format_import, import_traces

    settings = ImportSettings(
        data=args.dataset,
        out=args.out,
        traces_column=args.traces_column,
        correct_column=args.correct_column,
        columns=parse_columns(args.columns),
        split=None if args.split in ("all", "") else args.split,
        thinking=args.thinking,
        max_tokens=args.max_tokens,
        tokenizer=args.tokenizer,
        template=args.template,
        prefer=args.prefer,
        limit=args.limit,
        progress=args.progress,
    )
    stats = import_traces(settings)
    print(format_stats(stats))
    print(format_import(stats))
    kept = stats["selection"]["kept"]
    print(
        f"wrote {args.out}/traces.jsonl ({kept} verified traces), negatives.jsonl "
        f"({stats['overall']['samples'] - stats['overall']['accepted']}), stats.json"
    )
    return 0


def register_import(tsub) -> None:
    """Add `teacher import` to the `reasonkd teacher` subcommands."""
    i = tsub.add_parser(
        "import",
        help="turn a dataset of existing traces into verified traces (no generation)",
        description=__doc__,
        formatter_class=__import__("argparse").RawDescriptionHelpFormatter,
    )
    i.add_argument(
        "dataset",
        help="hf:NAME[:CONFIG][@SPLIT], a Parquet / JSON / Arrow / CSV file or save_to_disk "
        "folder (see `reasonkd data columns DATASET`)",
    )
    i.add_argument("--out", required=True, help="output folder (traces.jsonl, negatives.jsonl, stats.json)")
    i.add_argument(
        "--traces-column",
        default="generations",
        help="column with the traces: text, a list of texts, or chat messages (default generations)",
    )
    i.add_argument(
        "--correct-column",
        default=None,
        help="column with the dataset's own verdicts (bool or list of bools), reported next to ours",
    )
    i.add_argument(
        "--columns",
        nargs="+",
        default=None,
        metavar="ROLE=COLUMN",
        help="question=problem answer=answer solution=solution (default: the common schemas' names)",
    )
    i.add_argument("--split", default="train", help="split the problems count as: train | val | test | all")
    i.add_argument(
        "--thinking",
        default="keep",
        choices=["keep", "cut"],
        help="keep the <think> block in the trace, or cut it and train on the answer part only",
    )
    i.add_argument("--max-tokens", type=int, default=None, help="longer traces become 'truncated' negatives")
    i.add_argument(
        "--tokenizer",
        default=None,
        help="the student (alias / folder) whose tokenizer counts tokens; without it lengths are counted in words",
    )
    i.add_argument("--template", default=None, help="prompt template file the student is asked with")
    i.add_argument("--prefer", default="all", choices=["all", "shortest"], help="verified traces kept per problem")
    i.add_argument("--limit", type=int, default=None, help="only the first N problems")
    i.add_argument("--no-progress", dest="progress", action="store_false")
    i.set_defaults(func=_import)
