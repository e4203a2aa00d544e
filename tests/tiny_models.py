"""Tiny random models and tokenizers built offline: the test suite's model fixtures (no downloads).

    from tiny_models import build_tiny_model          # tests/ is on sys.path (tests/conftest.py)
    build_tiny_model(tmp_path / "tiny", arch="llama", tokenizer="a")   # 2 layers, hidden 64

The two tokenizer flavours ("a", "b") are byte-level BPEs trained on the same
small reasoning corpus with different vocabulary sizes, so they split text
differently: a cross-tokenizer pair without any download. Both carry a
ChatML chat template and the usual special tokens.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoModelForCausalLM, LlamaConfig, PreTrainedTokenizerFast, Qwen2Config

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
_VOCAB = {"a": 320, "b": 480}


def _corpus() -> list[str]:
    words = (
        "the a farmer has chickens rabbits heads legs how many each total cost apples pens store "
        "bought sold price dollars step answer is so we then add subtract multiply divide first second "
        "def return if else for in range print list sum max min while true false none café naïve "
        "think solve let x y equation verify result"
    ).split()
    lines = []
    for i in range(400):
        w = " ".join(words[(i * 7 + j * 3) % len(words)] for j in range(12))
        lines.append(f"{w} {i * 37 % 1000} + {i % 17} = {(i * 37 % 1000) + i % 17}. #### {i}")
    lines += ["Step 1: 12 * 4 = 48. Step 2: 48 - 8 = 40. The answer is 40.", "<think>x = 3</think> 😀 ü é"]
    return lines


def build_tiny_tokenizer(flavour: str = "a"):
    """A PreTrainedTokenizerFast (byte-level BPE) trained offline; flavour 'a' or 'b'."""
    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB[flavour],
        special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tk.train_from_iterator(_corpus(), trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|pad|>", bos_token="<|endoftext|>", unk_token=None
    )
    tok.chat_template = CHATML
    return tok


def build_tiny_model(
    out_dir: str | Path,
    arch: str = "llama",
    tokenizer: str = "a",
    hidden: int = 64,
    layers: int = 2,
    heads: int = 4,
    kv_heads: int = 2,
    intermediate: int | None = None,
    vocab_pad: int = 0,
    seed: int = 0,
) -> Path:
    """Save a random causal LM + tokenizer to `out_dir` (save_pretrained format)."""
    tok = build_tiny_tokenizer(tokenizer)
    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    cfg = cls(
        vocab_size=len(tok) + vocab_pad,
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg)
    out = Path(out_dir)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def lively_model(src: str | Path, out: str | Path, scale: float = 0.3) -> Path:
    """A copy of the tiny model at `src` with larger random weights (seed 0): varied tokens instead of a
    constant newline, and logits far enough apart that fp32 rounding differences between runtimes cannot
    flip a greedy choice."""
    from transformers import AutoTokenizer

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(src)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, scale)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return Path(out)
