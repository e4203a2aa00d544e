"""Render -> import -> eval round trip, `reasonkd ocr render`, and `reasonkd generate --image`."""

import hashlib
import json

import pytest

from reasonkd.cli import main
from reasonkd.data.schema import Item
from reasonkd.ocr.importer import import_folder
from reasonkd.ocr.render import render_dataset, render_problem
from reasonkd.utils.io import write_jsonl

pytest.importorskip("rapidocr_onnxruntime", reason="needs the `ocr` extra")

QUESTIONS = ["Ava has 12 apples and eats 5. How many are left?", "A pen costs $3. How much do 4 pens cost?"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("ds") / "problems.jsonl"
    write_jsonl(
        path,
        [
            Item(id=f"math-t-{i}", domain="math", question=q, answer=a, split="test").to_dict()
            for i, (q, a) in enumerate(zip(QUESTIONS, ["7", "12"]))
        ],
    )
    return path


@pytest.fixture(scope="module")
def rendered(dataset, tmp_path_factory):
    return render_dataset(dataset, tmp_path_factory.mktemp("r") / "clean", split=None)


def test_render_is_deterministic_by_seed():
    def digest(img):
        return hashlib.sha256(img.tobytes()).hexdigest()

    a, b = render_problem(QUESTIONS[0], degraded=True, seed=5), render_problem(QUESTIONS[0], degraded=True, seed=5)
    assert digest(a[0]) == digest(b[0]) and a[1] == b[1]
    assert digest(render_problem(QUESTIONS[0], degraded=True, seed=6)[0]) != digest(a[0])


def test_render_cli_writes_images_and_manifest(dataset, tmp_path):
    assert (
        main(
            ["ocr", "render", str(dataset), "--out", str(tmp_path / "deg"), "--degraded", "--limit", "1", "--split", ""]
        )
        == 0
    )
    rows = [json.loads(x) for x in (tmp_path / "deg" / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 1 and rows[0]["render"]["degraded"] and (tmp_path / "deg" / rows[0]["source_image"]).is_file()


def test_import_keeps_manifest_fields_and_adds_ocr(rendered, tmp_path):
    out = import_folder(rendered, tmp_path / "data")
    rows = [json.loads(x) for x in (out / "test.jsonl").read_text().splitlines()]
    assert [r["answer"] for r in rows] == ["7", "12"]
    for r, q in zip(rows, QUESTIONS):
        assert " ".join(r["question"].split()) == q == r["meta"]["source_question"]
        assert r["ocr_text"] == r["question"] and 0.5 < r["ocr_confidence"] <= 1
        assert r["source_image"].endswith(".png") and set(Item.__dataclass_fields__) <= set(r)
    stats = json.loads((out / "stats.json").read_text())
    assert stats["imported"] == 2 and stats["skipped"] == 0


def test_eval_reads_image_datasets(rendered, tmp_path):
    from reasonkd.eval.tasks import get_task

    for data in (rendered / "manifest.jsonl", rendered):  # OCR'd when loaded, only up to --limit
        ex = get_task("gsm8k", data=str(data), limit=1).examples()
        assert len(ex) == 1 and " ".join(ex[0]["question"].split()) == QUESTIONS[0] and ex[0]["reference"] == "7"
    imported = import_folder(rendered, tmp_path / "data")  # already OCR'd: the stored text is used
    ex = get_task("gsm8k", data=str(imported)).examples()
    assert [e["reference"] for e in ex] == ["7", "12"]


def test_generate_with_images(rendered, tiny_llama_dir, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    rc = main(
        [
            "generate",
            "--model",
            str(tiny_llama_dir),
            "--image",
            str(rendered / "math-t-0.png"),
            str(bad),
            "--max-new-tokens",
            "4",
        ]
    )
    out, err = capsys.readouterr()
    assert rc == 1 and "bad.png: not an image" in err
    assert "read from the image" in out and "12 apples" in out
    assert main(["generate", "--model", str(tiny_llama_dir)]) == 1


@pytest.mark.slow
def test_generate_image_with_the_teacher(rendered, capsys):
    """The shipped teacher answers a rendered problem from its image (12 - 5 = 7)."""
    assert (
        main(
            [
                "generate",
                "--model",
                "qwen2.5-coder-0.5b",
                "--image",
                str(rendered / "math-t-0.png"),
                "--max-new-tokens",
                "160",
                "--dtype",
                "float32",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "12 apples" in out and "7" in out.split("-- answer:")[1]
