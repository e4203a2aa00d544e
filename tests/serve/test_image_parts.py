"""`reasonkd serve` with OpenAI-style image_url content parts, through the official openai client:
the image is answered from its OCR text; remote URLs and bad images are refused with a clear 400."""

import base64
import io

import openai
import pytest

from reasonkd.ocr.render import render_problem
from reasonkd.serve.server import make_app, running_server

pytest.importorskip("rapidocr_onnxruntime", reason="needs the `ocr` extra")

PROBLEM = "Ava has 12 apples and eats 5. How many are left?"


@pytest.fixture(scope="module")
def client(tiny_llama_dir):
    from reasonkd.models import load_model

    model, tok = load_model(str(tiny_llama_dir))
    with running_server(make_app(model, tok, "tiny", max_tokens_cap=16, max_concurrent=2)) as url:
        yield openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=60)


def _data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def _png(text: str) -> bytes:
    buf = io.BytesIO()
    render_problem(text)[0].save(buf, "PNG")
    return buf.getvalue()


def _ask(client, content):
    return client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": content}], max_tokens=8, temperature=0
    )


def test_image_part_is_answered_from_its_text(client):
    parts = [{"type": "text", "text": "Solve:"}, {"type": "image_url", "image_url": {"url": _data_url(_png(PROBLEM))}}]
    from_image = _ask(client, parts)
    from_text = _ask(client, f"Solve:\n\n{PROBLEM}")
    assert from_image.usage.prompt_tokens == from_text.usage.prompt_tokens
    assert from_image.choices[0].message.content == from_text.choices[0].message.content


@pytest.mark.parametrize(
    "url, says",
    [
        ("https://example.com/worksheet.png", "fetches nothing"),
        ("data:image/png,not-base64", "must be base64"),
        ("data:image/png;base64,@@@@", "not valid base64"),
        (_data_url(b"plain text, not an image"), "not an image"),
    ],
)
def test_bad_image_parts_are_a_clear_400(client, url, says):
    with pytest.raises(openai.BadRequestError) as e:
        _ask(client, [{"type": "image_url", "image_url": {"url": url}}])
    assert says in str(e.value) and "content[0].image_url" in str(e.value)
