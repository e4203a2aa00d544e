"""The `reasonkd` command with the distillation test hooks, for tests that run it in a subprocess.

    python tests/run_with_hooks.py --step-delay 0.1 -- distill RECIPE --quiet     # then kill -9 it mid-stage
    accelerate launch ... tests/run_with_hooks.py --stop-after 5 -- distill RECIPE --quiet

--step-delay S: every distillation optimizer step takes S seconds longer (a tiny run slow enough for a
test to kill it mid-stage). --stop-after N: the run stops with StopRequested (exit 1) at the first
checkpoint after N optimizer steps of this invocation, as `run_recipe(..., stop_after=N)` does.
An in-process test does the latter with
`monkeypatch.setitem(run_recipe.__kwdefaults__, "stop_after", N)`.
"""

from __future__ import annotations

import argparse
import sys
import time

from reasonkd.cli import main as reasonkd
from reasonkd.distill import trainer
from reasonkd.distill.stages import run_recipe


def slow_steps(delay: float) -> None:
    """Every optimizer step of reasonkd.distill.trainer sleeps `delay` seconds more."""
    step = trainer._StepRunner.optimizer_step

    def slowed(self, *args, **kwargs):
        row = step(self, *args, **kwargs)
        time.sleep(delay)
        return row

    trainer._StepRunner.optimizer_step = slowed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-delay", type=float, default=0.0)
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the reasonkd arguments")
    args = ap.parse_args()
    if args.step_delay:
        slow_steps(args.step_delay)
    if args.stop_after is not None:  # every caller's run_recipe is this one function object
        run_recipe.__kwdefaults__["stop_after"] = args.stop_after
    return reasonkd(args.argv[1:] if args.argv[:1] == ["--"] else args.argv)


if __name__ == "__main__":
    sys.exit(main())
