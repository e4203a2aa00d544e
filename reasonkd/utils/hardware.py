"""What this machine runs fast, and the precision `dtype: auto` / `bf16_autocast: auto` pick from it.

    from reasonkd.utils.hardware import machine, resolve_dtype, resolve_autocast
    dtype, why = resolve_dtype("auto")         # torch.float32, "this CPU has no native bf16 (AVX2 only); ..."
    on, why = resolve_autocast("auto")         # False, the same reason
    machine().flags, machine().gflops           # what `reasonkd doctor` prints

bf16 is fast only where the hardware has bf16 arithmetic: x86 CPUs with AVX-512-BF16 or AMX, ARM CPUs
with the BF16 extension, and GPUs where `torch.cuda.is_bf16_supported()`. Elsewhere (AVX2-only laptops,
desktops and cloud VMs) torch has no fast bf16 kernel and a bf16 matmul runs tens of times slower than
fp32. So the CPU flags decide, and a short timed matmul per candidate dtype breaks the tie (a flag that
is there but slow in practice). The probe runs once per process and its figures are cached per machine
under REASONKD_HOME/hardware/ (keyed by CPU model, flags, GPU and torch version). Every "auto" choice
is logged once with its reason and kept in `choices()`, from where run configs and reports record it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from reasonkd.errors import ConfigError
from reasonkd.utils.io import write_json
from reasonkd.utils.paths import reasonkd_home

log = logging.getLogger(__name__)

# the CPU flags that decide precision and speed (x86 names from /proc/cpuinfo; "bf16" is ARM's)
FLAGS_THAT_MATTER = (
    "avx2",
    "fma",
    "avx512f",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "asimd",
    "sve",
    "bf16",
)
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86; on ARM the flag is "bf16"
DTYPE_NAMES = {
    "float32": "float32",
    "fp32": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
}
MATMUL_N = 384  # tie-breaker size, one thread: ~1 ms in fp32, ~0.1 s in bf16 without native kernels
PROBE_VERSION = 2  # bump when the measurement changes: older cached figures are then measured again
SLOWER_MARGIN = 0.8  # bf16 must reach this fraction of fp32's GFLOP/s to be picked where flags allow it

_machine: "Machine | None" = None
_choices: dict[str, dict] = {}
_logged: set[str] = set()


@dataclass
class Machine:
    cpu_model: str
    arch: str
    flags: list[str]
    """The FLAGS_THAT_MATTER this CPU has."""
    cores: int
    torch: str
    gpu: str | None = None
    gpu_bf16: bool = False
    gflops: dict[str, dict[str, float]] = field(default_factory=dict)
    """{"cpu": {"float32": x, "bfloat16": y}, "cuda": {...}}: GFLOP/s of a MATMUL_N matmul, one CPU thread."""

    @property
    def native_bf16(self) -> bool:
        return any(f in self.flags for f in NATIVE_BF16_FLAGS) or (
            self.arch in ("aarch64", "arm64") and "bf16" in self.flags
        )

    @property
    def isa(self) -> str:
        """The CPU's vector level in words: "AVX2 only", "AVX-512 + AMX-BF16", "ARM without BF16" ..."""
        f = set(self.flags)
        if self.arch in ("aarch64", "arm64"):
            return "ARM with BF16" if "bf16" in f else "ARM without BF16"
        if "amx_bf16" in f:
            return "AVX-512 + AMX-BF16"
        if "avx512_bf16" in f:
            return "AVX-512-BF16"
        if "avx512f" in f:
            return "AVX-512 without BF16"
        return "AVX2 only" if "avx2" in f else "no AVX2"

    def summary(self) -> str:
        """One line for benchmark records and timings: model, vector level, flags, cores, torch."""
        gpu = f", GPU {self.gpu}" if self.gpu else ""
        return (
            f"{self.cpu_model} ({self.isa}; flags: {' '.join(self.flags) or 'none of note'}), "
            f"{self.cores} cores{gpu}, torch {self.torch}"
        )


