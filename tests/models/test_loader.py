"""Model loading: folders, GGUF cache integrity, hub ids offline, aliases."""

import time

import pytest
import torch

from reasonkd.errors import ReasonkdError
from reasonkd.models import cache, load_model, resolve
from reasonkd.models.generation import apply_chat, generate_batch
from reasonkd.models.registry import ALIASES, ModelSpec


def test_load_folder_and_generate(tiny_llama_dir):
    model, tok = load_model(str(tiny_llama_dir))
    prompts = [apply_chat(tok, "how many legs"), apply_chat(tok, "a farmer has 12 chickens and 3 rabbits")]
    outs = generate_batch(model, tok, prompts, max_new_tokens=5, progress=False)
    assert len(outs) == 2 and all(o.new_tokens <= 5 for o in outs)
    assert outs[0].prompt == prompts[0]
    # batched greedy equals one-by-one greedy (left padding handled)
    single = generate_batch(model, tok, prompts[1:], max_new_tokens=5, progress=False)
    assert single[0].text == outs[1].text


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ReasonkdError, match="no config.json"):
        resolve(str(tmp_path))


def test_unknown_name_lists_aliases():
    with pytest.raises(ReasonkdError, match="smollm2-135m"):
        resolve("definitely-not-a-model")


def test_hub_id_offline_fails_fast(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    t = time.time()
    with pytest.raises(ReasonkdError, match="local"):
        resolve("someorg/some-model-xyz")
    assert time.time() - t < 10


def test_hub_id_unreachable_fails_fast(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    t = time.time()
    with pytest.raises(ReasonkdError, match="pass --model DIR"):
        resolve("someorg/some-model-xyz")
    assert time.time() - t < 10


def test_alias_not_installed_says_pull(monkeypatch):
    spec = ModelSpec(
        alias="ghost",
        hf_name="x/y",
        arch="llama",
        params=1,
        vocab_size=1,
        tokenizer_family="x",
        license="-",
        packages=("ghost-pkg==1",),
        parts=(("ghost_pkg_not_here", "f.gguf"),),
    )
    monkeypatch.setitem(ALIASES, "ghost", spec)
    with pytest.raises(ReasonkdError, match="reasonkd models pull ghost"):
        resolve("ghost")


def _fake_gguf_spec(tmp_path, monkeypatch, tiny_llama_dir):
    """A registered alias whose 'GGUF' is the tiny model exported to GGUF by gguf-py is heavy;
    instead fake the conversion step and test the cache logic around it."""
    spec = ModelSpec(
        alias="tinyfake",
        hf_name="x/y",
        arch="llama",
        params=1,
        vocab_size=1,
        tokenizer_family="a",
        license="-",
        packages=(),
        parts=(("reasonkd", "__init__.py"),),
    )
    monkeypatch.setitem(ALIASES, "tinyfake", spec)
    calls = []

    def fake_convert(s):
        import shutil

        from reasonkd.utils.io import atomic_dir, sha256_file, write_json

        calls.append(s.alias)
        out = cache.hf_dir(s)
        with atomic_dir(out) as tmp:
            for f in tiny_llama_dir.iterdir():
                shutil.copy(f, tmp / f.name)
            files = {p.name: {"size": p.stat().st_size, "sha256": sha256_file(p)} for p in sorted(tmp.iterdir())}
            write_json(tmp / cache.MANIFEST, {"files": files})
        return out

    monkeypatch.setattr(cache, "convert_to_hf", fake_convert)
    return spec, calls


def test_corrupted_cache_is_detected_and_rebuilt(tmp_path, monkeypatch, tiny_llama_dir):
    spec, calls = _fake_gguf_spec(tmp_path, monkeypatch, tiny_llama_dir)
    import gc

    model, _ = load_model("tinyfake")
    assert calls == ["tinyfake"]
    load_model("tinyfake")
    assert calls == ["tinyfake"], "second load must reuse the cache"
    # weights are mmapped from the safetensors file: copy them before corrupting it
    ref = {k: v.clone() for k, v in model.state_dict().items()}
    del model
    gc.collect()
    st = cache.hf_dir(spec) / "model.safetensors"
    with open(st, "r+b") as f:  # truncate
        f.truncate(st.stat().st_size // 2)
    assert "truncated" in cache.verify_cache(cache.hf_dir(spec))
    model2, _ = load_model("tinyfake")
    assert calls == ["tinyfake", "tinyfake"], "a truncated cache must be rebuilt"
    for n, b in model2.state_dict().items():
        assert torch.equal(ref[n], b), n


def test_split_gguf_assembly_verifies_size_and_hash(tmp_path, monkeypatch):
    import hashlib
    import types

    parts_dir = tmp_path / "pkg"
    (parts_dir / "data").mkdir(parents=True)
    chunks = [b"GGUF" + b"a" * 100, b"b" * 50, b"c" * 7]
    for i, c in enumerate(chunks, 1):
        (parts_dir / "data" / f"part{i:02d}.bin").write_bytes(c)
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    spec = ModelSpec(
        alias="split",
        hf_name="x/y",
        arch="llama",
        params=1,
        vocab_size=1,
        tokenizer_family="a",
        license="-",
        packages=(),
        parts=tuple(("fakepkg", f"data/part{i:02d}.bin") for i in (1, 2, 3)),
        gguf_sha256=sha,
    )
    fake = types.SimpleNamespace(submodule_search_locations=[str(parts_dir)])
    monkeypatch.setattr(cache.importlib.util, "find_spec", lambda name: fake)
    out = cache.gguf_path(spec)
    assert out.read_bytes() == b"".join(chunks)
    with open(out, "r+b") as f:
        f.truncate(10)
    assert cache.gguf_path(spec).read_bytes() == b"".join(chunks)  # rebuilt
    bad = ModelSpec(**{**spec.__dict__, "alias": "split2", "gguf_sha256": "0" * 64})
    with pytest.raises(ReasonkdError, match="SHA-256"):
        cache.gguf_path(bad)
    assert not (cache.model_dir(bad) / "gguf" / "model.gguf").exists()


def test_registry_has_required_aliases():
    for a in ("smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"):
        assert a in ALIASES


def test_models_list_cli(capsys):
    from reasonkd.cli import main

    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "smollm2-135m" in out and "134,515,008" in out and "151,936" in out and "49,152" in out


@pytest.mark.slow
@pytest.mark.parametrize(
    "alias,params,vocab", [("smollm2-135m", 134_515_008, 49_152), ("qwen2.5-coder-0.5b", 630_167_424, 151_936)]
)
def test_real_alias_loads(alias, params, vocab):
    model, tok = load_model(alias)
    assert sum(p.numel() for p in model.parameters()) == params
    assert model.config.vocab_size == vocab
