"""Perturbations that need an item's solution program (reasonkd.data.math_program).

Each generator takes a math item with `meta.family` / `meta.params`, changes the
problem, and recomputes the answer by running the family's `Op`s again, so no
answer is written by hand. It returns `(question, answer, steps, meta)` or None
when this item cannot take the perturbation (e.g. no sentence can be removed).
reasonkd.data.perturb wraps the result into a variant `Item` and verifies it.

    from reasonkd.data.perturb.program import GENERATORS
    out = GENERATORS["digit_expansion"](FAMILIES["eggs_market"], params, Random(0))
"""

from __future__ import annotations

import re
from fractions import Fraction
from random import Random

from reasonkd.data.math_program import Family, Op, apply, fmt, solve
from reasonkd.data.perturb.text import UNDETERMINABLE, split_sentences

MASK = "QXQ"
"""Stands in for one parameter while a question is rendered, to find where that number sits."""

# Constraints a family's program does not check by itself (solve() already rejects
# negative or fractional intermediates): a farm with at least one chicken.
_CONSTRAINTS = {"chickens_rabbits": lambda p: p["legs"] < 4 * p["heads"]}

# digit expansion: quantities scaled together by 10 or 100 so the story stays plausible
# (hours per day, percentages and ages are never scaled).
EXPAND = {
    "chickens_rabbits": ("heads", "legs"),
    "eggs_market": ("laid", "eat", "bake", "give"),
    "shopping_change": ("p1", "p2", "bill", "coupon"),
    "weekly_wages": ("rate", "rent"),
    "road_trip": ("t1", "t2", "trip"),
    "savings_goal": ("weekly", "have", "gift", "cost"),
    "recipe_scaling": ("serves", "guests", "cups", "has"),
    "ages_sum": ("years",),
    "class_percent": ("students",),
    "reading_pages": ("pages", "per_day", "then"),
    "apple_crates": ("crates", "rotten"),
    "zoo_tickets": ("adults", "kids"),
    "garden_fence": ("length", "width", "gate"),
    "leaky_tank": ("size", "has"),
}
# x100 would make these implausible (300 hours at the wheel, a class of 5000): x10 only
_TENFOLD_ONLY = {"road_trip", "ages_sum", "reading_pages", "class_percent"}
# integer -> decimal / fraction: only quantities that can be fractional (money, hours, meters, cups,
# liters per minute); counts of animals, pages or people stay whole.
CONTINUOUS = {
    "eggs_market": ("price",),
    "shopping_change": ("p1", "p2", "coupon"),
    "weekly_wages": ("rate", "hours"),
    "road_trip": ("t1", "t2"),
    "savings_goal": ("have", "gift"),
    "recipe_scaling": ("cups", "has"),
    "class_percent": ("pct",),
    "zoo_tickets": ("adult_price", "kid_price", "off"),
    "garden_fence": ("length", "width", "gate", "price"),
    "leaky_tank": ("fill", "leak"),
}
MONEY = {"price", "p1", "p2", "coupon", "rate", "have", "gift", "adult_price", "kid_price", "off"}
_STEPS = (Fraction(1, 2), Fraction(1, 4), Fraction(3, 4), Fraction(-1, 2), Fraction(-1, 4))


def valid(fam: Family, p: dict) -> tuple[str, list[str]] | None:
    """(answer, steps) when params `p` give a whole, non-negative solution that makes sense."""
    out = solve(fam, p)
    if out is None or not _CONSTRAINTS.get(fam.name, lambda _: True)(p):
        return None
    return fmt(out[0]), out[1]


def used_params(fam: Family, p: dict) -> list[str]:
    """Numeric parameters the solution actually reads, in order of first use."""
    names: list[str] = []
    for o in fam.program(dict(p)):
        for x in (o.a, o.b):
            if isinstance(x, str) and x in p and not isinstance(p[x], (str, bool)) and x not in names:
                names.append(x)
    return names


