"""Bad input: one clear error per item (or a recorded skip in an import), nothing half-written."""

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from reasonkd.cli import main
from reasonkd.errors import ReasonkdError
from reasonkd.ocr.importer import import_folder
from reasonkd.ocr.read import MAX_PIXELS, load_image, read_image
from reasonkd.ocr.render import render_problem

pytest.importorskip("rapidocr_onnxruntime", reason="needs the `ocr` extra")


@pytest.fixture(scope="module")
def good_png():
    buf = io.BytesIO()
    render_problem("Ava has 12 apples and eats 5. How many are left?")[0].save(buf, "PNG")
    return buf.getvalue()


def _jpeg(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG")
    return buf.getvalue()


def bad_files(good_png: bytes) -> dict[str, tuple[bytes, str]]:
    """name -> (bytes, what the error must say)."""
    corrupt = bytearray(good_png)
    corrupt[400:700] = bytes(b ^ 0x5A for b in corrupt[400:700])
    huge = io.BytesIO()
    Image.new("1", (MAX_PIXELS // 4000 + 1, 4000)).save(huge, "PNG")  # small file, too many pixels
    blank = io.BytesIO()
    Image.new("RGB", (320, 200), "white").save(blank, "PNG")
    jpg = _jpeg(Image.open(io.BytesIO(good_png)))
    return {
        "notes.png": (b"these are my notes, not an image", "not an image"),
        "empty.jpg": (b"", "empty file"),
        "corrupt.png": (bytes(corrupt), "corrupt or truncated"),
        "truncated.jpg": (jpg[: len(jpg) // 2], "corrupt or truncated"),
        "huge.png": (huge.getvalue(), "pixel limit"),
        "blank.png": (blank.getvalue(), "no text found"),
    }


def test_each_bad_file_is_one_clear_error(good_png, tmp_path):
    for name, (data, says) in bad_files(good_png).items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(ReasonkdError) as e:
            read_image(path)
        assert name in str(e.value) and says in str(e.value), str(e.value)


def test_decompression_bomb_and_missing_file(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # Pillow refuses past twice its limit, at open
    buf = io.BytesIO()
    Image.new("1", (100, 100)).save(buf, "PNG")
    with pytest.raises(ReasonkdError, match="pixel limit"):
        load_image(buf.getvalue(), name="bomb.png")
    with pytest.raises(ReasonkdError, match="missing.png: cannot read"):
        load_image(tmp_path / "missing.png")


def test_import_records_skips_and_keeps_good(good_png, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "good.png").write_bytes(good_png)
    for name, (data, _) in bad_files(good_png).items():
        (folder / name).write_bytes(data)
    out = import_folder(folder, tmp_path / "data")
    import json

    rows = [json.loads(x) for x in (out / "test.jsonl").read_text().splitlines()]
    skipped = [json.loads(x) for x in (out / "skipped.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == ["ocr-good"] and "12" in rows[0]["question"]
    assert sorted(s["source_image"].rsplit("/", 1)[1] for s in skipped) == sorted(bad_files(good_png))
    assert not (tmp_path / "data.partial").exists()


def test_import_with_nothing_usable_writes_nothing(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"nope")
    (folder / "b.jpg").write_bytes(b"")
    with pytest.raises(ReasonkdError, match="none of 2 files could be read"):
        import_folder(folder, tmp_path / "data")
    assert not (tmp_path / "data").exists()
    assert main(["ocr", "import", str(folder), "--out", str(tmp_path / "data")]) == 1
    assert main(["ocr", "import", str(tmp_path / "nowhere"), "--out", str(tmp_path / "data")]) == 1


def test_cli_read_reports_bad_file_and_reads_good(good_png, tmp_path, capsys):
    (tmp_path / "good.png").write_bytes(good_png)
    (tmp_path / "bad.png").write_bytes(b"nope")
    assert main(["ocr", "read", str(tmp_path / "bad.png"), str(tmp_path / "good.png")]) == 1
    out, err = capsys.readouterr()
    assert "bad.png: not an image" in err and "12 apples" in out


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(min_value=0, max_value=4000), noise=st.binary(max_size=64), at=st.integers(0, 3000))
def test_damaged_bytes_never_escape_as_other_errors(good_png, cut, noise, at):
    data = bytearray(good_png[:cut] if cut < len(good_png) else good_png)
    data[at : at + len(noise)] = noise
    try:
        assert load_image(bytes(data), name="x.png").mode == "RGB"
    except ReasonkdError as e:
        assert str(e).startswith("x.png: ")
