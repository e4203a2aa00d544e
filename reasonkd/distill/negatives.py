"""Learning from wrong reasoning (negatives): losses that push probability away from the
tokens of a wrong step, or prefer a correct trace over a wrong one; and the wrong traces themselves.

In a recipe (off by default; the quick recipe never sets it):

    data: {path: runs/traces, negatives: runs/traces/negatives.jsonl}     # or a data-engine JSONL
    stages: [{name: logic, kind: logic, steps: 100,
              losses: [{name: ce}, {name: forward_kl}, {name: unlikelihood, weight: 0.5},
                       {name: preference, weight: 0.1, options: {beta: 0.1}}]}]

`load_negatives` reads rejected teacher samples (`reasonkd teacher generate`'s
negatives.jsonl: id, prompt, trace) and the data engine's labelled wrong solutions
(rows with kind == "negative": parent_id, steps); each is paired with the positive
trace of the same problem. The "wrong step" is where the wrong trace departs from
the correct one: the tokens from the first differing character on
(`divergence_char`); unlikelihood acts there, the preference loss on whole traces.

    values = unlikelihood(neg_logits, neg_targets)                   # (M,) token level, on rows
    chosen = sequence_logprobs(logits, targets, batch_index, n_seqs)  # (B,) summed log p per sequence
    loss = pairwise_preference_loss(chosen, rejected, beta=0.1)       # sequence level (DPO-style)

Pure tensor functions on rows, as the trainer gathers them: logits (N, V) of the
positions predicting trace tokens, targets (N,) the token each predicts. Maths in fp32.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from reasonkd.data.schema import solution_text
from reasonkd.distill.losses.logit import logprobs, target_logprobs
from reasonkd.errors import ReasonkdError
from reasonkd.models.encoding import encode_example
from reasonkd.utils.io import read_jsonl


def load_negatives(path) -> dict[str, list[str]]:
    """{problem id: [wrong trace, ...]} from a teacher negatives.jsonl or a data-engine JSONL/folder.

    Teacher rows: `id` (the problem) and `trace`. Data-engine rows: `kind` == "negative",
    `parent_id` (the original problem) and `steps` (the wrong solution); positives are skipped.
    """
    p = Path(path)
    if p.is_dir():
        p = next((p / n for n in ("negatives.jsonl", "train.jsonl") if (p / n).is_file()), p / "negatives.jsonl")
    if not p.is_file():
        raise ReasonkdError(f"data.negatives {path}: no such JSONL file (or folder with negatives.jsonl / train.jsonl)")
    out: dict[str, list[str]] = {}
    for n, row in enumerate(read_jsonl(p), 1):
        if "kind" in row and "steps" in row:  # data engine
            if row["kind"] != "negative":
                continue
            key, trace = row.get("parent_id"), solution_text(row)
        else:
            key, trace = row.get("id"), row.get("trace")
        if not key or not isinstance(trace, str) or not trace.strip():
            raise ReasonkdError(f"{p}:{n}: a negative needs a problem id (id / parent_id) and a non-empty trace")
        out.setdefault(str(key), []).append(trace)
    if not out:
        raise ReasonkdError(f"{p}: no negatives in it")
    return out


def problem_id(example_id: str) -> str:
    """Trace ids are `problem#sample` (teacher.traces.load_traces): the problem part."""
    return example_id.split("#", 1)[0]


def divergence_char(correct: str, wrong: str) -> int:
    """Index of the first character where `wrong` departs from `correct`, moved back to the start
    of that line, so the whole wrong step (not half a number) is the unlikely part."""
    k = 0
    for a, b in zip(correct, wrong):
        if a != b:
            break
        k += 1
    if k < len(wrong) and wrong[k] == "\n":  # the wrong trace breaks the line here: its next line is the wrong step
        return k + 1
    return wrong.rfind("\n", 0, k) + 1


def unlikelihood(logits: torch.Tensor, targets: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """-log(1 - p(target)) per row (Welleck et al. 2019): (N, V), (N,) -> (N,).

    1 - p is computed as -expm1(log p) (exact near p = 1), clamped at `eps` so a certain wrong
    token gives a large finite loss, not inf.
    """
    return -torch.log((-torch.expm1(target_logprobs(logprobs(logits), targets))).clamp_min(eps))


def sequence_logprobs(
    logits: torch.Tensor, targets: torch.Tensor, seq_index: torch.Tensor, n_seqs: int
) -> torch.Tensor:
    """Summed log p(target) of each sequence: rows (N, V), (N,), their sequence (N,) -> (n_seqs,)."""
    logp = target_logprobs(logprobs(logits), targets)
    return logp.new_zeros(n_seqs).index_add(0, seq_index.to(logp.device), logp)


def pairwise_preference_loss(
    chosen_logps: torch.Tensor,
    rejected_logps: torch.Tensor,
    beta: float = 0.1,
    ref_chosen_logps: torch.Tensor | None = None,
    ref_rejected_logps: torch.Tensor | None = None,
) -> torch.Tensor:
    """DPO loss: mean of -logsigmoid(beta * ((c - rc) - (r - rr))) over the batch.

    chosen_logps / rejected_logps: (B,) sequence log-probs (sequence_logprob) of the correct and
    the wrong trace under the student; ref_*: the same under a frozen reference model. Without a
    reference (both None) rc = rr = 0, so it is a logistic margin loss on the student's own
    log-probs, -logsigmoid(beta * (c - r)): it rewards any widening of the gap, including lowering
    both, so keep a likelihood term on the chosen trace beside it. Decreasing in the margin.
    """
    if chosen_logps.shape != rejected_logps.shape or chosen_logps.dim() != 1:
        raise ReasonkdError(
            f"chosen_logps {tuple(chosen_logps.shape)} and rejected_logps "
            f"{tuple(rejected_logps.shape)} must both be (B,)"
        )
    if (ref_chosen_logps is None) != (ref_rejected_logps is None):
        raise ReasonkdError("pass both ref_chosen_logps and ref_rejected_logps, or neither")
    margin = chosen_logps.float() - rejected_logps.float()
    if ref_chosen_logps is not None:
        margin = margin - (ref_chosen_logps.float() - ref_rejected_logps.float())
    return -F.logsigmoid(beta * margin).mean()


def attach_negatives(encoded: list, examples: dict, negatives: dict[str, list[str]], tokenizer, max_length: int) -> int:
    """Give each Encoded example whose problem has a wrong trace its student tokens (neg_input_ids,
    neg_prompt_len) and neg_start, the first token of the wrong step. Returns how many got one.
    The k-th sample of a problem takes wrong trace k (mod their number)."""
    n = 0
    for e in encoded:
        wrongs = negatives.get(problem_id(e.id))
        if not wrongs:
            continue
        ex = examples[e.id]
        sample = int(e.id.split("#", 1)[1]) if "#" in e.id and e.id.split("#", 1)[1].isdigit() else 0
        wrong = wrongs[sample % len(wrongs)]
        ids, n_prompt = encode_example(tokenizer, ex["prompt"], wrong, ex.get("system"), max_length)
        if len(ids) <= n_prompt:
            continue
        char = divergence_char(ex["trace"], wrong)
        offsets = tokenizer(wrong, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        first = next((k for k, (_, end) in enumerate(offsets) if end > char), len(offsets))
        e.neg_input_ids, e.neg_prompt_len, e.neg_start = ids, n_prompt, min(n_prompt + first, len(ids) - 1)
        n += 1
    return n


def negative_terms(
    names: set,
    s_logits: torch.Tensor,
    pos_targets: torch.Tensor,
    pos_batch: torch.Tensor,
    neg_logits: torch.Tensor,
    neg_targets: torch.Tensor,
    neg_batch: torch.Tensor,
    neg_wrong: torch.Tensor,
    has_neg: torch.Tensor,
    beta: float = 0.1,
) -> dict:
    """The trainer's negative terms from logit ROWS (only positions predicting trace tokens).

    s_logits (N, V) / pos_targets (N,) / pos_batch (N,): the correct trace's rows; neg_logits (M, V) /
    neg_targets (M,) / neg_batch (M,): the wrong trace's rows; neg_wrong (M,) bool: the row predicts a
    token of the wrong step; has_neg (B,) bool. unlikelihood = mean -log(1 - p) over the wrong-step
    rows; preference = -logsigmoid(beta * (log p(correct) - log p(wrong))) over examples with both.
    """
    out = {}
    if "unlikelihood" in names:
        wrong = neg_wrong.to(neg_logits.device, torch.float32)
        out["unlikelihood"] = (unlikelihood(neg_logits, neg_targets) * wrong).sum() / wrong.sum().clamp_min(1)
    if "preference" in names:
        b = has_neg.shape[0]
        chosen = sequence_logprobs(s_logits, pos_targets, pos_batch, b)
        rejected = sequence_logprobs(neg_logits, neg_targets, neg_batch, b)
        keep = has_neg.bool()
        out["preference"] = (
            pairwise_preference_loss(chosen[keep], rejected[keep], beta) if keep.any() else s_logits.sum() * 0.0
        )
    return out
