"""Read the text of a problem image: rapidocr boxes -> lines in reading order -> clean text.

    from reasonkd.ocr.read import read_image
    result = read_image("worksheet.png")          # a path, raw bytes or a PIL image
    result.text, result.confidence, result.lines  # lines: [OcrLine(text, confidence, box)]

rapidocr-onnxruntime (the `ocr` extra) runs PP-OCRv4 detection and
recognition on onnxruntime, with the models inside its wheel: nothing is
downloaded. It returns text boxes in no particular order; `order_blocks` puts
them in reading order: estimate the page's skew from the boxes, cut the page
into columns at vertical gutters (and into blocks at wide horizontal gaps,
recursively: an XY-cut), then within a block group boxes into lines by their
de-skewed height and read each line left to right. Wrapped lines are joined
back into paragraphs (`reflow`). Each line keeps its recognition confidence;
the text goes through `normalize_math`.

Bad input is one `ReasonkdError` naming the file: not an image, a corrupt or
truncated file, an image over `MAX_PIXELS`, or an image with no text.
"""

from __future__ import annotations

import functools
import io
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from reasonkd.errors import ReasonkdError
from reasonkd.ocr.normalize import normalize_math

MAX_PIXELS = 40_000_000
"""Largest image read (width x height); a 40-megapixel phone photo fits, a decompression bomb does not."""
MIN_CONFIDENCE = 0.5
"""Boxes recognised below this mean character confidence are dropped (rapidocr's own default)."""
_ENGINE_LOCK = threading.Lock()


@dataclass
class OcrLine:
    text: str
    """The line's text after normalisation."""
    confidence: float
    """Mean recognition confidence of the line's boxes, weighted by their length (0..1)."""
    box: list[float]
    """Axis-aligned bounds [x0, y0, x1, y1] in image pixels."""
    block: int = 0
    """Index of the block (column or paragraph) the line belongs to, in reading order."""


@dataclass
class OcrResult:
    text: str
    """All lines in reading order, wrapped lines joined into paragraphs (see `reflow`)."""
    confidence: float
    """Length-weighted mean confidence over all lines (0..1)."""
    lines: list[OcrLine] = field(default_factory=list)
    seconds: float = 0.0
    """Wall time of the OCR itself (decode, detection, recognition)."""


@functools.lru_cache(maxsize=1)
def engine():
    """The rapidocr engine, built once per process (about 0.2 s)."""
    try:
        from rapidocr_onnxruntime import RapidOCR
    except ImportError as e:
        raise ReasonkdError(
            "reading images needs the `ocr` extra: pip install 'reasonkd[ocr]' "
            f"(rapidocr-onnxruntime); import failed: {e}"
        ) from e
    # det limit 'max' 1600: downscale only large photos; the default ('min' 736) upscales every
    # short text strip several times over, which costs seconds and splits lines into pieces
    return RapidOCR(det_limit_type="max", det_limit_side_len=1600, print_verbose=False)


def load_image(source, name: str | None = None) -> Image.Image:
    """A path, bytes or PIL image -> an RGB PIL image, or one ReasonkdError naming the input."""
    if isinstance(source, Image.Image):
        img, label = source, name or "image"
    else:
        label = name or (str(source) if isinstance(source, (str, Path)) else "image bytes")
        try:
            data = Path(source).read_bytes() if isinstance(source, (str, Path)) else bytes(source)
        except OSError as e:
            raise ReasonkdError(f"{label}: cannot read the file ({e.strerror or e})") from e
        if not data:
            raise ReasonkdError(f"{label}: empty file, not an image")
        try:
            img = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise ReasonkdError(f"{label}: over the {MAX_PIXELS:,}-pixel limit ({e}); downscale it") from e
        except (UnidentifiedImageError, ValueError) as e:
            raise ReasonkdError(f"{label}: not an image Pillow can read (PNG, JPEG, WebP, BMP, TIFF, GIF ...)") from e
        except Exception as e:  # Pillow's parsers raise OSError, struct.error, EOFError ... on a damaged header
            raise ReasonkdError(f"{label}: corrupt or truncated image ({e}); re-save or re-export it") from e
    # checked from the header, before any pixel is decoded
    if img.width * img.height > MAX_PIXELS:
        raise ReasonkdError(
            f"{label}: {img.width}x{img.height} pixels is over the {MAX_PIXELS:,}-pixel limit; "
            "downscale it (a page needs about 1500 pixels across)"
        )
    try:
        img.load()
    except Exception as e:  # as above, for the pixel data
        raise ReasonkdError(f"{label}: corrupt or truncated image ({e}); re-save or re-export it") from e
    return img.convert("RGB")


def _skew(quads: np.ndarray) -> float:
    """Median slope angle (radians) of the boxes' top edges, from the wide boxes only."""
    dx = quads[:, 1, 0] - quads[:, 0, 0]
    dy = quads[:, 1, 1] - quads[:, 0, 1]
    wide = dx > 2 * np.abs(quads[:, 3, 1] - quads[:, 0, 1])
    if not wide.any():
        return 0.0
    return float(np.median(np.arctan2(dy[wide], dx[wide])))


def _split(lo: np.ndarray, hi: np.ndarray, min_gap: float) -> list[np.ndarray]:
    """Indices grouped by gaps >= min_gap in the union of the intervals [lo, hi]."""
    order = np.argsort(lo)
    groups, current, reach = [], [order[0]], hi[order[0]]
    for i in order[1:]:
        if lo[i] - reach >= min_gap:
            groups.append(np.array(current))
            current = []
        current.append(i)
        reach = max(reach, hi[i])
    groups.append(np.array(current))
    return groups


