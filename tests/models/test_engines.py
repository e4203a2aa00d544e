"""Generation engines on tiny random models: openvino decodes like hf (greedy tokens, stop strings, max
tokens), seeded sampling is reproducible, the IR cache rebuilds a damaged conversion, and a missing export
extra gives one clear error. Conversions are shared by the tests of this module (one per model)."""

import builtins
import logging

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.models.engines import EXPORT_FIX, make_engine, resolve_engine
from reasonkd.models.engines.base import cut_at_stop
from reasonkd.models.generation import apply_chat

pytest.importorskip("openvino_genai")

QUESTIONS = ["the farmer has chickens and rabbits", "how many legs", "def sum list", "x = 3", "apples pens store"]


def lively(src, out, scale: float):
    """The tiny model with larger weights (tiny_models.lively_model)."""
    from tiny_models import lively_model

    return lively_model(src, out, scale)


@pytest.fixture(scope="module")
def ov_home(tmp_path_factory):
    return tmp_path_factory.mktemp("ov_home")


@pytest.fixture
def home(ov_home, monkeypatch):
    monkeypatch.setenv("REASONKD_HOME", str(ov_home))
    return ov_home


@pytest.fixture(scope="module")
def lively_dirs(tiny_llama_dir, tiny_qwen_dir, tmp_path_factory):
    return {
        "llama": lively(tiny_llama_dir, tmp_path_factory.mktemp("lively_llama"), 0.3),
        "qwen": lively(tiny_qwen_dir, tmp_path_factory.mktemp("lively_qwen"), 0.3),
    }


@pytest.fixture(scope="module", params=["llama", "qwen"])
def pair(request, lively_dirs, ov_home):
    """(folder, hf engine, openvino engine) per tiny architecture."""
    mp = pytest.MonkeyPatch()
    mp.setenv("REASONKD_HOME", str(ov_home))
    folder = lively_dirs[request.param]
    hf = make_engine("hf", str(folder), dtype="float32")
    ov = make_engine("openvino", str(folder), dtype="float32")  # module scope: before the pinned machine
    yield folder, hf, ov
    mp.undo()


def prompts(tok, n=None):
    return [apply_chat(tok, q) for q in QUESTIONS[:n]]


def test_greedy_tokens_identical(pair):
    _, hf, ov = pair
    a = hf.generate(prompts(hf.tokenizer), max_new_tokens=24)
    b = ov.generate(prompts(ov.tokenizer), max_new_tokens=24)
    assert len({o.text for o in a}) > 1  # the model says different things to different prompts
    for x, y in zip(a, b):
        assert (y.text, y.new_tokens, y.finished, y.prompt_tokens) == (
            x.text,
            x.new_tokens,
            x.finished,
            x.prompt_tokens,
        )
    assert ov.stats["engine"] == "openvino" and ov.stats["precision"] == "fp32" and ov.stats["new_tokens"] > 0


def test_fp32_conversion_keeps_weights_uncompressed(pair):
    _, _, ov = pair
    types = ov.conversion["weight_types"]
    assert set(types) == {"f32"}, types
    assert ov.conversion["weights"] == "fp32" and ov.load_seconds > 0


def test_max_tokens(pair):
    _, hf, ov = pair
    for engine in (hf, ov):
        outs = engine.generate(prompts(engine.tokenizer), max_new_tokens=5)
        assert all(o.new_tokens <= 5 for o in outs)
        assert all(o.finished or o.new_tokens == 5 for o in outs)


