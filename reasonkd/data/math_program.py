"""The small step language behind the math word-problem families.

A problem's solution is a list of `Op`s (`var = a <op> b`). `run` executes
them (optionally with one injected mistake, for negatives), `solve` turns them
into the answer, the reference steps ending in "#### N" and one sub-question
per step. `pick_names` draws the people in a question (from NAMES). Families
themselves live in reasonkd.data.math_families (with math_money and math_rates).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from random import Random
from typing import Callable


@dataclass(frozen=True)
class Op:
    """One arithmetic step: `var = a <op> b` (a, b: a parameter, an earlier var, or a number)."""

    var: str
    op: str
    a: str | int
    b: str | int
    say: str
    """How the step reads; may use {expr} ("a op b"), {r} (result), {a}, {b} and text params."""
    ask: str
    """The sub-question this step answers (for decomposition into subtasks)."""


@dataclass(frozen=True)
class Family:
    name: str
    sample: Callable[[Random], dict]
    question: Callable[[dict], str]
    program: Callable[[dict], list[Op]]
    check: Callable[[dict, dict], str] | None = None
    """Optional closing sentence that checks the answer against the givens."""


# ---------------------------------------------------------------- people in the questions

NAMES = (
    "Ava",
    "Ben",
    "Carla",
    "Diego",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jamal",
    "Kira",
    "Liam",
    "Mei",
    "Nora",
    "Omar",
    "Priya",
    "Quinn",
    "Rosa",
    "Sam",
    "Tariq",
    "Uma",
    "Victor",
    "Wen",
    "Yara",
    "Zoe",
)


def pick_names(rng: Random, k: int = 1) -> list[str]:
    return rng.sample(NAMES, k)


def fmt(x: Fraction | int) -> str:
    """A clean number: 12, 2.5, -3 (fractions that do not terminate as a/b)."""
    x = Fraction(x)
    if x.denominator == 1:
        return str(x.numerator)
    d = x.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    if d == 1:
        return f"{float(x):.10f}".rstrip("0").rstrip(".")
    return f"{x.numerator}/{x.denominator}"


def apply(op: str, a: Fraction, b: Fraction) -> Fraction | None:
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return None if b == 0 else a / b
    raise ValueError(f"unknown op {op!r}")


def run(ops: list[Op], p: dict, perturb: dict | None = None) -> tuple[dict, list[str]] | None:
    """Execute steps over params `p`; returns (values, rendered lines) or None (÷0).

    perturb = {"type": "arithmetic_slip", "step": k, "delta": d} | {"type": "wrong_operation",
    "step": k, "op": "+"} | {"type": "skipped_step", "step": k}; misread quantities are
    handled by the caller changing `p`.
    """
    perturb = perturb or {}
    env = {k: Fraction(v) for k, v in p.items() if isinstance(v, int) and not isinstance(v, bool)}
    text = {k: v for k, v in p.items() if isinstance(v, str)}
    lines = []
    for i, o in enumerate(ops):
        a = env[o.a] if isinstance(o.a, str) else Fraction(o.a)
        b = env[o.b] if isinstance(o.b, str) else Fraction(o.b)
        op = perturb["op"] if perturb.get("type") == "wrong_operation" and perturb["step"] == i else o.op
        if perturb.get("type") == "skipped_step" and perturb["step"] == i:
            env[o.var] = a  # the step never happens: its input flows on unchanged
            continue
        r = apply(op, a, b)
        if r is None:
            return None
        if perturb.get("type") == "arithmetic_slip" and perturb["step"] == i:
            r += perturb["delta"]
        env[o.var] = r
        lines.append(o.say.format(expr=f"{fmt(a)} {op} {fmt(b)}", r=fmt(r), a=fmt(a), b=fmt(b), **text))
    return env, lines


def solve(fam: Family, p: dict) -> tuple[Fraction, list[str], list[tuple[str, Fraction]]] | None:
    """(answer, steps ending '#### N', [(sub-question, value)] per step) or None if invalid.

    Invalid = a negative or fractional intermediate: the sampler is then asked again,
    so every problem has whole, non-negative numbers all the way through.
    """
    ops = fam.program(p)
    out = run(ops, p)
    if out is None:
        return None
    env, lines = out
    values = [env[o.var] for o in ops]
    if any(v < 0 or v.denominator != 1 for v in values):
        return None
    answer = values[-1]
    text = {k: v for k, v in p.items() if isinstance(v, str)}
    subs = [(o.ask.format(**text), v) for o, v in zip(ops, values)]
    if fam.check:
        lines.append(fam.check(p, {k: fmt(v) for k, v in env.items()}))
    return answer, lines + [f"#### {fmt(answer)}"], subs


def sample_valid(fam: Family, rng: Random, extra: bool | None = None, tries: int = 200) -> dict:
    """Sample params whose solution is valid (whole, non-negative throughout)."""
    for _ in range(tries):
        p = fam.sample(rng)
        p["extra"] = (rng.random() < 0.4) if extra is None else extra
        if solve(fam, p) is not None:
            return p
    raise RuntimeError(f"family {fam.name}: no valid sample in {tries} tries; widen its ranges")
