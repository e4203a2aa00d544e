"""Evaluation report: the results table (design §4: model, accuracy, latency, params), plots, cases, drill-down.

    from reasonkd.eval.report import write_report
    from reasonkd.eval.sample_store import load_run
    paths = write_report([before, after, teacher], "runs/report",
                         labels=["student-before", "student-after", "teacher"])
    # {'markdown': .../report.md, 'html': .../report.html, 'json': .../results.json}
    write_report(load_run("runs/eval-a") + load_run("runs/eval-b"), "runs/both")   # `reasonkd report`

The HTML page is self-contained (CSS inline, plots as base64 PNGs), so it can
be mailed or archived as one file. Every model is compared with the FIRST one
by a paired bootstrap on the items both were scored on.
"""

from __future__ import annotations

import copy
import datetime as dt
import html
from pathlib import Path
from string import Template

from reasonkd.errors import ReasonkdError
from reasonkd.eval.metrics import paired_diff_ci
from reasonkd.eval.tasks.robustness import robustness_html, robustness_markdown

TASK_TITLES = {
    "gsm8k": "GSM8K",
    "humaneval": "HumanEval pass@1",
    "logic": "Logic (held-out)",
    "code": "Code (held-out)",
    "robustness": "Robustness (all variants)",
}
MAX_DRILL_ROWS = 200


def _params(n) -> str:
    if not n:
        return "-"
    return f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"


def _f(x, fmt="{:.0f}") -> str:
    return "-" if x is None or x != x else fmt.format(x)


def _tasks(results) -> list[str]:
    order = list(TASK_TITLES)
    names = {t for r in results for t in r["tasks"]}
    return sorted(names, key=lambda t: (order.index(t) if t in order else len(order), t))


def _batched_tps(r) -> float | None:
    tp = r.get("throughput") or {}
    secs = sum(v["seconds"] for v in tp.values())
    return sum(v["new_tokens"] for v in tp.values()) / secs if secs else None


