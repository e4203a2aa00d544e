"""Generation engines: one interface, several runtimes (hf, openvino, vllm), chosen by `--engine`.

    from reasonkd.models.engines import make_engine
    engine = make_engine("auto", "smollm2-135m")     # vllm on a GPU, openvino on a CPU with the export extra, else hf
    outs = engine.generate(prompts, max_new_tokens=256, temperature=0.0, top_p=1.0, seed=0, stop=None,
                           batch_size=16)             # list[reasonkd.models.generation.Completion], input order
    engine.stats                                       # engine, precision, load_seconds, new_tokens, tokens_per_s

The engines are adapters around maintained runtimes, not copies of a sampling
loop: hf wraps transformers `generate` (reasonkd.models.generation), openvino
drives OpenVINO GenAI's continuous-batching pipeline over a cached IR
conversion, vllm drives vLLM. See reasonkd.models.engines.base for the
contract (prompts already chat-formatted, stop strings, seeds, greedy).
"""

from __future__ import annotations

import importlib.util

from reasonkd.errors import ReasonkdError
from reasonkd.models.engines.base import EXPORT_FIX, Engine, cut_at_stop
from reasonkd.models.engines.hf import HFEngine
from reasonkd.models.engines.ov_convert import require_export_extra
from reasonkd.models.loader import resolve
from reasonkd.utils import hardware

ENGINES = ("hf", "openvino", "vllm", "auto")


def _gpu() -> bool:
    try:
        import torch  # lazy: only `auto` on device auto asks

        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - no usable torch CUDA means no GPU for us
        return False


def resolve_engine(name: str, device: str = "cpu", model: str | None = None) -> str:
    """The concrete engine `name` stands for: `auto` is vllm on a GPU (when installed), openvino on a CPU
    where the export extra is installed (and `model` is something it can convert), else hf."""
    if name not in ENGINES:
        raise ReasonkdError(f"--engine {name!r}: choose one of {', '.join(ENGINES)}")
    if name != "auto":
        return name
    if (device.startswith("cuda") or (device == "auto" and _gpu())) and importlib.util.find_spec("vllm"):
        return "vllm"
    if device.startswith("cuda"):
        return "hf"
    if all(importlib.util.find_spec(m) for m in ("openvino", "openvino_genai", "openvino_tokenizers")):
        if model is None:
            return "openvino"
        if resolve(model).kind in ("alias", "folder", "openvino"):
            return "openvino"
    return "hf"


def make_engine(
    name: str, model: str, *, dtype: str = "auto", device: str = "cpu", int8: bool = False, **kwargs
) -> Engine:
    """A ready engine for `model` (alias, folder, ...). `int8`: INT8 weights (openvino only; teacher traces)."""
    name = resolve_engine(name, device, model)
    if name == "hf":
        return HFEngine(model, dtype=dtype, device=device)
    if name == "openvino":
        if device not in ("cpu", "auto"):
            raise ReasonkdError(f"--engine openvino runs on the CPU; got --device {device}")
        if dtype not in ("auto", "float32", "fp32", "bfloat16", "bf16", None):
            raise ReasonkdError(f"--engine openvino computes in fp32 or bf16; --dtype {dtype} is for --engine hf")
        require_export_extra()
        from reasonkd.models.engines.openvino import OpenVINOEngine  # lazy: needs the export extra

        # auto: bf16 compute where this CPU has native bf16 (reasonkd.utils.hardware), else fp32
        torch_dtype, _ = hardware.resolve_dtype(dtype or "auto", "cpu")
        return OpenVINOEngine(model, dtype=hardware.dtype_name(torch_dtype), int8=int8, **kwargs)
    from reasonkd.models.engines.vllm import VLLMEngine  # lazy: imports vllm, GPU-only

    return VLLMEngine(model, dtype=dtype)


__all__ = ["ENGINES", "EXPORT_FIX", "Engine", "cut_at_stop", "make_engine", "resolve_engine"]
