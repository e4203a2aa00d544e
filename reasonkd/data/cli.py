"""`reasonkd data ...` commands.

    reasonkd data build RECIPE.yaml --out DIR [key=value ...]   build a dataset (see DataRecipe)
    reasonkd data check DIR                                     re-verify every item of a built dataset
    reasonkd data keys                                          list every recipe key with its help
    reasonkd data columns SPEC [question=COL answer=COL ...]    how a dataset's columns map to problems

SPEC is any dataset `--data` takes: hf:NAME[:CONFIG][@SPLIT], a Parquet / JSON / Arrow / CSV file, a
save_to_disk folder, a GSM8K JSONL (reasonkd.data.external).
"""

from __future__ import annotations

import json
import logging
import time


def _build(args) -> int:
    from reasonkd.config import load_config
    from reasonkd.data.build import build_dataset, format_stats
    from reasonkd.data.recipe import DataRecipe

    # `--out DIR k=v ...`: argparse cannot take positionals after an option, so --out
    # swallows the trailing overrides and they are split off here
    out_dir, trailing = args.out[0], args.out[1:]
    recipe = load_config(DataRecipe, args.recipe, list(args.overrides) + trailing)
    t0 = time.perf_counter()
    out = build_dataset(recipe, out_dir)
    seconds = time.perf_counter() - t0
    stats = json.loads((out / "stats.json").read_text())
    print(format_stats(stats))
    print(f"wrote {out}/{{train,val,test}}.jsonl, stats.json, decontam.json, config.yaml in {seconds:.1f}s")
    return 0


def _check(args) -> int:
    from tqdm import tqdm

    from reasonkd.data.schema import solution_text
    from reasonkd.data.load import load_items
    from reasonkd.data.verify import verify_item

    rows = load_items(args.dir)
    bad = []
    for row in tqdm(rows, desc="check", mininterval=2):
        passed = verify_item(row, solution_text(row))
        if passed != (row["kind"] != "negative"):
            bad.append(row["id"])
    pos = sum(r["kind"] != "negative" for r in rows)
    print(
        f"{len(rows)} items: {pos} positives, {len(rows) - pos} negatives; "
        f"{len(bad)} with the wrong verdict{': ' + ', '.join(bad[:10]) if bad else ''}"
    )
    return 1 if bad else 0


def _keys(args) -> int:
    from reasonkd.config import config_help
    from reasonkd.data.recipe import DataRecipe

    print(config_help(DataRecipe))
    return 0


def _columns(args) -> int:
    from reasonkd.data.external import describe

    print(describe(args.spec, columns=args.mapping, rows=args.rows))
    return 0


def register(sub) -> None:
    """Add `reasonkd data` and its subcommands to the top-level parser."""
    p = sub.add_parser("data", help="build and check verified reasoning datasets")
    dsub = p.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    b = dsub.add_parser("build", help="build a dataset from a recipe (JSONL + Parquet + stats)")
    b.add_argument("recipe", help="YAML recipe (e.g. recipes/data/default.yaml)")
    b.add_argument(
        "--out",
        required=True,
        nargs="+",
        metavar="DIR",
        help="output folder (replaced atomically); key=value overrides may follow it",
    )
    b.add_argument("overrides", nargs="*", help="dotted key=value overrides, e.g. math.per_family=20")
    b.set_defaults(func=_build)
    c = dsub.add_parser("check", help="re-verify every item: positives must pass, negatives must fail")
    c.add_argument("dir", help="a built dataset folder")
    c.set_defaults(func=_check)
    k = dsub.add_parser("keys", help="list every recipe key with its default and help")
    k.set_defaults(func=_keys)
    m = dsub.add_parser("columns", help="a dataset's splits and columns, the schema found and the column mapping used")
    m.add_argument(
        "spec", help="hf:NAME[:CONFIG][@SPLIT], a Parquet / JSON / Arrow / CSV file or a save_to_disk folder"
    )
    m.add_argument("mapping", nargs="*", help="ROLE=COLUMN overrides: question=problem answer=answer solution=solution")
    m.add_argument("--rows", type=int, default=2, help="example rows to show as problems")
    m.set_defaults(func=_columns)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    logging.getLogger("reasonkd.data").setLevel(logging.INFO)