def _cut(b: np.ndarray, idx: np.ndarray, h: float) -> list[list[list[int]]]:
    """XY-cut into blocks of lines: columns first (gutters >= 0.6 box heights), then blocks at
    gaps >= 1.2 box heights, recursively; within a block, lines by height, boxes left to right.
    `h` is the median box height, about twice the text's: boxes are grown before recognition."""
    sub = b[idx]
    cols = _split(sub[:, 0], sub[:, 2], 0.6 * h) if len(idx) > 1 else [np.arange(len(idx))]
    if len(cols) > 1:
        return [blk for c in cols for blk in _cut(b, idx[c], h)]
    blocks = _split(sub[:, 1], sub[:, 3], 1.2 * h) if len(idx) > 1 else [np.arange(len(idx))]
    if len(blocks) > 1:
        return [blk for part in blocks for blk in _cut(b, idx[part], h)]
    lines: list[list[int]] = []
    for i in idx[np.argsort((sub[:, 1] + sub[:, 3]) / 2)]:
        cy = (b[i, 1] + b[i, 3]) / 2
        if lines and abs(cy - np.mean([(b[j, 1] + b[j, 3]) / 2 for j in lines[-1]])) < 0.5 * h:
            lines[-1].append(i)
        else:
            lines.append([i])
    return [[sorted(ln, key=lambda j: b[j, 0]) for ln in lines]]


def order_blocks(quads: list) -> list[list[list[int]]]:
    """Box quads (4 corner points each, as rapidocr returns) -> blocks (columns, paragraphs) of
    lines of box indices, in reading order."""
    if not quads:
        return []
    q = np.asarray(quads, dtype=np.float64).reshape(-1, 4, 2)
    angle = _skew(q)
    c, s = math.cos(-angle), math.sin(-angle)
    flat = q.reshape(-1, 2) @ np.array([[c, s], [-s, c]])  # rotate every corner by -angle
    r = flat.reshape(-1, 4, 2)
    b = np.stack([r[..., 0].min(1), r[..., 1].min(1), r[..., 0].max(1), r[..., 1].max(1)], axis=1)
    h = float(np.median(b[:, 3] - b[:, 1]))
    return _cut(b, np.arange(len(b)), max(h, 1.0))


def reflow(lines: list[OcrLine]) -> str:
    """Lines -> text: a line as wide as most of its block's lines was wrapped, so it runs on into the
    next with a space; a shorter one ended a paragraph (or a grid row), so a line break follows."""
    widest: dict[int, float] = {}
    for ln in lines:
        widest[ln.block] = max(widest.get(ln.block, 0.0), ln.box[2] - ln.box[0])
    out = []
    for i, ln in enumerate(lines):
        out.append(ln.text)
        if i + 1 < len(lines):
            out.append(" " if ln.box[2] - ln.box[0] >= 0.75 * widest[ln.block] else "\n")
    return "".join(out)


def read_image(source, name: str | None = None, min_confidence: float = MIN_CONFIDENCE) -> OcrResult:
    """OCR one image (path, bytes or PIL image). No readable text is a ReasonkdError."""
    label = name or (str(source) if isinstance(source, (str, Path)) else "image")
    t0 = time.perf_counter()
    img = load_image(source, name=label)
    arr = np.asarray(img)[:, :, ::-1]  # rapidocr takes OpenCV's BGR order
    # no angle classifier: it turns whole English lines upside down (pages are at most a few degrees off);
    # boxes grown by 2.3 (default 1.6): on tight crops the recogniser drops most spaces of a line
    with _ENGINE_LOCK:  # rapidocr sets its thresholds on the shared engine at each call
        boxes, _ = engine()(arr, use_cls=False, text_score=min_confidence, box_thresh=0.5, unclip_ratio=2.3)
    boxes = [bx for bx in boxes or [] if str(bx[1]).strip()]
    lines = []
    for k, block in enumerate(order_blocks([bx[0] for bx in boxes])):
        for line in block:
            parts = [boxes[i] for i in line]
            weight = sum(len(p[1]) for p in parts)
            conf = sum(float(p[2]) * len(p[1]) for p in parts) / weight
            pts = np.asarray([p[0] for p in parts], dtype=np.float64).reshape(-1, 2)
            text = normalize_math(" ".join(str(p[1]).strip() for p in parts))
            box = [round(float(v), 1) for v in (*pts.min(0), *pts.max(0))]
            lines.append(OcrLine(text, round(conf, 4), box, k))
    if not lines:
        raise ReasonkdError(
            f"{label}: no text found in the image ({img.width}x{img.height}); "
            "is it a photo of the problem, in focus and the right way up?"
        )
    total = sum(len(ln.text) for ln in lines) or 1
    conf = sum(ln.confidence * len(ln.text) for ln in lines) / total
    return OcrResult(reflow(lines), round(conf, 4), lines, time.perf_counter() - t0)


def cer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance, reference length) over whitespace-collapsed text: the character error rate's parts."""
    ref, hyp = " ".join(reference.split()), " ".join(hypothesis.split())
    prev = list(range(len(hyp) + 1))
    for i, rc in enumerate(ref, 1):
        cur = [i] + [0] * len(hyp)
        for j, hc in enumerate(hyp, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (rc != hc))
        prev = cur
    return prev[-1], len(ref)