def exact_run(ops: list[Op], values: dict[str, Fraction], text: dict) -> tuple[dict, list[str]] | None:
    """Run steps over exact (possibly non-integer) values; None when a step goes negative or a
    division (a count: weeks, bags, rabbits) is not whole.

    math_program.run reads only int parameters, so a decimal one needs this twin of it."""
    env, lines = {k: Fraction(v) for k, v in values.items()}, []
    for o in ops:
        a = env[o.a] if isinstance(o.a, str) else Fraction(o.a)
        b = env[o.b] if isinstance(o.b, str) else Fraction(o.b)
        r = apply(o.op, a, b)
        if r is None or r < 0 or (o.op == "/" and r.denominator != 1):
            return None
        env[o.var] = r
        lines.append(o.say.format(expr=f"{fmt(a)} {o.op} {fmt(b)}", r=fmt(r), a=fmt(a), b=fmt(b), **text))
    return env, lines


def numerical_substitution(fam: Family, p: dict, rng: Random):
    """One number replaced by another with the same count of digits; answer recomputed."""
    names = used_params(fam, p)
    for _ in range(40):
        name = rng.choice(names)
        old = p[name]
        d = len(str(old))
        new = rng.randint(1 if d == 1 else 10 ** (d - 1), 10**d - 1)
        q = dict(p, **{name: new})
        if new == old or (res := valid(fam, q)) is None or fam.question(q) == fam.question(p):
            continue
        return fam.question(q), res[0], res[1], {"params": q, "changed": {name: [old, new]}}
    return None


def digit_expansion(fam: Family, p: dict, rng: Random):
    """Quantities scaled by 10 or 100 together (larger numbers, more digits); answer recomputed."""
    names = [n for n in EXPAND.get(fam.name, ()) if n in used_params(fam, p)]
    if not names:
        return None
    for factor in [10] if fam.name in _TENFOLD_ONLY else rng.sample([10, 100], 2):
        q = dict(p, **{n: p[n] * factor for n in EXPAND[fam.name]})
        if (res := valid(fam, q)) is not None:
            return fam.question(q), res[0], res[1], {"params": q, "factor": factor, "changed": names}
    return None


def render_number(value: Fraction, money: bool, rng: Random) -> str:
    """How a converted number is written: money as 4.50, others as 4.5 or the mixed number 4 1/2."""
    if money:
        return f"{float(value):.2f}"
    whole, rest = divmod(value, 1)
    if rng.random() < 0.5 or rest.denominator not in (2, 4):
        return fmt(value)
    return f"{rest.numerator}/{rest.denominator}" if whole == 0 else f"{whole} {rest.numerator}/{rest.denominator}"


def parse_number(text: str) -> Fraction:
    """Inverse of render_number: '4.50', '4.5', '4 1/2', '3/4' -> exact value."""
    parts = text.split()
    return sum((Fraction(x) for x in parts), Fraction(0))


def integer_decimal_fraction(fam: Family, p: dict, rng: Random):
    """One whole quantity becomes a decimal or a fraction (4 -> 4.5 or 4 1/2); answer recomputed exactly."""
    names = [n for n in CONTINUOUS.get(fam.name, ()) if n in used_params(fam, p)]
    ops, text = fam.program(dict(p)), {k: v for k, v in p.items() if isinstance(v, str)}
    tries = [(n, s) for n in names for s in _STEPS]
    rng.shuffle(tries)
    for name, step in tries:
        value = p[name] + step
        if value <= 0:
            continue
        values = {k: Fraction(v) for k, v in p.items() if isinstance(v, int) and not isinstance(v, bool)}
        out = exact_run(ops, dict(values, **{name: value}), text)
        if out is None or "/" in fmt(out[0][ops[-1].var]):
            continue
        written = render_number(value, name in MONEY, rng)
        question = fam.question(dict(p, **{name: written}))
        answer = fmt(out[0][ops[-1].var])
        return (
            question,
            answer,
            out[1] + [f"#### {answer}"],
            {"conversion": {"param": name, "from": p[name], "value": str(value), "text": written}},
        )
    return None


def added_operation(fam: Family, p: dict, rng: Random):
    """The family's optional condition switched on: one more step; answer recomputed."""
    if p.get("extra"):
        return None  # already has its extra step (see docs/robustness.md)
    q = dict(p, extra=True)
    res = valid(fam, q)
    if res is None:
        return None
    return fam.question(q), res[0], res[1], {"params": q, "added_steps": len(fam.program(q)) - len(fam.program(p))}


