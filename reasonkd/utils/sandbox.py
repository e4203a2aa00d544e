"""Run untrusted (model-written) Python in a separate, confined process.

    from reasonkd.utils.sandbox import run_in_sandbox, run_many, sandbox_backend
    r = run_in_sandbox("print(1 + 1)", timeout=10)   # SandboxResult(ok=True, status='passed', stdout='2\\n', ...)
    sandbox_backend()                                 # 'sandlock' | 'unshare' | 'rlimit'

Every program runs in a fresh temp folder (deleted afterwards) with a clean
environment, under hard limits on CPU time, wall-clock time, memory, processes,
file size and open files. Backends, strongest first (the first that works
here is used; REASONKD_SANDBOX=NAME forces one):

- sandlock: Landlock + seccomp. Reads only the system and Python folders,
  writes only its folder, no network, no signals outside the sandbox, a process
  cap enforced by the supervisor.
- unshare: user + mount + network + PID + IPC namespaces (`unshare -Ur --net
  --pid --fork`) and a minimal pivot_root'ed filesystem (system and Python
  folders read-only, its folder writable, nothing else). When the harness runs
  as real root RLIMIT_NPROC does not bind, so new processes are refused by a
  Python-level guard instead.
- rlimit: limits, clean environment and process guard only; no filesystem or
  network isolation (a last resort, reported as such).

A program passes only if it exits 0 AND its top level ran to the end: the
bootstrap (reasonkd/utils/_sandbox_boot.py) prints a per-run nonce after the
program, so closing stdout, os._exit(0) before the tests, or being killed all
count as failures. Statuses: passed, failed, incomplete, timeout, memory,
killed, output_limit, error.

It sits in the lowest layer so that data verification (reasonkd.data.verify),
teacher filtering and eval (HumanEval) all run code through this one place.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from tqdm.auto import tqdm

from reasonkd.errors import ReasonkdError

BACKENDS = ("sandlock", "unshare", "rlimit")
BOOT = (Path(__file__).with_name("_sandbox_boot.py")).read_text(encoding="utf-8")
PYTHON = os.path.realpath(sys.executable)  # the base interpreter: no venv site-packages
SYSTEM_RO = ["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"]
DEVICES = ["/dev/null", "/dev/zero", "/dev/urandom", "/dev/random"]
MAX_CAPTURE = 1 << 20  # bytes of stdout/stderr kept in the result
_probed: dict[str, bool] = {}


@dataclass
class SandboxResult:
    ok: bool
    """True only when status == 'passed'."""
    status: str
    """passed | failed | incomplete | timeout | memory | killed | output_limit | error"""
    returncode: int | None
    """Exit code; negative = killed by that signal; None when the run never started."""
    stdout: str
    stderr: str
    seconds: float
    backend: str

    def to_dict(self) -> dict:
        return asdict(self)


def _python_ro() -> list[str]:
    paths = {sys.base_prefix, sys.base_exec_prefix, os.path.dirname(os.path.dirname(PYTHON))}
    return sorted(p for p in paths if p and p != "/")


def _read_capture(path: str) -> str:
    """Tail of a file the program could have tampered with: no symlinks, no FIFOs."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return ""
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return ""
        if st.st_size > MAX_CAPTURE:
            os.lseek(fd, st.st_size - MAX_CAPTURE, os.SEEK_SET)
        return os.read(fd, MAX_CAPTURE).decode("utf-8", "replace")
    finally:
        os.close(fd)


def _rmtree(path: str) -> None:
    def fix(func, p, _exc):  # the program may have chmod'ed things to 000
        try:
            os.chmod(os.path.dirname(p), 0o700)
            os.chmod(p, 0o700) if not os.path.islink(p) else None
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=fix)


def _classify(returncode: int | None, timed_out: bool, marker: bool, stderr: str) -> str:
    if timed_out:
        return "timeout"
    if returncode is None:
        return "error"
    if returncode == 0:
        return "passed" if marker else "incomplete"
    tail = stderr[-2000:]
    if "MemoryError" in tail:
        return "memory"
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        return "timeout"
    if returncode in (-signal.SIGXFSZ, 128 + signal.SIGXFSZ):
        return "output_limit"
    if returncode < 0 or returncode > 128:
        return "killed"
    return "failed"


def _clean_env(work: str) -> dict[str, str]:
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": work,
        "TMPDIR": work,
        "LANG": "C.UTF-8",
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
        "PYTHONIOENCODING": "utf-8",
    }


def _run_sandlock(cmd, work, timeout, memory_mb, max_processes):
    import sandlock  # lazy: an optional backend (Linux only), probed before use

    readable = [p for p in _python_ro() + SYSTEM_RO + DEVICES if os.path.exists(p)]
    sb = sandlock.Sandbox(
        fs_readable=readable,
        fs_writable=[work],
        clean_env=True,
        env=_clean_env(work),
        cwd=work,
        max_memory=f"{memory_mb + 64}M",
        max_processes=max_processes,
        no_coredump=True,
    )
    r = sb.run(cmd, timeout=timeout)
    if r.error:
        return None, False, r.error
    timed_out = r.reason == sandlock.ExitReason.TIMEOUT
    if r.reason == sandlock.ExitReason.EXITED:
        rc = r.exit_code
    else:
        rc = -(r.signal if r.signal and r.signal > 0 else signal.SIGKILL)
    extra = (r.stdout or b"").decode("utf-8", "replace") + (r.stderr or b"").decode("utf-8", "replace")
    return rc, timed_out, extra


