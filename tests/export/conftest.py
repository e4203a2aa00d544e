"""Export fixtures: a tiny model whose greedy tokens vary, and its three exports (built once per session).

The shared tiny random models (tests/conftest.py) answer every prompt with one
repeated token, which would make a greedy-parity check pass trivially; weights
drawn with std 0.3 give 19-23 distinct tokens in 24 steps.
"""

import pytest


def varied_copy(src, dst, std: float = 0.3, seed: int = 0):
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    shutil.copytree(src, dst)
    model = AutoModelForCausalLM.from_pretrained(dst)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, std, generator=g)
    model.save_pretrained(dst)
    return dst


@pytest.fixture(scope="session")
def varied_llama_dir(tiny_llama_dir, tmp_path_factory):
    return varied_copy(tiny_llama_dir, tmp_path_factory.mktemp("varied") / "llama")


@pytest.fixture(scope="session")
def varied_qwen_dir(tiny_qwen_dir, tmp_path_factory):
    return varied_copy(tiny_qwen_dir, tmp_path_factory.mktemp("varied") / "qwen", seed=1)


@pytest.fixture(scope="session")
def exports(varied_llama_dir, tmp_path_factory):
    """{'onnx', 'openvino', 'openvino-int8'} -> (folder, manifest) of the varied tiny llama."""
    from reasonkd.export.build import export_model

    root = tmp_path_factory.mktemp("exports")
    out = {}
    for name, fmt, int8 in [
        ("onnx", "onnx", False),
        ("openvino", "openvino", False),
        ("openvino-int8", "openvino", True),
    ]:
        folder = root / name
        manifest = export_model(
            str(varied_llama_dir), fmt, folder, int8=int8, parity_limit=4, accuracy_tokens=12, progress=False
        )
        out[name] = (folder, manifest)
    return out
