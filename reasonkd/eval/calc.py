"""The calculations a completion states (`a op b = c`), read and checked with exact arithmetic.

    from reasonkd.eval.calc import read_chain
    chain = read_chain("1. Notebooks: 3 * $9 = $27.\\n2. Pens: 4 x 2.50 = 10\\n#### 37")
    [(c.expr, c.value, c.claimed, c.ok) for c in chain.calcs]
    # [('3 * 9', Fraction(27), Fraction(27), True), ('4 * 2.50', Fraction(10), Fraction(10), True)]
    chain.numbers      # every number the completion mentions, in order (list numbering left out)

Numbers are read the way people write them: `$1,234.50`, `20%`, `12 apples`, `3.5 hours`; unit
words between a number and its operator are skipped (`12 crates * 19 apples = 228`), while algebra
with letters (`2c + 4r = 112`, `2 * chickens + ...`) is not a calculation. `x`, `×`, `÷` and `·`
are operators, `p% of n` is a product, and a chain `a * b = c + d = e` is checked link by link.
A stated result with decimals may be rounded to the decimals it shows. Used by reasonkd.eval.diagnose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from itertools import product

_TOKEN = re.compile(  # numbers (with $ , . %), operators, brackets, = or ≈, words, clause stops
    r"(?P<num>(?:\$\s?)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?%?|\$?\.\d+%?)(?P<attached>[A-Za-z]*)"
    r"|(?P<op>[+\-−–*/×÷·])|(?P<paren>[()\[\]])|(?P<eq>=|≈)|(?P<word>[A-Za-z][A-Za-z']*)"
    r"|(?P<stop>[,;:?!\n]|\.(?=\s|$))"
)
_LIST_MARK = re.compile(r"^\s*(?:#+\s*)?(?:(?:step|Step|STEP)\s*\d+\s*[:.)]|\d+\s*[.)](?!\d)|[-*•]\s)", re.MULTILINE)
_TEX_FRAC = re.compile(r"\\[dt]?frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}")
_TEX_OPS = {"times": "*", "cdot": "*", "div": "/"}
_OPS = {"+": "+", "-": "-", "−": "-", "–": "-", "*": "*", "×": "*", "·": "*", "x": "*", "X": "*", "/": "/", "÷": "/"}
_APPROX = re.compile(r"≈|\babout\b|\bapproximately\b|\broughly\b|\bround", re.IGNORECASE)


@dataclass
class Tok:
    kind: str  # num | op | open | close | eq | word | stop | var
    text: str
    start: int
    value: Fraction | None = None
    percent: bool = False


@dataclass
class Calc:
    """One stated calculation: `expr` = `claimed`, where `value` is the exact value of `expr`."""

    expr: str
    value: Fraction
    claimed: Fraction
    ok: bool
    operands: list[Fraction]
    line: int
    """0-based line of the completion it is on."""
    start: int
    end: int
    """Character span of `expr ... = claimed` in the completion."""
    toks: list = field(default_factory=list, repr=False)
    """The expression's tokens (re-evaluate it with other numbers: `evaluate(toks, values)`)."""


@dataclass
class Chain:
    text: str
    calcs: list[Calc] = field(default_factory=list)
    numbers: list[tuple[Fraction, int]] = field(default_factory=list)
    """(value, character offset) of every number mentioned, list numbering left out."""


def parse_number(text: str) -> Fraction | None:
    t = text.replace("$", "").replace(",", "").replace("%", "").strip()
    try:
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def _same_length(text: str) -> str:
    """LaTeX read as plain arithmetic (\\times, \\frac{a}{b}, \\text{..}), units like miles/hour as words;
    every replacement keeps the length, so offsets still point into the completion."""

    def pad(new: str, old: str) -> str:
        return new + " " * (len(old) - len(new))

    text = re.sub(
        r"\\(?:text|mathrm|textbf|mbox)\s*\{([^{}]*)\}",
        lambda m: " " * (len(m.group(0)) - len(m.group(1)) - 1) + m.group(1) + " ",
        text,
    )
    text = _TEX_FRAC.sub(
        lambda m: (
            "("
            + " " * (len(m.group(0)) - len(m.group(1)) - len(m.group(2)) - 5)
            + m.group(1)
            + ")/("
            + m.group(2)
            + ")"
        ),
        text,
    )
    for cmd, op in _TEX_OPS.items():
        text = re.sub(r"\\" + cmd + r"(?![A-Za-z])", lambda m, op=op: pad(" " + op, m.group(0)), text)
    text = re.sub(r"\\[A-Za-z]+|\\[\[\]()]|\\[,;:! ]", lambda m: " " * len(m.group(0)), text)
    text = re.sub(r"\([A-Za-z\s']*\)", lambda m: " " * len(m.group(0)), text)  # 30 (total girls) - 60 ...
    return re.sub(r"(?<=[\dA-Za-z])/(?=[A-Za-z])", " ", text)  # $2/egg, miles/hour


