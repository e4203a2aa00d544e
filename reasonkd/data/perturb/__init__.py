"""Adversarial perturbations of verified math items: the eight GSM-Plus types.

The perturbation types follow GSM-Plus (Li et al., ACL 2024, "GSM-Plus: A
Comprehensive Benchmark for Evaluating the Robustness of LLMs as Mathematical
Problem Solvers"); the generators are our own and work on the data engine's
program items (reasonkd.data.math_families), so every perturbed answer is
recomputed by running the item's program again and then verified:

| type | what changes | answer |
|---|---|---|
| numerical_substitution | one number, same count of digits | recomputed |
| digit_expansion | quantities x10 / x100 together | recomputed |
| integer_decimal_fraction | one whole quantity becomes 4.5 / 4 1/2 / $4.50 | recomputed exactly |
| added_operation | the family's optional condition switched on (one more step) | recomputed |
| reversed_question | the answer is given, a given quantity (x) is asked for | x, checked unique |
| paraphrase | question first, facts after, verbs swapped; numbers kept | unchanged |
| distractor_insertion | an irrelevant sentence with a number | unchanged |
| critical_thinking | a needed fact removed | "cannot be determined" |

Only paraphrase and distractor insertion apply to free text without a program
(a GSM8K-format file): the others must recompute the answer.

    from reasonkd.data.perturb import TYPES, perturb, perturb_all, verify_perturbation
    variants = perturb_all(item, seed=0)                 # {type: Item}, each verified
    verify_perturbation(variants["digit_expansion"].to_dict())   # True
    training_items(item, ["paraphrase", "digit_expansion"], seed=0, k=1, negatives=1.0)
"""

from __future__ import annotations

import copy
import hashlib
from fractions import Fraction
from random import Random
from typing import Sequence

from reasonkd.data.augment import NEGATIVE_TYPES, math_item, negatives
from reasonkd.data.math_families import FAMILIES
from reasonkd.data.math_program import fmt
from reasonkd.data.perturb.program import GENERATORS, exact_run, parse_number, unique_solution, valid
from reasonkd.data.perturb.text import UNDETERMINABLE, insert_distractor, paraphrase_text, states_undeterminable
from reasonkd.data.schema import FIELDS, Item, solution_text
from reasonkd.data.verify import numbers_equal, verify_item

TYPES = (
    "numerical_substitution",
    "digit_expansion",
    "integer_decimal_fraction",
    "added_operation",
    "reversed_question",
    "paraphrase",
    "distractor_insertion",
    "critical_thinking",
)
FREE_TEXT_TYPES = ("paraphrase", "distractor_insertion")
"""Types that change only the wording, so they apply to a problem without a solution program."""
NEEDS_PROGRAM = tuple(t for t in TYPES if t not in FREE_TEXT_TYPES)
SUFFIX = {
    "numerical_substitution": "pnum",
    "digit_expansion": "pdig",
    "integer_decimal_fraction": "pidf",
    "added_operation": "padd",
    "reversed_question": "prev",
    "paraphrase": "ppara",
    "distractor_insertion": "pdis",
    "critical_thinking": "pcrit",
}

__all__ = [
    "TYPES",
    "FREE_TEXT_TYPES",
    "NEEDS_PROGRAM",
    "UNDETERMINABLE",
    "as_item",
    "has_program",
    "perturb",
    "perturb_all",
    "verify_perturbation",
    "states_undeterminable",
    "training_items",
    "wrong_paths",
]


def stream_seed(seed: int, *parts: object) -> int:
    """A seed for one (item, type) stream: adding a type or an item never shifts another's draw."""
    h = hashlib.sha256("/".join([str(seed), *map(str, parts)]).encode()).digest()
    return int.from_bytes(h[:8], "big") % (2**31)


def as_item(row: Item | dict) -> Item:
    """An Item from a dataset row (or an Item unchanged)."""
    return row if isinstance(row, Item) else Item(**{k: copy.deepcopy(row[k]) for k in FIELDS if k in row})


