"""Shared fixtures: tiny random models with offline tokenizers (no downloads).

`tiny_llama_dir` and `tiny_qwen_dir` use DIFFERENT tokenizers (flavours a/b),
so together they form a cross-tokenizer teacher/student pair.
"""

import os

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    from tiny_models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny_llama"), arch="llama", tokenizer="a")


@pytest.fixture(scope="session")
def tiny_qwen_dir(tmp_path_factory):
    from tiny_models import build_tiny_model

    return build_tiny_model(
        tmp_path_factory.mktemp("tiny_qwen"),
        arch="qwen2",
        tokenizer="b",
        hidden=96,
        layers=3,
        heads=6,
        kv_heads=2,
        seed=1,
    )


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path, monkeypatch):
    """Fast tests get their own REASONKD_HOME so none touches the user's model cache;
    `slow` tests use the real cache (they load the shipped models)."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("REASONKD_HOME", str(tmp_path / "reasonkd_home"))


@pytest.fixture(scope="session", autouse=True)
def _drop_temp_conversions(tmp_path_factory):
    """`slow` tests use the real REASONKD_HOME, so the OpenVINO conversions of the models they train in
    temporary folders would stay in the user's engine cache after the run (a 0.5b student: 2.4 GB each).
    At the end of the session, remove the conversions whose source folder was one of this run's temporary
    folders; conversions of the shipped models stay (the next run reuses them)."""
    yield
    import json
    import shutil

    from reasonkd.utils.paths import reasonkd_home

    base = str(tmp_path_factory.getbasetemp()) + os.sep
    root = reasonkd_home() / "engines" / "openvino"
    for d in root.glob("*") if root.is_dir() else []:
        try:
            source = json.loads((d / "manifest.json").read_text()).get("source", "")
        except (OSError, ValueError):
            continue
        if str(source).startswith(base):
            shutil.rmtree(d, ignore_errors=True)


PINNED_GFLOPS = {"cpu": {"float32": 90.0, "bfloat16": 0.6}}
"""What fast tests see as this machine's matmul speed: bf16 far slower than fp32, so `auto` is fp32."""


@pytest.fixture(autouse=True)
def _pinned_precision(request, _isolated_home, monkeypatch):
    """Fast tests run as on an AVX2-only CPU whatever CPU runs them: `dtype: auto` resolves to fp32 and
    bf16 autocast to off, in this process and in the commands tests start (through the hardware figures
    cached in their REASONKD_HOME). A test that mocks other capabilities sets its own machine
    (tests/core/test_hardware.py); `slow` tests and tests marked `real_hardware` use the real CPU."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("real_hardware"):
        return
    import json

    import torch

    from reasonkd.utils import hardware

    model, flags = hardware.read_cpu()
    cached = (
        hardware.cache_dir() / f"{hardware.machine_key(model, flags, None, torch.__version__)}"
        f"-v{hardware.PROBE_VERSION}.json"
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps({"gflops": PINNED_GFLOPS}))
    pinned = hardware.Machine(
        cpu_model="test CPU (pinned)",
        arch="x86_64",
        flags=["avx2", "fma"],
        cores=2,
        torch=torch.__version__,
        gflops=PINNED_GFLOPS,
    )
    monkeypatch.setattr(hardware, "_machine", pinned)
    monkeypatch.setattr(hardware, "_choices", {})
