"""The one place that decides what an OpenVINO engine asks the CPU plugin for: precision settings from
(dtype asked, weights, does this CPU compute bf16 natively).

    s = plugin_settings("bfloat16", weights="fp32", native_bf16=True)
    s.props      # {"INFERENCE_PRECISION_HINT": "bf16", "KV_CACHE_PRECISION": "bf16"}
    s.describe() # "bf16 compute, bf16 KV cache"
    s.note       # why it differs from what was asked ("" when it does not)

The rule, with the plugin's constraint it follows (OpenVINO GenAI 2026.4 ContinuousBatchingPipeline on the
CPU plugin; checked by compiling each row on an AVX-512-BF16 CPU, tests/models/test_ov_settings.py):

| asked      | weights | CPU bf16 | compute | KV cache        | why |
|------------|---------|----------|---------|-----------------|-----|
| float32    | fp32    | any      | f32     | f32             | greedy tokens match PyTorch fp32 (the plugin's default KV cache is u8) |
| bfloat16   | fp32    | native   | bf16    | bf16            | the paged-attention kernel refuses an f32 KV cache under bf16 compute ("expect kvcache type bf16") |
| bfloat16   | fp32    | none     | f32     | f32             | no bf16 kernels: bf16 would be emulated, slower than f32 (a note says so) |
| float32    | int8    | any      | f32     | plugin default  | INT8 teacher traces: memory first, the plugin's compressed KV cache |
| bfloat16   | int8    | native   | bf16    | bf16            | as fp32 weights |
| bfloat16   | int8    | none     | f32     | plugin default  | as float32 |
| any        | export  | any      | as the rows above for fp32 | | a `reasonkd export` folder holds its own weights |

Never bf16 compute with an f32 KV cache: that is the combination the plugin refuses. `auto` is resolved
by reasonkd.utils.hardware before it gets here (bf16 where the CPU has native bf16 and measures faster).
"""

from __future__ import annotations

from dataclasses import dataclass

from reasonkd.errors import ReasonkdError

COMPUTE = {"float32": "f32", "bfloat16": "bf16"}
WEIGHTS = ("fp32", "int8", "export")


@dataclass(frozen=True)
class PluginSettings:
    compute: str
    """"f32" | "bf16": the plugin's INFERENCE_PRECISION_HINT."""
    kv_cache: str | None
    """"f32" | "bf16" | None (the plugin's default, u8 on CPU): KV_CACHE_PRECISION."""
    note: str = ""
    """Why the settings differ from what was asked (empty when they do not)."""

    @property
    def props(self) -> dict[str, str]:
        props = {"INFERENCE_PRECISION_HINT": self.compute}
        if self.kv_cache:
            props["KV_CACHE_PRECISION"] = self.kv_cache
        return props

    def describe(self) -> str:
        return f"{self.compute} compute, {self.kv_cache or 'plugin-default'} KV cache"


def plugin_settings(dtype: str, weights: str = "fp32", native_bf16: bool = False) -> PluginSettings:
    """The CPU plugin settings for `dtype` ("float32" | "bfloat16", already resolved from auto) on
    `weights` ("fp32" | "int8" | "export"), given whether this CPU has native bf16 (see the table above)."""
    if dtype not in COMPUTE:
        raise ReasonkdError(f"--engine openvino computes in float32 or bfloat16; got dtype {dtype!r}")
    if weights not in WEIGHTS:
        raise ReasonkdError(f"OpenVINO weights must be one of {', '.join(WEIGHTS)}; got {weights!r}")
    note = ""
    if dtype == "bfloat16" and not native_bf16:
        dtype, note = "float32", "bf16 asked, but this CPU has no native bf16 (no AVX-512-BF16 / AMX): f32 compute"
    if dtype == "bfloat16":
        return PluginSettings("bf16", "bf16", note)
    return PluginSettings("f32", None if weights == "int8" else "f32", note)


def valid(props: dict[str, str]) -> bool:
    """Whether the CPU plugin accepts this combination in a continuous-batching pipeline: bf16 compute
    needs a bf16 (or the plugin's default) KV cache."""
    return not (props.get("INFERENCE_PRECISION_HINT") == "bf16" and props.get("KV_CACHE_PRECISION") == "f32")