def has_program(item: Item | dict) -> bool:
    """Does the item carry a family program (so every type applies), or only free text?"""
    meta = (item.meta if isinstance(item, Item) else item.get("meta")) or {}
    return meta.get("family") in FAMILIES and "params" in meta


def perturb(item: Item | dict, ptype: str, rng: Random) -> Item | None:
    """One perturbed variant of `item` (kind variant, id `<item id>-<suffix>`), or None when this
    item cannot take `ptype` (no program for it, nothing to remove, ...). Not yet verified."""
    if ptype not in TYPES:
        raise ValueError(f"unknown perturbation {ptype!r}; known: {', '.join(TYPES)}")
    parent = as_item(item)
    program = has_program(parent)
    meta = {k: v for k, v in parent.meta.items() if k not in ("subquestions", "augment")}
    meta.update(augment="perturbation", perturbation=ptype)
    if ptype in FREE_TEXT_TYPES:
        if ptype == "paraphrase":
            question, extra = paraphrase_text(parent.question), {}
            note = []
        else:
            question, sentence = insert_distractor(parent.question, rng)
            extra, note = {"distractor": sentence}, [f'The sentence "{sentence}" does not affect the answer.']
        if question is None:
            return None
        if program:
            answer, steps = valid(FAMILIES[meta["family"]], meta["params"])
        else:
            answer, steps = parent.answer, list(parent.steps)
        return parent.derive(
            SUFFIX[ptype],
            kind="variant",
            question=question,
            answer=answer,
            steps=note + steps if steps else [],
            meta=dict(meta, **extra),
        )
    if not program:
        return None
    fam = FAMILIES[meta["family"]]
    out = GENERATORS[ptype](fam, dict(meta["params"]), rng)
    if out is None:
        return None
    question, answer, steps, extra = out
    difficulty = parent.difficulty
    if "params" in extra:  # new whole-number params: the family recomputes everything, sub-questions too
        fresh = math_item(fam, extra["params"], parent.id, parent.seed, parent.split)
        meta["subquestions"], difficulty = fresh.meta["subquestions"], fresh.difficulty
    return parent.derive(
        SUFFIX[ptype],
        kind="variant",
        question=question,
        answer=answer,
        steps=steps,
        difficulty=difficulty,
        meta=dict(meta, **extra),
    )


def verify_perturbation(row: Item | dict) -> bool:
    """Recompute a perturbed item's answer from its program (or its parent's reference for free
    text) and check it, and that its own solution passes verify_item."""
    row = row.to_dict() if isinstance(row, Item) else row
    meta = row.get("meta") or {}
    ptype, fam = meta.get("perturbation"), FAMILIES.get(meta.get("family"))
    if ptype not in TYPES or row.get("kind") != "variant":
        return False
    text = solution_text(row)
    if fam is None or "params" not in meta:  # free text: wording only, the stored answer stands
        return ptype in FREE_TEXT_TYPES and (not row.get("steps") or verify_item(row, text))
    p = meta["params"]
    base = valid(fam, p)
    if base is None:
        return False
    if ptype == "critical_thinking":
        rem, alt = meta["removed"], meta["alternative"]
        other = valid(fam, dict(p, **{rem["param"]: alt["value"]}))
        return (
            row["answer"] == UNDETERMINABLE
            and other is not None
            and other[0] != base[0]
            and states_undeterminable(text)
            and verify_item(row, text)
        )
    if ptype == "integer_decimal_fraction":
        conv = meta["conversion"]
        value = parse_number(conv["text"])
        if value.denominator == 1 or conv["text"] not in row["question"]:
            return False
        ops = fam.program(dict(p))
        values = {k: v for k, v in p.items() if isinstance(v, int) and not isinstance(v, bool)}
        out = exact_run(ops, dict(values, **{conv["param"]: value}), {k: v for k, v in p.items() if isinstance(v, str)})
        expected = None if out is None else fmt(out[0][ops[-1].var])
    elif ptype == "reversed_question":
        rev = meta["reversed"]
        if base[0] != rev["given_answer"] or not unique_solution(fam, p, rev["param"], base[0]):
            return False
        expected = str(p[rev["param"]])
    else:
        expected = base[0]
    return expected is not None and numbers_equal(expected, row["answer"]) and verify_item(row, text)


