"""`reasonkd doctor`: what this machine is and what reasonkd will do on it, in a few seconds.

    reasonkd doctor              # paste its output into a bug report
    reasonkd doctor --json       # the same as one JSON object

It prints the CPU model and the flags that decide speed (AVX2 / AVX-512 / bf16 / AMX), cores and torch
threads, memory, the versions of the libraries that matter, measured matmul GFLOP/s per dtype, the
precision `dtype: auto` and `bf16_autocast: auto` pick here and why (reasonkd.utils.hardware), which
generation engines and code-sandbox backends work, and the state of the shipped models' cache.

Each local generation engine (hf, openvino) is then checked for real: it is compiled at the precision
`auto` picks here and greedily writes a few tokens with the shipped student (`--check-model` another
model, `--no-engine-check` to skip), printing PASS or FAIL with the reason. A precision the backend
refuses on this CPU shows up here in seconds instead of minutes into a run.

    reasonkd doctor --check-model runs/demo/distill/final
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import platform
import sys
import time

from reasonkd import __version__
from reasonkd.utils import hardware

CHECK_MODEL = "smollm2-135m"
"""The model `reasonkd doctor` checks the engines with: the demo's shipped student (small, fast to compile)."""
PACKAGES = (
    "torch",
    "transformers",
    "accelerate",
    "peft",
    "trl",
    "openvino",
    "openvino-genai",
    "openvino-tokenizers",
    "optimum",
    "optimum-intel",
    "onnxruntime",
    "vllm",
)


def versions() -> dict[str, str | None]:
    """Installed versions (metadata only: nothing is imported)."""
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def memory() -> dict[str, float]:
    """Total and available RAM in GiB (from /proc/meminfo; empty where there is none)."""
    info = {}
    try:
        for line in open("/proc/meminfo", encoding="utf-8"):
            key, _, value = line.partition(":")
            if key in ("MemTotal", "MemAvailable"):
                info[key] = round(int(value.split()[0]) / 2**20, 1)
    except OSError:
        pass
    return {"total_gib": info.get("MemTotal"), "available_gib": info.get("MemAvailable")}


def engines(m: hardware.Machine) -> dict[str, str]:
    """Generation engines (reasonkd.models.engines), whether each can run here, and what `auto` picks."""
    from reasonkd.models.engines import resolve_engine

    out = {"hf": "yes (transformers)"}
    missing = [n for n in ("openvino", "openvino_genai", "openvino_tokenizers") if importlib.util.find_spec(n) is None]
    if missing:
        out["openvino"] = f"no ({', '.join(missing)} missing: pip install 'reasonkd[export]')"
    else:
        try:
            import openvino_genai  # noqa: F401 -- importing is the check (a broken install fails here)

            out["openvino"] = "yes (openvino-genai)"
        except Exception as e:  # noqa: BLE001
            out["openvino"] = f"no (openvino_genai does not import: {type(e).__name__}: {e})"
    if importlib.util.find_spec("vllm") is None:
        out["vllm"] = "no (not installed; GPU only)"
    else:
        out["vllm"] = "yes" if m.gpu else "no (installed, but there is no GPU)"
    out["auto"] = resolve_engine("auto", "cuda" if m.gpu else "cpu")
    return out


def _not_ready(model: str) -> str | None:
    """Why `model` cannot be checked in seconds (a shipped alias not installed), else None."""
    from reasonkd.models import cache
    from reasonkd.models.registry import get_spec

    spec = get_spec(model)
    if spec is not None:
        folder = cache.hf_dir(spec)
        if not (folder.exists() and cache.verify_cache(folder) is None):
            return f"{model} is not in the model cache (reasonkd models pull {model})"
    elif not os.path.exists(model):
        return f"{model}: no such alias or folder"
    return None


def engine_checks(m: hardware.Machine, available: dict[str, str], model: str = CHECK_MODEL) -> dict[str, dict]:
    """{engine: {"ok": True | False | None, "detail": str}}: each local engine compiled at the precision
    `auto` picks here and asked for a few greedy tokens of `model` (ok None: not checked, and why)."""
    from reasonkd.models.engines import make_engine
    from reasonkd.models.generation import apply_chat

    dtype, _ = hardware.auto_choice("cpu", m)
    why_not = _not_ready(model)
    out: dict[str, dict] = {}
    for name in ("hf", "openvino"):
        if not available.get(name, "").startswith("yes"):
            out[name] = {"ok": None, "detail": "not installed"}
            continue
        if why_not:
            out[name] = {"ok": None, "detail": f"not checked: {why_not}"}
            continue
        t0 = time.perf_counter()
        try:
            engine = make_engine(name, model, dtype=dtype)
            done = engine.generate([apply_chat(engine.tokenizer, "What is 2 + 3?")], max_new_tokens=4)
            converted = (getattr(engine, "conversion", None) or {}).get("converted")
            engine.close()
            out[name] = {
                "ok": done[0].new_tokens > 0,
                "detail": f"{engine.precision}, {done[0].new_tokens} "
                f"tokens, {time.perf_counter() - t0:.1f} s" + (" (converted first, once)" if converted else ""),
            }
        except Exception as e:  # noqa: BLE001 -- the check reports any failure, it never stops the doctor
            msg = " ".join(str(e).split())
            out[name] = {"ok": False, "detail": f"{type(e).__name__}: {msg[:400]}"}
    return out


def sandboxes() -> dict[str, bool]:
    """Code-sandbox backends (strongest first) that run a trivial program correctly here."""
    from reasonkd.utils import sandbox

    working = sandbox.available_backends()
    return {b: b in working for b in sandbox.BACKENDS}


