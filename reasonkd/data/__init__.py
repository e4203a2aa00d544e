"""Verified reasoning data: generators (math, code, logic), augmentation, verifiers.

    from reasonkd.data import build_dataset, load_items
    out = build_dataset("recipes/data/quick.yaml", "data/quick")   # -> Path
    train = load_items(out, split="train")                         # list[dict], schema in docs/data.md

Verifiers (answer extraction, math / code / puzzle checks): reasonkd.data.verify.
"""

from reasonkd.data.schema import Item, solution_text
from reasonkd.data.load import load_items


def build_dataset(recipe, out_dir, overrides=()):
    """Build a dataset from a DataRecipe or YAML path into out_dir (see reasonkd.data.build)."""
    from reasonkd.data.build import build_dataset as _build

    return _build(recipe, out_dir, overrides)


__all__ = ["Item", "build_dataset", "load_items", "solution_text"]
