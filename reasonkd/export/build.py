"""`reasonkd export`: write an ONNX or OpenVINO export folder, checked against PyTorch, atomically.

    from reasonkd.export.build import export_model
    manifest = export_model("smollm2-135m", "openvino", "exports/smollm2-ov-int8", int8=True)

Steps: resolve the source (alias, folder, .gguf, hub id) -> export into a temp
sibling of `out` (KV cache on) -> save the tokenizer -> manifest -> parity
check (fp32: greedy tokens identical to PyTorch, else ReasonkdError and nothing
is written; INT8: held-out math accuracy next to fp32 PyTorch) -> rename the
temp folder onto `out`. A crash at any point leaves `out` as it was.
"""

from __future__ import annotations

import logging
import tempfile
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.export import parity as par
from reasonkd.export.manifest import FORMATS, MANIFEST, file_table, versions, write_manifest
from reasonkd.export.onnx import export_onnx
from reasonkd.export.openvino import RUNTIME_FP32, RUNTIME_INT8, export_openvino
from reasonkd.export.runtime import load_exported
from reasonkd.models import count_parameters, load_model, load_tokenizer, resolve
from reasonkd.utils.io import atomic_dir

log = logging.getLogger(__name__)


def _check_out(out: Path, source_path: str) -> None:
    if out.exists() and not out.is_dir():
        raise ReasonkdError(f"--out {out} is a file; pass a folder path")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        # atomic_dir replaces the folder wholesale: never do that to something we did not write
        raise ReasonkdError(f"--out {out} exists and is not a reasonkd export folder; pass a new or empty folder")
    if out.resolve() == Path(source_path).resolve():
        raise ReasonkdError(f"--out {out} is the source model's own folder; pass another folder")


def _export_source(r, torch_model, scratch: Path) -> str:
    """A transformers checkpoint optimum can read: the folder itself, or (GGUF) one saved from the loaded model."""
    if r.kind != "gguf":
        return r.path
    # optimum cannot read GGUF; load_model has already dequantized it and cleared the GGUF marks
    torch_model.save_pretrained(scratch / "hf", safe_serialization=True)
    return str(scratch / "hf")


def export_model(
    model: str,
    fmt: str,
    out: str | Path,
    *,
    int8: bool = False,
    parity: bool = True,
    parity_data: str | None = None,
    parity_limit: int | None = None,
    parity_tokens: int = 24,
    accuracy_tokens: int = 160,
    max_drop: float | None = None,
    batch_size: int = 8,
    progress: bool = True,
    template: str | None = None,
) -> dict:
    """Export `model` to `fmt` in `out`; return the manifest written there (see module doc)."""
    if fmt not in FORMATS:
        raise ReasonkdError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if int8 and fmt != "openvino":
        raise ReasonkdError(
            "--int8 is supported with --format openvino (NNCF weight compression); drop --int8 for an fp32 ONNX export"
        )
    out = Path(out).expanduser()
    r = resolve(model)
    if r.kind in FORMATS:
        raise ReasonkdError(f"{model} is already an export folder; pass the PyTorch model it came from")
    _check_out(out, r.path)
    t0 = time.perf_counter()
    torch_model, _ = load_model(model, dtype="float32")
    with tempfile.TemporaryDirectory(prefix="reasonkd-export-") as scratch, atomic_dir(out) as tmp:
        src = _export_source(r, torch_model, Path(scratch))
        log.info("exporting %s to %s%s (text-generation-with-past) ...", model, fmt, " INT8" if int8 else "")
        if fmt == "onnx":
            export_onnx(src, tmp)
        else:
            export_openvino(src, tmp, int8=int8)
        load_tokenizer(model).save_pretrained(tmp)
        manifest = {
            "reasonkd_export": 1,
            "source": str(model),
            "source_kind": r.kind,
            "source_path": r.path,
            "format": fmt,
            "int8": int8,
            "precision": "int8 weights (asym, per channel), fp activations" if int8 else "fp32",
            "task": "text-generation-with-past",
            "model_type": torch_model.config.model_type,
            "num_parameters": count_parameters(torch_model),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "export_seconds": round(time.perf_counter() - t0, 2),
            "versions": versions(),
        }
        if fmt == "openvino":
            manifest["runtime"] = {"ov_config": RUNTIME_INT8 if int8 else RUNTIME_FP32}
        manifest["files"] = file_table(tmp)
        manifest["total_bytes"] = sum(f["size"] for f in manifest["files"].values())
        manifest["parity"] = {"status": "skipped"}
        write_manifest(tmp, manifest)
        if parity:
            manifest["parity"] = check(
                torch_model,
                tmp,
                int8=int8,
                parity_data=parity_data,
                parity_limit=parity_limit,
                parity_tokens=parity_tokens,
                accuracy_tokens=accuracy_tokens,
                max_drop=max_drop,
                batch_size=batch_size,
                progress=progress,
                template=template,
            )
            write_manifest(tmp, manifest)
    log.info("wrote %s (%.1f MB, %.0f s)", out, manifest["total_bytes"] / 1e6, time.perf_counter() - t0)
    return manifest


def check(
    torch_model,
    folder: Path,
    *,
    int8: bool,
    parity_data=None,
    parity_limit=None,
    parity_tokens=24,
    accuracy_tokens=160,
    max_drop=None,
    batch_size=8,
    progress=True,
    template=None,
) -> dict:
    """The parity section of the manifest; raises ReasonkdError when the export fails it."""
    exported, tok = load_exported(folder)
    tokens = par.token_parity(torch_model, exported, tok, new_tokens=parity_tokens)
    log.info(
        "greedy parity: %d/%d prompts identical over %d tokens",
        tokens["identical_prompts"],
        tokens["prompts"],
        parity_tokens,
    )
    if not int8:
        if not tokens["identical"]:
            mm = tokens["first_mismatch"]
            raise ReasonkdError(
                f"parity check FAILED: the fp32 export's greedy tokens differ from PyTorch on prompt "
                f"{mm['prompt']} at new token {mm['position']}: torch {mm['torch']!r} vs export "
                f"{mm['exported']!r}. The export was not written; report this with `reasonkd --version` and the "
                f"versions of optimum/onnxruntime/openvino, or pass --no-parity to keep it anyway"
            )
        return {"status": "passed", "tokens": tokens}
    examples = par.held_out_examples(parity_data, parity_limit)
    acc = par.int8_check(torch_model, exported, tok, examples, accuracy_tokens, batch_size, progress, template)
    acc["data"] = str(parity_data) if parity_data else "built-in 20 GSM8K-style problems"
    acc["template"] = str(template) if template else "gsm8k task prompt"
    log.info(
        "INT8 accuracy %d/%d vs fp32 PyTorch %d/%d (drop %.1f points)",
        acc["int8_correct"],
        acc["n"],
        acc["torch_fp32_correct"],
        acc["n"],
        acc["drop_points"],
    )
    status = "measured"
    if max_drop is not None:
        if acc["drop_points"] > max_drop:
            raise ReasonkdError(
                f"INT8 accuracy check FAILED: drop {acc['drop_points']:.1f} points > --max-drop "
                f"{max_drop} ({acc['int8_correct']}/{acc['n']} vs {acc['torch_fp32_correct']}/"
                f"{acc['n']}); the export was not written"
            )
        status = "passed"
    return {"status": status, "tokens": tokens, "accuracy": acc}
