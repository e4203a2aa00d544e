"""The first-error analysis as text (`reasonkd analyze`), as report sections (report.md / report.html),
and the held-out problems where two models differ.

    from reasonkd.eval.analyze_report import text_report, error_markdown, error_html, differ_cases
    print(text_report(summaries, transitions))                 # what `reasonkd analyze` prints
    lines = error_markdown(summaries, transitions, cases)       # report.md section
    html = error_html(summaries, transitions, cases)            # report.html section (with the stacked bar plot)
"""

from __future__ import annotations

import html as _html

from reasonkd.eval.analyze import gold_note
from reasonkd.eval.diagnose import CLASSES

SHORT = {
    "no_answer": "no answer",
    "extraction": "extraction",
    "arithmetic": "arithmetic",
    "copy": "copy",
    "plan": "plan",
    "condition": "condition",
    "other": "other",
}


def _esc(x) -> str:
    return _html.escape("" if x is None else str(x))


def _cell(s: dict, c: str) -> str:
    n = s["counts"][c]
    return f"{n} ({100 * s['shares'][c]:.0f}%)" if n else "0"


def class_table(summaries: list[dict]) -> tuple[list[str], list[list[str]]]:
    head = ["Model", "Task", "Problems", "Wrong", *[SHORT[c] for c in CLASSES]]
    rows = [[s["label"], s["task"], str(s["n"]), str(s["wrong"]), *[_cell(s, c) for c in CLASSES]] for s in summaries]
    return head, rows


def transition_table(t: dict) -> tuple[list[str], list[list[str]]]:
    head = [
        "First error",
        f"fixed (wrong in {t['before']}, right in {t['after']})",
        f"introduced (right in {t['before']}, wrong in {t['after']})",
        "stayed wrong (same class)",
    ]
    rows = [
        [SHORT[c], str(v["fixed"]), str(v["introduced"]), f"{v['stayed']} ({v['same']})"]
        for c, v in t["by_class"].items()
        if any(v.values())
    ]
    rows.append(
        [
            "all",
            str(t["fixed"]),
            str(t["introduced"]),
            f"{t['stayed']} ({sum(v['same'] for v in t['by_class'].values())})",
        ]
    )
    return head, rows


def _legend() -> list[str]:
    return [f"- {SHORT[c]}: {d}" for c, d in CLASSES.items()]


def _md_table(head, rows) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
        *["| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |" for r in rows],
    ]


def _text_table(head, rows) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    return ["  ".join(str(x).ljust(w) for x, w in zip(r, widths)).rstrip() for r in [head, *rows]]


def text_report(summaries: list[dict], trans: list[dict]) -> str:
    """The table, the examples per class and the transitions, as `reasonkd analyze` prints them."""
    lines = ["Wrong answers by first error (count, share of the wrong answers)", ""]
    lines += _text_table(*class_table(summaries))
    note = gold_note(summaries)
    lines += [
        "",
        *(["Note: " + note, ""] if note else []),
        "Classes:",
        *_legend(),
        "",
        "Examples ([[...]] marks the offending step):",
    ]
    for c in CLASSES:
        shown = [(s["label"], e) for s in summaries for e in s["examples"].get(c, [])]
        if not shown:
            continue
        picked = list({lab: (lab, e) for lab, e in shown}.values())[:2] or shown[:2]  # two models if possible
        lines.append(f"  {SHORT[c]}:")
        lines += [f"    [{lab}] {e['id']}: {e['excerpt']}\n      -> {e['why']}" for lab, e in picked]
    for t in trans:
        head = (
            f"{t['before']} -> {t['after']} ({t['task']}, {t['shared']} shared problems): fixed {t['fixed']}, "
            f"introduced {t['introduced']}, stayed wrong {t['stayed']}"
        )
        lines += ["", head, ""]
        lines += _text_table(*transition_table(t))
    return "\n".join(lines) + "\n"


def error_markdown(summaries: list[dict], trans: list[dict], cases: list[dict]) -> list[str]:
    if not summaries:
        return []
    lines = [
        "",
        "## Where the reasoning breaks (first error of each wrong answer)",
        "",
        *_md_table(*class_table(summaries)),
        "",
        *_legend(),
    ]
    note = gold_note(summaries)
    if note:
        lines += ["", f"_{note}_"]
    for t in trans:
        lines += [
            "",
            f"### {t['before']} -> {t['after']} ({t['task']}, {t['shared']} shared problems)",
            "",
            *_md_table(*transition_table(t)),
        ]
    if cases:
        lines += ["", "## Held-out problems where the models differ", ""]
        for c in cases:
            lines += [
                f"### {c['id']}: {c['right']} right, {c['wrong']} wrong ({SHORT[c['cls']]})",
                "",
                f"- **{c['wrong']}** ({SHORT[c['cls']]}: {c['why']}): {c['excerpt']}",
                f"- **{c['right']}**: " + " ".join(c["right_completion"].split())[:300],
                "",
            ]
    return lines


