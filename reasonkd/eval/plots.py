"""Report figures (matplotlib, headless) returned as base64 PNG strings for a self-contained HTML page."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _bars(ax, groups: list[str], series: dict[str, list[float]], errs: dict[str, list] | None = None):
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + (i - (len(series) - 1) / 2) * width for g in range(len(groups))]
        yerr = None
        if errs and name in errs:
            lo = [max(0.0, v - e[0]) for v, e in zip(values, errs[name])]
            hi = [max(0.0, e[1] - v) for v, e in zip(values, errs[name])]
            yerr = [lo, hi]
        bars = ax.bar(xs, values, width * 0.95, yerr=yerr, capsize=3, label=name)
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), groups)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)


def accuracy_plot(results: list[dict], tasks: list[str]) -> str | None:
    if not tasks:
        return None
    series, errs = {}, {}
    for r in results:
        m = [r["tasks"].get(t, {}).get("metrics") for t in tasks]
        series[r["label"]] = [x["accuracy"] * 100 if x else 0.0 for x in m]
        errs[r["label"]] = [[c * 100 for c in x["ci"]] if x else [0, 0] for x in m]
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(tasks) * max(1, len(results)) / 2), 3.6))
    _bars(ax, tasks, series, errs)
    ax.set_ylabel("accuracy / pass@1 (%)")
    ax.set_ylim(0, 105)
    ax.set_title("Accuracy with 95% bootstrap intervals")
    return _png(fig)


def latency_plot(results: list[dict]) -> str | None:
    rs = [r for r in results if r.get("latency")]
    if not rs:
        return None
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    labels = [r["label"] for r in rs]
    p50 = [r["latency"]["latency_ms"]["p50"] for r in rs]
    p95 = [r["latency"]["latency_ms"]["p95"] for r in rs]
    a1.bar(labels, p50, yerr=[[0] * len(rs), [max(0, b - a) for a, b in zip(p50, p95)]], capsize=4, color="tab:orange")
    a1.set_ylabel("ms per problem (p50, whisker p95)")
    a1.set_title(f"Latency, batch 1, <= {rs[0]['latency']['max_new_tokens']} new tokens")
    a2.bar(labels, [r["latency"]["ms_per_token"] for r in rs], color="tab:green")
    a2.set_ylabel("ms per output token")
    a2.set_title("Decode time per token")
    for a in (a1, a2):
        a.tick_params(axis="x", labelsize=8, rotation=15)
        a.grid(axis="y", alpha=0.3)
    return _png(fig)


def throughput_plot(results: list[dict]) -> str | None:
    rs = [r for r in results if r.get("latency") or r.get("throughput")]
    if not rs:
        return None
    single = [r["latency"]["tokens_per_s"] if r.get("latency") else 0.0 for r in rs]
    batched = []
    for r in rs:
        tp = r.get("throughput") or {}
        toks, secs = sum(v["new_tokens"] for v in tp.values()), sum(v["seconds"] for v in tp.values())
        batched.append(toks / secs if secs else 0.0)
    fig, ax = plt.subplots(figsize=(7, 3.4))
    _bars(ax, [r["label"] for r in rs], {"batch 1": single, "batched eval": batched})
    ax.set_ylabel("generated tokens / s")
    ax.set_title("Generation throughput")
    return _png(fig)


def robustness_plot(per_model: list[tuple[str, dict]]) -> str | None:
    """Accuracy drop per perturbation type (original - perturbed, points) with paired 95% intervals."""
    types = list(dict.fromkeys(t for _, ts in per_model for t in ts))
    if not types:
        return None
    series = {lab: [ts[t]["drop"] * 100 if t in ts else 0.0 for t in types] for lab, ts in per_model}
    errs = {lab: [[c * 100 for c in ts[t]["ci"]] if t in ts else [0, 0] for t in types] for lab, ts in per_model}
    fig, ax = plt.subplots(figsize=(min(12, max(7, 0.6 * len(types) * max(1, len(per_model)))), 4.2))
    _bars(ax, [t.replace("_", "\n") for t in types], series, errs)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_ylabel("accuracy drop (points)")
    ax.set_title("Robustness: original - perturbed accuracy, same problems (paired 95% CI)")
    return _png(fig)


def length_plot(results: list[dict]) -> str | None:
    """Accuracy vs input-length bucket (task longmath), one line with 95% CI band per model."""
    rs = [
        (r["label"], r["tasks"]["longmath"]["metrics"].get("by_length") or {})
        for r in results
        if "longmath" in r.get("tasks", {})
    ]
    rs = [(label, b) for label, b in rs if b]
    if not rs:
        return None
    order = [b for b in ("short", "1k", "2k", "4k", "8k") if any(b in by for _, by in rs)]
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    for label, by in rs:
        xs = [i for i, b in enumerate(order) if b in by]
        acc = [by[order[i]]["accuracy"] * 100 for i in xs]
        ax.plot(xs, acc, marker="o", label=label)
        ax.fill_between(
            xs, [by[order[i]]["ci"][0] * 100 for i in xs], [by[order[i]]["ci"][1] * 100 for i in xs], alpha=0.15
        )
    ax.set_xticks(range(len(order)), order)
    ax.set_xlabel("input length (tokens, the evaluated model's tokenizer)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 105)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("longmath: accuracy by input length (95% bootstrap bands)")
    return _png(fig)


def errors_plot(summaries: list[dict], classes: dict[str, str]) -> str | None:
    """One stacked bar per model (and math task): its wrong answers by first-error class, as % of problems."""
    rows = [s for s in summaries if s["n"]]
    if not any(s["wrong"] for s in rows):
        return None
    names = [
        s["label"] if sum(t["label"] == s["label"] for t in rows) == 1 else f"{s['label']}\n{s['task']}" for s in rows
    ]
    fig, ax = plt.subplots(figsize=(max(6.5, 1.3 * len(rows) + 3.5), 3.8))
    bottom = [0.0] * len(rows)
    colors = plt.get_cmap("tab10").colors
    for i, c in enumerate(classes):
        vals = [100 * s["counts"][c] / s["n"] for s in rows]
        if not any(vals):
            continue
        ax.bar(names, vals, 0.6, bottom=bottom, label=c, color=colors[i % len(colors)])
        bottom = [b + v for b, v in zip(bottom, vals)]
    for x, (b, s) in enumerate(zip(bottom, rows)):
        ax.text(x, b + 1, f"{s['wrong']}/{s['n']}", ha="center", fontsize=8)
    ax.set_ylim(0, 112)
    ax.set_ylabel("wrong answers (% of problems)")
    ax.set_title("Where the reasoning breaks: wrong answers by first error")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)
