"""OCR front end: problems given as images (worksheets, screenshots, scans) become text problems.

    from reasonkd.ocr import read_image
    read_image("problem.png").text

    reasonkd generate --model smollm2-135m --image problem.png
    reasonkd ocr import FOLDER --out DATA          # a folder of images -> a dataset
    reasonkd ocr render DATA --out FOLDER [--degraded]   # problems -> images (a test set)

Modules: read (rapidocr + reading order), normalize (maths characters),
render (problems -> clean / degraded images), importer (folder -> dataset),
inputs (generate / eval / serve entry points), cli. Needs the `ocr` extra
(rapidocr-onnxruntime); see docs/ocr.md.
"""

from reasonkd.ocr.normalize import normalize_math
from reasonkd.ocr.read import OcrLine, OcrResult, read_image

__all__ = ["OcrLine", "OcrResult", "normalize_math", "read_image"]
