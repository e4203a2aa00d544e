"""Batched text generation shared by the teacher, evaluation and the CLI, and the settings they share.

    prompts = [apply_chat(tok, q) for q in questions]
    outs = generate_batch(model, tok, prompts, max_new_tokens=300, batch_size=16)

`Sampling` (temperature, top_p, max_new_tokens) is the one generation-settings
type: the on-policy `RolloutConfig` and the server's `GenParams` extend it, and
`GenerationJob` (+ data, split, domain, template, batch size, dtype, engine)
is what the teacher's `GenerateSettings` and the compare command's `EvalSets`
extend, each with only what is its own (and its own defaults).

Prompts are sorted by length and cut into batches (left padding, KV cache), so
padding waste stays small; results come back in the input order. Greedy when
temperature == 0, else sampling with top-p. One completion per prompt: repeat
a prompt k times to sample k traces.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from reasonkd.errors import ConfigError


@dataclass(kw_only=True)
class Sampling:
    """How completions are drawn: the generation settings every caller shares (module doc)."""

    temperature: float = 0.0
    """Sampling temperature (0 = greedy)."""
    top_p: float = 1.0
    """Nucleus sampling: draw from the most likely tokens holding this much probability (1 = all)."""
    max_new_tokens: int = 384
    """Cap on the generated tokens of each completion."""

    def __post_init__(self):
        if self.max_new_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ConfigError(
                f"max_new_tokens must be >= 1, temperature >= 0 and top_p in (0, 1]; got "
                f"max_new_tokens={self.max_new_tokens}, temperature={self.temperature}, "
                f"top_p={self.top_p}"
            )

    def sampling(self) -> Sampling:
        """Just these settings (a plain Sampling), e.g. for a request key."""
        return Sampling(temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens)


@dataclass(kw_only=True)
class GenerationJob(Sampling):
    """Sampling settings plus which problems are prompted, with which template, on which engine: what a
    teacher run (teacher.generate.GenerateSettings) and the compare command's evaluations (EvalSets) share."""

    data: str = ""
    """A built dataset folder or one JSONL file (reasonkd.data schema)."""
    split: str | None = "train"
    """Which split of `data` to use; None for all."""
    domain: str | None = None
    """Only this domain (math | code | logic); None for all."""
    template: str | None = None
    """Prompt template file (YAML with system/math/code/logic/default keys, or plain text); None = default."""
    batch_size: int = 16
    """Prompts per generation batch."""
    dtype: str = "auto"
    """Generation weights: auto | float32 | bfloat16 | float16 (reasonkd.utils.hardware)."""
    engine: str = "hf"
    """Generation engine: hf | openvino | vllm | auto (reasonkd.models.engines)."""


@dataclass
class Completion:
    prompt: str
    text: str
    prompt_tokens: int
    new_tokens: int
    finished: bool
    """True if the model stopped by itself (EOS), False if cut at max_new_tokens."""


def apply_chat(tokenizer, user: str, system: str | None = None) -> str:
    """The user turn wrapped in the model's chat template, ready for the assistant's answer."""
    if getattr(tokenizer, "chat_template", None):
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        return tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return (system + "\n\n" if system else "") + user + "\n"


def _stop_ids(model, tokenizer) -> list[int]:
    ids = set()
    for src in (model.generation_config.eos_token_id, tokenizer.eos_token_id):
        if isinstance(src, int):
            ids.add(src)
        elif src:
            ids.update(src)
    for tok in ("<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<|eot_id|>"):
        tid = tokenizer.convert_tokens_to_ids(tok) if tok in tokenizer.get_vocab() else None
        if tid is not None:
            ids.add(tid)
    return sorted(ids)


@torch.inference_mode()
def generate_batch(
    model,
    tokenizer,
    prompts: list[str],
    *,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 8,
    seed: int | None = None,
    progress: bool = True,
    desc: str = "generate",
    stats: dict | None = None,
    stop_strings: list[str] | None = None,
) -> list[Completion]:
    """Generate one completion per prompt (already chat-formatted). See module doc."""
    if seed is not None:
        torch.manual_seed(seed)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    enc = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: -len(enc[i]))
    stop = _stop_ids(model, tokenizer)
    results: list[Completion | None] = [None] * len(prompts)
    device = next(model.parameters()).device
    total_new, t0 = 0, time.perf_counter()
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="seq")
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        # no token_type_ids: tokenizers that emit them break generate() of causal LMs
        batch = tokenizer(
            [prompts[i] for i in idx],
            add_special_tokens=False,
            padding=True,
            return_token_type_ids=False,
            return_tensors="pt",
        ).to(device)
        kw = dict(max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id, eos_token_id=stop)
        if stop_strings:  # a sequence ends at a stop string, then is padded: the pad ends it here too
            kw.update(stop_strings=stop_strings, tokenizer=tokenizer)
        if temperature > 0:
            kw.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        out = model.generate(**batch, **kw)
        new = out[:, batch["input_ids"].shape[1] :]
        for row, i in enumerate(idx):
            ids = new[row].tolist()
            n, finished = len(ids), False
            for j, t in enumerate(ids):
                if t in stop or (stop_strings and t == tokenizer.pad_token_id):
                    n, finished = j, True
                    break
            results[i] = Completion(
                prompts[i], tokenizer.decode(ids[:n], skip_special_tokens=True), len(enc[i]), n, finished
            )
            total_new += n
        bar.update(len(idx))
        bar.set_postfix(tok_s=f"{total_new / max(time.perf_counter() - t0, 1e-9):.1f}")
    bar.close()
    if stats is not None:
        stats.update(
            new_tokens=total_new,
            seconds=time.perf_counter() - t0,
            tokens_per_s=total_new / max(time.perf_counter() - t0, 1e-9),
        )
    return results  # type: ignore[return-value]
