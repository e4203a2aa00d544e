"""`robustness`: accuracy on original math problems and on their GSM-Plus perturbations, same problems.

    reasonkd eval --model smollm2-135m --tasks robustness --data data/default --limit 50
    reasonkd eval --model smollm2-135m --tasks robustness --data data/default --per-type 200
    reasonkd eval --model smollm2-135m --tasks robustness --data gsm8k/test.jsonl   # free-text types only

Each original problem is asked as written and in each of the eight perturbation
types of reasonkd.data.perturb (Li et al., ACL 2024, "GSM-Plus"), generated here,
seeded by the problem's id, each with a recomputed, verified answer. `--limit`
counts original problems; `--per-type K` asks each type on the first K originals that
take it (an original only where some type needs it), so every type gets K problems at
the least cost when a type applies to few problems (added_operation). Reported
(metrics["robustness"]): accuracy on the originals; per type, accuracy on the originals and on their perturbed versions
over the SAME problems and the drop (original - perturbed) with a paired
bootstrap interval; and the share of solved originals whose every perturbation is
also solved. The headline `accuracy` is over every example (originals and all
perturbed versions).

Data (`--data`): a data-engine folder (its held-out `test` split; items carry
their program, so all eight types apply), a reasonkd dataset JSONL, or a
GSM8K-format JSONL (`question`, `answer` ending `#### N`). Free text has no
solution program, so only paraphrase and distractor insertion apply there; one
warning names the skipped types and why. Every prompt (originals included) adds
one sentence allowing "cannot be determined", so a critical-thinking item (a needed
fact removed) can be answered that way; it is graded by
reasonkd.data.perturb.states_undeterminable, every other item by verify_math.
"""

from __future__ import annotations

import html
import logging
import math
from collections import defaultdict

from reasonkd.data.perturb import FREE_TEXT_TYPES, NEEDS_PROGRAM, TYPES, as_item, has_program, perturb_all
from reasonkd.data.perturb import UNDETERMINABLE, states_undeterminable
from reasonkd.data.schema import Item
from reasonkd.data.load import load_items
from reasonkd.data.verify import extract_answer, extract_final_answer, verify_math
from reasonkd.errors import ReasonkdError
from reasonkd.eval.metrics import paired_diff_ci
from reasonkd.eval.tasks.base import Task, data_path, grouped_metrics, register
from reasonkd.utils.io import read_jsonl

log = logging.getLogger(__name__)
ORIGINAL = "original"
ALLOW_UNDETERMINED = "If the problem does not give enough information to answer, say that it cannot be determined."
SKIP_REASON = (
    "each of them recomputes the answer (or decides that it cannot be determined) by running the "
    "problem's solution program, and free text holds only the final number"
)


def _free_item(i: int, row: dict, path) -> Item:
    if "question" not in row or "answer" not in row:
        raise ReasonkdError(
            f"{path}: row {i + 1} lacks 'question'/'answer'; expected GSM8K JSONL "
            "(question, answer ending '#### N') or a reasonkd dataset"
        )
    ans = str(row["answer"])
    ref = extract_answer(ans, "strict") if "####" in ans else ans.strip()
    if ref is None:
        raise ReasonkdError(f"{path}: row {i + 1}: answer has no number after '####'")
    return Item(
        id=str(row.get("id", f"gsm8k-{i}")),
        domain="math",
        question=str(row["question"]),
        answer=ref.replace(",", ""),
        split="test",
        source="gsm8k_import",
        template="gsm8k",
    )


def load_originals(data, limit: int | None) -> tuple[list[Item], str]:
    """The original math problems (first `limit`) as Items, and the path text for messages."""
    path = data_path(
        data,
        "robustness",
        "a data-engine output folder (`reasonkd data build`), a reasonkd "
        "dataset JSONL, or a GSM8K-format JSONL (question / answer '#### N')",
    )
    if path.is_dir():
        rows = [
            as_item(r)
            for r in load_items(path, split="test")
            if r["domain"] == "math" and r.get("kind", "original") == "original" and r["verifier"] == "math_numeric"
        ]  # numbers to perturb
    else:
        raw = read_jsonl(path, allow_empty=False)
        rows = [
            as_item(r) if "verifier" in r else _free_item(i, r, path)
            for i, r in enumerate(raw)
            if "verifier" not in r or (r.get("domain") == "math" and r.get("kind", "original") == "original")
        ]
    if not rows:
        raise ReasonkdError(f"{path}: no original math problems found for robustness")
    by_template: dict[str, list[Item]] = defaultdict(list)
    for it in rows:
        by_template[it.template].append(it)
    # round-robin over templates, so a small --limit still spans every problem family
    rows = [g[k] for k in range(max(map(len, by_template.values()))) for g in by_template.values() if k < len(g)]
    return rows[:limit] if limit else rows, str(path)


