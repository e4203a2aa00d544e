"""The `reasonkd` command with the distillation test hooks, for tests that run it in a subprocess.

    python tests/run_with_hooks.py --step-delay 0.1 -- distill RECIPE --quiet     # then kill -9 it mid-stage
    accelerate launch ... tests/run_with_hooks.py --stop-after 5 -- distill RECIPE --quiet

--step-delay S: every distillation optimizer step takes S seconds longer (a tiny run slow enough for a
test to kill it mid-stage). --stop-after N: the run stops with StopRequested (exit 1) at the first
checkpoint after N optimizer steps of this invocation, as `run_recipe(..., stop_after=N)` does.
An in-process test does the latter with
`monkeypatch.setitem(run_recipe.__kwdefaults__, "stop_after", N)`.

The hooks reach the child processes `reasonkd compare` trains in (reasonkd/utils/child.py) too: they are kept
in the environment variable HOOKS_ENV, and a spawned child imports this file again as `__mp_main__`, which
applies them.
"""

from __future__ import annotations

import argparse
import json
import os
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


HOOKS_ENV = "REASONKD_TEST_HOOKS"


def apply_hooks(step_delay: float = 0.0, stop_after: int | None = None) -> None:
    if step_delay:
        slow_steps(step_delay)
    if stop_after is not None:  # every caller's run_recipe is this one function object
        run_recipe.__kwdefaults__["stop_after"] = stop_after


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--step-delay", type=float, default=0.0)
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("argv", nargs=argparse.REMAINDER, help="-- then the reasonkd arguments")
    args = ap.parse_args()
    hooks = {"step_delay": args.step_delay, "stop_after": args.stop_after}
    os.environ[HOOKS_ENV] = json.dumps(hooks)
    apply_hooks(**hooks)
    return reasonkd(args.argv[1:] if args.argv[:1] == ["--"] else args.argv)


if __name__ == "__main__":
    sys.exit(main())
elif __name__ == "__mp_main__" and os.environ.get(HOOKS_ENV):  # a child process of a hooked run
    apply_hooks(**json.loads(os.environ[HOOKS_ENV]))
