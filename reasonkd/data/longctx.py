"""Long math problems: a verified word problem whose facts are spread through ~1k-8k tokens of other text.

    reasonkd data build recipes/data/default.yaml --out runs/data long.per_bucket=50
    from reasonkd.data.longctx import long_items, length_bucket, LongConfig
    items = long_items(LongConfig(per_bucket=4, buckets=["1k", "2k"]), families, seed=0, tokenizer=tok)

Each item takes an original math-family problem (reasonkd.data.math_families),
keeps its numbers, its program and so its answer (recomputed by the program and
re-verified by the builder exactly like every other item), and renders its
question as a long document: the problem's fact sentences, in their order,
spread evenly through irrelevant but plausible passages (other problems'
statements with other people's names and no question, short narrative
paragraphs, small tables of numbers), and the question itself at the end. The
length is measured with the student's tokenizer (`long.tokenizer`) on the
question text and lands in its bucket (`length_bucket`); `meta.long` records
the bucket, the token count and the tokenizer. Deterministic by seed; the
template stays the family's, so held-out families stay held out (test split).
Logic puzzles are not stretched this way yet (their clues are the whole input).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from random import Random

from reasonkd.data.augment import math_item
from reasonkd.data.math_families import FAMILIES, sample_valid
from reasonkd.data.math_program import NAMES
from reasonkd.data.schema import Item
from reasonkd.errors import ConfigError

BUCKETS = {"1k": 1024, "2k": 2048, "4k": 4096, "8k": 8192}
"""Bucket name -> nominal input length in tokens."""
TARGETS = {"1k": 1000, "2k": 2000, "4k": 4000, "8k": 7400}
"""Question length aimed at per bucket; 8k stays under 8192 so the chat template and a 512-token
answer still fit an 8k-context student under full attention."""
EDGES = (("short", 0), ("1k", 512), ("2k", 1448), ("4k", 2896), ("8k", 5793))
"""(bucket, lowest token count): geometric midpoints between the nominal lengths."""
INTRO = "The notes below mix several unrelated records. Read them and answer the question at the very end."

PLACES = (
    "library",
    "harbour",
    "market hall",
    "train station",
    "museum",
    "bakery",
    "community garden",
    "swimming pool",
    "town hall",
    "bookshop",
    "bike workshop",
    "old mill",
)
NARRATIVE = (
    "{a} walked past the {place} early in the morning, when the streets were still quiet.",
    "The {place} was repainted in {year}, and people still argue about the colour.",
    "{a} and {b} talked for a long time about the weather and about nothing in particular.",
    "Nobody remembers exactly when the clock above the {place} stopped working.",
    "In the afternoon a light rain started, and most people stayed indoors.",
    "{a} once said that the best view of the town is from the roof of the {place}.",
    "A new bus line was opened to the {place}, although few people use it.",
    "The {place} closes early on Sundays, which annoys {a} every single week.",
    "{b} keeps a small notebook with sketches of every building in the street.",
    "Long ago the {place} was a stable, and the old iron rings are still in the wall.",
    "The neighbours planted a row of trees along the road to the {place}.",
    "{a} prefers tea to coffee, while {b} says the opposite every time they meet.",
)
TABLES = (
    ("Visitors at the {place}", ("Day", "Visitors", "Rain (mm)")),
    ("Deliveries to the {place}", ("Week", "Boxes", "Crates")),
    ("Temperatures near the {place}", ("Hour", "Inside (C)", "Outside (C)")),
)
ROW_KEYS = {
    "Day": ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat"),
    "Week": ("1", "2", "3", "4", "5", "6"),
    "Hour": ("08:00", "10:00", "12:00", "14:00", "16:00", "18:00"),
}


@dataclass
class LongConfig:
    per_bucket: int = 0
    """Long problems per length bucket (0 = none); families taken in turn from math.families."""
    buckets: list[str] = field(default_factory=lambda: list(BUCKETS))
    """Length buckets to make: 1k, 2k, 4k, 8k (tokens of `tokenizer`)."""
    tokenizer: str = "smollm2-135m"
    """Tokenizer that measures the length: the student's alias or folder."""

    def __post_init__(self):
        bad = [b for b in self.buckets if b not in BUCKETS]
        if bad:
            raise ConfigError(f"long.buckets: unknown {bad}; valid: {list(BUCKETS)}")
        if self.per_bucket < 0:
            raise ConfigError(f"long.per_bucket must be >= 0, got {self.per_bucket}")


