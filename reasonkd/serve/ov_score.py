"""Teacher-forced log-probs for a server started with `--engine openvino`.

    scorer = OVScorer(ov_engine)             # the same converted IR the GenAI pipeline decodes from
    rows = scorer.score(prompt_ids + generated_ids, k=20)   # as reasonkd.serve.engine.Engine.score

OpenVINO GenAI's GenerationConfig has a `logprobs` field, but it gives the chosen token's log-prob only
(no top-k, nothing for a prompt), after its sampling transforms. The server needs the raw distribution at
every position (vLLM's `prompt_logprobs`, `echo` + `logprobs`, a top-k around each sampled token), so one
forward pass over the whole sequence gives all of them. It runs the IR the engine already converted and
cached, through optimum-intel's OVModelForCausalLM (stateful IR: one full-sequence pass, then the state is
reset), in fp32 compute, so no torch copy of the weights is loaded; it is built on the first request that
asks for log-probs.
"""

from __future__ import annotations

import threading

import torch

from reasonkd.errors import ReasonkdError


class OVScorer:
    def __init__(self, ov_engine):
        try:
            from optimum.intel import OVModelForCausalLM
        except ImportError:
            raise ReasonkdError(
                "log-probs on --engine openvino need optimum-intel (pip install 'reasonkd[export]')"
            ) from None
        self.model = OVModelForCausalLM.from_pretrained(
            str(ov_engine.folder),
            compile=True,
            use_cache=True,
            ov_config={"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"},
        )
        self._lock = threading.Lock()  # one infer request: the stateful model's state belongs to one sequence

    @torch.inference_mode()
    def score(self, ids: list[int], k: int, chunk: int = 256) -> list:
        from reasonkd.serve.scoring import score_rows

        x = torch.tensor([ids], dtype=torch.long)
        with self._lock:
            logits = self.model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0]
        out: list = [None]
        for c in range(0, len(ids) - 1, chunk):
            logp = torch.log_softmax(torch.as_tensor(logits[c : min(c + chunk, len(ids) - 1)]).float(), dim=-1)
            out += score_rows(logp, ids[c + 1 : c + 1 + chunk], k)
        return out
