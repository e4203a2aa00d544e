"""The demo ETA: reference rates scaled by figures measured here, cached per machine, said in `--plan`."""

import pytest

from reasonkd.pipeline import eta
from reasonkd.pipeline.config import DemoConfig
from reasonkd.utils import hardware


@pytest.fixture
def avx2(monkeypatch, tmp_path):
    # every test here owns its figures cache, slow ones too (those otherwise share the real home,
    # where an earlier `demo --plan` may have cached this machine's figures)
    monkeypatch.setenv("REASONKD_HOME", str(tmp_path / "reasonkd_home"))
    model, flags = hardware.read_cpu("model name\t: AMD EPYC\nflags\t\t: fma avx2\n")
    monkeypatch.setattr(
        hardware,
        "_machine",
        hardware.Machine(
            cpu_model=model,
            arch="x86_64",
            flags=flags,
            cores=2,
            torch="2",
            gflops={"cpu": {"float32": 90.0, "bfloat16": 1.0}},
        ),
    )
    monkeypatch.setattr(hardware, "_choices", {})


def fake_measure(monkeypatch, figures):
    monkeypatch.setattr(eta, "REFERENCE", {"machine": "the reference", "gen": 60.0, "train": 130.0})
    calls = []

    def measure(student, device, dtype, autocast, engine="hf"):
        calls.append((student, device, dtype, autocast))
        return dict(figures)

    monkeypatch.setattr(eta, "measure_here", measure)
    monkeypatch.setattr(eta, "_not_ready", lambda student: None)
    return calls


def test_rates_scale_with_the_measured_figures(avx2, monkeypatch):
    import torch

    calls = fake_measure(monkeypatch, {"gen": 120.0, "train": 65.0})
    cfg = DemoConfig(device="cpu", engine="hf")
    secs, lines = eta.machine_estimate(cfg)
    ref = eta.estimate(cfg)
    assert calls == [("smollm2-135m", "cpu", torch.float32, False)]  # the student, in the precision auto picks
    assert secs["traces"] == pytest.approx(ref["traces"] / 2)  # generation twice as fast here
    assert secs["sft"] == pytest.approx(ref["sft"] * 2)  # training half as fast
    assert any(line.startswith("machine figures: smollm2-135m float32: generation (hf) 120 tok/s") for line in lines)
    assert any("x2.00 (generation), x0.50 (training)" in line for line in lines)
    assert any("no native bf16 (AVX2 only)" in line for line in lines)
    # cached per machine: a second estimate measures nothing
    _, again = eta.machine_estimate(cfg)
    assert len(calls) == 1 and any("cached from" in line for line in again)
    assert list(hardware.cache_dir().glob("eta-*-smollm2-135m-cpu-hf-float32-noautocast-*.json"))


def test_a_larger_student_is_compared_with_its_own_reference_figure(avx2, monkeypatch):
    """The probe measures the student itself: a 0.5b student as fast here as on the reference machine
    (its probe = smollm2-135m's there x the 0.5b's RATES ratio) leaves the rates unscaled."""
    small, big = eta.RATES["smollm2-135m"], eta.RATES["qwen2.5-coder-0.5b"]
    fake_measure(monkeypatch, {"gen": 60.0 * big["gen"] / small["gen"], "train": 130.0 * big["train"] / small["train"]})
    cfg = DemoConfig(device="cpu", engine="hf", student="qwen2.5-coder-0.5b", teacher="qwen2.5-coder-1.5b")
    secs, lines = eta.machine_estimate(cfg)
    assert secs == pytest.approx(eta.estimate(cfg))
    assert any("tok/s for qwen2.5-coder-0.5b, so its rates x1.00 (generation), x1.00 (training)" in ln for ln in lines)
    # twice as fast here: every step twice as short, the teacher's too (same machine, same precision)
    fake_measure(
        monkeypatch, {"gen": 120.0 * big["gen"] / small["gen"], "train": 260.0 * big["train"] / small["train"]}
    )
    secs, _ = eta.machine_estimate(cfg, refresh=True)
    ref = eta.estimate(cfg)
    assert secs["traces"] == pytest.approx(ref["traces"] / 2) and secs["distill"] == pytest.approx(ref["distill"] / 2)


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_unmeasurable_student_falls_back_to_the_reference(avx2, monkeypatch):
    def broken(*a):
        raise RuntimeError("no such model")

    monkeypatch.setattr(eta, "measure_here", broken)
    monkeypatch.setattr(eta, "_not_ready", lambda student: None)
    cfg = DemoConfig(device="cpu")
    secs, lines = eta.machine_estimate(cfg)
    assert secs == eta.estimate(cfg)
    assert any("could not be measured here: RuntimeError: no such model" in line for line in lines)


