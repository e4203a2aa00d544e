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

    return build_tiny_model(tmp_path_factory.mktemp("tiny_qwen"), arch="qwen2", tokenizer="b", hidden=96,
                            layers=3, heads=6, kv_heads=2, seed=1)


@pytest.fixture(autouse=True)
def _isolated_home(request, tmp_path, monkeypatch):
    """Fast tests get their own REASONKD_HOME so none touches the user's model cache;
    `slow` tests use the real cache (they load the shipped models)."""
    if request.node.get_closest_marker("slow") is None:
        monkeypatch.setenv("REASONKD_HOME", str(tmp_path / "reasonkd_home"))
