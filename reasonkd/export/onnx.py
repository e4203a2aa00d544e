"""ONNX Runtime backend: export a causal LM with its KV cache to `model.onnx`, and load it back.

    from reasonkd.export.onnx import export_onnx, load_onnx
    export_onnx("/path/to/hf_folder", tmp_dir)      # model.onnx + config + tokenizer files
    model = load_onnx(tmp_dir)                      # optimum ORTModelForCausalLM, has .generate()

Called by `reasonkd export --format onnx` (reasonkd.export.build), which adds the
manifest, the parity check and the atomic rename.
"""

from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)
TASK = "text-generation-with-past"
"""Decoder with KV-cache inputs/outputs: each decoding step feeds only the new token."""


def export_onnx(src: str | Path, out: Path) -> None:
    """Export the transformers checkpoint `src` (folder or hub id) to ONNX (fp32) in `out`."""
    from optimum.exporters.onnx import main_export  # lazy, as below: optimum comes with the `export` extra

    # our own greedy-token parity check (reasonkd.export.parity) is stricter than optimum's
    # logits-within-atol validation on dummy inputs, and the validation costs a second export-sized pass
    main_export(str(src), output=out, task=TASK, device="cpu", do_validation=False)


def load_onnx(folder: str | Path):
    """An ORTModelForCausalLM on the CPU execution provider, KV cache on."""
    from optimum.onnxruntime import ORTModelForCausalLM

    return ORTModelForCausalLM.from_pretrained(str(folder), use_cache=True, provider="CPUExecutionProvider")
