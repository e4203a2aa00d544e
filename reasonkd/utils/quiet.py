"""Keep third-party chatter of a known-noisy step (model export, tracing) off the console and in a log file.

    with third_party_to_file(folder / "convert.log") as captured:
        main_export(...)                    # TracerWarnings, transformers' notices ... go to convert.log
    captured["warnings"]                    # how many warnings were sent to the file

Python warnings raised inside the block and records of the named third-party loggers (transformers,
optimum, nncf, openvino, openvino_tokenizers, torch) go to the file instead of the console. reasonkd's own loggers are not
touched, so its warnings stay on the console. Everything is restored when the block ends.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from pathlib import Path

THIRD_PARTY_LOGGERS = ("transformers", "optimum", "nncf", "openvino", "openvino_tokenizers", "torch", "huggingface_hub")


@contextlib.contextmanager
def third_party_to_file(path: Path, loggers: tuple[str, ...] = THIRD_PARTY_LOGGERS):
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    saved = []
    for name in loggers:
        lg = logging.getLogger(name)
        saved.append((lg, lg.handlers[:], lg.propagate))
        lg.handlers = [handler]
        lg.propagate = False
    captured = {"warnings": 0}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield captured
        for w in caught:
            handler.stream.write(f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})\n")
        captured["warnings"] = len(caught)
    finally:
        for lg, handlers, propagate in saved:
            lg.handlers, lg.propagate = handlers, propagate
        handler.close()
