"""Convert a transformers checkpoint to OpenVINO IR once per weights fingerprint, cached under REASONKD_HOME.

    folder, info = ensure_converted("runs/demo/distill/final")           # fp32 weights, as trained
    folder, info = ensure_converted("qwen2.5-coder-0.5b", int8=True)     # INT8 weights (teacher traces)

Layout: `REASONKD_HOME/engines/openvino/<fingerprint[:20]>-<fp32|int8>/` with
openvino_model.xml/.bin, the tokenizer and detokenizer as OpenVINO IR where
openvino_tokenizers converts them (GenAI's stop strings need the
detokenizer), the HF tokenizer files, and `manifest.json`
(fingerprint, each file's size and, for files under 64 MiB, SHA-256; weight
element types). The fingerprint is the SHA-256 of the weight files
(*.safetensors / *.bin), config.json, generation_config.json and the
tokenizer files, so a student re-trained in the same folder is converted
again. A folder whose manifest, fingerprint or file sizes disagree is
damaged (a crash, a truncated copy) and is rebuilt; the build goes to a
temporary sibling and is renamed into place (reasonkd.utils.io.atomic_dir).

The cache is bounded: after a new conversion, the least recently used
conversions are removed until the folder holds at most
`REASONKD_ENGINE_CACHE_GB` (default 40; 0 = unbounded) GiB. A conversion
used in the last hour is never removed (another process may be loading it),
nor the one just made; a removed one is converted again when next used.

fp32 conversion passes `OVConfig(dtype="fp32")`: without an explicit config
optimum-intel compresses every model above 1B parameters to INT8 weights on
its own; the manifest's `weight_types` records what the IR really holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.models.cache import reasonkd_home
from reasonkd.models.engines.base import EXPORT_FIX
from reasonkd.models.loader import resolve, tokenizer_from
from reasonkd.utils.io import atomic_dir, file_problem, sha256_file, write_json
from reasonkd.utils.quiet import third_party_to_file

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"
CONVERT_LOG = "convert.log"
"""The export's third-party warnings and notices, kept beside the IR instead of on the console."""
SMALL = 64 << 20
"""Files up to this size get a full SHA-256 check on every load; larger ones (the weights) a size check."""
SOURCE_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
)


def require_export_extra() -> None:
    """ReasonkdError naming the fix when OpenVINO GenAI / tokenizers / optimum-intel are missing or broken."""
    missing = []
    for mod in ("openvino", "openvino_genai", "openvino_tokenizers", "optimum.intel"):
        try:
            __import__(mod)
        except Exception as e:  # noqa: BLE001 - an ImportError or a broken binary both mean "reinstall"
            missing.append(f"{mod} ({type(e).__name__}: {str(e).strip().splitlines()[0][:120] if str(e) else ''})")
    if missing:
        raise ReasonkdError(
            f"--engine openvino needs the export extra, which is missing or broken here: "
            f"{'; '.join(missing)}. Fix: {EXPORT_FIX} (or use --engine hf)"
        )


