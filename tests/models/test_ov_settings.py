"""The OpenVINO precision table (reasonkd.models.engines.ov_settings): every (dtype, weights, CPU) choice
gives a combination the CPU plugin accepts, and the rows the docstring promises."""

import itertools

import pytest

from reasonkd.errors import ReasonkdError
from reasonkd.models.engines.ov_settings import plugin_settings, valid


@pytest.mark.parametrize(
    "dtype,weights,native", list(itertools.product(("float32", "bfloat16"), ("fp32", "int8", "export"), (True, False)))
)
def test_every_choice_is_a_combination_the_plugin_accepts(dtype, weights, native):
    s = plugin_settings(dtype, weights, native)
    assert valid(s.props), s.props
    assert s.props["INFERENCE_PRECISION_HINT"] in ("f32", "bf16")
    if s.compute == "bf16":  # the refused combination never comes out of the table
        assert s.props.get("KV_CACHE_PRECISION") in (None, "bf16")
        assert native and dtype == "bfloat16"


def test_rows():
    assert plugin_settings("float32", "fp32", True).props == {
        "INFERENCE_PRECISION_HINT": "f32",
        "KV_CACHE_PRECISION": "f32",
    }
    assert plugin_settings("bfloat16", "fp32", True).props == {
        "INFERENCE_PRECISION_HINT": "bf16",
        "KV_CACHE_PRECISION": "bf16",
    }
    assert plugin_settings("float32", "int8", False).props == {"INFERENCE_PRECISION_HINT": "f32"}
    slow = plugin_settings("bfloat16", "fp32", False)  # no native bf16: f32, and the note says why
    assert slow.compute == "f32" and slow.kv_cache == "f32" and "no native bf16" in slow.note
    assert plugin_settings("float32", "export", True).describe() == "f32 compute, f32 KV cache"
    assert plugin_settings("bfloat16", "int8", True).describe() == "bf16 compute, bf16 KV cache"


def test_refused_combination_is_invalid():
    assert not valid({"INFERENCE_PRECISION_HINT": "bf16", "KV_CACHE_PRECISION": "f32"})


def test_bad_input():
    with pytest.raises(ReasonkdError, match="float32 or bfloat16"):
        plugin_settings("float16")
    with pytest.raises(ReasonkdError, match="weights"):
        plugin_settings("float32", "int4")