def _masked(fam: Family, p: dict, name: str) -> list[str]:
    return split_sentences(fam.question(dict(p, **{name: MASK})))


def unique_solution(fam: Family, p: dict, name: str, answer: str) -> bool:
    """Is p[name] the only whole value in 0 .. 2x + 50 that gives `answer`? (Every family's answer is
    monotone in each quantity, so a wider search finds nothing new; it only costs time.)"""
    hits = []
    for x in range(0, 2 * p[name] + 51):
        res = valid(fam, dict(p, **{name: x}))
        if res is not None and res[0] == answer:
            hits.append(x)
            if len(hits) > 1:
                return False
    return hits == [p[name]]


def reversed_question(fam: Family, p: dict, rng: Random):
    """The answer is given and one given quantity is asked for (x); x checked to be the only solution."""
    answer, steps = valid(fam, p)
    names = used_params(fam, p)
    rng.shuffle(names)
    for name in names:
        sents = _masked(fam, p, name)
        if len(sents) < 2 or MASK in sents[-1] or not any(MASK in s for s in sents[:-1]):
            continue  # the number sits in the question sentence itself: no clean way to restate it
        if not unique_solution(fam, p, name, answer):
            continue
        facts = " ".join(sents[:-1]).replace(MASK, "x")
        question = f'{facts} The answer to the question "{sents[-1]}" is {answer}. What is x?'
        v = p[name]
        work = [s for s in steps if not s.startswith(("####", "Check:"))]
        new_steps = (
            [f"Try x = {v}."]
            + work
            + [f"That gives {answer}, as stated, and no other whole x does, so x = {v}.", f"#### {v}"]
        )
        return question, str(v), new_steps, {"reversed": {"param": name, "value": v, "given_answer": answer}}
    return None


def _alternative(fam: Family, p: dict, name: str, answer: str) -> tuple[int, str] | None:
    """Another value of the removed quantity that gives a different valid answer."""
    v = p[name]
    for x in [v + d for d in (1, -1, 2, -2, 3, 5, 10)] + [2 * v, v // 2]:
        if x > 0 and x != v and (res := valid(fam, dict(p, **{name: x}))) is not None and res[0] != answer:
            return x, res[0]
    return None


def critical_thinking(fam: Family, p: dict, rng: Random):
    """A needed fact removed (its sentence dropped, or its number replaced by "some"); the expected
    answer is that it cannot be determined, checked by finding two values that give different answers."""
    answer, _ = valid(fam, p)
    real = split_sentences(fam.question(p))
    names = used_params(fam, p)
    rng.shuffle(names)
    for name in names:
        sents = _masked(fam, p, name)
        hit = [i for i, s in enumerate(sents) if MASK in s]
        if len(sents) != len(real) or not hit or (alt := _alternative(fam, p, name, answer)) is None:
            continue
        if hit[-1] < len(sents) - 1 and len(sents) - len(hit) >= 2:
            question, how = " ".join(s for i, s in enumerate(real) if i not in hit), "sentence_removed"
            removed = " ".join(real[i] for i in hit)
        elif re.search(rf"(?<![$\w.]){MASK}(?= [a-z])", " ".join(sents)):
            question = re.sub(rf"(?<![$\w.]){MASK}(?= [a-z])", "some", " ".join(sents))
            if MASK in question:
                continue
            how, removed = "number_replaced", str(p[name])
        else:
            continue
        steps = [
            "To answer, the problem would have to give a quantity it leaves out.",
            f"With one value of it the answer would be {answer}; with another it would be {alt[1]}.",
            f"So the answer {UNDETERMINABLE}: \\boxed{{{UNDETERMINABLE}}}",
        ]
        return (
            question,
            UNDETERMINABLE,
            steps,
            {
                "removed": {"param": name, "value": p[name], "how": how, "text": removed},
                "alternative": {"value": alt[0], "answer": alt[1]},
                "reference_if_given": answer,
            },
        )
    return None


GENERATORS = {
    "numerical_substitution": numerical_substitution,
    "digit_expansion": digit_expansion,
    "integer_decimal_fraction": integer_decimal_fraction,
    "added_operation": added_operation,
    "reversed_question": reversed_question,
    "critical_thinking": critical_thinking,
}
