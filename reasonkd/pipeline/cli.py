"""`reasonkd demo`: the end-to-end job (reasonkd.pipeline.demo; docs/demo.md).

reasonkd demo --quick                          # recipes/demo/quick.yaml
reasonkd demo --out runs/demo n_traces=800     # defaults = recipes/demo/default.yaml
reasonkd demo --config recipes/demo/qwen-1.5b-to-0.5b.yaml
reasonkd demo --keys                           # every key with its default and meaning
reasonkd demo --config RECIPE --plan           # steps and time estimate on this machine; runs nothing
reasonkd compare ARMS.yaml [key=value ...] [--split dev|heldout] [--arms a,b]   (docs/compare.md)
reasonkd compare ARMS.yaml [key=value ...] --status   # what is done and what is left; runs nothing
"""

from __future__ import annotations

import shlex
import sys


# The handlers import their machinery when called: this module is imported at every `reasonkd` start.
def _demo(args) -> int:
    from reasonkd.config import config_help
    from reasonkd.pipeline.config import DemoConfig, load_demo_config

    if args.keys:
        print(config_help(DemoConfig, defaults=DemoConfig()))  # an instance: the distill recipe as the demo sets it
        return 0
    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = load_demo_config(args.config, args.quick, overrides)
    if args.plan:
        from reasonkd.pipeline.eta import print_plan

        print_plan(cfg)
        return 0
    from reasonkd.pipeline.demo import run_demo

    run_demo(cfg, command="reasonkd " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    return 0


def _compare(args) -> int:
    from reasonkd.config import config_help
    from reasonkd.errors import ConfigError
    from reasonkd.pipeline.compare_config import CompareConfig

    if args.keys:
        print(config_help(CompareConfig))
        return 0
    if not args.arms_yaml:
        raise ConfigError("reasonkd compare: give ARMS.yaml (e.g. recipes/compare/transfer.yaml)")
    from reasonkd.pipeline.compare import run_compare
    from reasonkd.pipeline.compare_config import load_compare_config

    overrides = list(args.overrides) + ([f"out={args.out}"] if args.out else [])
    cfg = load_compare_config(args.arms_yaml, overrides)
    if args.status:
        from reasonkd.pipeline.compare_status import compare_status, disk_use, status_markdown

        print(status_markdown(cfg, compare_status(cfg), disk_use(cfg)))
        return 0
    command = "reasonkd " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    if args.report:
        from reasonkd.pipeline.compare import report_compare

        report_compare(cfg, args.split, command=command)
        return 0
    if args.teacher_check:
        from reasonkd.pipeline.compare import teacher_check

        return 0 if teacher_check(cfg, args.split)["go"] else 1
    arms = [a.strip() for a in args.arms.split(",") if a.strip()] if args.arms else None
    run_compare(cfg, args.split, arms, command=command)
    return 0


def register(sub) -> None:
    """Add this package's subcommands to the top-level parser."""
    p = sub.add_parser(
        "demo",
        help="data -> eval -> teacher traces -> distill + SFT baseline -> eval -> report",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. n_traces=800 data.math.per_family=200")
    p.add_argument("--quick", action="store_true", help="the small preset (recipes/demo/quick.yaml)")
    p.add_argument("--config", help="a demo recipe YAML (keys: --keys; presets in recipes/demo/)")
    p.add_argument("--out", help="run folder (default runs/demo; a rerun resumes it)")
    p.add_argument("--keys", action="store_true", help="list every key with its default and meaning")
    p.add_argument("--plan", action="store_true", help="print the steps and their time estimate here, run nothing")
    p.set_defaults(func=_demo)

    c = sub.add_parser(
        "compare",
        help="train several recipes on the same traces and budget; paired comparison table",
        description="Train every arm of ARMS.yaml (each seed) on the same traces, evaluate all on "
        "the same problems, write OUT/compare.md + compare.json (docs/compare.md).",
    )
    c.add_argument("arms_yaml", nargs="?", metavar="ARMS.yaml", help="shared settings + arms (recipes/compare/)")
    c.add_argument(
        "overrides",
        nargs="*",
        help="key=value overrides right after ARMS.yaml, before any --option, e.g. seeds=[0,1,2] steps=56",
    )
    c.add_argument(
        "--split",
        default="dev",
        choices=["dev", "heldout"],
        help="dev (default) while choosing; heldout once, for the chosen --arms",
    )
    c.add_argument(
        "--arms",
        default=None,
        help="comma list of arms to run (their baselines are added); required with --split heldout (`all` = every arm)",
    )
    c.add_argument("--out", help="output folder (default: the YAML's out); a rerun resumes it")
    c.add_argument("--keys", action="store_true", help="list every shared key with its default and meaning")
    c.add_argument(
        "--teacher-check",
        action="store_true",
        help="only evaluate the teacher and the untrained student on --split (step 1, before traces): "
        "their gap and discordance; exit 1 when the gap is under 15 points",
    )
    c.add_argument(
        "--status",
        action="store_true",
        help="print what is done and what is left (training steps, newest checkpoint, cached accuracies) "
        "from OUT, without running anything",
    )
    c.add_argument(
        "--report",
        action="store_true",
        help="write OUT/compare.md + compare.json for --split from the evaluations done so far (a long run "
        "part-way: the arm-seeds not yet evaluated are named), without running anything",
    )
    c.set_defaults(func=_compare)
