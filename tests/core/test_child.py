"""reasonkd/utils/child.py: a job in a spawned child process gives back its result or its error, a child killed
by a signal becomes one clear error, and a child dies with its parent (kill -9 leaves nothing running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from reasonkd.errors import ConfigError, ReasonkdError
from reasonkd.utils.child import run_in_child


def _pid_and_sum(a, b=0):
    return os.getpid(), a + b


def _config_error(name):
    raise ConfigError(f"{name}: must be >= 1")


class _Unpicklable(Exception):
    def __init__(self, a, b):  # two arguments: the default pickling of an exception cannot rebuild it
        super().__init__(f"{a} and {b}")


def _bad(a):
    raise _Unpicklable(a, "more")


def _oom():
    os.kill(os.getpid(), signal.SIGKILL)


def test_result_error_and_signal_come_back():
    pid, total = run_in_child("sum", _pid_and_sum, 2, b=3)
    assert total == 5 and pid != os.getpid()
    with pytest.raises(ConfigError, match="steps: must be >= 1"):  # its type and message, one line
        run_in_child("cfg", _config_error, "steps")
    with pytest.raises(Exception, match="x and more"):
        run_in_child("bad", _bad, "x")
    with pytest.raises(ReasonkdError, match=r"sft seed 0: its process was killed by signal 9 \(SIGKILL\).*memory"):
        run_in_child("sft seed 0", _oom)


def test_the_child_dies_with_its_parent(tmp_path):
    """kill -9 of the parent (a stopped `reasonkd compare`) ends the job it started: nothing trains on."""
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import time
            from reasonkd.utils.child import run_in_child

            if __name__ == "__main__":
                run_in_child("sleeper", time.sleep, 600)
            """
        )
    )
    parent = subprocess.Popen([sys.executable, str(script)], env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.time() + 60
        while not psutil.Process(parent.pid).children():
            assert parent.poll() is None and time.time() < deadline
            time.sleep(0.1)
        time.sleep(1.0)  # past the child's start (prctl)
        kids = psutil.Process(parent.pid).children(recursive=True)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        _, alive = psutil.wait_procs(kids, timeout=20)
        assert alive == []
    finally:
        if parent.poll() is None:
            parent.kill()
