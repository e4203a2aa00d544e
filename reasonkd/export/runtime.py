"""Load an export folder as a model that the rest of reasonkd can use like a PyTorch one.

    from reasonkd.export.runtime import load_exported
    model, tok = load_exported("exports/smollm2-ov-int8")
    outs = generate_batch(model, tok, prompts)        # reasonkd.models.generation, unchanged

Importing reasonkd.export registers `load_exported` with
`reasonkd.models.loader.register_folder_loader`, so `load_model` delegates here
for a folder holding a `reasonkd_export.json` (or model.onnx /
openvino_model.xml), and `reasonkd eval`, `reasonkd serve` and `reasonkd bench`
take an export folder like any model.
The folder is checked against its manifest first (missing or truncated files
raise ReasonkdError before the runtime ever sees them).
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.export.manifest import detect_format, verify_export
from reasonkd.models.loader import register_folder_loader, tokenizer_from


class ExportedLM:
    """An optimum ORT/OV causal LM with the few nn.Module-like bits reasonkd's callers use.

    generate() and __call__ (forward with past_key_values) are the runtime's own; everything
    else (config, generation_config, device, ...) is forwarded to it.
    """

    def __init__(self, inner, manifest: dict, path: Path):
        import torch  # lazy, as the runtimes below: this module is imported at every `reasonkd` start

        self._inner, self.manifest, self.path = inner, manifest, Path(path)
        self.backend = manifest["format"]
        self.precision = "int8" if manifest.get("int8") else "fp32"
        # callers ask `next(model.parameters()).device` and count parameters by numel(): one
        # zero-stride CPU tensor answers both without holding the weights a second time
        self._param = torch.zeros(1).expand(int(manifest.get("num_parameters") or 1))

    def __getattr__(self, name):
        if name == "_inner":  # not set yet (copy/pickle): avoid recursing into ourselves
            raise AttributeError(name)
        return getattr(self._inner, name)

    def __call__(self, input_ids=None, **kwargs):
        if self.backend == "onnx" and kwargs.get("attention_mask") is None and input_ids is not None:
            # ORT graphs take attention_mask as a required input; a PyTorch forward (as in
            # reasonkd.serve.engine's decoding loop) may leave it out to mean "attend to everything"
            import torch

            kwargs["attention_mask"] = torch.ones(
                input_ids.shape[0], _past_length(kwargs.get("past_key_values")) + input_ids.shape[1], dtype=torch.long
            )
        return self._inner(input_ids=input_ids, **kwargs)

    def generate(self, *args, **kwargs):
        return self._inner.generate(*args, **kwargs)

    def parameters(self):
        yield self._param

    def eval(self):
        return self

    def to(self, device):
        if str(device) != "cpu":
            raise ReasonkdError(f"an exported {self.backend} model runs on the CPU here; got device={device!r}")
        return self

    def __repr__(self) -> str:
        return f"ExportedLM({self.backend}, {self.precision}, {self.path})"


def _past_length(past) -> int:
    if past is None:
        return 0
    if hasattr(past, "get_seq_length"):  # a transformers Cache
        return int(past.get_seq_length())
    return int(past[0][1].shape[-2])  # optimum's tuple of (key, value) per layer: (B, heads, T, head_dim)


def runtime_model(folder: Path, manifest: dict):
    """The bare optimum model of a checked export folder."""
    if manifest["format"] == "onnx":
        from reasonkd.export.onnx import load_onnx

        return load_onnx(folder)
    from reasonkd.export.openvino import RUNTIME_FP32, RUNTIME_INT8, load_openvino

    default = RUNTIME_INT8 if manifest.get("int8") else RUNTIME_FP32
    return load_openvino(folder, manifest.get("runtime", {}).get("ov_config") or default)


def load_exported(path: str | Path, device: str = "cpu"):
    """(ExportedLM, tokenizer) for an export folder; ReasonkdError if the folder is missing or damaged."""
    folder = Path(path).expanduser()
    manifest = verify_export(folder)
    if str(device) != "cpu":
        raise ReasonkdError(f"exported models run on the CPU here; got --device {device}")
    try:
        inner = runtime_model(folder, manifest)
        tok = tokenizer_from(str(folder))
    except ReasonkdError:
        raise
    except Exception as e:  # the runtimes' own parse errors are long; keep the cause, name the folder
        raise ReasonkdError(
            f"cannot load the {manifest['format']} export in {folder}: {type(e).__name__}: "
            f"{str(e).strip().splitlines()[0][:300] if str(e).strip() else ''}; "
            f"re-run `reasonkd export` for it"
        ) from e
    model = ExportedLM(inner, manifest, folder)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


register_folder_loader("export", detect_format, load_exported)