def length_bucket(n_tokens: int) -> str:
    """The bucket of an input of `n_tokens` tokens: short (< 512), 1k, 2k, 4k or 8k."""
    name = EDGES[0][0]
    for bucket, low in EDGES:
        if n_tokens >= low:
            name = bucket
    return name


def split_question(question: str) -> tuple[list[str], str]:
    """(fact sentences, the final question sentence) of a family's question."""
    parts = re.split(r"(?<=[.!?])\s+(?=[A-Z$])", question.strip())
    return parts[:-1], parts[-1]


def _statement(rng: Random, avoid: set[str], skip_family: str) -> str:
    """Another problem's facts (its question dropped), with none of the `avoid` names in it."""
    others = sorted(n for n in FAMILIES if n != skip_family)
    for _ in range(50):
        fam = FAMILIES[rng.choice(others)]
        facts, _ = split_question(fam.question(sample_valid(fam, rng)))
        text = " ".join(facts)
        if facts and not any(a in text for a in avoid):
            return text
    return _narrative(rng, avoid)


def _narrative(rng: Random, avoid: set[str]) -> str:
    names = [n for n in NAMES if n not in avoid]
    return " ".join(
        rng.choice(NARRATIVE).format(
            a=rng.choice(names), b=rng.choice(names), place=rng.choice(PLACES), year=rng.randint(1900, 2015)
        )
        for _ in range(rng.randint(3, 5))
    )


def _table(rng: Random) -> str:
    title, cols = rng.choice(TABLES)
    rows = [f"| {' | '.join(cols)} |", "|" + "---|" * len(cols)]
    for key in ROW_KEYS[cols[0]][: rng.randint(3, 6)]:
        rows.append(f"| {key} | " + " | ".join(str(rng.randint(2, 400)) for _ in cols[1:]) + " |")
    return title.format(place=rng.choice(PLACES)) + ":\n" + "\n".join(rows)


def _passage(rng: Random, avoid: set[str], family: str) -> str:
    kind = rng.random()
    if kind < 0.45:
        return _statement(rng, avoid, family)
    return _narrative(rng, avoid) if kind < 0.8 else _table(rng)


def stretch(question: str, family: str, names: set[str], target: int, count, rng: Random) -> tuple[str, int]:
    """The question as a document of about `target` tokens (count(text) -> tokens); (text, tokens)."""
    facts, ask = split_question(question)
    base = count(" ".join([INTRO, *facts, ask]))
    passages, total = [], base
    while total < target:
        p = _passage(rng, names, family)
        passages.append(p)
        total += count(p) + 1
    k, m = len(facts), len(passages)
    blocks, j = [INTRO], 0
    for i in range(m + 1):  # fact j goes after passage round((j + 1) * m / (k + 1)): evenly spread
        while j < k and i >= round((j + 1) * m / (k + 1)):
            blocks.append(facts[j])
            j += 1
        if i < m:
            blocks.append(passages[i])
    blocks += facts[j:]
    blocks.append(ask)
    text = "\n\n".join(blocks)
    return text, count(text)


def long_items(cfg: LongConfig, families: list[str], seed: int, tokenizer=None) -> list[Item]:
    """`cfg.per_bucket` long problems per bucket, families in turn; `tokenizer` (or cfg.tokenizer) counts."""
    if not cfg.per_bucket or not cfg.buckets:
        return []
    if not families:
        raise ConfigError("long.per_bucket > 0 needs at least one family in math.families")
    if tokenizer is None:
        from reasonkd.models import load_tokenizer  # lazy: only a build that asks for long problems loads one

        tokenizer = load_tokenizer(cfg.tokenizer)
    count = lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])  # noqa: E731
    out = []
    for bucket in cfg.buckets:
        rng = Random(f"{seed}/long/{bucket}")  # a str seed is hashed with sha512: stable across runs
        for i in range(cfg.per_bucket):
            fam = FAMILIES[families[i % len(families)]]
            s = rng.randrange(2**31)
            p = sample_valid(fam, Random(s))
            item = math_item(fam, p, f"long-{bucket}-{fam.name}-{i:05d}", seed=s)
            names = {v for v in p.values() if isinstance(v, str)}
            text, n = stretch(item.question, fam.name, names, TARGETS[bucket], count, Random(s + 1))
            item.question = text
            item.meta["long"] = {
                "bucket": length_bucket(n),
                "tokens": n,
                "tokenizer": str(cfg.tokenizer),
                "short_question": fam.question(p),
            }
            out.append(item)
    return out
