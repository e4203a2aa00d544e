"""The `reasonkd` command.

Each subpackage owns its subcommands in its own `cli.py` with a
`register(subparsers)` function; this module only wires them together, so
adding a command never touches another package's file.

    reasonkd models list | pull ALIAS                 (reasonkd.models.cli)
    reasonkd generate --model M --prompt P            (reasonkd.models.cli)
    reasonkd data build | check | keys                (reasonkd.data.cli)
    reasonkd ocr read | import | render               (reasonkd.ocr.cli)
    reasonkd teacher generate | merge | logits | check  (reasonkd.teacher.cli)
    reasonkd distill RECIPE [overrides]               (reasonkd.distill.cli)
    reasonkd heads --teacher M ...                    (reasonkd.distill.cli)
    reasonkd eval | report                            (reasonkd.eval.cli)
    reasonkd export | bench                           (reasonkd.export.cli)
    reasonkd serve --model M                          (reasonkd.serve.cli)
    reasonkd demo [--quick]                           (reasonkd.pipeline.cli)
    reasonkd compare EXPERIMENT.yaml                  (reasonkd.pipeline.cli)
    reasonkd doctor                                   (reasonkd.cli.doctor)
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from reasonkd import __version__
from reasonkd.errors import ReasonkdError

COMMAND_MODULES = [
    "reasonkd.models.cli",
    "reasonkd.data.cli",
    "reasonkd.ocr.cli",
    "reasonkd.teacher.cli",
    "reasonkd.distill.cli",
    "reasonkd.eval.cli",
    "reasonkd.export.cli",
    "reasonkd.serve.cli",
    "reasonkd.pipeline.cli",
    "reasonkd.cli.doctor",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reasonkd", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"reasonkd {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
        return int(rc or 0)
    except ReasonkdError as e:
        print(f"reasonkd: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("reasonkd: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def run() -> None:  # console_scripts entry point
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
