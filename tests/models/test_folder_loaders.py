"""Folder formats plug into load_model through register_folder_loader (models never imports export)."""

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.models import loader


def test_registered_loader_is_used(tmp_path, monkeypatch):
    (tmp_path / "weights.custom").write_text("x")
    monkeypatch.setattr(loader, "FOLDER_LOADERS", {})
    loaded = []

    class Model:
        pass

    def load(path, device="cpu"):
        loaded.append((path, device))
        return Model(), "tok"

    loader.register_folder_loader("custom", lambda p: "custom" if (p / "weights.custom").is_file() else None, load)
    assert loader.resolve(str(tmp_path)).kind == "custom"
    model, tok = loader.load_model(str(tmp_path))
    assert (type(model), tok, loaded) == (Model, "tok", [(str(tmp_path), "cpu")])
    assert model.reasonkd_source.kind == "custom"


def test_export_folder_without_its_loader_says_what_to_import(tmp_path, monkeypatch):
    (tmp_path / loader.EXPORT_MANIFEST).write_text("{}")
    monkeypatch.setattr(loader, "FOLDER_LOADERS", {})
    with pytest.raises(ReasonkdError, match="import reasonkd.export"):
        loader.resolve(str(tmp_path))


def test_importing_export_registers_it():
    import reasonkd.export  # noqa: F401

    assert "export" in loader.FOLDER_LOADERS