def _neighbour(toks: list[Tok], i: int, step: int) -> Tok | None:
    j = i + step
    while 0 <= j < len(toks) and toks[j].kind == "word":
        j += step
    return toks[j] if 0 <= j < len(toks) else None


def tokens(text: str) -> list[Tok]:
    text = _same_length(text)
    out = []
    for m in _TOKEN.finditer(text):
        kind = m.lastgroup if m.lastgroup != "attached" else "num"
        if m.group("num"):
            attached = m.group("attached")
            times = attached in ("x", "X") and re.match(r"\s*\d", text[m.end() :])
            if len(attached) == 1 and not times:  # 2c, 4r, 4x: algebra, not arithmetic
                out.append(Tok("var", m.group(0), m.start()))
                continue
            num = m.group("num")
            out.append(Tok("num", num, m.start(), parse_number(num), num.endswith("%")))
            if times:  # 3x4
                out.append(Tok("op", "*", m.end("num")))
            continue
        t = m.group(kind)
        if kind == "paren":
            kind = "open" if t in "([" else "close"
        elif kind == "word" and t in ("x", "X", "times"):
            kind, t = "op", "*"
        elif kind == "op":
            t = _OPS[t]
        out.append(Tok(kind, t, m.start()))
    # "x" / "times" / "of" are operators only between numbers; "20% of 40" is a product
    for i, tk in enumerate(out):
        prev, nxt = _neighbour(out, i, -1), _neighbour(out, i, 1)
        between = prev and prev.kind in ("num", "close") and nxt and nxt.kind in ("num", "open")
        if tk.kind == "op" and tk.text == "*" and text[tk.start] in "xXt" and not between:
            tk.kind = "word"
        if (
            tk.kind == "word"
            and tk.text.lower() == "of"
            and prev
            and prev.kind == "num"
            and prev.percent
            and nxt
            and nxt.kind == "num"
        ):
            tk.kind, tk.text = "op", "*"
    return out


def _expr_back(toks: list[Tok], end: int) -> list[Tok]:
    """The arithmetic expression that ends just before toks[end] (an '='), unit words skipped; [] if none."""
    got: list[Tok] = []
    i = end - 1
    want_value = True  # walking backwards: a number (or ')') comes next, then an operator (or '(')
    depth = 0
    while i >= 0:
        t = toks[i]
        if t.kind == "word":
            i -= 1
            continue
        if t.kind in ("stop", "eq", "var"):
            if t.kind == "var" and not got:
                return []
            break
        if want_value:
            if t.kind == "num":
                got.append(t)
                want_value = False
            elif t.kind == "close":
                got.append(t)
                depth += 1
            elif t.kind == "op" and t.text == "-" and got:  # unary minus
                got.append(t)
            else:
                break
        else:
            if t.kind == "op":
                got.append(t)
                want_value = True
            elif t.kind == "open" and depth > 0:
                got.append(t)
                depth -= 1
            else:
                break
        i -= 1
    got.reverse()
    while got and got[0].kind == "op":
        got.pop(0)
    while got and sum(1 if t.kind == "open" else -1 if t.kind == "close" else 0 for t in got) < 0:
        # a ')' closes a '(' before the expression: keep only what follows the last unmatched ')'
        cut = max(j for j, t in enumerate(got) if t.kind == "close")
        got = got[cut + 1 :]
        while got and got[0].kind == "op":
            got.pop(0)
    return got if any(t.kind == "op" for t in got) else []


def _expr_fwd(toks: list[Tok], start: int) -> list[Tok]:
    """The expression (or lone number) that starts at toks[start], unit words skipped."""
    got: list[Tok] = []
    want_value, depth = True, 0
    for t in toks[start:]:
        if t.kind == "word":
            continue
        if want_value and t.kind == "num":
            got.append(t)
            want_value = False
        elif want_value and t.kind == "open":
            got.append(t)
            depth += 1
        elif want_value and t.kind == "op" and t.text == "-" and not got:
            got.append(t)
        elif not want_value and t.kind == "op":
            got.append(t)
            want_value = True
        elif not want_value and t.kind == "close" and depth > 0:
            got.append(t)
            depth -= 1
        else:
            break
    while got and got[-1].kind in ("op", "open"):
        got.pop()
    return got