def model_cache() -> list[dict]:
    from reasonkd.models import cache
    from reasonkd.models.registry import ALIASES

    rows = []
    for spec in ALIASES.values():
        folder = cache.hf_dir(spec)
        problem = cache.verify_cache(folder) if folder.exists() else "not converted yet"
        rows.append(
            {
                "alias": spec.alias,
                "installed": cache.is_installed(spec),
                "cached": problem is None,
                "note": problem or str(folder),
            }
        )
    return rows


def _home_relative(path) -> str:
    """`~/...` for a path under the home folder (a bug report need not show the user's name)."""
    from pathlib import Path

    home = str(Path.home())
    return "~" + str(path)[len(home) :] if str(path).startswith(home + "/") else str(path)


def collect(check_model: str | None = CHECK_MODEL) -> dict:
    """Everything `reasonkd doctor` reports, as plain data (`check_model` None: no engine check)."""
    import torch

    t0 = time.perf_counter()
    m = hardware.probe(refresh=True)  # measured now: a bug report should describe the machine as it is
    cpu_dtype, cpu_why = hardware.auto_choice("cpu", m)
    report = {
        "reasonkd": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": {
            "model": m.cpu_model,
            "arch": m.arch,
            "vector_level": m.isa,
            "flags": m.flags,
            "native_bf16": m.native_bf16,
        },
        "cores": m.cores,
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "memory": memory(),
        "gpu": m.gpu,
        "gpu_bf16": m.gpu_bf16,
        "versions": versions(),
        "gflops": m.gflops,
        "auto": {"cpu": {"dtype": cpu_dtype, "bf16_autocast": cpu_dtype == "bfloat16", "reason": cpu_why}},
        "engines": engines(m),
        "sandboxes": sandboxes(),
        "models": model_cache(),
        "reasonkd_home": _home_relative(hardware.reasonkd_home()),
    }
    if check_model:
        report["engine_check"] = {
            "model": check_model,
            "dtype": cpu_dtype,
            "engines": engine_checks(m, report["engines"], check_model),
        }
    if m.gpu:
        gpu_dtype, gpu_why = hardware.auto_choice("cuda", m)
        report["auto"]["cuda"] = {"dtype": gpu_dtype, "bf16_autocast": gpu_dtype == "bfloat16", "reason": gpu_why}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def render(r: dict) -> str:
    """The human form of `collect()`."""
    mem = r["memory"]
    lines = [
        f"reasonkd {r['reasonkd']} · Python {r['python']} · {r['platform']}",
        f"CPU:      {r['cpu']['model']} ({r['cpu']['arch']}, {r['cpu']['vector_level']})",
        f"flags:    {' '.join(r['cpu']['flags']) or 'none of note'}; native bf16: "
        f"{'yes' if r['cpu']['native_bf16'] else 'no'}",
        f"cores:    {r['cores']} ({r['cores_usable']} usable), torch threads {r['torch_threads']}",
        f"memory:   {mem['total_gib']} GiB total, {mem['available_gib']} GiB available",
        f"GPU:      {r['gpu'] or 'none'}" + (f" (bf16: {'yes' if r['gpu_bf16'] else 'no'})" if r["gpu"] else ""),
        "versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items() if v),
        "missing:  " + (", ".join(k for k, v in r["versions"].items() if not v) or "none"),
    ]
    for dev, g in r["gflops"].items():
        n = hardware.MATMUL_N
        lines.append(
            f"matmul:   {dev} {n}x{n}{', one thread' if dev == 'cpu' else ''}: "
            + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in g.items())
        )
    for dev, a in r["auto"].items():
        lines.append(
            f"auto:     {dev}: dtype {a['dtype']}, bf16 autocast {'on' if a['bf16_autocast'] else 'off'}"
            f" — {a['reason']}"
        )
    lines.append("engines:  " + "; ".join(f"{k}: {v}" for k, v in r["engines"].items()))
    if "engine_check" in r:
        c = r["engine_check"]
        lines.append(f"check:    each engine compiled at dtype {c['dtype']} (auto here), a few tokens of {c['model']}:")
        for name, res in c["engines"].items():
            verdict = {True: "PASS", False: "FAIL", None: "skip"}[res["ok"]]
            lines.append(f"  {name:<9} {verdict}  {res['detail']}")
    lines.append("sandbox:  " + ", ".join(f"{k} {'works' if ok else 'no'}" for k, ok in r["sandboxes"].items()))
    lines.append(f"models:   (REASONKD_HOME {r['reasonkd_home']})")
    for row in r["models"]:
        state = "cached" if row["cached"] else ("installed, not converted" if row["installed"] else "not installed")
        lines.append(f"  {row['alias']:<22} {state}")
    lines.append(f"(collected in {r['seconds']:.1f} s)")
    return "\n".join(lines)


def cmd_doctor(args) -> int:
    report = collect(None if args.no_engine_check else args.check_model)
    print(json.dumps(report, indent=2) if args.json else render(report))
    failed = [k for k, v in report.get("engine_check", {}).get("engines", {}).items() if v["ok"] is False]
    return 1 if failed else 0


def register(sub) -> None:
    """Add `reasonkd doctor` to the top-level parser."""
    p = sub.add_parser(
        "doctor",
        help="this machine: CPU flags, precision auto picks, engines, sandbox, model cache",
        description=__doc__.splitlines()[0],
    )
    p.add_argument("--json", action="store_true", help="one JSON object instead of text")
    p.add_argument(
        "--check-model",
        default=CHECK_MODEL,
        help=f"alias or folder the engine check generates with (default {CHECK_MODEL})",
    )
    p.add_argument("--no-engine-check", action="store_true", help="skip compiling each engine for real")
    p.set_defaults(func=cmd_doctor)