def _run_process(cmd, work, timeout):
    proc = subprocess.Popen(
        cmd,
        cwd=work,
        env=_clean_env(work),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    timed_out = False
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # unshare --kill-child takes the whole namespace with it
        except ProcessLookupError:
            pass
        _, err = proc.communicate()
    return proc.returncode, timed_out, (err or b"")[-MAX_CAPTURE:].decode("utf-8", "replace")


def run_in_sandbox(
    code: str,
    timeout: float = 10.0,
    memory_mb: int = 512,
    *,
    max_processes: int = 32,
    max_file_mb: int = 16,
    max_open_files: int = 256,
    backend: str | None = None,
    base_dir: str | None = None,
) -> SandboxResult:
    """Run `code` as a Python program in a fresh folder; see the module doc for the guarantees."""
    backend = backend or sandbox_backend()
    if backend not in BACKENDS:
        raise ValueError(f"unknown sandbox backend {backend!r}; known: {', '.join(BACKENDS)}")
    t0 = time.perf_counter()
    work = os.path.realpath(tempfile.mkdtemp(prefix="reasonkd-sbx-", dir=base_dir))
    try:
        os.chmod(work, 0o700)
        with open(os.path.join(work, "program.py"), "w", encoding="utf-8") as f:
            f.write(code)
        nonce = secrets.token_hex(16)
        with open(os.path.join(work, ".nonce"), "w") as f:  # read and deleted by the bootstrap
            f.write(nonce)
        root_uid = os.geteuid() == 0
        cfg = {
            "work": work,
            "program": "program.py",
            "cpu_s": math.ceil(timeout) + 1,
            "mem": memory_mb << 20,
            "fsize": max_file_mb << 20,
            "nofile": max_open_files,
            "nproc": max_processes if backend == "unshare" and not root_uid else 0,
            "guard": backend == "rlimit" or (backend == "unshare" and root_uid),
            "jail": backend == "unshare",
            "root": os.path.join(work, ".root"),
            "ro_paths": SYSTEM_RO + _python_ro(),
            "devices": DEVICES,
        }
        if backend == "unshare":
            os.mkdir(cfg["root"])
        cmd = [PYTHON, "-I", "-B", "-c", BOOT, json.dumps(cfg)]
        try:
            if backend == "sandlock":
                rc, timed_out, extra = _run_sandlock(cmd, work, timeout, memory_mb, max_processes)
            elif backend == "unshare":
                rc, timed_out, extra = _run_process(
                    [
                        "unshare",
                        "--user",
                        "--map-root-user",
                        "--mount",
                        "--net",
                        "--pid",
                        "--ipc",
                        "--uts",
                        "--fork",
                        "--kill-child",
                        *cmd,
                    ],
                    work,
                    timeout,
                )
            else:
                rc, timed_out, extra = _run_process(cmd, work, timeout)
        except OSError as e:
            rc, timed_out, extra = None, False, f"sandbox failed to start: {e}"
        stdout = _read_capture(os.path.join(work, ".stdout"))
        stderr = _read_capture(os.path.join(work, ".stderr")) + extra
        tail = f"\n{nonce}\n"
        marker = stdout.endswith(tail)
        if marker:
            stdout = stdout[: -len(tail)]
        status = _classify(rc, timed_out, marker, stderr)
        if status == "incomplete":
            stderr += "\n[sandbox] exited 0 before the program's end (stdout closed or early exit)"
        return SandboxResult(status == "passed", status, rc, stdout, stderr, time.perf_counter() - t0, backend)
    finally:
        _rmtree(work)


def _probe(backend: str) -> bool:
    if backend not in _probed:
        try:
            if backend == "sandlock":
                import sandlock  # noqa: F401
            if backend == "unshare" and not shutil.which("unshare"):
                raise OSError("no unshare")
            r = run_in_sandbox(
                "import os\nopen('probe.txt', 'w').write('ok')\nprint(6 * 7)", timeout=20, backend=backend
            )
            _probed[backend] = r.ok and r.stdout.strip() == "42"
        except Exception:  # noqa: BLE001 - any failure means "not usable here"
            _probed[backend] = False
    return _probed[backend]


def available_backends() -> list[str]:
    """Backends that run a trivial program correctly on this machine, strongest first."""
    return [b for b in BACKENDS if _probe(b)]


def sandbox_backend() -> str:
    """The backend run_in_sandbox uses here (REASONKD_SANDBOX=NAME forces one)."""
    forced = os.environ.get("REASONKD_SANDBOX")
    if forced:
        if forced not in BACKENDS:
            raise ReasonkdError(f"REASONKD_SANDBOX={forced!r}: choose one of {', '.join(BACKENDS)}")
        return forced
    for b in BACKENDS[:-1]:
        if _probe(b):
            return b
    return "rlimit"


def run_many(programs: list[str], workers: int = 2, progress: bool = False, **kwargs) -> list[SandboxResult]:
    """Run programs in parallel on a small thread pool (each in its own sandbox), in input order."""
    sandbox_backend()  # probe once, before the threads race to do it
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        futures = [pool.submit(run_in_sandbox, p, **kwargs) for p in programs]
        if progress:
            for _ in tqdm(futures, desc="sandbox", unit="prog"):
                _.result()
        return [f.result() for f in futures]