class _Parser:
    def __init__(self, toks: list[Tok], values: list[Fraction]):
        self.toks, self.values, self.i, self.k = toks, values, 0, 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else None

    def expr(self):
        v = self.term()
        while (t := self.peek()) and t.kind == "op" and t.text in "+-":
            self.i += 1
            r = self.term()
            v = v + r if t.text == "+" else v - r
        return v

    def term(self):
        v = self.unary()
        while (t := self.peek()) and t.kind == "op" and t.text in "*/":
            self.i += 1
            r = self.unary()
            if t.text == "/" and r == 0:
                raise ZeroDivisionError
            v = v * r if t.text == "*" else v / r
        return v

    def unary(self):
        t = self.peek()
        if t and t.kind == "op" and t.text == "-":
            self.i += 1
            return -self.unary()
        if t and t.kind == "open":
            self.i += 1
            v = self.expr()
            if not (self.peek() and self.peek().kind == "close"):
                raise ValueError("unbalanced")
            self.i += 1
            return v
        if t and t.kind == "num":
            self.i += 1
            v = self.values[self.k]
            self.k += 1
            return v
        raise ValueError("expected a number")


def evaluate(toks: list[Tok], numbers: list[Fraction] | None = None) -> list[Fraction]:
    """Every value the expression can mean: each `p%` read as p and as p/100. [] if it does not parse.
    `numbers`: evaluate it with these numbers in place of the written ones."""
    nums = [t for t in toks if t.kind == "num"]
    written = numbers if numbers is not None else [t.value for t in nums]
    choices = [(v, v / 100) if t.percent else (v,) for t, v in zip(nums, written)]
    out = []
    for values in product(*choices):
        p = _Parser(toks, list(values))
        try:
            v = p.expr()
        except (ValueError, ZeroDivisionError):
            return []
        if p.i != len(toks):
            return []
        out.append(v)
    return list(dict.fromkeys(out))


def decimals(text: str) -> int:
    t = text.replace("%", "").strip()
    return len(t.split(".", 1)[1]) if "." in t else 0


def matches(values: list[Fraction], claimed: Fraction, claimed_text: str, approx: bool = False) -> bool:
    """Is the stated result right for one of the expression's readings (rounded to its decimals)?"""
    d = decimals(claimed_text)
    tol = Fraction(1, 2 * 10**d) if (d > 0 or approx) else Fraction(0)
    for v in values:
        if v == claimed or abs(v - claimed) <= tol or (claimed_text.endswith("%") and v * 100 == claimed):
            return True
        if d > 0 and abs(v - claimed) < Fraction(1, 10**d):  # truncated instead of rounded: 3.33 for 10/3
            return True
    return False


def read_chain(text: str) -> Chain:
    """All calculations and numbers of a completion (see the module docstring)."""
    text = text or ""
    masked = _LIST_MARK.sub(lambda m: " " * len(m.group(0)), text)  # list numbering is not a quantity
    toks = tokens(masked)
    chain = Chain(text)
    chain.numbers = [(t.value, t.start) for t in toks if t.kind == "num" and t.value is not None]
    for i, t in enumerate(toks):
        if t.kind != "eq":
            continue
        lhs, rhs = _expr_back(toks, i), _expr_fwd(toks, i + 1)
        values = evaluate(lhs) if lhs and rhs else []
        if not values:
            continue
        lead = rhs[0] if rhs[0].kind == "num" else None
        rhs_values = evaluate(rhs) if len(rhs) > 1 else []
        line_end = masked.find("\n", t.start)
        approx = t.text == "≈" or bool(_APPROX.search(masked[lhs[0].start : line_end if line_end >= 0 else None]))
        restated = [r for r in rhs_values if matches(values, r, str(float(r)), approx)]
        if restated:  # a * b + c = 15 + 2 = 17: an intermediate restatement, checked at the next '='
            claimed, ok, last = restated[0], True, rhs[-1]
        elif lead is not None and lead.value is not None:
            claimed, ok, last = lead.value, matches(values, lead.value, lead.text, approx), lead
        else:
            continue
        value = min(values, key=lambda v: abs(v - claimed))
        chain.calcs.append(
            Calc(
                expr=text[lhs[0].start : lhs[-1].start + len(lhs[-1].text)].strip(),
                value=value,
                claimed=claimed,
                ok=ok,
                operands=[x.value for x in lhs if x.kind == "num"],
                line=text.count("\n", 0, t.start),
                start=lhs[0].start,
                end=last.start + len(last.text),
                toks=lhs,
            )
        )
    return chain