def test_plan_says_which_machine_figures_it_used(avx2, monkeypatch, capsys):
    from reasonkd.cli import main

    fake_measure(monkeypatch, {"gen": 60.0, "train": 130.0})
    assert main(["demo", "--plan", "device=cpu", "engine=hf"]) == 0
    out = capsys.readouterr().out
    assert "machine: AMD EPYC (AVX2 only; flags: avx2 fma)" in out
    assert "machine figures: smollm2-135m float32" in out and "x1.00 (generation), x1.00 (training)" in out
    assert "precision: float32, bf16 autocast off" in out


def test_measure_here_on_a_tiny_model(tiny_llama_dir):
    import torch

    figures = eta.measure_here(str(tiny_llama_dir), "cpu", torch.float32, False)
    assert figures["gen"] > 0 and figures["train"] > 0


@pytest.mark.slow  # over 10 s on 2 cores: runs in the slow step (make test-slow)
def test_figures_taken_under_load_are_taken_again_when_quieter(avx2, monkeypatch):
    calls = fake_measure(monkeypatch, {"gen": 60.0, "train": 130.0})
    cfg = DemoConfig(device="cpu")
    monkeypatch.setattr(eta, "_load", lambda: 6.0)  # a crowded machine
    eta.machine_estimate(cfg)
    eta.machine_estimate(cfg)
    assert len(calls) == 1  # cached
    monkeypatch.setattr(eta, "_load", lambda: 0.5)  # quieter now: those figures are not the machine's
    _, lines = eta.machine_estimate(cfg)
    assert len(calls) == 2 and any("measured now" in line and "load 0.5 per core" in line for line in lines)


def test_reference_without_figures_uses_the_rates_unscaled(avx2, monkeypatch):
    fake_measure(monkeypatch, {"gen": 120.0, "train": 65.0})
    monkeypatch.setattr(eta, "REFERENCE", {"machine": "the reference", "gen": None, "train": None})
    cfg = DemoConfig(device="cpu", engine="hf")
    secs, lines = eta.machine_estimate(cfg)
    assert secs == eta.estimate(cfg) and any("rates are used unscaled" in line for line in lines)


def test_an_engine_that_cannot_compile_stops_the_demo_at_its_probe(avx2, monkeypatch, tmp_path):
    """The plugin's refusal surfaces from the ETA probe, before any step runs: the demo stops with the
    error and its fix instead of failing minutes later (or silently using the reference figures)."""
    from reasonkd.errors import ReasonkdError
    from reasonkd.pipeline.demo import run_demo

    def refused(*a, **k):
        raise ReasonkdError("OpenVINO cannot compile x with bf16 compute, bf16 KV cache: ... Fix: pass dtype=float32")

    monkeypatch.setattr(eta, "measure_here", refused)
    monkeypatch.setattr(eta, "_not_ready", lambda student: None)
    with pytest.raises(ReasonkdError, match="dtype=float32"):
        run_demo(DemoConfig(device="cpu", out=str(tmp_path / "demo")), log_fn=lambda *a: None)
    assert not (tmp_path / "demo" / "data").exists()  # no step ran: it stops at the probe, before step 1
