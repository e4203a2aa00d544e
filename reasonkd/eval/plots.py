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
    a1.bar(labels, p50, yerr=[[0] * len(rs), [max(0, b - a) for a, b in zip(p50, p95)]], capsize=4,
           color="tab:orange")
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
