"""Draw problems into images: a verifiable test set for the OCR front end.

    from reasonkd.ocr.render import render_problem
    image, style = render_problem("Ava has 3 apples...", degraded=True, seed=7)

    reasonkd ocr render data/default --out runs/ocr-clean              # every math problem of the test split
    reasonkd ocr render gsm8k_test.jsonl --out runs/ocr-deg --degraded --limit 200

Text is drawn with PIL in the DejaVu fonts that ship with matplotlib, so the
same seed gives the same pixels on any machine with the same Pillow. A clean
render is black text on white. A degraded render draws, from its seed, a few
degrees of rotation, blur, sensor noise, and some of: low contrast, two text
columns, a photo-like background (uneven light, paper texture, a desk border).
`render_dataset` writes one PNG per problem and a `manifest.jsonl` whose rows
are the source items plus `source_image` (the file name) and `render` (the
style drawn), so OCR output can be scored against the source text.
"""

from __future__ import annotations

import hashlib
import random
import re
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from tqdm import tqdm

from reasonkd.data.load import load_items
from reasonkd.data.sources import import_gsm8k
from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import atomic_dir, read_jsonl, write_jsonl

FONT_DIR = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
FONTS = ("DejaVuSans.ttf", "DejaVuSerif.ttf")
CLEAN_SIZE = 26
"""Font size in pixels of a clean render (about 12 pt scanned at 150 dpi)."""
PAGE_WIDTH = 1000
MARGIN = 40


def font(name: str = FONTS[0], size: int = CLEAN_SIZE) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(FONT_DIR / name), size)


def wrap(text: str, fnt: ImageFont.FreeTypeFont, width: int) -> list[str]:
    """Greedy word wrap by rendered pixel width; the text's own line breaks are kept."""
    lines: list[str] = []
    for para in text.split("\n"):
        line = ""
        for word in para.split():
            trial = f"{line} {word}" if line else word
            if line and fnt.getlength(trial) > width:
                lines.append(line)
                line = word
            else:
                line = trial
        lines.append(line)
    return [ln for ln in lines if ln.strip()]


def _draw_lines(lines: list[str], fnt, width: int, ink: int, paper: int) -> Image.Image:
    """One block of text lines on a plain grey-level page."""
    step = int(fnt.size * 1.55)
    img = Image.new("L", (width + 2 * MARGIN, len(lines) * step + 2 * MARGIN), paper)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((MARGIN, MARGIN + i * step), line, font=fnt, fill=ink)
    return img


def _layout(text: str, fnt, ink: int, paper: int, columns: int) -> Image.Image:
    """The page: one column, or the lines split into two columns read left then right."""
    if columns == 1:
        return _draw_lines(wrap(text, fnt, PAGE_WIDTH - 2 * MARGIN), fnt, PAGE_WIDTH - 2 * MARGIN, ink, paper)
    col_w = (PAGE_WIDTH - 2 * MARGIN) // 2 - 40
    lines = wrap(text, fnt, col_w)
    half = (len(lines) + 1) // 2
    left = _draw_lines(lines[:half], fnt, col_w, ink, paper)
    right = _draw_lines(lines[half:] or [""], fnt, col_w, ink, paper)
    page = Image.new("L", (left.width + right.width, left.height), paper)
    page.paste(left, (0, 0))
    page.paste(right, (left.width, 0))
    return page


