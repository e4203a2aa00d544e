"""Precision from the hardware: `auto` on mocked machines, explicit overrides, the probe's cache, and the
choice recorded in saved configs and reports (no real hardware needed)."""

import json

import pytest
import torch
import yaml

from reasonkd.config import from_dict, load_config, save_config
from reasonkd.errors import ConfigError
from reasonkd.utils import hardware

AVX2_CPUINFO = """processor	: 0
model name	: AMD EPYC 7B13
flags		: fpu sse sse2 avx f16c fma avx2 bmi2
"""
BF16_CPUINFO = """processor	: 0
model name	: Intel(R) Xeon(R) Platinum 8480+
flags		: fpu sse avx fma avx2 avx512f avx512_vnni avx512_bf16 avx512_fp16 amx_tile amx_bf16
"""
ARM_CPUINFO = """processor	: 0
Features	: fp asimd evtstrm aes sve bf16 i8mm
"""


def machine(monkeypatch, cpuinfo: str, arch: str = "x86_64", gflops=None, gpu=None, gpu_bf16=False):
    """Make `probe()` return a machine built from this cpuinfo text (nothing measured)."""
    model, flags = hardware.read_cpu(cpuinfo)
    m = hardware.Machine(
        cpu_model=model,
        arch=arch,
        flags=flags,
        cores=2,
        torch=torch.__version__,
        gpu=gpu,
        gpu_bf16=gpu_bf16,
        gflops={"cpu": gflops or {"float32": 90.0, "bfloat16": 0.6}},
    )
    monkeypatch.setattr(hardware, "_machine", m)
    monkeypatch.setattr(hardware, "_choices", {})
    return m


@pytest.fixture
def avx2(monkeypatch):
    return machine(monkeypatch, AVX2_CPUINFO)


@pytest.fixture
def native_bf16(monkeypatch):
    return machine(monkeypatch, BF16_CPUINFO, gflops={"float32": 90.0, "bfloat16": 400.0})


def test_cpuinfo_flags_that_matter():
    assert hardware.read_cpu(AVX2_CPUINFO) == ("AMD EPYC 7B13", ["avx2", "fma"])
    _, flags = hardware.read_cpu(BF16_CPUINFO)
    assert {"avx512f", "avx512_bf16", "amx_bf16"} <= set(flags) and "sse" not in flags
    _, arm = hardware.read_cpu(ARM_CPUINFO)
    assert "bf16" in arm and "asimd" in arm


def test_avx2_only_cpu_gets_fp32_and_no_autocast(avx2):
    dtype, why = hardware.resolve_dtype("auto")
    assert dtype is torch.float32
    assert why == "this CPU has no native bf16 (AVX2 only); fp32 is 150x faster here"
    assert hardware.resolve_autocast("auto") == (False, why)
    assert hardware.choices()["autocast"]["value"] is False and hardware.choices()["dtype"]["value"] == "float32"


def test_native_bf16_cpu_gets_bf16_and_autocast(native_bf16):
    dtype, why = hardware.resolve_dtype("auto", "cpu")
    assert dtype is torch.bfloat16 and "native bf16 (AVX-512 + AMX-BF16)" in why
    assert hardware.resolve_autocast("auto")[0] is True


def test_bf16_flag_but_slow_kernels_falls_back_to_fp32(monkeypatch):
    machine(monkeypatch, BF16_CPUINFO, gflops={"float32": 90.0, "bfloat16": 20.0})  # the matmul breaks the tie
    dtype, why = hardware.resolve_dtype("auto")
    assert dtype is torch.float32 and "measured slower" in why


