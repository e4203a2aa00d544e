"""Where a wrong math answer first went wrong: one completion, one first-error class.

    from reasonkd.eval.diagnose import gold_of, diagnose
    gold = gold_of(item)                      # a data-engine item (steps, meta.subquestions, meta.params) or None
    d = diagnose(completion, reference="32", gold=gold, question=item["question"], finished=True)
    d.cls, d.why, d.start, d.end              # 'arithmetic', '7 * 8 = 54 (is 56)', span of the offending step

The classes (CLASSES) and the rule, applied in this order (docs/analyze.md):

1. Each stated calculation (reasonkd.eval.calc) is walked in order. An operand that is neither a
   number of the question, an earlier result, a gold value, a common constant nor one unwritten step
   from those is a number *copied wrong* (`copy`: misread or invented). A calculation whose stated
   result is wrong is an `arithmetic` slip.
2. With gold steps: the first correct calculation whose result is no gold value marks a departure
   from the plan (so does a slip whose true value is no gold value either: a wrong step, also
   computed wrongly). When a needed gold intermediate never appears (neither it nor anything
   computed from it) and that departure comes before any slip, the error is `condition` (the item's
   optional condition is on, and the chain ends on the answer without it, or carries out the rest of
   the plan and never uses the condition's numbers) or `plan`.
3. A chain that reaches the gold answer before any error (with gold steps: by a calculation built on
   the gold plan), yet ends on another answer, is `extraction`.
4. Otherwise the first slip or copy error; else `no_answer` (nothing extractable, only a plan never
   carried out, or cut at the token budget without a final line), `condition`, `plan` (a needed gold
   intermediate never appears), `other`.

Without gold steps (a plain GSM8K file) only the gold answer is known: `plan` and `condition` are
never given, those errors land in `other`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction

from reasonkd.data.answers import extract_final_answer, normalize_number
from reasonkd.eval.calc import read_chain

CLASSES = {
    "no_answer": "no final answer / cut at the token budget",
    "extraction": "extraction failed although the chain reached the gold value",
    "arithmetic": "arithmetic slip (a stated calculation is wrong)",
    "copy": "wrong number copied from the question",
    "plan": "wrong operation or plan (a needed gold intermediate never appears)",
    "condition": "a needed condition missed",
    "other": "other",
}
NEEDS_GOLD = ("plan", "condition")
CONSTANTS = frozenset(Fraction(c) for c in (0, 1, 2, 4, 7, 10, 12, 24, 52, 60, 100, 365, 1000))
_WORD_NUMBERS = {
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "eleven": 11,
    "twelve": 12,
    "twice": 2,
    "double": 2,
    "half": 2,
    "triple": 3,
    "dozen": 12,
    "quarter": 4,
}
# "#### 12" is a final line, "#### 1. Calculate the total" a markdown heading
_FINAL_MARK = re.compile(
    r"####\s*\$?\s*-?\d[\d,]*(?:\.\d+)?(?![\d.]*\s*[.)]?\s*[A-Za-z])|\\boxed|answer\s*(?:is|:)", re.IGNORECASE
)
_CALC_NOTE = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations


@dataclass
class Gold:
    """What the data engine knows about one problem beyond its answer."""

    answer: Fraction | None
    values: list[Fraction] = field(default_factory=list)
    """The gold intermediate values, one per solution step, in order."""
    feeds: list[set[int]] = field(default_factory=list)
    """feeds[i]: the later steps computed (directly or not) from step i."""
    step_numbers: set[Fraction] = field(default_factory=set)
    """Every number the gold solution writes (check lines included)."""
    no_condition: Fraction | None = None
    """With the item's optional condition on: the answer with it left out."""
    condition_numbers: set[Fraction] = field(default_factory=set)
    """Numbers of the question only the condition uses."""
    base_values: set[Fraction] = field(default_factory=set)
    """With the condition on: the values the solution without it computes."""
    last_operands: set[Fraction] = field(default_factory=set)
    """The two numbers the last gold step combines."""