def table_rows(results: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the summary table (shared by markdown and HTML)."""
    tasks = _tasks(results)
    head = [
        "Model",
        *[TASK_TITLES.get(t, t) for t in tasks],
        "Latency ms (p50)",
        "ms / token",
        "Tokens/s (batched)",
        "Params",
        "Peak RSS",
        "RSS added",
    ]
    rows = []
    for r in results:
        cells = [r["label"]]
        for t in tasks:
            m = r["tasks"].get(t, {}).get("metrics")
            cells.append(
                f"{m['accuracy'] * 100:.1f}% [{m['ci'][0] * 100:.1f}, {m['ci'][1] * 100:.1f}] (n={m['n']})"
                if m
                else "-"
            )
        lat = r.get("latency") or {}
        cells += [
            _f((lat.get("latency_ms") or {}).get("p50")),
            _f(lat.get("ms_per_token"), "{:.1f}"),
            _f(_batched_tps(r), "{:.1f}"),
            _params(r.get("params")),
            _f(r.get("peak_rss_mb"), "{:.0f} MiB"),
            _f(r.get("rss_added_mb"), "{:.0f} MiB"),
        ]
        rows.append(cells)
    return head, rows


def comparisons(results: list[dict], pairs: list[tuple[str, str]] | None = None) -> list[dict]:
    """Paired bootstrap of every model against the first, and of each (baseline, model) label pair in
    `pairs` (the demo: sft-only, distilled), per task, on shared (item, sample) keys."""
    out = []
    if len(results) < 2:
        return out
    by_label = {r["label"]: r for r in results}
    todo = [(results[0], r) for r in results[1:]]
    todo += [
        (by_label[a], by_label[b])
        for a, b in pairs or []
        if a in by_label and b in by_label and a != results[0]["label"]
    ]
    for t in _tasks(results):
        for base, r in todo:
            if t not in base["tasks"]:
                continue
            a_rows = {(s["id"], s.get("sample", 0)): s["verdict"] for s in base["tasks"][t].get("samples", [])}
            b_rows = {(s["id"], s.get("sample", 0)): s["verdict"] for s in r["tasks"].get(t, {}).get("samples", [])}
            keys = sorted(set(a_rows) & set(b_rows))
            if not keys:
                continue
            d = paired_diff_ci([float(b_rows[k]) for k in keys], [float(a_rows[k]) for k in keys])
            out.append({"task": t, "model": r["label"], "baseline": base["label"], **d})
    return out


def markdown(results: list[dict], comps: list[dict], errors: list[str] | None = None) -> str:
    """report.md; `errors`: the first-error section (reasonkd.eval.analyze_report.error_markdown)."""
    head, rows = table_rows(results)
    lines = ["# Evaluation report", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    lines += [
        "",
        "Accuracy: mean verdict with a seeded 95% bootstrap interval. Latency: batch 1, greedy, "
        "per problem (prompt + bounded answer). Tokens/s (batched): the evaluation's own batched generation.",
    ]
    if comps:
        lines += [
            "",
            "## Paired differences (model - baseline, same items)",
            "",
            "| Task | Model | vs | Difference (pts) | 95% CI | p | only this right | only baseline right |",
            "|---|---|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {c['task']} | {c['model']} | {c['baseline']} | {c['diff'] * 100:+.1f} | "
            f"[{c['lo'] * 100:+.1f}, {c['hi'] * 100:+.1f}] | {c['p_value']:.3f} | {c['a_only']} | {c['b_only']} |"
            for c in comps
        ]
    styles = [
        (r["label"], r["tasks"]["gsm8k"]["metrics"]["styles"])
        for r in results
        if "gsm8k" in r["tasks"] and "styles" in r["tasks"]["gsm8k"]["metrics"]
    ]
    if styles:
        names = list(styles[0][1])
        lines += [
            "",
            "## GSM8K by answer-extraction style (primary: final)",
            "",
            "| Model | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        lines += [f"| {lab} | " + " | ".join(f"{s.get(n, 0) * 100:.1f}%" for n in names) + " |" for lab, s in styles]
    lines += robustness_markdown(results)
    lines += errors or []
    case_sets = [(r["label"], r["cases"]) for r in results if r.get("cases")]
    if case_sets:
        lines += ["", "## Qualitative cases (full answers in report.html)", ""]
        for i, case in enumerate(case_sets[0][1]):
            lines += [f"### {case['title']}", ""]
            for lab, cs in case_sets:
                c = cs[i]
                lines += [
                    f"- **{lab}** ({'check passed' if c['check'] else 'check failed'}, "
                    f"{c['new_tokens']} tokens): " + " ".join(c["answer"].split())[:300]
                ]
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _esc(x) -> str:
    return html.escape("" if x is None else str(x))


def _html_table(head, rows) -> str:
    h = "".join(f"<th>{_esc(c)}</th>" for c in head)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{h}</tr>{body}</table>"


def _mark(ok) -> str:
    return '<span class="ok">&#10003;</span>' if ok else '<span class="bad">&#10007;</span>'


def _cases_html(results) -> str:
    case_sets = [(r["label"], r["cases"]) for r in results if r.get("cases")]
    if not case_sets:
        return "<p>No cases were generated (samples-only run, or --no-cases).</p>"
    parts = []
    for i, case in enumerate(case_sets[0][1]):
        cards = "".join(
            f'<div class="card"><h4>{_esc(lab)} {_mark(cs[i]["check"])}</h4>'
            f"<pre>{_esc(cs[i]['answer'])}</pre><small>{cs[i]['new_tokens']} tokens"
            f"{'' if cs[i]['finished'] else ' (cut at the limit)'}</small></div>"
            for lab, cs in case_sets
        )
        parts.append(
            f"<h3>{_esc(case['title'])}</h3><details><summary>Prompt and reference answer</summary>"
            f"<pre>{_esc(case['prompt'])}</pre><pre>{_esc(case['reference'])}</pre></details>"
            f'<div class="cases">{cards}</div>'
        )
    return "".join(parts)


def _drill_html(results) -> str:
    parts = []
    for t in _tasks(results):
        have = [r for r in results if t in r["tasks"]]
        by_model = [{(s["id"], s.get("sample", 0)): s for s in r["tasks"][t].get("samples", [])} for r in have]
        keys = sorted({k for m in by_model for k in m}, key=lambda k: (str(k[0]), k[1]))
        head = "<tr><th>item</th><th>reference</th>" + "".join(f"<th>{_esc(r['label'])}</th>" for r in have) + "</tr>"
        body = []
        for key in keys[:MAX_DRILL_ROWS]:
            first = next(m[key] for m in by_model if key in m)
            ref = first.get("reference")
            cells = []
            for m in by_model:
                s = m.get(key)
                if s is None:
                    cells.append("<td>-</td>")
                    continue
                ext = s.get("extracted")
                ext = ext.get("final") if isinstance(ext, dict) else ext
                cells.append(
                    f"<td>{_mark(s['verdict'])} {_esc(str(ext)[:60])}<details><summary>completion</summary>"
                    f"<pre>{_esc(s.get('completion'))}</pre>"
                    f"{'<pre>' + _esc(s['error']) + '</pre>' if s.get('error') else ''}</details></td>"
                )
            body.append(
                f"<tr><td>{_esc(key[0])}<details><summary>prompt</summary><pre>{_esc(first.get('prompt'))}"
                f"</pre></details></td><td><pre>{_esc(str(ref)[:400])}</pre></td>{''.join(cells)}</tr>"
            )
        more = f" (first {MAX_DRILL_ROWS} of {len(keys)}; all in samples/)" if len(keys) > MAX_DRILL_ROWS else ""
        parts.append(
            f"<details><summary><b>{_esc(TASK_TITLES.get(t, t))}</b>: {len(keys)} samples{more}</summary>"
            f'<table class="drill">{head}{"".join(body)}</table></details>'
        )
    return "".join(parts)


def render_html(results: list[dict], comps: list[dict], title: str, meta: str, errors: str = "") -> str:
    from reasonkd.eval import plots

    head, rows = table_rows(results)
    comp_html = ""
    if comps:
        comp_html = "<h3>Paired differences: model - baseline (same items)</h3>" + _html_table(
            ["Task", "Model", "vs", "Difference (pts)", "95% CI", "p"],
            [
                [
                    c["task"],
                    c["model"],
                    c["baseline"],
                    f"{c['diff'] * 100:+.1f}",
                    f"[{c['lo'] * 100:+.1f}, {c['hi'] * 100:+.1f}]",
                    f"{c['p_value']:.3f}",
                ]
                for c in comps
            ],
        )
    imgs = [
        plots.accuracy_plot(results, _tasks(results)),
        plots.latency_plot(results),
        plots.throughput_plot(results),
        plots.length_plot(results),
    ]
    plot_html = "".join(f'<img alt="plot" src="data:image/png;base64,{b}">' for b in imgs if b) or "<p>No data.</p>"
    tpl = Template((Path(__file__).parent / "templates" / "report.html").read_text(encoding="utf-8"))
    return tpl.substitute(
        title=_esc(title),
        meta=_esc(meta),
        summary=_html_table(head, rows),
        comparisons=comp_html,
        robustness=robustness_html(results),
        errors=errors,
        plots=plot_html,
        cases=_cases_html(results),
        drill=_drill_html(results),
        ncols=max(1, len([r for r in results if r.get("cases")])),
    )


def precision_notes(results: list[dict]) -> list[str]:
    """ "dtype: float32 — <why>" once per distinct precision the models ran in (reasonkd.utils.hardware)."""
    notes = [f"dtype: {r['dtype']} — {r['precision']}" for r in results if r.get("dtype") and r.get("precision")]
    return list(dict.fromkeys(notes))


def write_report(
    results: list[dict],
    out_dir,
    labels=None,
    title: str = "reasonkd evaluation",
    notes: list[str] | None = None,
    gold: dict[str, dict] | None = None,
    pairs: list[tuple[str, str]] | None = None,
) -> dict[str, Path]:
    """Write report.md, report.html, results.json and samples/<label>/<task>.jsonl into out_dir.
    `notes`: extra header lines (the demo adds its training precision); the models' precision is added.
    `gold`: data-engine items by id, for the first-error analysis of the math tasks (reasonkd.eval.analyze);
    `pairs`: (baseline, model) labels compared besides every model vs the first (paired differences,
    error transitions, differing problems)."""
    from reasonkd.eval.analyze import analyze_results, pair_transitions
    from reasonkd.eval.analyze_report import differ_cases, error_html, error_markdown
    from reasonkd.eval.sample_store import samples_path
    from reasonkd.utils.sandbox import sandbox_backend
    from reasonkd.utils.io import atomic_write, write_json, write_jsonl

    if not results:
        raise ReasonkdError("nothing to report: no results")
    results = copy.deepcopy(results)
    if labels:
        if len(labels) != len(results):
            raise ReasonkdError(f"--label given {len(labels)} times for {len(results)} models; give one per model")
        for r, lab in zip(results, labels):
            r["label"] = lab
    seen = set()
    for r in results:
        if r["label"] in seen:
            raise ReasonkdError(f"two models are labelled {r['label']!r}; pass distinct --label values")
        seen.add(r["label"])
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    comps = comparisons(results, pairs)
    summaries = analyze_results(results, gold)
    trans = pair_transitions(summaries, pairs)
    cases = differ_cases(results, summaries, trans[:1])  # the first pair's held-out problems (demo: SFT vs distilled)
    compact = []
    for r in results:
        c = {k: v for k, v in r.items() if k != "tasks"}
        c["tasks"] = {}
        for t, v in r["tasks"].items():
            path = samples_path(out, r["label"], t)
            write_jsonl(path, v.get("samples", []))
            c["tasks"][t] = {"metrics": v["metrics"], "samples_file": str(path.relative_to(out))}
        compact.append(c)
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    backend = sandbox_backend() if any(t in ("humaneval", "code") for r in results for t in r["tasks"]) else None
    notes = list(dict.fromkeys([*precision_notes(results), *(notes or [])]))
    write_json(
        out / "results.json",
        {
            "title": title,
            "created": created,
            "sandbox_backend": backend,
            "notes": notes,
            "models": compact,
            "comparisons": comps,
            "errors": {
                "models": [{k: v for k, v in s.items() if k != "rows"} for s in summaries],
                "transitions": trans,
            },
        },
    )
    title_line, _, rest = markdown(results, comps, error_markdown(summaries, trans, cases)).partition("\n")
    with atomic_write(out / "report.md") as f:
        f.write(title_line + "\n" + "".join(f"\n_{n}_\n" for n in notes) + rest)
    meta = " · ".join(
        [f"{created} · {len(results)} model(s)" + (f" · code sandbox: {backend}" if backend else ""), *notes]
    )
    with atomic_write(out / "report.html") as f:
        f.write(render_html(results, comps, title, meta, error_html(summaries, trans, cases)))
    return {"markdown": out / "report.md", "html": out / "report.html", "json": out / "results.json"}