def test_stop_strings_cut_alike(pair):
    _, hf, ov = pair
    free = hf.generate(prompts(hf.tokenizer), max_new_tokens=24)
    text = max((o.text for o in free), key=len)
    stop = text[len(text) // 2 : len(text) // 2 + 2]  # a string the model does produce
    assert stop.strip()
    a = hf.generate(prompts(hf.tokenizer), max_new_tokens=24, stop=[stop])
    b = ov.generate(prompts(ov.tokenizer), max_new_tokens=24, stop=[stop])
    assert [o.text for o in a] == [o.text for o in b]
    assert [o.new_tokens for o in a] == [o.new_tokens for o in b]
    assert any(o.finished and stop in f.text for o, f in zip(b, free))
    assert all(stop not in o.text for o in b)


def test_seeded_sampling_reproducible(pair):
    _, hf, ov = pair
    for engine in (hf, ov):
        ps = prompts(engine.tokenizer, 2) * 2  # a repeated prompt samples its own trace
        first = engine.generate(ps, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
        again = engine.generate(ps, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=7)
        other = engine.generate(ps, max_new_tokens=16, temperature=1.0, top_p=0.9, seed=8)
        assert [o.text for o in first] == [o.text for o in again]
        assert [o.text for o in first] != [o.text for o in other]
    sampled = ov.generate(prompts(ov.tokenizer, 1) * 2, max_new_tokens=16, temperature=1.0, seed=3)
    assert sampled[0].text != sampled[1].text


def test_cut_at_stop():
    assert cut_at_stop("a b\n\nc", ["\n\n"]) == ("a b", True)
    assert cut_at_stop("abc", ["x", "b", "c"]) == ("a", True)
    assert cut_at_stop("abc", []) == ("abc", False)


def test_corrupted_conversion_rebuilt(lively_dirs, home, caplog):
    from reasonkd.models.engines.ov_convert import check_converted, ensure_converted

    src = str(lively_dirs["llama"])  # usually converted already by the `pair` fixture (same REASONKD_HOME)
    ensure_converted(src)
    folder, info = ensure_converted(src)
    assert check_converted(folder) is None and not info["converted"]  # cached: converted once per weights
    xml = folder / "openvino_model.xml"  # same size, other bytes: caught by the SHA-256 of small files
    good = xml.read_bytes()
    xml.write_bytes(good.replace(b"<", b"[", 3))
    assert "SHA-256" in check_converted(folder)
    xml.write_bytes(good)
    bin_ = folder / "openvino_model.bin"
    bin_.write_bytes(bin_.read_bytes()[:1000])  # a truncated copy
    assert "bytes" in check_converted(folder)
    with caplog.at_level(logging.WARNING):
        engine = make_engine("openvino", src)
    assert "damaged" in caplog.text and engine.conversion["converted"]
    assert check_converted(folder) is None
    out = engine.generate([apply_chat(engine.tokenizer, "x = 3")], max_new_tokens=4)
    assert out[0].new_tokens > 0
    (folder / "manifest.json").write_text("{not json")
    assert "unreadable" in check_converted(folder)


def test_new_weights_new_conversion(tiny_llama_dir, lively_dirs, home):
    from reasonkd.models.engines.ov_convert import cache_folder, fingerprint

    # a student re-trained in the same folder gets other weights, so another cache folder
    assert fingerprint(tiny_llama_dir) != fingerprint(lively_dirs["llama"])
    assert cache_folder(fingerprint(tiny_llama_dir), False) != cache_folder(fingerprint(lively_dirs["llama"]), False)
    assert cache_folder(fingerprint(tiny_llama_dir), False) != cache_folder(fingerprint(tiny_llama_dir), True)


def test_missing_export_extra_names_the_fix(tiny_llama_dir, monkeypatch):
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("openvino_genai"):
            raise ImportError("No module named 'openvino_genai'")
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ReasonkdError) as e:
        make_engine("openvino", str(tiny_llama_dir))
    assert EXPORT_FIX in str(e.value) and "openvino_genai" in str(e.value)


def test_resolve_engine(tiny_llama_dir, monkeypatch):
    assert resolve_engine("hf") == "hf"
    assert resolve_engine("auto", "cpu", str(tiny_llama_dir)) == "openvino"  # the export extra is installed
    assert resolve_engine("auto", "cuda") == "hf"  # no vllm here
    with pytest.raises(ReasonkdError, match="choose one of"):
        resolve_engine("onnx")
    import importlib.util

    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    assert resolve_engine("auto", "cpu", str(tiny_llama_dir)) == "hf"


def test_vllm_missing_is_clear(tiny_llama_dir):
    pytest.importorskip("torch")
    import importlib.util

    if importlib.util.find_spec("vllm"):
        pytest.skip("vllm is installed here")
    with pytest.raises(ReasonkdError, match="reasonkd\\[vllm\\]"):
        make_engine("vllm", str(tiny_llama_dir))


def test_compile_refusal_is_an_error_not_a_reconversion(lively_dirs, home, monkeypatch):
    """A plugin that refuses the settings stops with what was asked, what it said and the fix; the
    conversion (whose manifest checks out) is not built again."""
    import openvino_genai

    from reasonkd.models.engines import openvino as ov_engine

    src = str(lively_dirs["llama"])
    calls = []
    real = ov_engine.ensure_converted

    def counting(*a, **k):
        calls.append(k)
        return real(*a, **k)

    def refuse(*a, **k):
        raise RuntimeError(
            "Exception from src/core/src/node.cpp:795:\nCheck 'key_cache_type == ov::element::bf16' "
            "failed: expect kvcache type bf16, current: f32 , f32"
        )

    monkeypatch.setattr(ov_engine, "ensure_converted", counting)
    monkeypatch.setattr(openvino_genai, "ContinuousBatchingPipeline", refuse)
    monkeypatch.setattr(ov_engine.hardware.probe(), "flags", ["avx2", "fma", "avx512f", "avx512_bf16"])
    with pytest.raises(ReasonkdError) as e:
        ov_engine.OpenVINOEngine(src, dtype="bfloat16")
    msg = str(e.value)
    assert "bf16 compute, bf16 KV cache" in msg and "expect kvcache type bf16" in msg and "dtype=float32" in msg
    assert len(calls) == 1 and not calls[0].get("rebuild")


@pytest.mark.real_hardware
def test_real_engine_at_every_precision_this_cpu_has(lively_dirs, home):
    """Compiles and generates with the real plugin at fp32 and, where this CPU has native bf16, at bf16
    (the combination `dtype: auto` picks there): no mocks, so CI exercises the bf16 path on such a CPU."""
    from reasonkd.utils import hardware

    src = str(lively_dirs["qwen"])
    dtypes = ["float32"] + (["bfloat16"] if hardware.probe().native_bf16 else [])
    for dtype in dtypes:
        engine = make_engine("openvino", src, dtype=dtype)
        assert ("bf16 compute" in engine.precision) == (dtype == "bfloat16")
        out = engine.generate([apply_chat(engine.tokenizer, "x = 3")], max_new_tokens=4)
        assert out[0].new_tokens > 0
        engine.close()
    if not hardware.probe().native_bf16:
        pytest.skip(f"fp32 only: this CPU ({hardware.probe().isa}) has no native bf16")


def test_engine_cache_evicts_least_recently_used(tmp_path, monkeypatch):
    """Above REASONKD_ENGINE_CACHE_GB the oldest-used conversions go; the new one and recent ones stay."""
    import os

    from reasonkd.errors import ReasonkdError
    from reasonkd.models.engines.ov_convert import RECENT_S, cache_limit_bytes, evict_conversions

    now, root = 1e9, tmp_path / "engines"
    folders = {}
    for name, age_h in [("old", 30), ("older", 50), ("recent", RECENT_S / 2 / 3600), ("new", 0)]:
        d = root / name
        d.mkdir(parents=True)
        (d / "openvino_model.bin").write_bytes(b"x" * 1000)
        os.utime(d, (now - age_h * 3600, now - age_h * 3600))
        folders[name] = d
    assert evict_conversions(folders["new"], 4000, now=now) == []  # at the limit: nothing goes
    assert evict_conversions(folders["new"], 2500, now=now) == [folders["older"], folders["old"]]
    assert sorted(p.name for p in root.iterdir()) == ["new", "recent"]
    # above the limit, but what is left was used within RECENT_S (or is the new one): it stays
    assert evict_conversions(folders["new"], 1, now=now + RECENT_S / 4) == []
    # once RECENT_S has passed since its use, it goes too
    assert evict_conversions(folders["new"], 1, now=now + RECENT_S) == [folders["recent"]]

    monkeypatch.setenv("REASONKD_ENGINE_CACHE_GB", "0")
    assert cache_limit_bytes() is None
    monkeypatch.setenv("REASONKD_ENGINE_CACHE_GB", "1.5")
    assert cache_limit_bytes() == 3 << 29
    monkeypatch.setenv("REASONKD_ENGINE_CACHE_GB", "lots")
    with pytest.raises(ReasonkdError, match="REASONKD_ENGINE_CACHE_GB='lots'"):
        cache_limit_bytes()


def test_conversion_on_a_full_disk_names_the_space_and_leaves_nothing(lively_dirs, home, monkeypatch):
    """OpenVINO's own error on a full disk is "basic_ios::clear: iostream error": it becomes one error naming
    the free and needed space and the cache setting; the half-written conversion is gone. A failure with
    space to spare keeps its own error."""
    import shutil
    from collections import namedtuple

    from reasonkd.errors import ReasonkdError
    from reasonkd.models.engines import ov_convert

    def fail(src, out, fp, int8):
        (out / "openvino_model.bin").write_bytes(b"\0" * 10)
        raise RuntimeError("basic_ios::clear: iostream error")

    monkeypatch.setattr(ov_convert, "convert", fail)
    usage = namedtuple("usage", "total used free")
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10, 10, 0))
    src = str(lively_dirs["llama"])
    with pytest.raises(ReasonkdError, match=r"0\.0 GiB free there.*REASONKD_ENGINE_CACHE_GB"):
        ov_convert.ensure_converted(src, rebuild=True)
    assert not any(p.name.endswith(".tmp") for p in ov_convert.cache_folder("x", False).parent.iterdir())
    monkeypatch.setattr(shutil, "disk_usage", real_usage)
    with pytest.raises(RuntimeError, match="iostream"):
        ov_convert.ensure_converted(src, rebuild=True)
