"""Where images enter reasonkd: `generate --image`, image rows in `eval`, `image_url` parts in `serve`.

    from reasonkd.ocr.inputs import image_prompts, row_question, data_url_text
    image_prompts(["p1.png", "p2.jpg"])          # [(file, prompt text or the ReasonkdError)]
    row_question({"source_image": "a.png", ...}, base_dir)   # OCR text of an image dataset row
    data_url_text("data:image/png;base64,...")   # OCR text of an inline image
    content_text([{"type": "text", ...}, {"type": "image_url", ...}])   # a chat message's parts -> text

Each function answers from the OCR text (reasonkd.ocr.read); bad input is a
ReasonkdError that names the file or the content part and says what to do.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.ocr.read import read_image

MAX_DATA_URL_BYTES = 20 * 1024 * 1024
"""Largest inline image accepted by the server (decoded bytes)."""


def image_prompts(files: list[str], prompt: str | None = None) -> list[tuple[str, str | ReasonkdError]]:
    """One (file, prompt) per image: the OCR text, after `prompt` when one is given.

    A file that cannot be read gives its ReasonkdError in place of the prompt, so one bad
    file does not stop the others.
    """
    out: list[tuple[str, str | ReasonkdError]] = []
    for f in files:
        try:
            text = read_image(f).text
            out.append((f, f"{prompt}\n\n{text}" if prompt else text))
        except ReasonkdError as e:
            out.append((f, e))
    return out


def row_question(row: dict, base_dir: str | Path) -> str:
    """The question of a dataset row: its OCR text, read now from `source_image` if not stored yet.

    A relative `source_image` is taken relative to `base_dir` (the dataset file's folder).
    """
    if row.get("ocr_text"):
        return row["ocr_text"]
    if not row.get("source_image"):
        return row["question"]
    path = Path(row["source_image"])
    path = path if path.is_absolute() else Path(base_dir) / path
    return read_image(path, name=f"row {row.get('id', '?')}: {path}").text


def data_url_text(url: str, where: str = "image_url") -> str:
    """OCR text of a `data:image/...;base64,` URL; a remote URL is refused (nothing is fetched)."""
    url = (url or "").strip()
    if not url.startswith("data:"):
        scheme = url.split(":", 1)[0] if ":" in url else "no scheme"
        raise ReasonkdError(
            f"{where}: only inline data: URLs are read ({scheme} given); this server fetches "
            "nothing from the network: send the image as data:image/png;base64,<bytes>"
        )
    header, sep, payload = url.partition(",")
    if not sep or ";base64" not in header:
        raise ReasonkdError(f"{where}: a data: URL must be base64, as data:image/png;base64,<bytes>")
    if len(payload) > MAX_DATA_URL_BYTES * 4 // 3 + 4:
        raise ReasonkdError(f"{where}: image over {MAX_DATA_URL_BYTES // 2**20} MiB; downscale it")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as e:
        raise ReasonkdError(f"{where}: the data: URL is not valid base64 ({e})") from e
    return read_image(data, name=where).text


def _get(obj, key: str, default=None):
    return obj.get(key, default) if isinstance(obj, dict) else getattr(obj, key, default)


def content_text(parts: list, where: str = "content") -> str:
    """OpenAI-style content parts -> one user text: text parts as they are, each `image_url` part
    replaced by its OCR text as a paragraph of its own. Parts may be dicts or pydantic models."""
    pieces: list[str] = []
    for j, part in enumerate(parts or []):
        kind = _get(part, "type")
        if kind == "text":
            pieces.append(_get(part, "text") or "")
        elif kind == "image_url":
            image = _get(part, "image_url")
            url = image if isinstance(image, str) else _get(image, "url", "")
            pieces.append(f"\n\n{data_url_text(url, where=f'{where}[{j}].image_url')}\n\n")
        else:
            raise ReasonkdError(f"{where}[{j}]: part type {kind!r} is not supported; use 'text' or 'image_url'")
    return "".join(pieces).strip()
