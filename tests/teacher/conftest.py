"""Fixtures of tests/teacher: a small items file and the scripted backend class."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _teacher_cases import ScriptedBackend, write_items  # noqa: E402


@pytest.fixture
def items_file(tmp_path):
    return write_items(tmp_path / "items.jsonl")


@pytest.fixture
def scripted():
    return ScriptedBackend