def read_cpu(cpuinfo: str | None = None) -> tuple[str, list[str]]:
    """(CPU model, the FLAGS_THAT_MATTER it has) from /proc/cpuinfo (or the text given)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "hardware", "cpu model") and not model:
            model = value.strip()
        elif key in ("flags", "features") and not flags:
            flags = set(value.split())
    return model or platform.processor() or platform.machine() or "unknown CPU", [
        f for f in FLAGS_THAT_MATTER if f in flags
    ]


def matmul_gflops(
    dtype_name: str, device: str = "cpu", n: int = MATMUL_N, budget_s: float = 0.05, threads: int | None = 1
) -> float:
    """GFLOP/s of an n x n matmul in `dtype_name` on `device`: the fastest of the repeats that fit in
    ~budget_s after one warm-up (the fastest, because other processes on a shared machine only ever
    slow a repeat down). `threads`: CPU threads for the measurement (None = torch's current setting)."""
    import torch

    dtype = getattr(torch, dtype_name)
    before = torch.get_num_threads()
    if threads and device == "cpu":
        torch.set_num_threads(threads)
    try:
        a = torch.randn(n, n, device=device).to(dtype)
        b = torch.randn(n, n, device=device).to(dtype)
        sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
        a @ b
        sync()
        best, spent = float("inf"), 0.0
        for _ in range(50):
            t0 = time.perf_counter()
            a @ b
            sync()
            dt = time.perf_counter() - t0
            best, spent = min(best, dt), spent + dt
            if spent >= budget_s:
                break
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9


def machine_key(cpu_model: str, flags: list[str], gpu: str | None, torch_version: str) -> str:
    blob = json.dumps([cpu_model, flags, gpu, torch_version, platform.machine()])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_dir() -> Path:
    return reasonkd_home() / "hardware"


def probe(refresh: bool = False) -> Machine:
    """This machine's Machine: flags from /proc/cpuinfo, GPU from torch, matmul figures measured once
    per machine (REASONKD_HOME/hardware/<key>.json) and once per process (memory)."""
    global _machine
    if _machine is not None and not refresh:
        return _machine
    import torch

    cpu_model, flags = read_cpu()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    m = Machine(
        cpu_model=cpu_model,
        arch=platform.machine(),
        flags=flags,
        cores=os.cpu_count() or 1,
        torch=torch.__version__,
        gpu=gpu,
        gpu_bf16=bool(gpu) and torch.cuda.is_bf16_supported(),
    )
    path = cache_dir() / f"{machine_key(cpu_model, flags, gpu, m.torch)}-v{PROBE_VERSION}.json"
    try:
        cached = json.loads(path.read_text()) if path.is_file() and not refresh else {}
    except (OSError, json.JSONDecodeError):
        cached = {}  # a damaged cache file is measured again and rewritten
    if not isinstance(cached, dict) or not isinstance(cached.get("gflops"), dict):
        cached = {}
    m.gflops = cached.get("gflops") or _measure(gpu)
    if not cached.get("gflops"):
        try:
            write_json(path, asdict(m))
        except OSError as e:  # a read-only home still works, it just measures again next time
            log.debug("hardware cache not written (%s)", e)
    _machine = m
    return m


def _measure(gpu: str | None) -> dict[str, dict[str, float]]:
    out = {"cpu": {d: round(matmul_gflops(d), 2) for d in ("float32", "bfloat16")}}
    if gpu:
        out["cuda"] = {d: round(matmul_gflops(d, "cuda", n=2048), 1) for d in ("float32", "bfloat16", "float16")}
    return out


def _device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if str(device).startswith("cuda") else "cpu"


def auto_choice(device: str = "cpu", m: Machine | None = None) -> tuple[str, str]:
    """(dtype name, reason) that `auto` picks for generation / frozen weights on `device`."""
    m = m or probe()
    if _device(device) == "cuda":
        if m.gpu_bf16:
            return "bfloat16", f"GPU {m.gpu} supports bf16"
        return "float16", f"GPU {m.gpu or ''} has no bf16; fp16 is used instead".replace("  ", " ")
    g = m.gflops.get("cpu", {})
    f32, b16 = g.get("float32") or 0.0, g.get("bfloat16") or 0.0
    if not m.native_bf16:
        ratio = f"; fp32 is {f32 / b16:.0f}x faster here" if f32 and b16 and f32 >= 2 * b16 else ""
        return "float32", f"this CPU has no native bf16 ({m.isa}){ratio}"
    if f32 and b16 < SLOWER_MARGIN * f32:
        return "float32", (
            f"this CPU reports bf16 ({m.isa}) but bf16 matmuls measured slower than fp32 here "
            f"({b16:.0f} vs {f32:.0f} GFLOP/s)"
        )
    speed = f"; bf16 matmuls {b16:.0f} vs fp32 {f32:.0f} GFLOP/s" if f32 and b16 else ""
    return "bfloat16", f"this CPU has native bf16 ({m.isa}){speed}"


def _record(kind: str, asked, value, reason: str, device: str) -> None:
    _choices[kind] = {"asked": asked, "value": value, "reason": reason, "device": _device(device)}
    shown = ("on" if value else "off") if isinstance(value, bool) else value
    msg = f"{'bf16 autocast' if kind == 'autocast' else kind}: {asked} -> {shown} — {reason}"
    if msg not in _logged:  # once per process, not once per model load
        _logged.add(msg)
        log.info("precision %s", msg)


def dtype_name(dtype) -> str:
    """'float32' | 'bfloat16' | 'float16' for a name, alias or torch dtype; ConfigError otherwise."""
    if not isinstance(dtype, str):
        return str(dtype).removeprefix("torch.")
    if dtype not in DTYPE_NAMES:
        raise ConfigError(f"dtype must be auto, {', '.join(DTYPE_NAMES)}; got {dtype!r}")
    return DTYPE_NAMES[dtype]


def resolve_dtype(dtype="auto", device: str = "cpu"):
    """(torch dtype, reason): "auto" (or None) -> what runs fastest here; an explicit dtype wins."""
    import torch

    if dtype is None or dtype == "auto":
        name, reason = auto_choice(device)
        _record("dtype", "auto", name, reason, device)
        return getattr(torch, name), reason
    name = dtype_name(dtype)
    return getattr(torch, name), f"{name} set explicitly"


def resolve_autocast(value="auto", device: str = "cpu") -> tuple[bool, str]:
    """(bf16 autocast on?, reason) for training: "auto" -> on where bf16 is native; true/false win."""
    if isinstance(value, str) and value.lower() in ("true", "false"):
        value = value.lower() == "true"
    if isinstance(value, bool):
        return value, f"{'on' if value else 'off'}, set explicitly"
    if value != "auto":
        raise ConfigError(f"bf16_autocast must be true, false or auto, got {value!r}")
    name, reason = auto_choice(device)
    on = name == "bfloat16"
    _record("autocast", "auto", on, reason, device)
    return on, reason


def choices() -> dict[str, dict]:
    """The "auto" choices made in this process so far: {"dtype": {...}, "autocast": {...}}."""
    return {k: dict(v) for k, v in _choices.items()}


def precision_lines(cfg) -> list[str]:
    """Human lines saying what a config's dtype / bf16_autocast fields mean on this machine, e.g.
    "bf16 autocast: off — this CPU has no native bf16 (AVX2 only); fp32 is 80x faster here".
    Empty for a config without such fields."""
    device = getattr(cfg, "device", "cpu") or "cpu"
    lines = []
    dtype = getattr(cfg, "dtype", None)
    if isinstance(dtype, str) and (dtype == "auto" or dtype in DTYPE_NAMES):
        torch_dtype, reason = resolve_dtype(dtype, device)
        lines.append(f"dtype: {dtype_name(torch_dtype)} — {reason}")
    if hasattr(cfg, "bf16_autocast"):
        on, reason = resolve_autocast(cfg.bf16_autocast, device)
        # a config that resolved "auto" itself (DistillRecipe) keeps the reason beside the bool
        reason = getattr(cfg, "autocast_reason", None) or reason
        lines.append(f"bf16 autocast: {'on' if on else 'off'} — {reason}")
    return lines
