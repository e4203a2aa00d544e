"""`longmath`: math accuracy by input length (short, 1k, 2k, 4k, 8k tokens), with latency and memory per bucket.

    reasonkd eval --model smollm2-135m --tasks longmath --limit 40                   # generated, held-out families
    reasonkd eval --model smollm2-135m --tasks longmath --data runs/data              # long items of a built dataset
    reasonkd eval --model smollm2-135m --tasks longmath --window 1024 --sinks 4      # the sliding-window remedy

Every problem is a verified math-family problem stretched to a length bucket
(reasonkd.data.longctx: its facts spread through unrelated passages), and the
same problem is also asked in its short form (bucket `short`), so the drop from
short to each length is paired on the same problems. Without `--data` the task
makes `per_bucket` problems per bucket (default 50) from the held-out families
(never in training), lengths measured with the student's tokenizer (option
`tokenizer`, default smollm2-135m); with `--data` it takes the long items of the
folder's test split. Examples alternate between buckets, so `--limit` spans
them all.

Buckets are computed from the prompt the evaluated model actually read (its
own tokenizer, chat template included; `prompt_tokens` of each sample), falling
back to the data's bucket for scored `--samples`. Reported in
metrics["by_length"]: per bucket accuracy with a bootstrap CI, n, mean prompt
tokens, and the paired difference to the short form; the runner adds batch-1
latency and peak RSS per bucket (metrics["by_length_speed"]).
"""

from __future__ import annotations

from collections import defaultdict

from reasonkd.data.longctx import BUCKETS, LongConfig, length_bucket, long_items
from reasonkd.data.load import load_items
from reasonkd.data.verify import reference_answer, verify_math
from reasonkd.errors import ReasonkdError
from reasonkd.eval.measure import peak_rss_mb, reset_peak_rss
from reasonkd.eval.metrics import bootstrap_ci, paired_diff_ci, percentiles
from reasonkd.eval.tasks.base import Task, data_path, grouped_metrics, register

ORDER = ("short", *BUCKETS)
HELD_OUT = ["garden_fence", "leaky_tank", "zoo_tickets"]


def _rows_from_items(items: list[dict], short: bool) -> dict[str, list[dict]]:
    by_bucket: dict[str, list[dict]] = defaultdict(list)
    for r in items:
        info = r["meta"]["long"]
        base = {"problem": r["id"], "domain": "math", "reference": reference_answer(r)}
        by_bucket[info["bucket"]].append(
            {**base, "id": r["id"], "question": r["question"], "data_bucket": info["bucket"]}
        )
        if short:
            by_bucket["short"].append(
                {**base, "id": r["id"] + "-short", "question": info["short_question"], "data_bucket": "short"}
            )
    return by_bucket


@register("longmath")
class LongMath(Task):
    def load(self) -> list[dict]:
        short = bool(self.options.get("short", True))
        if self.data:
            path = data_path(self.data, "longmath", "a data-engine folder built with long.per_bucket > 0")
            items = [r for r in load_items(path, split="test") if "long" in (r.get("meta") or {})]
            if not items:
                raise ReasonkdError(
                    f"{path}: no long problems in its test split; build it with "
                    "`reasonkd data build RECIPE --out DIR long.per_bucket=50`"
                )
        else:
            cfg = LongConfig(
                per_bucket=int(self.options.get("per_bucket") or 50),
                tokenizer=str(self.options.get("tokenizer") or "smollm2-135m"),
            )
            items = [it.to_dict() for it in long_items(cfg, HELD_OUT, seed=int(self.options.get("seed") or 0))]
        by_bucket = _rows_from_items(items, short)
        # round-robin over buckets (shortest first), so a small --limit still spans every length
        groups = [by_bucket[b] for b in ORDER if by_bucket.get(b)]
        rows = [g[k] for k in range(max(map(len, groups))) for g in groups if k < len(g)]
        return [{"idx": i, **r} for i, r in enumerate(rows)]

    def score(self, ex: dict, completion: str) -> dict:
        return {
            "verdict": verify_math(completion, ex["reference"]),
            "problem": ex["problem"],
            "data_bucket": ex["data_bucket"],
        }

    def metrics(self, rows: list[dict], seed: int = 0) -> dict:
        out = grouped_metrics(rows, seed=seed)
        out["by_length"] = by_length(rows, seed=seed)
        return out

    def length_profile(
        self, examples: list[dict], prompts: list[str], engine, per_bucket: int, max_new_tokens: int = 64
    ) -> dict:
        """Batch-1 latency on `engine` (reasonkd.models.engines, so --window is timed too) and peak RSS
        for the first `per_bucket` prompts of each bucket (the data's bucket)."""
        out = {}
        for b in ORDER:
            ps = [p for ex, p in zip(examples, prompts) if ex["data_bucket"] == b][:per_bucket]
            if not ps:
                continue
            reset_peak_rss()
            raw = engine.latency(ps, max_new_tokens, warmup=0 if out else 1)
            out[b] = {
                "latency_ms": percentiles([t * 1000 for t in raw["total_s"]]),
                "problems": len(ps),
                "ms_per_new_token": 1000 * sum(raw["total_s"]) / max(1, sum(raw["new_tokens"])),
                "peak_rss_mb": peak_rss_mb(),
            }
        return out


def by_length(rows: list[dict], seed: int = 0) -> dict:
    """Per bucket: accuracy, CI, n, mean prompt tokens, and the paired difference to the short form."""
    buckets: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        n = r.get("prompt_tokens")
        buckets[length_bucket(n) if n else r["data_bucket"]].append(r)
    short = {r["problem"]: float(r["verdict"]) for r in buckets.get("short", [])}
    out = {}
    for b in ORDER:
        rs = buckets.get(b)
        if not rs:
            continue
        ci = bootstrap_ci([float(r["verdict"]) for r in rs], seed=seed)
        toks = [r["prompt_tokens"] for r in rs if r.get("prompt_tokens")]
        entry = {
            "accuracy": ci["mean"],
            "ci": [ci["lo"], ci["hi"]],
            "n": ci["n"],
            "mean_prompt_tokens": sum(toks) / len(toks) if toks else None,
        }
        paired = [(float(r["verdict"]), short[r["problem"]]) for r in rs if b != "short" and r["problem"] in short]
        if paired:
            d = paired_diff_ci([a for a, _ in paired], [s for _, s in paired], seed=seed)
            entry["vs_short"] = {
                "diff": d["diff"],
                "ci": [d["lo"], d["hi"]],
                "n": d["n"],
                "short_accuracy": sum(s for _, s in paired) / len(paired),
            }
        out[b] = entry
    return out