def test_arm_with_bf16_and_gpus(monkeypatch):
    machine(monkeypatch, ARM_CPUINFO, arch="aarch64", gflops={"float32": 50.0, "bfloat16": 90.0})
    assert hardware.resolve_dtype("auto")[0] is torch.bfloat16
    machine(monkeypatch, AVX2_CPUINFO, gpu="Some GPU", gpu_bf16=True)
    assert hardware.resolve_dtype("auto", "cuda")[0] is torch.bfloat16
    assert hardware.resolve_autocast("auto", "cuda:0")[0] is True
    assert hardware.resolve_dtype("auto", "cpu")[0] is torch.float32  # the same machine's CPU
    machine(monkeypatch, AVX2_CPUINFO, gpu="Old GPU", gpu_bf16=False)
    assert hardware.resolve_dtype("auto", "cuda")[0] is torch.float16
    assert hardware.resolve_autocast("auto", "cuda")[0] is False


def test_explicit_values_win(avx2, native_bf16):
    assert hardware.resolve_dtype("float32") == (torch.float32, "float32 set explicitly")
    assert hardware.resolve_dtype("bf16")[0] is torch.bfloat16
    assert hardware.resolve_autocast(False) == (False, "off, set explicitly")
    assert hardware.resolve_autocast("true")[0] is True
    with pytest.raises(ConfigError, match="dtype must be auto"):
        hardware.resolve_dtype("float8")
    with pytest.raises(ConfigError, match="bf16_autocast must be true, false or auto"):
        hardware.resolve_autocast("maybe")


def test_distill_recipe_resolves_auto_once(monkeypatch):
    from reasonkd.distill.recipe import DistillRecipe

    machine(monkeypatch, AVX2_CPUINFO)
    r = from_dict(DistillRecipe, {"student": "s"})
    assert r.bf16_autocast is False and "no native bf16" in r.autocast_reason
    assert from_dict(DistillRecipe, {"bf16_autocast": True}).bf16_autocast is True  # explicit wins
    machine(monkeypatch, BF16_CPUINFO, gflops={"float32": 90.0, "bfloat16": 400.0})
    assert from_dict(DistillRecipe, {"bf16_autocast": "auto"}).bf16_autocast is True
    assert from_dict(DistillRecipe, {"bf16_autocast": False}).bf16_autocast is False
    with pytest.raises(ConfigError, match="bf16_autocast must be true, false or auto"):
        from_dict(DistillRecipe, {"bf16_autocast": "sometimes"})


def test_choice_is_written_into_saved_configs(avx2, tmp_path):
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.pipeline.config import DemoConfig, demo_distill_recipe

    cfg = DemoConfig()
    assert cfg.dtype == "auto" and demo_distill_recipe().bf16_autocast is False  # the defaults: auto, resolved here
    text = save_config(cfg, tmp_path).read_text()
    why = "this CPU has no native bf16 (AVX2 only)"
    assert f"# precision here: dtype: float32 — {why}; fp32 is 150x faster here" in text
    assert "# precision here: bf16 autocast: off — this CPU has no native bf16 (AVX2 only)" in text
    from reasonkd.pipeline.config import load_demo_config
    from reasonkd.pipeline.demo import distill_recipe

    loaded = load_demo_config()  # defaults -> dict -> config again: "auto" is still auto, with its reason
    assert loaded.autocast_reason.startswith(why) and distill_recipe(loaded, tmp_path).autocast_reason.startswith(why)
    assert load_config(DemoConfig, tmp_path / "config.yaml") == cfg  # comments: it loads back unchanged
    explicit = save_config(
        DemoConfig(dtype="bfloat16", distill=from_dict(DistillRecipe, {"bf16_autocast": True})), tmp_path, "x.yaml"
    ).read_text()
    assert "dtype: bfloat16 — bfloat16 set explicitly" in explicit
    assert "bf16 autocast: on — on, set explicitly" in explicit
    recipe_text = save_config(from_dict(DistillRecipe, {"student": "s"}), tmp_path, "distill.yaml").read_text()
    assert "bf16 autocast: off — this CPU has no native bf16" in recipe_text
    assert yaml.safe_load(recipe_text)["bf16_autocast"] is False


