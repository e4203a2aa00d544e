"""The `reasonkd_export.json` manifest of an export folder, and the integrity check run before every load.

    from reasonkd.export.manifest import read_manifest, verify_export
    manifest = verify_export("exports/smollm2-ov-int8")   # raises ReasonkdError if anything is off

The manifest records what was exported (source model, format, int8), with which
library versions, each file's size and SHA-256, and the parity result. Loading
checks sizes only (cheap: a truncated or half-copied file is the usual damage);
`verify_export(..., full=True)` also checks SHA-256.
"""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.models.loader import EXPORT_MANIFEST
from reasonkd.utils.io import sha256_file, write_json

MANIFEST = EXPORT_MANIFEST
FORMATS = ("onnx", "openvino")
MODEL_FILES = {"onnx": ("model.onnx",), "openvino": ("openvino_model.xml", "openvino_model.bin")}
"""Files a loadable export of each format must hold."""
PACKAGES = (
    "reasonkd",
    "torch",
    "transformers",
    "optimum",
    "optimum-onnx",
    "onnxruntime",
    "optimum-intel",
    "openvino",
    "nncf",
)


def versions() -> dict:
    """Installed versions of the packages that shape an export (None where absent)."""
    out = {}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def file_table(folder: Path) -> dict:
    """{relative name: {size, sha256}} for every file of the folder except the manifest."""
    return {
        str(p.relative_to(folder)): {"size": p.stat().st_size, "sha256": sha256_file(p)}
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def write_manifest(folder: Path, manifest: dict) -> None:
    write_json(Path(folder) / MANIFEST, manifest)


def detect_format(folder: Path) -> str | None:
    """'onnx' / 'openvino' from the manifest, else from the model files; None if not an export folder.

    Never raises: a folder whose manifest is unreadable still counts as an export (its
    format taken from the files, else 'onnx'), so loading it reports what is wrong.
    """
    folder = Path(folder)
    man = folder / MANIFEST
    if man.is_file():
        try:
            fmt = json.loads(man.read_text()).get("format")
            if fmt in FORMATS:
                return fmt
        except (OSError, ValueError, AttributeError):
            pass
    for fmt, names in MODEL_FILES.items():
        if (folder / names[0]).is_file():
            return fmt
    return "onnx" if man.is_file() else None


def read_manifest(folder: Path) -> dict:
    folder = Path(folder)
    man = folder / MANIFEST
    if not folder.is_dir():
        raise ReasonkdError(
            f"export folder {folder} does not exist; create it with "
            f"`reasonkd export --model MODEL --format onnx|openvino --out {folder}`"
        )
    if not man.is_file():
        raise ReasonkdError(
            f"{folder} has no {MANIFEST}: not written by `reasonkd export`, or the export was "
            f"interrupted; re-run `reasonkd export ... --out {folder}`"
        )
    try:
        manifest = json.loads(man.read_text())
        if (
            not isinstance(manifest, dict)
            or manifest.get("format") not in FORMATS
            or not isinstance(manifest.get("files"), dict)
        ):
            raise ValueError("expected an object with 'format' (onnx|openvino) and 'files'")
    except (OSError, ValueError) as e:
        raise ReasonkdError(f"{man} is unreadable ({e}); re-run `reasonkd export ... --out {folder}`") from None
    return manifest


def verify_export(folder: str | Path, full: bool = False) -> dict:
    """Return the manifest if every listed file is there with its recorded size (and SHA-256 if `full`)."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    redo = (
        f"the export is damaged: re-run `reasonkd export --model {manifest.get('source', 'MODEL')} "
        f"--format {manifest['format']}{' --int8' if manifest.get('int8') else ''} --out {folder}`"
    )
    for name in MODEL_FILES[manifest["format"]]:
        if name not in manifest["files"]:
            raise ReasonkdError(f"{folder / MANIFEST} does not list {name}; {redo}")
    for name, meta in manifest["files"].items():
        p = folder / name
        if not p.is_file():
            raise ReasonkdError(f"{p} is missing; {redo}")
        size = p.stat().st_size
        if size != meta.get("size"):
            raise ReasonkdError(
                f"{p} has {size} bytes, the manifest says {meta.get('size')} (truncated or corrupted); {redo}"
            )
        if full and sha256_file(p) != meta.get("sha256"):
            raise ReasonkdError(f"{p} fails its SHA-256 check; {redo}")
    return manifest
