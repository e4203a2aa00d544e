"""Teacher-forcing rows shared by both serving engines (hf: reasonkd.serve.engine, openvino:
reasonkd.serve.ov_score): what `prompt_logprobs` / `echo` + `logprobs` answer per position.

    rows = score_rows(logp, targets, k)    # logp (N, V) log-softmax rows, targets: the N next tokens
"""

from __future__ import annotations

import torch


def score_rows(logp: torch.Tensor, targets: list[int], k: int) -> list[tuple[float, int, list, list]]:
    """Per row of `logp` (N, V): (log-prob of its target, the target's rank, top-k ids, top-k log-probs)."""
    tgt = torch.tensor(targets, dtype=torch.long, device=logp.device)
    chosen = logp.gather(-1, tgt[:, None])[:, 0]
    ranks = (logp > chosen[:, None]).sum(-1) + 1
    top = logp.topk(min(k, logp.shape[-1]), dim=-1) if k else None
    return [
        (float(chosen[i]), int(ranks[i]), top.indices[i].tolist() if k else [], top.values[i].tolist() if k else [])
        for i in range(len(targets))
    ]