@dataclass
class Diagnosis:
    cls: str
    why: str
    start: int | None = None
    end: int | None = None
    """Character span of the offending step in the completion (None: no single step)."""
    gold_steps: bool = False


def _num(x) -> Fraction | None:
    return normalize_number(x) if not isinstance(x, Fraction) else x


def question_numbers(question: str) -> set[Fraction]:
    nums = {v for v, _ in read_chain(question or "").numbers}
    nums |= {v / 100 for v in list(nums)}  # 20% is also 0.2
    words = set(re.findall(r"[a-z]+", (question or "").lower()))
    return nums | {Fraction(v) for w, v in _WORD_NUMBERS.items() if w in words}


def _linear_feeds(n: int) -> list[set[int]]:
    return [set(range(i + 1, n)) for i in range(n)]


def _family_gold(meta: dict, answer: Fraction | None) -> Gold | None:
    from reasonkd.data.math_families import FAMILIES, run

    fam = FAMILIES.get(meta.get("family"))
    params = meta.get("params")
    if fam is None or not isinstance(params, dict):
        return None
    ops = fam.program(dict(params))
    out = run(ops, dict(params))
    if out is None:
        return None
    values, defined, feeds, last = [], {}, [set() for _ in ops], set()
    env = {k: Fraction(v) for k, v in params.items() if isinstance(v, int) and not isinstance(v, bool)}
    for i, op in enumerate(ops):  # replay to get each step's own value (a var may be redefined)
        a = env[op.a] if isinstance(op.a, str) else Fraction(op.a)
        b = env[op.b] if isinstance(op.b, str) else Fraction(op.b)
        env[op.var] = {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else a}[op.op]
        values.append(env[op.var])
        last = {a, b}
        for src in (op.a, op.b):
            if isinstance(src, str) and src in defined:
                j = defined[src]
                feeds[j].add(i)
        defined[op.var] = i
    for i in reversed(range(len(ops))):  # transitive
        for j in list(feeds[i]):
            feeds[i] |= feeds[j]
    gold = Gold(answer=answer if answer is not None else values[-1], values=values, feeds=feeds, last_operands=last)
    gold.step_numbers = {Fraction(x) for op in ops for x in (op.a, op.b) if isinstance(x, int)}
    if params.get("extra"):
        plain = dict(params, extra=False)
        base = fam.program(dict(plain))
        done = run(base, dict(plain))
        if done is not None:
            gold.no_condition = done[0][base[-1].var]
            gold.base_values = {done[0][op.var] for op in base}
        used = {x for op in base for x in (op.a, op.b) if isinstance(x, str)}
        gold.condition_numbers = {
            Fraction(params[x])
            for op in ops
            if op not in base
            for x in (op.a, op.b)
            if isinstance(x, str) and x in params and x not in used and isinstance(params[x], int)
        }
    return gold


def gold_of(item: dict | None) -> Gold | None:
    """Gold steps of a data-engine item (meta.params of its family, else meta.subquestions, else `steps`;
    a GSM8K answer's worked lines count as steps). None when the item has none."""
    if not item:
        return None
    meta = item.get("meta") or {}
    answer = _num(item.get("reference", item.get("answer")))
    if isinstance(item.get("answer"), str) and "####" in item["answer"]:
        answer = _num(item["answer"].rsplit("####", 1)[1])
    steps = item.get("steps") or []
    if not steps and isinstance(item.get("answer"), str) and "####" in item["answer"]:
        steps = item["answer"].rsplit("####", 1)[0].strip().splitlines()
    step_text = _CALC_NOTE.sub(" ", "\n".join(str(s) for s in steps))
    gold = _family_gold(meta, answer)
    if gold is None and meta.get("subquestions"):
        values = [v for v in (_num(s.get("answer")) for s in meta["subquestions"]) if v is not None]
        gold = Gold(answer=answer, values=values, feeds=_linear_feeds(len(values))) if values else None
    if gold is None and step_text.strip():
        values = [c.claimed for c in read_chain(step_text).calcs if c.ok]
        gold = Gold(answer=answer, values=values, feeds=_linear_feeds(len(values))) if values else None
    if gold is not None:
        gold.step_numbers |= {v for v, _ in read_chain(step_text).numbers} | set(gold.values)
    return gold


