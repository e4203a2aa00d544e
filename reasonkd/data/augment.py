"""Math items and their augmentations: variants, harder/easier, distractors,
labelled negatives, and decomposition into sub-questions.

Every derived item is recomputed by the family's program from its own params
(`meta.params`), never edited by hand, so its answer is right by construction;
the builder still re-verifies every item (reasonkd.data.build).

    item = math_item(FAMILIES["eggs_market"], params, "math-eggs_market-00001", seed=7)
    kids = [param_variant(item, rng), condition_variant(item), distractor_variant(item, rng),
            *negatives(item, rng, ["arithmetic_slip"]), *subtasks(item, 2)]
"""

from __future__ import annotations

import copy
from fractions import Fraction
from random import Random

from reasonkd.data.math_families import FAMILIES, Family, fmt, run, sample_valid, solve
from reasonkd.data.math_program import NAMES
from reasonkd.data.schema import Item

NEGATIVE_TYPES = ("arithmetic_slip", "skipped_step", "wrong_operation", "misread_quantity", "wrong_final_answer")

DISTRACTORS = (
    "{name}'s cousin is {n} years old.",
    "There were {n} birds sitting on a fence nearby.",
    "The town library has {n} chairs.",
    "It rained on {n} days last month.",
    "{name}'s favourite number is {n}.",
    "A bus passes the corner {n} times a day.",
)


def math_item(fam: Family, p: dict, item_id: str, seed: int, split: str = "train", **fields) -> Item:
    """An original item for family `fam` with params `p` (answer and steps computed)."""
    answer, steps, subs = solve(fam, p)
    n_ops = len(fam.program(dict(p)))
    return Item(
        id=item_id,
        domain="math",
        question=fam.question(p),
        answer=fmt(answer),
        steps=steps,
        verifier="math_numeric",
        split=split,
        source="reasonkd",
        seed=seed,
        difficulty=max(1, min(5, n_ops - 1)),
        template=fam.name,
        meta={
            "family": fam.name,
            "params": dict(p),
            "subquestions": [{"question": q, "answer": fmt(v)} for q, v in subs],
        },
        **fields,
    )


def _rederive(parent: Item, suffix: str, p: dict, **changes) -> Item:
    fam = FAMILIES[parent.meta["family"]]
    fresh = math_item(fam, p, parent.id, parent.seed, parent.split)
    meta = dict(fresh.meta, **changes.pop("meta", {}))
    return parent.derive(
        suffix,
        kind="variant",
        question=fresh.question,
        answer=fresh.answer,
        steps=fresh.steps,
        difficulty=fresh.difficulty,
        meta=meta,
        **changes,
    )


def param_variant(parent: Item, rng: Random, k: int = 1) -> Item | None:
    """Same family and condition, new numbers and names; answer recomputed."""
    fam = FAMILIES[parent.meta["family"]]
    for _ in range(20):
        p = sample_valid(fam, rng, extra=parent.meta["params"]["extra"])
        if fam.question(p) != parent.question:
            return _rederive(parent, f"v{k}", p, meta={"augment": "param_substitution"})
    return None


def condition_variant(parent: Item) -> Item | None:
    """Add the family's optional condition (harder) or remove it (easier)."""
    p = dict(parent.meta["params"], extra=not parent.meta["params"]["extra"])
    if solve(FAMILIES[parent.meta["family"]], p) is None:
        return None  # e.g. the extra subtraction would go negative with these numbers
    how = "add_condition" if p["extra"] else "remove_condition"
    return _rederive(parent, "cond", p, meta={"augment": how})


def add_distractor(question: str, sentence: str) -> str:
    """Insert an irrelevant sentence after the first sentence of the question."""
    cut = question.find(". ")
    if cut < 0:
        return f"{sentence} {question}"
    return f"{question[: cut + 2]}{sentence} {question[cut + 2 :]}"


def distractor_sentence(rng: Random, question: str) -> str:
    names = [n for n in NAMES if n not in question]
    return rng.choice(DISTRACTORS).format(name=rng.choice(names), n=rng.randint(3, 97))


