"""One schema for every reasoning item (math, code, logic), and how to read it back.

    from reasonkd.data.schema import Item
    rows = reasonkd.data.load_items("data/default", split="train")   # rows of Item.to_dict() (reasonkd.data.load)

Every generator, importer and augmenter returns `Item`s; the builder writes
`Item.to_dict()` rows as JSONL. Field meanings are documented in docs/data.md.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from reasonkd.errors import ReasonkdError

DOMAINS = ("math", "code", "logic")
KINDS = ("original", "variant", "negative", "subtask")
SPLITS = ("train", "val", "test")
VERIFIERS = ("math_numeric", "math_latex", "code_tests", "zebra", "sudoku")
ERROR_TYPES = (
    "arithmetic_slip",
    "skipped_step",
    "wrong_operation",
    "misread_quantity",
    "wrong_final_answer",
    "logic_error",
    "wrong_value",
)


@dataclass
class Item:
    """One verified problem (or a labelled wrong solution of one)."""

    id: str
    """Unique, stable id: '<source>-<template>-<index>' plus a suffix for derived items."""
    domain: str
    """math | code | logic."""
    question: str
    """The prompt shown to the model."""
    answer: str
    """What this item's solution concludes: a clean number for math, code for code,
    a value / grid for logic. For negatives it is the WRONG answer (the right one is
    meta['reference'])."""
    steps: list[str] = field(default_factory=list)
    """Reference reasoning, one step per entry (math ends with '#### N')."""
    verifier: str = "math_numeric"
    """math_numeric | math_latex | code_tests | zebra | sudoku (see reasonkd.data.verify.verify_item)."""
    kind: str = "original"
    """original | variant | negative | subtask."""
    parent_id: str | None = None
    """The item this one was derived from (variants, negatives, subtasks)."""
    error_type: str | None = None
    """For negatives: arithmetic_slip, skipped_step, wrong_operation, misread_quantity,
    wrong_final_answer, logic_error or wrong_value."""
    split: str = "train"
    """train | val | test (test = template families never used in train)."""
    source: str = "reasonkd"
    """Generator or import origin: reasonkd, reasoning_gym, gsm8k_import, dataset_import."""
    seed: int = 0
    """Seed of the random stream that produced this item (reproduce it alone)."""
    difficulty: int = 1
    """1 (easy) .. 5 (hard); for math the number of reasoning steps, capped."""
    template: str = ""
    """Generator family name; the unit of the held-out split."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Domain extras: code tests/entry_point, puzzle data, family params, reference answer."""

    def __post_init__(self) -> None:
        for name, allowed in (("domain", DOMAINS), ("kind", KINDS), ("split", SPLITS), ("verifier", VERIFIERS)):
            if getattr(self, name) not in allowed:
                raise ReasonkdError(f"item {self.id}: {name}={getattr(self, name)!r}, must be one of {allowed}")
        if self.kind == "negative" and self.error_type not in ERROR_TYPES:
            raise ReasonkdError(f"item {self.id}: a negative needs error_type in {ERROR_TYPES}")
        if self.kind != "original" and not self.parent_id:
            raise ReasonkdError(f"item {self.id}: kind={self.kind} needs a parent_id")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def solution_text(self) -> str:
        """The item's own worked solution as one completion (what verify_item checks)."""
        if self.verifier == "code_tests":
            return self.answer
        return "\n".join(self.steps) if self.steps else self.answer

    def derive(self, suffix: str, **changes: Any) -> "Item":
        """A child item (variant / negative / subtask) pointing back at this one."""
        changes.setdefault("parent_id", self.id)
        changes.setdefault("meta", dict(self.meta))
        return dataclasses.replace(self, id=f"{self.id}-{suffix}", **changes)


FIELDS = tuple(f.name for f in dataclasses.fields(Item))


def solution_text(row: dict) -> str:
    """Same as Item.solution_text for a plain row read from JSONL."""
    if row["verifier"] == "code_tests":
        return row["answer"]
    return "\n".join(row["steps"]) if row.get("steps") else row["answer"]