def fingerprint(src: Path) -> str:
    """SHA-256 over the weight files, config and tokenizer files of a save_pretrained folder."""
    weights = sorted(src.glob("*.safetensors")) or sorted(src.glob("pytorch_model*.bin"))
    if not weights:
        raise ReasonkdError(f"{src}: no *.safetensors or pytorch_model*.bin weights to convert for --engine openvino")
    h = hashlib.sha256()
    for f in weights + [src / n for n in SOURCE_FILES if (src / n).is_file()]:
        h.update(f"{f.name}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def _file_entry(p: Path) -> dict:
    size = p.stat().st_size
    return {"size": size, "sha256": sha256_file(p) if size <= SMALL else None}


def check_converted(folder: Path, fp: str | None = None) -> str | None:
    """None if `folder` is a complete conversion (of fingerprint `fp`, when given), else what is wrong."""
    try:
        man = json.loads((folder / MANIFEST).read_text())
        files = man["files"]
    except FileNotFoundError:
        return "no manifest.json"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"unreadable manifest.json ({type(e).__name__})"
    if fp is not None and man.get("fingerprint") != fp:
        return "fingerprint differs from the weights"
    for name in ("openvino_model.xml", "openvino_model.bin"):
        if name not in files:
            return f"{name} missing from the manifest"
    return file_problem(folder, files)


def weight_types(xml: Path) -> dict[str, int]:
    """Element count of the IR's weight constants by element type (f32, i8, u8, ...)."""
    import openvino as ov

    counts: dict[str, int] = {}
    for op in ov.Core().read_model(str(xml)).get_ops():
        if op.get_type_name() == "Constant":
            shape = list(op.get_output_shape(0))
            n = 1
            for d in shape:
                n *= int(d)
            if n >= 1024:  # weights, not the scalars and shape constants of the graph
                t = op.get_output_element_type(0).get_type_name()
                counts[t] = counts.get(t, 0) + n
    return counts


def convert_tokenizer_ir(src: Path, out: Path) -> str:
    """The tokenizer and detokenizer as OpenVINO IR (openvino_tokenizers), for GenAI's stop strings.

    Done here rather than by optimum's `convert_tokenizer`, which drops both when the detokenizer fails
    (it does for smollm2's tokenizer). Returns 'tokenizer+detokenizer', 'tokenizer' or 'none': the engine
    feeds GenAI token ids and decodes with the transformers tokenizer, so it runs without them and then
    cuts stop strings itself."""
    import openvino as ov
    from openvino_tokenizers import convert_tokenizer

    hf_tok = tokenizer_from(str(src))
    try:
        tok_ir, detok_ir = convert_tokenizer(hf_tok, with_detokenizer=True)
    except Exception as e:  # noqa: BLE001 - an unsupported decoder step; the tokenizer alone may still convert
        log.info("openvino_tokenizers cannot convert the detokenizer of %s (%s)", src, type(e).__name__)
        detok_ir = None
        try:
            tok_ir = convert_tokenizer(hf_tok, with_detokenizer=False)
        except Exception as e2:  # noqa: BLE001
            log.info("openvino_tokenizers cannot convert the tokenizer of %s (%s)", src, type(e2).__name__)
            return "none"
    ov.save_model(tok_ir, str(out / "openvino_tokenizer.xml"))
    if detok_ir is None:
        return "tokenizer"
    ov.save_model(detok_ir, str(out / "openvino_detokenizer.xml"))
    return "tokenizer+detokenizer"


def convert(src: Path, out: Path, fp: str, int8: bool) -> dict:
    """Export `src` to IR in the new folder `out` (inside atomic_dir); return the manifest."""
    # lazy, as every export-extra import here: the module loads without the extra, so that
    # require_export_extra can name the fix
    from optimum.exporters.openvino import main_export
    from optimum.intel import OVConfig, OVWeightQuantizationConfig

    t0 = time.perf_counter()
    # an explicit config in both cases: without one optimum compresses models > 1B parameters to INT8 unasked
    ov_config = OVConfig(quantization_config=OVWeightQuantizationConfig(bits=8)) if int8 else OVConfig(dtype="fp32")
    # the export's TracerWarnings and library notices (hundreds of lines) go to the folder's convert.log
    with third_party_to_file(out / CONVERT_LOG) as captured:
        main_export(
            str(src), out, task="text-generation-with-past", ov_config=ov_config, convert_tokenizer=False, stateful=True
        )
        tokenizer_ir = convert_tokenizer_ir(src, out)
    for name in SOURCE_FILES:  # HF tokenizer files, so the engine decodes exactly like the hf engine
        if (src / name).is_file() and not (out / name).exists():
            (out / name).write_bytes((src / name).read_bytes())
    import openvino as ov

    types = weight_types(out / "openvino_model.xml")
    quantized = sum(v for k, v in types.items() if k in ("i8", "u8", "i4", "u4", "nf4"))
    if not int8 and quantized:
        raise ReasonkdError(
            f"converting {src}: the fp32 IR holds {quantized} quantized weights {types}; "
            "the weight compression of optimum-intel was not disabled"
        )
    man = {
        "fingerprint": fp,
        "source": str(Path(src).resolve()),  # absolute: says which folder it came from, from any directory
        "weights": "int8" if int8 else "fp32",
        "weight_types": types,
        "tokenizer_ir": tokenizer_ir,
        "openvino": ov.__version__,
        "convert_seconds": round(time.perf_counter() - t0, 2),
        "third_party_warnings": captured["warnings"],
        "files": {
            p.name: _file_entry(p)
            for p in sorted(out.iterdir())
            if p.is_file() and p.name not in (MANIFEST, CONVERT_LOG)
        },
    }
    write_json(out / MANIFEST, man)
    return man


CACHE_GB_ENV = "REASONKD_ENGINE_CACHE_GB"
DEFAULT_CACHE_GB = 40.0
RECENT_S = 600.0
"""A conversion used this recently is never evicted: another process may be loading it (seconds; once
loaded, its files may go: Linux keeps a deleted file that is open or mapped). It was an hour, which let a
comparison that evaluates a new student every ~17 min keep 7 conversions (17 GB) above a 12 GiB limit, until
the disk was full."""


def _folder_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def cache_limit_bytes() -> int | None:
    """REASONKD_ENGINE_CACHE_GB as bytes (None = unbounded); a bad value is a clear error."""
    raw = os.environ.get(CACHE_GB_ENV, "").strip()
    try:
        gb = float(raw) if raw else DEFAULT_CACHE_GB
    except ValueError:
        raise ReasonkdError(f"{CACHE_GB_ENV}={raw!r}: give a number of GiB (0 = no limit)") from None
    if gb < 0:
        raise ReasonkdError(f"{CACHE_GB_ENV}={raw!r}: give a number of GiB >= 0 (0 = no limit)")
    return None if gb == 0 else int(gb * (1 << 30))


def evict_conversions(keep: Path, limit: int | None, now: float | None = None) -> list[Path]:
    """Remove the least recently used conversions beside `keep` until they hold at most `limit` bytes.

    "Used" is the folder's mtime (ensure_converted touches it on every use). `keep` and folders used
    within RECENT_S seconds stay, even above the limit. Returns the removed folders."""
    if limit is None or not keep.parent.is_dir():
        return []
    now = time.time() if now is None else now
    folders = [d for d in keep.parent.iterdir() if d.is_dir() and not d.name.startswith(".")]
    sizes = {d: _folder_bytes(d) for d in folders}
    total, removed = sum(sizes.values()), []
    for d in sorted(folders, key=lambda d: d.stat().st_mtime):  # oldest use first
        if total <= limit:
            break
        if d == keep or now - d.stat().st_mtime < RECENT_S:
            continue
        shutil.rmtree(d, ignore_errors=True)
        total -= sizes[d]
        removed.append(d)
        log.info(
            "engine cache above %.1f GiB: removed %s (%.1f GiB, least recently used)",
            limit / (1 << 30),
            d,
            sizes[d] / (1 << 30),
        )
    return removed


def cache_folder(fp: str, int8: bool) -> Path:
    return reasonkd_home() / "engines" / "openvino" / f"{fp[:20]}-{'int8' if int8 else 'fp32'}"


def source_folder(model_name_or_path: str) -> tuple[Path, bool]:
    """(folder, is_ir): the save_pretrained folder to convert, or an OpenVINO export folder used as is."""
    r = resolve(model_name_or_path)
    if r.kind == "openvino":
        return Path(r.path), True
    if r.kind in ("alias", "folder"):
        return Path(r.path), False
    raise ReasonkdError(
        f"--engine openvino takes an alias, a save_pretrained folder or an OpenVINO export folder; "
        f"{model_name_or_path} is a {r.kind} model: use --engine hf for it"
    )


def _raise_if_disk_full(src: Path, folder: Path, error: Exception) -> None:
    """A conversion that failed for want of disk space gets one clear error (OpenVINO's own reads
    "basic_ios::clear: iostream error"); any other failure is left to the caller to re-raise."""
    need = sum(f.stat().st_size for f in src.iterdir() if f.is_file())  # an fp32 IR is about the source's size
    free = shutil.disk_usage(folder.parent).free
    if free < need:
        raise ReasonkdError(
            f"converting {src} to OpenVINO IR in {folder.parent} failed ({error}): only {free / 2**30:.1f} GiB "
            f"free there, the conversion needs ~{need / 2**30:.1f} GiB. Free disk space, or lower "
            f"{CACHE_GB_ENV} (GiB of conversions kept) so older conversions are evicted, then rerun"
        ) from error


def ensure_converted(model_name_or_path: str, int8: bool = False, rebuild: bool = False) -> tuple[Path, dict]:
    """The cached IR folder for these weights (converting first when missing or damaged) and its manifest,
    with `seconds`: the time this call took (fingerprint + any conversion)."""
    require_export_extra()
    t0 = time.perf_counter()
    src, is_ir = source_folder(model_name_or_path)
    if is_ir:  # a `reasonkd export` folder: used as it is (its own weights, fp32 or INT8)
        detok = (src / "openvino_detokenizer.xml").is_file()
        return src, {
            "source": str(src),
            "weights": "export",
            "converted": False,
            "tokenizer_ir": "tokenizer+detokenizer" if detok else "none",
            "seconds": time.perf_counter() - t0,
        }
    limit = cache_limit_bytes()  # a bad REASONKD_ENGINE_CACHE_GB fails before any conversion
    fp = fingerprint(src)
    folder = cache_folder(fp, int8)
    reason = "rebuild asked" if rebuild else (check_converted(folder, fp) if folder.exists() else "not converted yet")
    converted = reason is not None
    if converted:
        if folder.exists() and not rebuild:
            log.warning("cached OpenVINO conversion in %s is damaged (%s); converting again", folder, reason)
        with atomic_dir(folder) as tmp:
            try:
                convert(src, tmp, fp, int8)
            except (OSError, RuntimeError) as e:
                _raise_if_disk_full(src, folder, e)
                raise
        evict_conversions(folder, limit)
    os.utime(folder)  # last use: what eviction orders by
    man = json.loads((folder / MANIFEST).read_text())
    if converted:
        log.info(
            "converted %s to OpenVINO IR (%s weights) in %.0f s, once for these weights (%d third-party "
            "warnings in %s)",
            src,
            man["weights"],
            man["convert_seconds"],
            man.get("third_party_warnings", 0),
            folder / CONVERT_LOG,
        )
    return folder, {**man, "converted": converted, "seconds": time.perf_counter() - t0}
