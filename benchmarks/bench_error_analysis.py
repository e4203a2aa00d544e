"""The first-error classifier against hand labels, and the demo's four models by class -> BENCHMARKS.md.

    python benchmarks/bench_error_analysis.py                       # agreement + confusion matrix
    python benchmarks/bench_error_analysis.py --eval runs/demo/eval  # also these models by class
    python benchmarks/bench_error_analysis.py --no-record            # print only

The labelled set (tests/eval/data/first_errors.jsonl) holds wrong greedy completions of the shipped
teacher (qwen2.5-coder-0.5b) and student (smollm2-135m) on held-out demo problems, each labelled with
its first-error class by reading it (the rules of docs/analyze.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, record_section  # noqa: E402

from reasonkd.eval.diagnose import CLASSES, diagnose, gold_of  # noqa: E402
from reasonkd.utils.io import read_jsonl  # noqa: E402

LABELS = ROOT / "tests" / "eval" / "data" / "first_errors.jsonl"


def agreement(rows: list[dict]) -> tuple[float, Counter, Counter]:
    """(share agreeing, Counter of (label, predicted), Counter of models)."""
    pairs = Counter()
    for r in rows:
        d = diagnose(r["completion"], r["reference"], gold_of(r["item"]), r["item"]["question"], r["finished"])
        pairs[(r["label"], d.cls)] += 1
    agree = sum(n for (a, b), n in pairs.items() if a == b)
    return agree / len(rows), pairs, Counter(r["model"] for r in rows)


def confusion_markdown(pairs: Counter) -> str:
    used = [c for c in CLASSES if any(c in k for k in pairs)]
    lines = ["| hand label \\ classifier | " + " | ".join(used) + " | total |", "|---|" + "---|" * (len(used) + 1)]
    for a in used:
        row = [pairs[(a, b)] for b in used]
        lines.append(f"| {a} | " + " | ".join(str(x) for x in row) + f" | {sum(row)} |")
    return "\n".join(lines)


def models_markdown(eval_dir: str) -> str:
    from reasonkd.eval.analyze import analyze_runs, load_runs, pair_transitions
    from reasonkd.eval.analyze_report import _md_table, class_table, transition_table

    runs, items = load_runs([eval_dir])
    summaries = analyze_runs(runs, items)
    lines = [f"`reasonkd analyze {eval_dir}`:", "", *_md_table(*class_table(summaries))]
    for t in pair_transitions(summaries):
        lines += [
            "",
            f"{t['before']} -> {t['after']} ({t['shared']} shared problems):",
            "",
            *_md_table(*transition_table(t)),
        ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--labels", default=str(LABELS), help="hand-labelled JSONL")
    ap.add_argument(
        "--eval",
        action="append",
        default=[],
        help="an evaluation folder (the demo's eval/), for its models by class; repeat",
    )
    ap.add_argument("--made-by", action="append", default=[], help="per --eval: the command that wrote it")
    ap.add_argument("--reading", default="", help="a paragraph reading the tables out")
    ap.add_argument("--no-record", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args()
    rows = read_jsonl(args.labels, allow_empty=False)
    share, pairs, models = agreement(rows)
    parts = []
    for which in ("tuning", "held-out"):
        part = [r for r in rows if r.get("set") == which]
        if part:
            s, p, m = agreement(part)
            parts.append(
                f"{which} {100 * s:.1f}% of {len(part)} (" + ", ".join(f"{n} of {name}" for name, n in m.items()) + ")"
            )
    body = (
        f"Agreement of the first-error classifier (reasonkd.eval.diagnose) with hand labels: "
        f"**{100 * share:.1f}%** of {len(rows)} wrong completions ({'; '.join(parts)}). Greedy, 200 new "
        "tokens, held-out demo problems; each completion labelled by reading it. The rules were written "
        "while labelling the tuning set; the held-out set was labelled afterwards and not used to change them."
        "\n\nCommand: `python benchmarks/bench_error_analysis.py`\n\n" + confusion_markdown(pairs)
    )
    for i, d in enumerate(args.eval):
        made = f"Written by `{args.made_by[i]}`.\n\n" if i < len(args.made_by) else ""
        body += "\n\n" + made + models_markdown(d)
    if args.reading:
        body += "\n\n" + args.reading
    print(body)
    if not args.no_record:
        record_section("Error analysis", body)


if __name__ == "__main__":
    main()
