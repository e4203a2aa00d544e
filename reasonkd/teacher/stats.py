"""Acceptance statistics of teacher traces (overall, per domain, per difficulty), shared by
generation, shard merging and trace pooling.

    stats = compute_stats(rows)   # rows: {"id", "accepted", "tokens", "error_type", "domain", "difficulty"}
"""

from __future__ import annotations

from collections import defaultdict

ERROR_TYPES = ("truncated", "no_answer", "wrong_final_answer")


def compute_stats(rows: list[dict]) -> dict:
    """Acceptance overall, per domain, per difficulty and per (domain, difficulty)."""
    def summary(group: list[dict]) -> dict:
        problems = {r["id"] for r in group}
        solved = {r["id"] for r in group if r["accepted"]}
        acc = sum(r["accepted"] for r in group)
        out = {"problems": len(problems), "samples": len(group), "accepted": acc,
               "acceptance_rate": round(acc / len(group), 4) if group else 0.0,
               "problems_solved": len(solved),
               "mean_tokens": round(sum(r["tokens"] for r in group) / len(group), 1) if group else 0.0}
        out.update({e: sum(r["error_type"] == e for r in group) for e in ERROR_TYPES})
        return out

    by: dict[str, dict[str, list]] = {"domain": defaultdict(list), "difficulty": defaultdict(list),
                                      "domain_difficulty": defaultdict(list)}
    for r in rows:
        by["domain"][r["domain"]].append(r)
        by["difficulty"][str(r["difficulty"])].append(r)
        by["domain_difficulty"][f"{r['domain']}/{r['difficulty']}"].append(r)
    return {"overall": summary(rows), **{f"by_{k}": {g: summary(v) for g, v in sorted(d.items())}
                                         for k, d in by.items()}}
