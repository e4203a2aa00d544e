"""Acceptance statistics of teacher traces (overall, per domain, per difficulty), shared by
generation, shard merging and trace pooling.

    stats = compute_stats(rows)   # rows: {"id", "accepted", "tokens", "error_type", "domain", "difficulty"}
    print(format_stats(stats_json))   # a stats.json: the table `reasonkd teacher generate` prints
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
        out = {
            "problems": len(problems),
            "samples": len(group),
            "accepted": acc,
            "acceptance_rate": round(acc / len(group), 4) if group else 0.0,
            "problems_solved": len(solved),
            "mean_tokens": round(sum(r["tokens"] for r in group) / len(group), 1) if group else 0.0,
        }
        out.update({e: sum(r["error_type"] == e for r in group) for e in ERROR_TYPES})
        return out

    by: dict[str, dict[str, list]] = {
        "domain": defaultdict(list),
        "difficulty": defaultdict(list),
        "domain_difficulty": defaultdict(list),
    }
    for r in rows:
        by["domain"][r["domain"]].append(r)
        by["difficulty"][str(r["difficulty"])].append(r)
        by["domain_difficulty"][f"{r['domain']}/{r['difficulty']}"].append(r)
    return {
        "overall": summary(rows),
        **{f"by_{k}": {g: summary(v) for g, v in sorted(d.items())} for k, d in by.items()},
    }


def format_stats(stats: dict) -> str:
    o = stats["overall"]
    lines = [
        f"teacher {stats['teacher']}: accepted {o['accepted']}/{o['samples']} traces "
        f"({100 * o['acceptance_rate']:.1f}%), {o['problems_solved']}/{o['problems']} problems solved",
        f"{'domain/difficulty':<20}{'samples':>8}{'accepted':>9}{'rate':>8}{'truncated':>10}"
        f"{'no_answer':>10}{'wrong':>7}{'tokens':>8}",
    ]
    for name, s in stats["by_domain_difficulty"].items():
        lines.append(
            f"{name:<20}{s['samples']:>8}{s['accepted']:>9}{100 * s['acceptance_rate']:>7.1f}%"
            f"{s['truncated']:>10}{s['no_answer']:>10}{s['wrong_final_answer']:>7}{s['mean_tokens']:>8.0f}"
        )
    for name, s in stats["by_domain"].items():
        lines.append(f"{name + ' (all)':<20}{s['samples']:>8}{s['accepted']:>9}{100 * s['acceptance_rate']:>7.1f}%")
    sel = stats.get("selection")
    if sel:
        lines.append(
            f"kept {sel['kept']} traces (prefer {sel['prefer']}) of {sel['problems_solved']}/"
            f"{sel['problems']} problems solved by >= 1 sample; acceptance per sample "
            f"{100 * sel['acceptance_per_sample']:.1f}%; kept traces {sel['kept_mean_tokens']:.0f} tokens "
            f"on average; {sel['teacher_tokens']} teacher tokens spent"
        )
    g = stats["generation"]
    if g.get("tokens_per_s"):
        lines.append(f"generation: {g['new_tokens']} tokens in {g['seconds']:.0f}s ({g['tokens_per_s']:.1f} tok/s)")
    return "\n".join(lines)
