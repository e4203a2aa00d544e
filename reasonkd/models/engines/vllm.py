"""The vllm engine: vLLM on a GPU (optional; `pip install 'reasonkd[vllm]'`).

    engine = VLLMEngine("qwen2.5-coder-0.5b")
    outs = engine.generate(prompts, max_new_tokens=256, stop=["\\n\\n"])

Prompts are passed as token ids from the model's transformers tokenizer and
completions decoded with it, as in the hf engine; each request carries its own
seed (seed + its index).
"""

from __future__ import annotations

import os
import time

from reasonkd.errors import ReasonkdError
from reasonkd.models.engines.base import Engine, stop_token_ids
from reasonkd.models.engines.hf import completions_from_ids
from reasonkd.models.loader import resolve, tokenizer_from


class VLLMEngine(Engine):
    name = "vllm"

    def __init__(self, model_name_or_path: str, *, dtype: str = "auto", **llm_kwargs):
        super().__init__()
        try:
            import vllm  # lazy: a GPU-only optional dependency
        except ImportError:
            raise ReasonkdError(
                "--engine vllm needs the vllm package and a CUDA GPU: "
                "pip install 'reasonkd[vllm]' (or use --engine hf / openvino)"
            ) from None
        t0 = time.perf_counter()
        r = resolve(model_name_or_path)
        path = os.path.join(r.path, r.gguf_file) if r.gguf_file else r.path
        self._vllm = vllm
        self.llm = vllm.LLM(model=path, dtype=dtype, **llm_kwargs)
        self.tokenizer = tokenizer_from(r.path, r.gguf_file)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self.precision = str(self.llm.llm_engine.model_config.dtype).replace("torch.", "")
        self.load_seconds = time.perf_counter() - t0

    def _generate(self, prompts, *, max_new_tokens, temperature, top_p, seed, stop, batch_size, progress, desc):
        ids = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        params = [
            self._vllm.SamplingParams(
                n=1,
                temperature=temperature,
                top_p=top_p,
                max_tokens=max_new_tokens,
                seed=None if seed is None else seed + i,
                stop=stop or None,
                stop_token_ids=self.stop_ids,
                skip_special_tokens=True,
            )
            for i in range(len(prompts))
        ]
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=progress)
        gen = [[t for t in o.outputs[0].token_ids if t not in self.stop_ids] for o in outs]
        done = [o.outputs[0].finish_reason != "length" for o in outs]
        return completions_from_ids(self.tokenizer, prompts, [len(x) for x in ids], gen, done, stop)

    def close(self) -> None:
        self.llm = None