def quota(pairs: list[tuple[Item, dict]], k: int) -> list[tuple[Item, dict]]:
    """`--per-type K`: each type on the first K problems (in order) that take it, so that a type which
    applies to few problems still gets K without asking every type on every problem scanned. An original
    is kept when at least one type kept a variant of it; each variant is compared with its own original."""
    taken: dict[str, int] = defaultdict(int)
    out = []
    for it, variants in pairs:
        keep = {}
        for t, v in variants.items():
            if taken[t] < k:
                keep[t] = v
                taken[t] += 1
        if keep:
            out.append((it, keep))
    short = {t: taken[t] for t in TYPES if 0 < taken[t] < k}
    if short:
        log.warning(
            "robustness: fewer than --per-type %d problems take %s (%s); give more original problems "
            "(--limit, or a larger `reasonkd data build`)",
            k,
            ", ".join(short),
            ", ".join(f"{t} {n}" for t, n in short.items()),
        )
    return out


@register("robustness")
class Robustness(Task):
    identity_options = ("per_type",)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loaded: list[dict] | None = None
        self.skipped: dict = {}

    def load(self) -> list[dict]:
        if self._loaded is not None:
            return self._loaded
        seed = int(self.options.get("seed") or 0)
        per_type = self.options.get("per_type")
        if per_type is not None and int(per_type) < 1:
            raise ReasonkdError(f"--per-type {per_type}: give a positive number of problems per perturbation type")
        originals, where = load_originals(self.data, self.limit)
        free = [it for it in originals if not has_program(it)]
        if free:
            msg = (
                f"robustness: {len(free)} of {len(originals)} problems in {where} have no solution program "
                f"(free text, as in a GSM8K-format file), so only {', '.join(FREE_TEXT_TYPES)} apply to them; "
                f"skipped: {', '.join(NEEDS_PROGRAM)}, because {SKIP_REASON}. Problems built by "
                "`reasonkd data build` carry their program and get all eight types."
            )
            log.warning(msg)
            self.skipped = {"types": list(NEEDS_PROGRAM), "problems": len(free), "message": msg}
        pairs = [(it, perturb_all(it, TYPES if has_program(it) else FREE_TEXT_TYPES, seed=seed)) for it in originals]
        if per_type:
            pairs = quota(pairs, int(per_type))
        rows = []
        for it, variants in pairs:
            rows.append(
                {"id": it.id, "question": it.question, "reference": it.answer, "perturbation": ORIGINAL, "group": it.id}
            )
            rows += [
                {"id": v.id, "question": v.question, "reference": v.answer, "perturbation": t, "group": it.id}
                for t, v in variants.items()
            ]
        self._loaded = [{"idx": i, "domain": "math", **r} for i, r in enumerate(rows)]
        return self._loaded

    def examples(self) -> list[dict]:
        return self.load()  # --limit already counted original problems, not examples

    def prompt(self, ex: dict) -> str:
        return f"{ALLOW_UNDETERMINED}\n\n{super().prompt(ex)}"

    def score(self, ex: dict, completion: str) -> dict:
        said = states_undeterminable(completion)
        if ex["perturbation"] == "critical_thinking":
            verdict = said
        else:
            verdict = verify_math(completion, ex["reference"]) and not said
        extracted = UNDETERMINABLE if said else extract_final_answer(completion)
        return {
            "verdict": bool(verdict),
            "extracted": extracted,
            "perturbation": ex["perturbation"],
            "group": ex["group"],
        }

    def metrics(self, rows: list[dict], seed: int = 0) -> dict:
        out = grouped_metrics(rows, seed=seed)
        out["robustness"] = robustness_summary(rows, seed=seed)
        if self.skipped:
            out["robustness"]["skipped"] = self.skipped
        return out