def _one_step_from(known: set[Fraction], scale: set[Fraction]) -> set[Fraction]:
    """Numbers one unwritten step away: a op b of two known numbers, or a known number times / over a scale."""
    out = set()
    for a in known:
        for b in known:
            out |= {a + b, a - b, a * b}
            if b:
                out.add(a / b)
        for s in scale:
            out |= {a * s, a / s}
    return out


def _first_local(chain, known: set[Fraction], givens: set[Fraction], gold: Gold | None):
    """(position, Diagnosis) of the first copy error or arithmetic slip, else None."""
    results: set[Fraction] = set()
    gold_values = set(gold.values) | gold.step_numbers if gold else set()
    for c in chain.calcs:
        pool = known | results | gold_values
        implicit = _one_step_from(givens | results, {Fraction(2), Fraction(100)})
        bad = [x for x in c.operands if x not in pool and x not in implicit]
        if bad:
            return c.start, Diagnosis(
                "copy", f"{_fmt(bad[0])} in {c.expr} is not a number of the question", c.start, c.end
            )
        if not c.ok:
            return c.start, Diagnosis(
                "arithmetic", f"{c.expr} = {_fmt(c.claimed)} (is {_fmt(c.value)})", c.start, c.end
            )
        results |= {c.claimed, c.value}
    return None


def _last_line(text: str) -> int:
    body = text.rstrip()
    return body.rfind("\n") + 1


