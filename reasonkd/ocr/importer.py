"""Turn a folder of problem images into a dataset in the data engine's item schema.

    reasonkd ocr import worksheets/ --out data/worksheets          # -> data/worksheets/test.jsonl
    from reasonkd.ocr.importer import import_folder
    out = import_folder("worksheets", "data/worksheets")

Each image becomes one item row whose `question` is the OCR text, plus three
fields: `ocr_text`, `ocr_confidence` (0..1) and `source_image` (the image's
absolute path). Answers come from an optional `manifest.jsonl` in the folder
(what `reasonkd ocr render` writes; a hand-written one needs only
`source_image` and `answer` per row): its fields fill the item, and the
drawn text is kept as `meta.source_question`. Without it `answer` is empty.

Files that cannot be used (not an image, corrupt or truncated, no text, over
the pixel limit) are skipped and listed with their reason in `skipped.jsonl`;
the import fails only if no image is usable. OCR results are kept in
`<out>.partial/` as they come, so an interrupted import resumes where it
stopped; the dataset folder itself appears only when complete.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tqdm import tqdm

from reasonkd.data.schema import FIELDS, SPLITS, Item
from reasonkd.errors import ReasonkdError
from reasonkd.ocr.read import read_image
from reasonkd.utils.io import atomic_dir, read_jsonl, sha256_file, write_json, write_jsonl

MANIFEST = "manifest.jsonl"


def _manifest(folder: Path) -> dict[str, dict]:
    path = folder / MANIFEST
    if not path.is_file():
        return {}
    rows = read_jsonl(path)
    for i, r in enumerate(rows, 1):
        if "source_image" not in r:
            raise ReasonkdError(f"{path}: row {i} has no 'source_image' (the image file name it describes)")
    return {Path(r["source_image"]).name: r for r in rows}


def _row(path: Path, ocr: dict, given: dict | None, split: str) -> dict:
    """The item row of one image: the manifest's fields (if any) with the OCR text as the question."""
    stem = path.stem
    base = {
        "id": f"ocr-{stem}",
        "domain": "math",
        "answer": "",
        "verifier": "math_numeric",
        "split": split,
        "source": "ocr_import",
        "template": "ocr_import",
    }
    fields = {k: v for k, v in {**base, **(given or {})}.items() if k in FIELDS}
    meta = dict(fields.get("meta") or {})
    if given and given.get("question"):
        meta["source_question"] = given["question"]
    fields.update(question=ocr["text"], meta=meta)
    row = Item(**fields).to_dict()  # validates domain / split / verifier like any other item
    row.update(ocr_text=ocr["text"], ocr_confidence=ocr["confidence"], source_image=str(path.resolve()))
    return row


def image_files(folder: Path) -> list[Path]:
    """Every regular file of the folder except the manifest and hidden files, sorted by name."""
    if not folder.is_dir():
        raise ReasonkdError(f"{folder}: no such folder of images")
    return sorted(p for p in folder.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith("."))


def _ocr_all(files: list[Path], partial: Path) -> dict[str, dict]:
    """OCR each file once; results (or the reason for a skip) are appended to partial/ocr.jsonl."""
    log = partial / "ocr.jsonl"
    done = {}
    for line in log.read_text(encoding="utf-8").splitlines() if log.is_file() else []:
        try:  # a line torn by a crash is simply done again
            r = json.loads(line)
            done[r["key"]] = r
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    partial.mkdir(parents=True, exist_ok=True)
    results = {}
    with open(log, "a", encoding="utf-8") as f:
        if log.stat().st_size and not log.read_bytes().endswith(b"\n"):
            f.write("\n")  # end a torn last line before appending
        for path in tqdm(files, desc="ocr", unit="img", mininterval=2):
            key = f"{path.name}:{sha256_file(path)}"
            if key not in done:
                try:
                    res = read_image(path, name=path.name)
                    done[key] = {
                        "key": key,
                        "text": res.text,
                        "confidence": res.confidence,
                        "seconds": round(res.seconds, 3),
                    }
                except ReasonkdError as e:
                    done[key] = {"key": key, "error": str(e)}
                f.write(json.dumps(done[key], ensure_ascii=False) + "\n")
                f.flush()
            results[path.name] = done[key]
    return results


def import_folder(folder: str | Path, out: str | Path, split: str = "test", limit: int | None = None) -> Path:
    """OCR every image of `folder` into `out/<split>.jsonl` (+ skipped.jsonl, stats.json). Returns `out`."""
    folder, out = Path(folder), Path(out)
    if split not in SPLITS:
        raise ReasonkdError(f"--split {split}: choose one of {SPLITS}")
    given = _manifest(folder)
    files = image_files(folder)[:limit] if limit else image_files(folder)
    if not files:
        raise ReasonkdError(f"{folder}: no files to import")
    partial = out.with_name(f"{out.name}.partial")
    results = _ocr_all(files, partial)
    rows, skipped = [], []
    for path in files:
        res = results[path.name]
        if "error" in res:
            skipped.append({"source_image": str(path.resolve()), "reason": res["error"]})
        else:
            rows.append(_row(path, res, given.get(path.name), split))
    if not rows:
        reasons = "; ".join(s["reason"] for s in skipped[:3])
        raise ReasonkdError(f"{folder}: none of {len(files)} files could be read ({reasons}); nothing written")
    with atomic_dir(out) as tmp:
        by_split: dict[str, list[dict]] = {}
        for r in rows:
            by_split.setdefault(r["split"], []).append(r)
        for name, part in by_split.items():
            write_jsonl(tmp / f"{name}.jsonl", part)
        write_jsonl(tmp / "skipped.jsonl", skipped)
        conf = [r["ocr_confidence"] for r in rows]
        write_json(
            tmp / "stats.json",
            {
                "images": len(files),
                "imported": len(rows),
                "skipped": len(skipped),
                "splits": {k: len(v) for k, v in by_split.items()},
                "mean_confidence": round(sum(conf) / len(conf), 4),
                "ocr_seconds": round(sum(results[p.name].get("seconds", 0.0) for p in files), 2),
            },
        )
    shutil.rmtree(partial, ignore_errors=True)
    return out