def _table(head, rows) -> str:
    h = "".join(f"<th>{_esc(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _marked(excerpt: str) -> str:
    return _esc(excerpt).replace("[[", '<mark class="step">').replace("]]", "</mark>")


def error_html(summaries: list[dict], trans: list[dict], cases: list[dict]) -> str:
    """The report's section: table, stacked bar plot, examples, transitions, and the differing problems."""
    if not summaries:
        return ""
    from reasonkd.eval import plots

    intro = "<h2>Where the reasoning breaks</h2><p>The first error of each wrong answer (rules: docs/analyze.md).</p>"
    parts = [intro, _table(*class_table(summaries))]
    img = plots.errors_plot(summaries, CLASSES)
    if img:
        parts.append(f'<img alt="errors by first-error class" src="data:image/png;base64,{img}">')
    note = gold_note(summaries)
    parts.append(
        "<ul>"
        + "".join(f"<li><b>{_esc(SHORT[c])}</b>: {_esc(d)}</li>" for c, d in CLASSES.items())
        + "</ul>"
        + (f"<p><i>{_esc(note)}</i></p>" if note else "")
    )
    ex = "".join(
        f"<li><b>{_esc(SHORT[c])}</b> [{_esc(s['label'])}] {_esc(e['id'])}: {_marked(e['excerpt'])} "
        f"<small>({_esc(e['why'])})</small></li>"
        for c in CLASSES
        for s in summaries
        for e in s["examples"].get(c, [])[:1]
    )
    if ex:
        parts.append(f"<details><summary>Examples, the offending step marked</summary><ul>{ex}</ul></details>")
    for t in trans:
        parts.append(
            f"<h3>{_esc(t['before'])} &rarr; {_esc(t['after'])} ({_esc(t['task'])}, {t['shared']} "
            "shared problems)</h3>" + _table(*transition_table(t))
        )
    if cases:
        parts.append("<h2>Held-out problems where the models differ</h2>")
        for c in cases:
            parts.append(
                f"<h3>{_esc(c['id'])}: {_esc(c['right'])} right, {_esc(c['wrong'])} wrong</h3>"
                f"<details><summary>Problem and reference answer</summary><pre>{_esc(c['prompt'])}</pre>"
                f"<pre>{_esc(c['reference'])}</pre></details>"
                '<div class="cases" style="grid-template-columns: repeat(2, minmax(0, 1fr))">'
                f'<div class="card"><h4>{_esc(c["wrong"])} <span class="bad">&#10007;</span> '
                f"{_esc(SHORT[c['cls']])}</h4><p>{_marked(c['excerpt'])}</p><small>{_esc(c['why'])}</small>"
                f"<details><summary>completion</summary><pre>{_esc(c['wrong_completion'])}</pre></details></div>"
                f'<div class="card"><h4>{_esc(c["right"])} <span class="ok">&#10003;</span></h4>'
                f"<pre>{_esc(c['right_completion'])}</pre></div></div>"
            )
    return "".join(parts)


def differ_cases(results: list[dict], summaries: list[dict], trans: list[dict], k: int = 2) -> list[dict]:
    """For each pair: up to k problems the later model gets right and the earlier wrong, and k the reverse,
    each with the wrong answer's first-error class."""
    samples = {
        (r["label"], t): {str(s["id"]): s for s in v.get("samples", []) if not s.get("sample", 0)}
        for r in results
        for t, v in r["tasks"].items()
    }
    rows = {(s["label"], s["task"]): s["rows"] for s in summaries}
    out = []
    for t in trans:
        a, b = rows[(t["before"], t["task"])], rows[(t["after"], t["task"])]
        for right, wrong, ra, rb in ((t["after"], t["before"], b, a), (t["before"], t["after"], a, b)):
            ids = sorted(i for i in set(ra) & set(rb) if ra[i]["cls"] == "correct" and rb[i]["cls"] != "correct")
            for i in ids[:k]:
                ws, rs = samples[(wrong, t["task"])][i], samples[(right, t["task"])][i]
                out.append(
                    {
                        "task": t["task"],
                        "id": i,
                        "right": right,
                        "wrong": wrong,
                        "cls": rb[i]["cls"],
                        "why": rb[i]["why"],
                        "excerpt": rb[i]["excerpt"],
                        "prompt": ws.get("prompt"),
                        "reference": ws.get("reference"),
                        "wrong_completion": ws.get("completion") or "",
                        "right_completion": rs.get("completion") or "",
                    }
                )
    return out