def perturb_all(item: Item | dict, types: Sequence[str] = TYPES, seed: int = 0) -> dict[str, Item]:
    """{type: verified variant} for every type in `types` this item can take (seeded per item and type)."""
    parent = as_item(item)
    out = {}
    for t in types:
        v = perturb(parent, t, Random(stream_seed(seed, parent.id, t)))
        if v is not None and v.question != parent.question and verify_perturbation(v):
            out[t] = v
    return out


def wrong_paths(variant: Item, rng: Random) -> list[Item]:
    """A labelled wrong reasoning path for a perturbed item (kind negative, parent_id = the variant),
    the mistake the perturbation invites: using the distractor's number, answering with a number
    when a fact is missing, reading 4 1/2 as 4, answering the forward question; else an error of
    reasonkd.data.augment.NEGATIVE_TYPES on the variant's own program."""
    ptype, meta = variant.meta.get("perturbation"), variant.meta
    fam = FAMILIES.get(meta.get("family"))
    wrong, lines, etype = None, [], "wrong_final_answer"
    base = valid(fam, meta["params"]) if fam and "params" in meta else None
    work = [s for s in (base[1] if base else []) if not s.startswith(("####", "Check:"))]
    if ptype == "critical_thinking" and base:
        wrong, lines = base[0], work
    elif ptype == "reversed_question" and base and base[0] != variant.answer:
        wrong, lines = base[0], work + ["So the answer is the total worked out above."]
    elif ptype == "distractor_insertion" and base:
        n = int(next(w for w in meta["distractor"].replace(".", " ").split() if w.isdigit()))
        wrong, etype = fmt(Fraction(base[0]) + n), "misread_quantity"
        lines = work + [f"The {n} mentioned also counts: {base[0]} + {n} = {wrong}."]
    elif ptype == "integer_decimal_fraction" and fam:
        conv, p = meta["conversion"], meta["params"]
        values = {k: v for k, v in p.items() if isinstance(v, int) and not isinstance(v, bool)}
        floor = int(parse_number(conv["text"]))
        out = exact_run(
            fam.program(dict(p)),
            dict(values, **{conv["param"]: floor}),
            {k: v for k, v in p.items() if isinstance(v, str)},
        )
        if out is not None:
            wrong, etype = fmt(out[0][fam.program(dict(p))[-1].var]), "misread_quantity"
            lines = [f"Reading {conv['text']} as {floor}."] + out[1]
    elif fam and "params" in meta and ptype not in ("reversed_question", "critical_thinking"):
        return negatives(variant, rng, [rng.choice(NEGATIVE_TYPES[:4])])
    if wrong is None or numbers_equal(wrong, variant.answer):
        return []
    neg_meta = copy.deepcopy(variant.meta)
    neg_meta["reference"] = variant.answer
    return [
        variant.derive(
            f"neg-{etype}",
            kind="negative",
            error_type=etype,
            answer=wrong,
            steps=lines + [f"#### {wrong}"],
            meta=neg_meta,
        )
    ]


def training_items(item: Item, types: Sequence[str], seed: int, k: int = 1, negatives: float = 1.0) -> list[Item]:
    """Up to `k` verified perturbed variants of one original for an adversarial training mix
    (types tried in turn from a seeded start, only those in `types`), and for a share `negatives`
    of them a wrong reasoning path (each checked to fail verification)."""
    if not types or k <= 0:
        return []
    rng = Random(stream_seed(seed, item.id, "adversarial"))
    start = rng.randrange(len(types))
    out: list[Item] = []
    for t in [types[(start + j) % len(types)] for j in range(len(types))]:
        v = perturb(item, t, Random(stream_seed(seed, item.id, t)))
        if v is None or v.question == item.question or not verify_perturbation(v):
            continue
        out.append(v)
        if rng.random() < negatives:
            out += [n for n in wrong_paths(v, rng) if not verify_item(n.to_dict(), n.solution_text())]
        if sum(x.kind == "variant" for x in out) >= k:
            break
    return out
