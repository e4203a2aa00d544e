"""Which teacher traces are kept: judge each trace against its problem's reference, turn it into a row,
keep the verified ones (all, or the shortest per problem) and write the run's outputs.

    from reasonkd.teacher.selection import judge, select_verified
    accepted, error_type, pred = judge(item, parse_output(text), finished=True)
    kept = select_verified(rows, prefer="shortest")

`finalize` writes traces.jsonl, negatives.jsonl and stats.json of a trace folder from its committed rows
(reasonkd.teacher.store.ShardStore); trace generation and trace import both end with it.
"""

from __future__ import annotations

from reasonkd.teacher.backends import Request
from reasonkd.teacher.parse import parse_output
from reasonkd.teacher.stats import compute_stats
from reasonkd.teacher.store import ShardStore
from reasonkd.utils.io import write_json, write_jsonl


def judge(item: dict, parsed, finished: bool) -> tuple[bool, str | None, str | None]:
    """(accepted, error_type, predicted answer) of one trace."""
    from reasonkd.data.verify import extract_final_answer, verify_item

    pred = extract_final_answer(parsed.trace) if item["domain"] == "math" else None
    if not finished:
        # a cut-off trace never ends: as a target it would teach the student to ramble
        return False, "truncated", pred
    if parsed.r1 and (not parsed.think_closed or not parsed.final.strip()):
        return False, "no_answer", pred
    if verify_item(item, parsed.trace):
        return True, None, pred
    if item["domain"] == "math":
        return False, ("no_answer" if pred is None else "wrong_final_answer"), pred
    no_block = item["domain"] == "code" and "```" not in parsed.trace
    return False, ("no_answer" if no_block or not parsed.final.strip() else "wrong_final_answer"), pred


def make_row(item: dict, req: Request, res: dict, teacher: str) -> dict:
    from reasonkd.data.verify import reference_answer

    parsed = parse_output(res["text"], res.get("reasoning_content"))
    accepted, error_type, pred = judge(item, parsed, res["finished"])
    return {
        "id": item["id"],
        "sample_idx": req.sample_idx,
        "prompt": req.user,
        "system": req.system,
        "trace": parsed.trace,
        "reasoning": parsed.reasoning,
        "final": parsed.final,
        "pred": pred,
        "answer": reference_answer(item),
        "domain": item["domain"],
        "difficulty": item.get("difficulty"),
        "template": item.get("template"),
        "split": item.get("split"),
        "teacher": teacher,
        "tokens": res["new_tokens"],
        "prompt_tokens": res["prompt_tokens"],
        "finished": res["finished"],
        "accepted": accepted,
        "error_type": error_type,
        "request": req.key[:16],
    }


def select_verified(rows: list[dict], prefer: str = "all") -> list[dict]:
    """The verified rows to train on: all of them, or per problem the shortest (fewest tokens, then the
    lowest sample index), in the order the rows came."""
    verified = [r for r in rows if r["accepted"]]
    if prefer == "all":
        return verified
    best: dict[str, dict] = {}
    for r in verified:
        cur = best.get(r["id"])
        if cur is None or (r["tokens"], r["sample_idx"]) < (cur["tokens"], cur["sample_idx"]):
            best[r["id"]] = r
    keep = {id(r) for r in best.values()}
    return [r for r in verified if id(r) in keep]


def selection_stats(rows: list[dict], kept: list[dict], prefer: str) -> dict:
    """What rejection sampling bought: kept traces, their length, and the teacher tokens spent."""
    n_problems = len({r["id"] for r in rows})
    spent = sum(r["tokens"] for r in rows)
    verified = [r for r in rows if r["accepted"]]
    return {
        "prefer": prefer,
        "problems": n_problems,
        "samples": len(rows),
        "acceptance_per_sample": round(len(verified) / len(rows), 4) if rows else 0.0,
        "problems_solved": len({r["id"] for r in verified}),
        "kept": len(kept),
        "kept_mean_tokens": round(sum(r["tokens"] for r in kept) / len(kept), 1) if kept else 0.0,
        "verified_mean_tokens": round(sum(r["tokens"] for r in verified) / len(verified), 1) if verified else 0.0,
        "teacher_tokens": spent,
        "teacher_tokens_per_kept": round(spent / len(kept), 1) if kept else None,
    }


def finalize(store: ShardStore, teacher: str, settings: dict, this_run: dict) -> dict:
    rows = list(store.rows())
    prefer = settings.get("prefer", "all")
    kept = select_verified(rows, prefer)
    traces = [{k: v for k, v in r.items() if k not in ("accepted", "error_type")} for r in kept]
    negatives = [{k: v for k, v in r.items() if k != "accepted"} for r in rows if not r["accepted"]]
    write_jsonl(store.out / "traces.jsonl", traces)
    write_jsonl(store.out / "negatives.jsonl", negatives)
    stats = {
        "teacher": teacher,
        **compute_stats(rows),
        "generation": store.totals(),
        "selection": selection_stats(rows, kept, prefer),
        "settings": {
            k: settings.get(k)
            for k in (
                "backend",
                "engine",
                "teacher_int8",
                "k",
                "seed",
                "prefer",
                "temperature",
                "top_p",
                "max_new_tokens",
                "batch_size",
                "data",
                "split",
                "domain",
                "limit",
            )
        },
        "this_run": this_run,
    }
    write_json(store.out / "stats.json", stats)
    return stats