def _photo_background(page: Image.Image, rng: np.random.Generator) -> Image.Image:
    """The page lying on a desk under uneven light: border, light gradient, paper grain."""
    h, w = page.height, page.width
    pad = int(rng.integers(30, 80))
    desk = np.full((h + 2 * pad, w + 2 * pad, 3), rng.integers(60, 140, size=3), dtype=np.float32)
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 0.97)], dtype=np.float32)
    desk[pad : pad + h, pad : pad + w] = np.asarray(page, dtype=np.float32)[..., None] * tint
    yy, xx = np.mgrid[0 : desk.shape[0], 0 : desk.shape[1]].astype(np.float32)
    cx, cy = rng.uniform(0, desk.shape[1]), rng.uniform(0, desk.shape[0])
    dist = np.hypot(xx - cx, yy - cy) / np.hypot(*desk.shape[:2])
    light = 1.0 - rng.uniform(0.15, 0.35) * dist
    grain = np.asarray(
        Image.fromarray(rng.normal(0, 1, (h // 16 + 2, w // 16 + 2)).astype(np.float32)).resize(
            (desk.shape[1], desk.shape[0]), Image.BILINEAR
        )
    )
    desk = desk * light[..., None] + grain[..., None] * 6.0
    return Image.fromarray(np.clip(desk, 0, 255).astype(np.uint8), "RGB")


def degraded_style(seed: int) -> dict:
    """The degradations one seed draws (all recorded in the manifest)."""
    rng = random.Random(seed)
    low = rng.random() < 0.4
    return {
        "font": rng.choice(FONTS),
        "size": rng.randint(22, 30),
        "columns": 2 if rng.random() < 0.35 else 1,
        "ink": rng.randint(90, 130) if low else rng.randint(0, 50),
        "paper": rng.randint(195, 225) if low else rng.randint(235, 255),
        "low_contrast": low,
        "background": rng.random() < 0.5,
        "rotate": round(rng.uniform(-4.0, 4.0), 2),
        "blur": round(rng.uniform(0.3, 1.1), 2),
        "noise": round(rng.uniform(3.0, 12.0), 1),
        "seed": seed,
    }


def render_problem(
    text: str, degraded: bool = False, seed: int = 0, columns: int | None = None
) -> tuple[Image.Image, dict]:
    """An RGB image of `text` and the style drawn. Same text, flags and seed -> same pixels."""
    if not degraded:
        style = {"font": FONTS[0], "size": CLEAN_SIZE, "columns": columns or 1, "ink": 0, "paper": 255}
        page = _layout(text, font(style["font"], style["size"]), 0, 255, style["columns"])
        return page.convert("RGB"), style
    style = degraded_style(seed)
    if columns:
        style["columns"] = columns
    page = _layout(text, font(style["font"], style["size"]), style["ink"], style["paper"], style["columns"])
    rng = np.random.default_rng(seed)
    img = _photo_background(page, rng) if style["background"] else page.convert("RGB")
    fill = img.getpixel((0, 0))
    img = img.rotate(style["rotate"], resample=Image.BICUBIC, expand=True, fillcolor=fill)
    img = img.filter(ImageFilter.GaussianBlur(style["blur"]))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, style["noise"], (img.height, img.width, 1))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB"), style


# ---------------------------------------------------------------- datasets


def load_problems(source: str | Path, split: str | None = "test", domains: tuple[str, ...] = ("math",)) -> list[dict]:
    """Problems to draw: a data-engine dataset (folder or JSONL) or an official-format GSM8K JSONL.

    Negatives are left out (their answer is wrong on purpose); GSM8K rows become math items.
    """
    path = Path(source)
    if path.is_file() and not any("verifier" in r for r in read_jsonl(path)[:1]):
        return [it.to_dict() for it in import_gsm8k(path, split=split or "test", name=path.stem)]
    rows = load_items(path, split=split if path.is_dir() else None)
    return [r for r in rows if r["domain"] in domains and r.get("kind") != "negative"]


def image_name(item_id: str) -> str:
    """A safe PNG file name for an item id."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", item_id) + ".png"


def render_dataset(
    source: str | Path,
    out: str | Path,
    degraded: bool = False,
    seed: int = 0,
    limit: int | None = None,
    split: str | None = "test",
) -> Path:
    """One PNG per problem plus manifest.jsonl (item rows + source_image + render), written atomically."""
    rows = load_problems(source, split=split)[:limit] if limit else load_problems(source, split=split)
    if not rows:
        raise ReasonkdError(f"{source}: no problems to render (split={split}, math only, negatives left out)")
    out = Path(out)
    manifest = []
    with atomic_dir(out) as tmp:
        for row in tqdm(rows, desc="render", unit="img", mininterval=2):
            # the seed follows the item id, so adding or removing items never changes another's image
            digest = hashlib.sha256(f"{seed}/{row['id']}".encode()).digest()
            img, style = render_problem(row["question"], degraded=degraded, seed=int.from_bytes(digest[:4], "big"))
            name = image_name(row["id"])
            img.save(tmp / name, optimize=False)
            manifest.append({**row, "source_image": name, "render": {"degraded": degraded, **style}})
        write_jsonl(tmp / "manifest.jsonl", manifest)
    return out