def robustness_summary(rows: list[dict], seed: int = 0) -> dict:
    """Per-type accuracy and drop (paired CI) over the problems that have both versions; consistency."""
    verdicts: dict = defaultdict(list)
    for r in rows:
        verdicts[(r["group"], r["perturbation"])].append(bool(r["verdict"]))
    acc = {k: sum(v) / len(v) for k, v in verdicts.items()}
    orig = {g: a for (g, t), a in acc.items() if t == ORIGINAL}
    types = {}
    for t in TYPES:
        groups = [g for g in orig if (g, t) in acc]
        if not groups:
            continue
        a, b = [orig[g] for g in groups], [acc[(g, t)] for g in groups]
        d = paired_diff_ci(a, b, seed=seed)
        types[t] = {
            "n": len(groups),
            "original": sum(a) / len(a),
            "perturbed": sum(b) / len(b),
            "drop": d["diff"],
            "ci": [d["lo"], d["hi"]],
            "p_value": d["p_value"],
        }
    solved = [g for g, a in orig.items() if a > 0.5]
    robust = [g for g in solved if all(a > 0.5 for (h, t), a in acc.items() if h == g and t != ORIGINAL)]
    return {
        "original": {"accuracy": sum(orig.values()) / len(orig) if orig else math.nan, "n": len(orig)},
        "types": types,
        "solved_originals": len(solved),
        "robust_originals": len(robust),
        "consistency": len(robust) / len(solved) if solved else math.nan,
    }


# ---------------------------------------------------------------- report section


def _summaries(results: list[dict]) -> list[tuple[str, dict]]:
    return [
        (r["label"], r["tasks"]["robustness"]["metrics"]["robustness"])
        for r in results
        if "robustness" in r.get("tasks", {}) and "robustness" in r["tasks"]["robustness"].get("metrics", {})
    ]


def _rows(results: list[dict]) -> list[list[str]]:
    rows = []
    for label, s in _summaries(results):
        for t, v in s["types"].items():
            rows.append(
                [
                    label,
                    t,
                    str(v["n"]),
                    f"{v['original'] * 100:.1f}%",
                    f"{v['perturbed'] * 100:.1f}%",
                    f"{v['drop'] * 100:+.1f}",
                    f"[{v['ci'][0] * 100:+.1f}, {v['ci'][1] * 100:+.1f}]",
                    f"{v['p_value']:.3f}",
                ]
            )
    return rows


HEAD = ["Model", "Perturbation", "n", "Original acc", "Perturbed acc", "Drop (pts)", "95% paired CI", "p"]


def _consistency_lines(results: list[dict]) -> list[str]:
    out = []
    for label, s in _summaries(results):
        c = s["consistency"]
        out.append(
            f"{label}: originals {s['original']['accuracy'] * 100:.1f}% (n={s['original']['n']}); "
            f"{s['robust_originals']} of {s['solved_originals']} solved originals "
            f"({'-' if c != c else f'{c * 100:.1f}%'}) also solved in every perturbation."
        )
        if s.get("skipped"):
            out.append(f"{label}: {s['skipped']['message']}")
    return out


def robustness_markdown(results: list[dict]) -> list[str]:
    """Markdown lines of the report's robustness section ([] when no model ran the task)."""
    rows = _rows(results)
    if not _summaries(results):
        return []
    lines = [
        "",
        "## Robustness (GSM-Plus perturbation types, same problems)",
        "",
        "| " + " | ".join(HEAD) + " |",
        "|" + "---|" * len(HEAD),
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += [
        "",
        "Drop = accuracy on the originals - accuracy on their perturbed versions (positive = worse "
        "when perturbed), paired bootstrap over problems.",
        "",
    ]
    return lines + [f"- {x}" for x in _consistency_lines(results)]


def robustness_html(results: list[dict]) -> str:
    """The HTML robustness section (table, consistency, drop plot), or "" when no model ran the task."""
    from reasonkd.eval import plots  # lazy: matplotlib costs start-up time, and only reports draw

    if not _summaries(results):
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in HEAD)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in _rows(results))
    notes = "".join(f"<p>{html.escape(x)}</p>" for x in _consistency_lines(results))
    img = plots.robustness_plot([(lab, s["types"]) for lab, s in _summaries(results)])
    plot = f'<img alt="robustness plot" src="data:image/png;base64,{img}">' if img else ""
    return (
        f"<h2>Robustness</h2><p>GSM-Plus perturbation types (Li et al., 2024) of the same problems. Drop = "
        f"original accuracy - perturbed accuracy, paired bootstrap 95% interval.</p>"
        f"<table><tr>{head}</tr>{body}</table>{notes}{plot}"
    )
