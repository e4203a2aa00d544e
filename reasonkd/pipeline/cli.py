"""`reasonkd demo`: the end-to-end job (reasonkd.pipeline.demo; docs/demo.md).

    reasonkd demo --quick                          # recipes/demo/quick.yaml
    reasonkd demo --out runs/demo n_traces=800     # defaults = recipes/demo/default.yaml
    reasonkd demo --config recipes/demo/qwen-1.5b-to-0.5b.yaml
    reasonkd demo --keys                           # every key with its default and meaning
    reasonkd demo --config RECIPE --plan           # steps and time estimate on this machine; runs nothing
"""

from __future__ import annotations

import shlex
import sys


def _demo(args) -> int:
    from reasonkd.config import config_help
    from reasonkd.pipeline.config import DemoConfig, load_demo_config

    if args.keys:
        print(config_help(DemoConfig))
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


def register(sub) -> None:
    """Add this package's subcommands to the top-level parser."""
    p = sub.add_parser("demo", help="data -> eval -> teacher traces -> distill + SFT baseline -> eval -> report",
                       description=__doc__.splitlines()[0])
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. n_traces=800 data.math.per_family=200")
    p.add_argument("--quick", action="store_true", help="the small preset (recipes/demo/quick.yaml)")
    p.add_argument("--config", help="a demo recipe YAML (keys: --keys; presets in recipes/demo/)")
    p.add_argument("--out", help="run folder (default runs/demo; a rerun resumes it)")
    p.add_argument("--keys", action="store_true", help="list every key with its default and meaning")
    p.add_argument("--plan", action="store_true", help="print the steps and their time estimate here, run nothing")
    p.set_defaults(func=_demo)
