"""Run one long job in a fresh child process, so the memory it leaves behind goes back to the system.

    from reasonkd.utils.child import run_in_child
    r = run_in_child("sft seed 0", train_and_evaluate, cfg, arm, 0, None, "dev", eval_file, True)

Why: a long-lived Python process that trains, evaluates and trains again keeps what each phase leaves resident
(the allocator's arenas, compiled OpenVINO models, cached tensors). On 2 cores / 24 GiB a compare process that had
run a teacher correction, five evaluations and two SFT arms held 16 GB at an on-policy step that a fresh process
ran in 8, and was OOM-killed there.

A spawned interpreter, not a fork: a process forked after torch has run OpenMP work inherits a dead thread pool
(GNU libgomp) and hangs at its first parallel op. The price is the import of torch and transformers again (~4 s a
job). The child gets the same environment (so the same thread count: the same numbers as in this process) and
this process's log level and format; `fn` and its arguments must pickle (module-level functions, dataclasses).

Errors: the child's exception is raised again here (a ReasonkdError keeps its type and one-line message; any
other prints its traceback in the child first). A child killed by a signal (the OOM killer, kill -9) raises a
ReasonkdError that names the job and says to rerun to resume. The child dies with this process (Linux
PR_SET_PDEATHSIG), so `kill -9` of a run leaves nothing running behind it; Ctrl-C reaches both, and this
process waits for the child's own shutdown (a checkpoint being written) before it stops.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import os
import pickle
import signal
import sys
import traceback
from typing import Any, Callable

from reasonkd.errors import ReasonkdError

_PR_SET_PDEATHSIG = 1
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def _die_with_parent(parent: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        except (OSError, AttributeError):  # no prctl: the child may outlive a killed parent
            pass
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _log_setup() -> tuple[int, str | None, str | None]:
    root = logging.getLogger()
    fmt = next((h.formatter for h in root.handlers if h.formatter), None)
    return root.level, fmt._fmt if fmt else None, fmt.datefmt if fmt else None


def _child(conn, parent: int, log: tuple, fn: Callable, args: tuple, kwargs: dict) -> None:
    _die_with_parent(parent)
    level, fmt, datefmt = log
    logging.basicConfig(level=level, format=fmt or _FORMAT, datefmt=datefmt)
    try:
        result = ("ok", fn(*args, **kwargs))
    except BaseException as e:  # noqa: BLE001 - every failure goes back to the parent
        if not isinstance(e, (ReasonkdError, KeyboardInterrupt)):
            traceback.print_exc()
        result = ("error", e)
    try:
        data = pickle.dumps(result)
        pickle.loads(data)  # an exception whose __init__ pickling cannot call again fails here, not in the parent
    except Exception as e:  # an unpicklable result or exception: send its text
        text = "".join(traceback.format_exception_only(result[1] if result[0] == "error" else e)).strip()
        data = pickle.dumps(("error", RuntimeError(text)))
    conn.send_bytes(data)
    conn.close()


def run_in_child(what: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
    """fn(*args, **kwargs) in a spawned child; returns its (picklable) result or raises its exception.
    `what` names the job in errors."""
    ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    sys.stdout.flush()
    sys.stderr.flush()
    proc = ctx.Process(target=_child, args=(send, os.getpid(), _log_setup(), fn, args, kwargs), name=what)
    proc.start()
    send.close()
    try:
        try:
            kind, value = pickle.loads(recv.recv_bytes())
        except EOFError:  # the child ended without a word: killed by a signal, or died at start
            kind, value = None, None
        proc.join()
    except KeyboardInterrupt:  # Ctrl-C reached the child too: let it finish its own shutdown, then stop
        proc.join(timeout=120)
        if proc.is_alive():
            proc.kill()
            proc.join()
        raise
    finally:
        recv.close()
    if kind == "ok":
        return value
    if kind == "error":
        raise value
    code = proc.exitcode
    how = f"was killed by signal {-code} ({signal.Signals(-code).name})" if code and code < 0 else f"exited {code}"
    hint = " (a SIGKILL that no one sent is usually the out-of-memory killer)" if code == -signal.SIGKILL else ""
    raise ReasonkdError(f"{what}: its process {how}{hint}; rerun the same command to resume from what was saved")