def test_choice_is_shown_in_the_report(avx2, tmp_path):
    from reasonkd.eval.report import write_report

    samples = [
        {
            "idx": i,
            "id": f"q{i}",
            "sample": 0,
            "prompt": "q",
            "completion": "#### 1",
            "extracted": {},
            "verdict": v,
            "reference": "1",
        }
        for i, v in enumerate([1, 0, 1])
    ]
    r = {
        "label": "student",
        "model": "student",
        "kind": "model",
        "params": 1e8,
        "throughput": {},
        "cases": [],
        "tasks": {"gsm8k": {"metrics": {"accuracy": 2 / 3, "ci": [0.3, 1.0], "n": 3}, "samples": samples}},
    }
    r["dtype"], r["precision"] = hardware.auto_choice("cpu")
    paths = write_report([r], tmp_path, notes=["bf16 autocast: off — this CPU has no native bf16 (AVX2 only)"])
    html = paths["html"].read_text()
    assert "dtype: float32 — this CPU has no native bf16 (AVX2 only); fp32 is 150x faster here" in html
    assert "bf16 autocast: off — this CPU has no native bf16 (AVX2 only)" in html
    assert json.loads(paths["json"].read_text())["notes"][0].startswith("dtype: float32")
    assert "_dtype: float32" in paths["markdown"].read_text()


def test_loader_resolves_auto(tiny_llama_dir, monkeypatch):
    from reasonkd.models import load_model

    machine(monkeypatch, AVX2_CPUINFO)
    assert next(load_model(str(tiny_llama_dir), dtype="auto")[0].parameters()).dtype is torch.float32
    machine(monkeypatch, BF16_CPUINFO, gflops={"float32": 90.0, "bfloat16": 400.0})
    assert next(load_model(str(tiny_llama_dir), dtype="auto")[0].parameters()).dtype is torch.bfloat16
    assert next(load_model(str(tiny_llama_dir), dtype="float32")[0].parameters()).dtype is torch.float32


@pytest.mark.real_hardware  # the probe's own cache, not the figures tests/conftest.py pins
def test_probe_is_measured_once_per_machine_and_cached(monkeypatch, tmp_path):
    calls = []
    figures = {"cpu": {"float32": 50.0, "bfloat16": 1.0}}
    monkeypatch.setattr(hardware, "_measure", lambda gpu: calls.append(1) or figures)
    monkeypatch.setattr(hardware, "_machine", None)
    m = hardware.probe()
    assert calls == [1] and m.gflops["cpu"]["float32"] == 50.0
    assert hardware.probe() is m and calls == [1]  # once per process
    monkeypatch.setattr(hardware, "_machine", None)
    hardware.probe()
    assert calls == [1]  # a new process reads REASONKD_HOME/hardware/<machine>.json
    (cached,) = hardware.cache_dir().glob("*.json")
    cached.write_text("{not json")
    monkeypatch.setattr(hardware, "_machine", None)
    assert hardware.probe().gflops["cpu"]["float32"] == 50.0 and calls == [1, 1]  # damaged: measured again


def test_matmul_gflops_is_positive():
    assert hardware.matmul_gflops("float32", n=32, budget_s=0.001) > 0


def test_every_layer_finds_the_same_home(monkeypatch, tmp_path):
    """The hardware figures, the models and the engine conversions live under one REASONKD_HOME rule:
    $REASONKD_HOME, else $XDG_CACHE_HOME/reasonkd, else ~/.cache/reasonkd."""
    from reasonkd.models import cache

    monkeypatch.delenv("REASONKD_HOME", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hardware.cache_dir() == tmp_path / "xdg" / "reasonkd" / "hardware"
    assert cache.reasonkd_home() == tmp_path / "xdg" / "reasonkd"
    monkeypatch.setenv("REASONKD_HOME", str(tmp_path / "home"))
    assert hardware.cache_dir().parent == cache.reasonkd_home() == tmp_path / "home"