def distractor_variant(parent: Item, rng: Random) -> Item:
    """An irrelevant numeric sentence added; the answer (recomputed) must not change."""
    sentence = distractor_sentence(rng, parent.question)
    if "family" in parent.meta:
        answer, steps, _ = solve(FAMILIES[parent.meta["family"]], parent.meta["params"])
        answer = fmt(answer)
    else:  # imported / reasoning-gym items have no program: the stored, verified answer stands
        answer, steps = parent.answer, list(parent.steps)
    note = f'The sentence "{sentence}" does not affect the answer.'
    return parent.derive(
        "dis",
        kind="variant",
        question=add_distractor(parent.question, sentence),
        answer=answer,
        steps=[note] + steps,
        meta=dict(parent.meta, augment="distractor", distractor=sentence),
    )


def _misread(value: int, rng: Random) -> int:
    s = str(value)
    if len(s) == 2 and s[0] != s[1] and s[1] != "0" and rng.random() < 0.5:
        return int(s[::-1])  # 24 read as 42
    return max(1, value + rng.choice([-3, -2, -1, 1, 2, 3]))


def _wrong_run(fam: Family, p: dict, etype: str, rng: Random) -> tuple[list[str], Fraction] | None:
    ops = fam.program(dict(p))
    k = rng.randrange(len(ops))
    q = p
    perturb = None
    if etype == "arithmetic_slip":
        perturb = {"type": etype, "step": k, "delta": rng.choice([-10, -2, -1, 1, 2, 10])}
    elif etype == "wrong_operation":
        perturb = {"type": etype, "step": k, "op": {"+": "-", "-": "+", "*": "+", "/": "*"}[ops[k].op]}
    elif etype == "skipped_step":
        if len(ops) < 2:
            return None
        perturb = {"type": etype, "step": k}
    elif etype == "misread_quantity":
        used = sorted(
            {o.a for o in ops if isinstance(o.a, str) and o.a in p}
            | {o.b for o in ops if isinstance(o.b, str) and o.b in p}
        )
        name = rng.choice(used)
        q = dict(p, **{name: _misread(p[name], rng)})
    out = run(ops, q, perturb)
    if out is None:
        return None
    env, lines = out
    return lines, env[ops[-1].var]


def negatives(parent: Item, rng: Random, types: list[str] | tuple[str, ...] = NEGATIVE_TYPES) -> list[Item]:
    """One labelled wrong solution per error type; each checked to reach a wrong answer."""
    from reasonkd.data.verify import numbers_equal

    out = []
    for etype in types:
        for _ in range(40):  # some perturbations land on the right answer or a fraction: retry
            if etype == "wrong_final_answer" or "family" not in parent.meta:
                if etype != "wrong_final_answer":
                    break  # no program to perturb (imported items): only a wrong final answer
                wrong = Fraction(parent.answer) + rng.choice([-10, -3, -2, -1, 1, 2, 3, 10])
                lines = [s for s in parent.steps if not s.startswith(("####", "Check:"))]
            else:
                res = _wrong_run(FAMILIES[parent.meta["family"]], parent.meta["params"], etype, rng)
                if res is None:
                    continue
                lines, wrong = res
            if numbers_equal(fmt(wrong), parent.answer) or Fraction(wrong).denominator != 1:
                continue  # right by accident, or a fraction no GSM8K-style solver would write
            meta = copy.deepcopy(parent.meta)
            meta["reference"] = parent.answer
            out.append(
                parent.derive(
                    f"neg-{etype}",
                    kind="negative",
                    error_type=etype,
                    answer=fmt(wrong),
                    steps=lines + [f"#### {fmt(wrong)}"],
                    meta=meta,
                )
            )
            break
    return out


def subtasks(parent: Item, max_n: int) -> list[Item]:
    """The first intermediate steps as their own questions, each with its answer."""
    subs = parent.meta.get("subquestions", [])[:-1]  # the last one is the whole problem
    out = []
    for k, sq in enumerate(subs[:max_n]):
        steps = [s for s in parent.steps if not s.startswith(("####", "Check:"))][: k + 1]
        out.append(
            parent.derive(
                f"sub{k + 1}",
                kind="subtask",
                question=f"{parent.question}\nFirst, answer only this part: {sq['question']}",
                answer=sq["answer"],
                steps=steps + [f"#### {sq['answer']}"],
                difficulty=1,
                meta=dict(parent.meta, augment="decomposition", step_index=k),
            )
        )
    return out
