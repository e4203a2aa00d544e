"""Shared benchmark helpers: timing with repeats, peak RSS, and BENCHMARKS.md sections.

Each benchmark owns one `## <Section>` of BENCHMARKS.md and replaces only that
section (under a file lock, written atomically), so benchmarks can be rerun
independently without clobbering each other's figures.
"""

from __future__ import annotations

import fcntl
import platform
import re
import resource
import statistics
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH_MD = ROOT / "BENCHMARKS.md"
HEADER = (
    "# Benchmarks\n\nEvery figure below was produced by the command shown with it, on the machine named. "
    "Timings on a shared 2-core CPU are noisy: compare the ratios within one run, not across runs.\n"
)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    import torch

    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, Python {platform.python_version()}"


def cpu_line() -> str:
    """ "CPU: <model> (<vector level>; flags: avx2 fma ...)": the line every recorded section carries, so
    figures from machines with different vector units (AVX2 only vs AVX-512-BF16 / AMX) are not compared
    by mistake."""
    from reasonkd.utils.hardware import Machine, read_cpu

    model, flags = read_cpu()
    m = Machine(cpu_model=model, arch=platform.machine(), flags=flags, cores=0, torch="")
    return f"CPU: {model} ({m.isa}; flags: {' '.join(flags) or 'none of note'})"


def peak_rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, repeats: int = 3):
    """Run fn() `repeats` times; return (median seconds, all seconds, last result)."""
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times, out


def git_rev() -> str:
    try:
        return (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
            or "uncommitted"
        )
    except OSError:
        return "unknown"


def record_section(section: str, body: str) -> None:
    """Replace (or append) `## section` in BENCHMARKS.md with `body`, ending with the CPU line (cpu_line)."""
    if cpu_line() not in body:
        body = body.rstrip() + "\n\n" + cpu_line() + "\n"
    lock = open(ROOT / ".benchmarks.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        text = BENCH_MD.read_text() if BENCH_MD.exists() else HEADER
        block = f"## {section}\n\n{body.strip()}\n"
        pat = re.compile(rf"^## {re.escape(section)}\n.*?(?=^## |\Z)", re.S | re.M)
        text = pat.sub(lambda _: block + "\n", text) if pat.search(text) else text.rstrip() + "\n\n" + block
        tmp = BENCH_MD.with_suffix(".md.tmp")
        tmp.write_text(text)
        tmp.replace(BENCH_MD)
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
