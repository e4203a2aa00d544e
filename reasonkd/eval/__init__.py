"""Evaluation: tasks (GSM8K, HumanEval, logic, code), code sandbox, measurements, report.

    from reasonkd.eval import evaluate_model, evaluate_samples, write_report, paired_diff_ci
    before = evaluate_model("smollm2-135m", ["gsm8k"], data="data/default", limit=100, label="student-before")
    after = evaluate_model("runs/student", ["gsm8k"], data="data/default", limit=100, label="student-after")
    write_report([before, after], "runs/report")      # report.md, report.html, results.json, samples/

CLI: `reasonkd eval ...`, `reasonkd report ...` (reasonkd.eval.cli). Docs: docs/eval.md.
"""

from reasonkd.eval.metrics import bootstrap_ci, paired_diff_ci, pass_at_k


def __getattr__(name):  # heavy parts (torch, matplotlib) load on first use
    if name in ("evaluate_model", "evaluate_samples", "run_cases"):
        from reasonkd.eval import runner

        return getattr(runner, name)
    if name in ("write_report", "load_run"):
        from reasonkd.eval import report

        return getattr(report, name)
    if name in ("run_in_sandbox", "run_many", "sandbox_backend", "SandboxResult"):
        from reasonkd.utils import sandbox  # it lives below data, which verifies code with it

        return getattr(sandbox, name)
    raise AttributeError(name)


__all__ = [
    "bootstrap_ci",
    "evaluate_model",
    "evaluate_samples",
    "load_run",
    "paired_diff_ci",
    "pass_at_k",
    "run_in_sandbox",
    "run_many",
    "sandbox_backend",
    "write_report",
]
