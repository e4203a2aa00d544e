"""Prompt templates: how an item's question is asked, per domain. The one place templates are read and filled.

    from reasonkd.data.prompts import DEFAULT_TEMPLATE, load_template, render
    template = load_template("runs/demo/prompt.yaml")        # or load_template(None) for the default
    system, user = render(template, {"domain": "math", "question": "2+3?"})

A template file is a YAML mapping with any of the keys system / math / code /
logic / default (each domain value holds `{question}`), or plain text used for
every domain. The key `math_latex` asks the math problems whose answer is
LaTeX (graded by reasonkd.data.latex) for a `\\boxed{}` answer instead of
`#### <number>` (unset: they are asked like other math). The teacher asks with
it (`reasonkd teacher generate --template`), eval scores with it (`reasonkd eval
--template`), export checks INT8 accuracy with it and the demo writes the one
its students were trained on.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from reasonkd.errors import ReasonkdError

# `{question}` is replaced by the item's question. Math asks for GSM8K's "#### N"
# line so the strict extractor, not the last-number fallback, reads the answer.
DEFAULT_TEMPLATE = {
    "system": None,
    "math": '{question}\n\nThink step by step, then give the final answer on its own last line as "#### <number>".',
    "math_latex": "{question}\n\nThink step by step, then give the final answer in \\boxed{} on its own last line.",
    "code": "{question}\n\nThink step by step about the algorithm, then give the complete solution "
    "in one ```python code block.",
    "logic": '{question}\n\nThink step by step, then give the final answer after "Answer:".',
    "default": "{question}\n\nThink step by step, then state the final answer.",
}


def load_template(path: str | None) -> dict:
    """The prompt template: the default, or a file (YAML mapping, or plain text for every domain)."""
    if not path:
        return dict(DEFAULT_TEMPLATE)
    p = Path(path)
    if not p.is_file():
        raise ReasonkdError(f"--template {path}: no such file")
    text = p.read_text(encoding="utf-8")
    if p.suffix in (".yaml", ".yml", ".json"):
        data = yaml.safe_load(text) or {}
        if not isinstance(data, dict):
            raise ReasonkdError(f"{path}: expected a mapping with keys system/math/code/logic/default")
        unknown = set(data) - set(DEFAULT_TEMPLATE)
        if unknown:
            raise ReasonkdError(f"{path}: unknown keys {sorted(unknown)}; use {sorted(DEFAULT_TEMPLATE)}")
        tpl = {"system": None, "default": DEFAULT_TEMPLATE["default"], **data}
    else:
        tpl = {"system": None, "default": text}
    for key, value in tpl.items():
        if key != "system" and value is not None and "{question}" not in value:
            raise ReasonkdError(f"{path}: template '{key}' lacks the {{question}} placeholder")
    return tpl


def render(template: dict, item: dict) -> tuple[str | None, str]:
    """(system, user) text for one item; str.replace, because code and LaTeX are full of braces."""
    latex = template.get("math_latex") if item.get("verifier") == "math_latex" else None
    body = latex or template.get(item["domain"]) or template["default"]
    return template.get("system") or None, body.replace("{question}", item["question"])