def _fmt(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


def _first_pos(chain, v: Fraction, givens: set[Fraction], gold: Gold | None) -> int | None:
    """Where the chain first reaches the gold answer v: a calculation's result, or a mention that is not a
    given. With gold steps only a calculation counts, and only one built on the gold plan (it combines the
    last gold step's numbers or a gold intermediate), so 3 * 4 = 12 by chance is no reaching of 12."""
    if gold is None:
        pos = [c.start for c in chain.calcs if c.claimed == v and c.ok]
        pos += [p for x, p in chain.numbers if x == v and v not in givens]
        return min(pos) if pos else None
    inner = set(gold.values[:-1]) - givens
    pos = [
        c.start
        for c in chain.calcs
        if c.claimed == v
        and c.ok
        and (set(c.operands) & inner or (gold.last_operands and set(c.operands) == gold.last_operands))
    ]
    return min(pos) if pos else None


def _seen(chain, givens: set[Fraction]) -> set[Fraction]:
    """Values the chain reaches: calculation results, and mentions that are not just a given restated."""
    return {c.claimed for c in chain.calcs} | {x for x, _ in chain.numbers if x not in givens}


def _plan(chain, gold: Gold, givens: set[Fraction], final, ended: bool):
    """(missing needed gold steps, first off-gold calculation or None, condition missed?).
    `ended`: the completion came to its own end (not cut at the token budget)."""
    seen = _seen(chain, givens)
    missing = [
        i for i, v in enumerate(gold.values) if v not in seen and not any(gold.values[j] in seen for j in gold.feeds[i])
    ]
    allowed = set(gold.values) | gold.step_numbers | givens
    off = next((c for c in chain.calcs if c.ok and c.claimed not in allowed), None)
    cond = False
    if ended and gold.no_condition is not None and gold.no_condition != gold.answer:
        last = chain.calcs[-1].claimed if chain.calcs else None
        inner = gold.base_values - givens - {gold.no_condition}
        built = any(c.claimed == gold.no_condition and set(c.operands) & inner for c in chain.calcs)
        reached = built and gold.no_condition in (final, last)
        unused = bool(gold.condition_numbers) and not (gold.condition_numbers & {x for x, _ in chain.numbers})
        # the plan without the condition was carried out; only the condition's own steps are missing
        cond = reached or (unused and bool(missing) and not {gold.values[i] for i in missing} & gold.base_values)
    return missing, off, cond


def _plan_error(chain, gold: Gold, givens, final, ended, local) -> Diagnosis | None:
    """A departure from the gold plan that comes before any slip (rule 2 of the module docstring)."""
    missing, off, cond = _plan(chain, gold, givens, final, ended)
    local_pos = local[0] if local else None
    first = off is not None and (local_pos is None or off.start < local_pos)
    if local and local[1].cls == "arithmetic" and missing and not first:
        c = next(c for c in chain.calcs if c.start == local_pos)
        if c.value not in set(gold.values):  # a wrong step, computed wrong as well: the plan failed first
            off, first = c, True
    if not (missing and first):
        return None
    if cond:
        return Diagnosis(
            "condition", f"the answer without the condition is {_fmt(gold.no_condition)}", off.start, off.end
        )
    return Diagnosis(
        "plan",
        f"{off.expr} = {_fmt(off.claimed)} is no gold step; never reached: "
        + ", ".join(_fmt(gold.values[i]) for i in missing),
        off.start,
        off.end,
    )


def diagnose(
    completion: str, reference, gold: Gold | None = None, question: str | None = None, finished: bool | None = None
) -> Diagnosis:
    """The first-error class of a WRONG answer (see the module docstring)."""
    text = completion or ""
    has_gold = bool(gold and gold.values)
    ref = _num(reference) if gold is None or gold.answer is None else gold.answer
    chain = read_chain(text)
    if finished is False:  # a calculation cut off mid-number by the token budget is not a slip
        chain.calcs = [c for c in chain.calcs if c.end < len(text.rstrip())]
    if not text.strip() or not chain.numbers:
        return Diagnosis("no_answer", "no number in the completion", gold_steps=has_gold)
    givens = question_numbers(question or "")
    known = givens | CONSTANTS
    marked = bool(_FINAL_MARK.search(text))
    final_text = extract_final_answer(text)
    final = _num(final_text) if final_text is not None else None
    local = _first_local(chain, known, givens, gold if has_gold else None)
    gold_pos = _first_pos(chain, ref, givens, gold if has_gold else None) if ref is not None else None
    ended = finished is not False or marked
    d = None
    if gold_pos is not None and (local is None or gold_pos < local[0]):
        d = Diagnosis(
            "extraction",
            f"the chain reaches {_fmt(ref)} but the final answer read is {final_text}",
            _last_line(text),
            len(text.rstrip()),
        )
    elif has_gold:
        d = _plan_error(chain, gold, givens, final, ended, local)
    if d is None and local is not None:
        d = local[1]
    if d is None:
        last = chain.numbers[-1][0] if chain.numbers else None  # list numbering left out
        bare = not marked and not chain.calcs and (last is None or last in givens)  # a plan, never carried out
        missing, _, cond = _plan(chain, gold, givens, final, ended) if has_gold else ([], None, False)
        if final is None or not ended or bare:
            why = "no answer of its own" if ended else "cut at the token budget without a final line"
            d = Diagnosis("no_answer", why, _last_line(text), len(text.rstrip()))
        elif cond:
            d = Diagnosis("condition", f"the answer without the condition is {_fmt(gold.no_condition)}")
        elif missing:
            d = Diagnosis("plan", "never reached: " + ", ".join(_fmt(gold.values[i]) for i in missing))
        else:
            d = Diagnosis("other", f"final answer {final_text}; no step found at fault")
    d.gold_steps = has_gold
    return d


def excerpt(text: str, d: Diagnosis, width: int = 260) -> str:
    """A short piece of the completion around the offending step, the step marked [[like this]]."""
    text = text or ""
    if d.start is None:
        body = " ".join(text.split())
        return body[:width] + (" [...]" if len(body) > width else "")
    a, b = d.start, max(d.end or d.start, d.start)
    lo = max(0, text.rfind("\n", 0, max(0, a - 1)) + 1) if a > 0 else 0
    lo = max(lo, a - width // 2)
    hi = min(len(text), b + width // 3)
    body = text[lo:a] + "[[" + text[a:b] + "]]" + text[b:hi]
    return ("[...] " if lo > 0 else "") + " ".join(body.split()) + (" [...]" if hi < len(text) else "")
