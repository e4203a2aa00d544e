"""Logic-puzzle items: zebra (Einstein) puzzles with a unique solution, and sudoku.

    item = zebra_item(Random(3), n=4, n_attr=3, item_id="logic-zebra_4x3-00000", seed=3)
    item = sudoku_item(Random(3), size=6, item_id="logic-sudoku_6-00000", seed=3)

Zebra: a random solution, then random true clues until the solver finds
exactly one solution, then redundant clues are removed. Sudoku: a shuffled
full grid, then cells are blanked while the puzzle stays solvable by naked
and hidden singles alone, which proves uniqueness and yields a genuine step
by step deduction for the reference solution. Solvers live in
reasonkd.data.puzzles.
"""

from __future__ import annotations

from random import Random

from reasonkd.data.math_program import NAMES
from reasonkd.data.puzzles import count_sudoku_solutions, solve_sudoku_singles, solve_zebra, sudoku_valid, zebra_answer
from reasonkd.data.schema import Item

ATTRIBUTES = {
    "color": ("red", "green", "blue", "yellow", "white"),
    "pet": ("cat", "dog", "parrot", "fish", "rabbit"),
    "drink": ("tea", "coffee", "milk", "juice", "water"),
    "hobby": ("chess", "painting", "hiking", "cooking", "singing"),
}
_PRED = {"color": "lives in the {v} house", "pet": "keeps a {v}", "drink": "drinks {v}", "hobby": "enjoys {v}"}
SUDOKU_BOXES = {4: (2, 2), 6: (2, 3), 9: (3, 3)}


def _subj(attr: str, v: str, cap: bool = True) -> str:
    if attr == "name":
        return v
    s = f"the person who {_PRED[attr].format(v=v)}"
    return s[0].upper() + s[1:] if cap else s


def clue_text(c: dict) -> str:
    x = _subj(*c["x"])
    if c["type"] == "at":
        return f"{x} lives in house {c['house']}."
    if c["type"] == "not_at":
        return f"{x} does not live in house {c['house']}."
    y = _subj(*c["y"], cap=False)
    if c["type"] == "same" and c["y"][0] == "name":  # "Bob keeps a cat." reads better
        return f"{c['y'][1]} {_PRED[c['x'][0]].format(v=c['x'][1])}."
    return {
        "same": f"{x} is {y}.",
        "not_same": f"{x} is not {y}.",
        "left_of": f"{x} lives directly left of {y}.",
        "next_to": f"{x} lives next to {y}.",
        "somewhere_left": f"{x} lives somewhere to the left of {y}.",
    }[c["type"]]


def _random_clue(rng: Random, attrs: list[tuple[str, list[str]]], house_of: dict, n: int) -> dict:
    """A clue that is true of the hidden solution."""

    def var_at(h: int, exclude: str | None = None) -> list[str]:
        a = rng.choice([name for name, _ in attrs if name != exclude])
        return [a, next(v for v in dict(attrs)[a] if house_of[(a, v)] == h)]

    t = rng.choices(
        ["same", "not_same", "left_of", "next_to", "somewhere_left", "at", "not_at"], weights=[5, 2, 2, 2, 1, 2, 1]
    )[0]
    h1 = rng.randint(1, n)
    if t in ("at", "not_at"):
        x = var_at(h1)
        return {"type": t, "x": x, "house": h1 if t == "at" else rng.choice([h for h in range(1, n + 1) if h != h1])}
    x = var_at(h1)
    if t == "same":
        return {"type": t, "x": x, "y": var_at(h1, exclude=x[0])}
    if t == "left_of":
        h1 = rng.randint(1, n - 1)
        return {"type": t, "x": var_at(h1), "y": var_at(h1 + 1)}
    if t == "next_to":
        h1 = rng.randint(1, n - 1)
        a, b = var_at(h1), var_at(h1 + 1)
        return {"type": t, "x": a, "y": b} if rng.random() < 0.5 else {"type": t, "x": b, "y": a}
    if t == "somewhere_left":
        h1, h2 = sorted(rng.sample(range(1, n + 1), 2))
        return {"type": t, "x": var_at(h1), "y": var_at(h2)}
    h2 = rng.choice([h for h in range(1, n + 1) if h != h1])
    return {"type": t, "x": x, "y": var_at(h2)}


def make_zebra(rng: Random, n: int, n_attr: int, target: str | None = None) -> dict:
    """Puzzle data (meta) with a unique solution and no redundant clue."""
    kinds = sorted(rng.sample(sorted(ATTRIBUTES), n_attr - 1))
    attrs = [("name", sorted(rng.sample(NAMES, n)))] + [(a, sorted(rng.sample(ATTRIBUTES[a], n))) for a in kinds]
    house_of = {}
    for a, vals in attrs:
        for h, v in enumerate(rng.sample(vals, n), 1):
            house_of[(a, v)] = h
    meta = {"n": n, "attributes": [[a, list(v)] for a, v in attrs], "clues": []}
    while len(solve_zebra(meta, limit=2)) != 1:
        c = _random_clue(rng, attrs, house_of, n)
        if c not in meta["clues"]:
            meta["clues"].append(c)
    for c in rng.sample(meta["clues"], len(meta["clues"])):  # drop clues the rest already imply
        rest = [d for d in meta["clues"] if d is not c]
        if len(solve_zebra(dict(meta, clues=rest), limit=2)) == 1:
            meta["clues"] = rest
    ask_attr = rng.choice(kinds)
    meta["ask"] = {
        "attr": ask_attr,
        "value": rng.choice(dict(attrs)[ask_attr]),
        "target": target or rng.choice(["name", "name", "house"]),
    }
    return meta


def zebra_question(meta: dict) -> str:
    n = meta["n"]
    lines = [
        f"There are {n} houses in a row, numbered 1 to {n} from left to right. One person lives in each house, "
        "and no two people share any of the following."
    ]
    for a, vals in meta["attributes"]:
        lines.append(f"- {'names' if a == 'name' else a}: {', '.join(vals)}")
    lines.append("Clues:")
    lines += [f"{i}. {clue_text(c)}" for i, c in enumerate(meta["clues"], 1)]
    ask = meta["ask"]
    who = _subj(ask["attr"], ask["value"], cap=False)
    lines.append(f"What is the name of {who}?" if ask["target"] == "name" else f"In which house does {who} live?")
    return "\n".join(lines)


def _zebra_steps(meta: dict, solution: dict) -> tuple[list[str], str]:
    idx = {(a, v): (ai, vi) for ai, (a, vals) in enumerate(meta["attributes"]) for vi, v in enumerate(vals)}
    steps = []
    for i, c in enumerate(meta["clues"], 1):
        where = [f"{c[k][1]} is in house {solution[idx[tuple(c[k])]]}" for k in ("x", "y") if k in c]
        steps.append(f"Clue {i} ({clue_text(c)[:-1]}): {' and '.join(where)}.")
    for h in range(1, meta["n"] + 1):
        vals = [v for (a, v), key in idx.items() if solution[key] == h]
        steps.append(f"House {h}: {', '.join(vals)}.")
    answer = zebra_answer(meta, solution)
    steps.append(f"The clues allow only this arrangement, so the answer is {answer}.")
    return steps, answer


def zebra_item(rng: Random, n: int, n_attr: int, item_id: str, seed: int, split: str = "train") -> Item:
    meta = make_zebra(rng, n, n_attr)
    return _zebra_to_item(meta, item_id, seed, split, f"zebra_{n}x{n_attr}")


def _zebra_to_item(meta: dict, item_id: str, seed: int, split: str, template: str) -> Item:
    (solution,) = solve_zebra(meta, limit=2)
    steps, answer = _zebra_steps(meta, solution)
    return Item(
        id=item_id,
        domain="logic",
        question=zebra_question(meta),
        answer=answer,
        steps=steps,
        verifier="zebra",
        split=split,
        source="reasonkd",
        seed=seed,
        difficulty=min(5, meta["n"] * len(meta["attributes"]) // 3),
        template=template,
        meta=meta,
    )


def zebra_variant(parent: Item, rng: Random) -> Item:
    """Same clue structure with fresh names and values; the answer is re-solved."""
    meta = {k: v for k, v in parent.meta.items()}
    renames = {}
    for a, vals in parent.meta["attributes"]:
        pool = NAMES if a == "name" else ATTRIBUTES[a]
        fresh = (
            rng.sample([p for p in pool if p not in vals] or list(pool), len(vals))
            if len(pool) - len(vals) >= len(vals)
            else rng.sample(list(pool), len(vals))
        )
        renames.update({(a, old): new for old, new in zip(vals, fresh)})
    rn = lambda x: [x[0], renames[tuple(x)]]  # noqa: E731
    meta["attributes"] = [[a, [renames[(a, v)] for v in vals]] for a, vals in parent.meta["attributes"]]
    meta["clues"] = [dict(c, **{k: rn(c[k]) for k in ("x", "y") if k in c}) for c in parent.meta["clues"]]
    meta["ask"] = dict(parent.meta["ask"], value=renames[(parent.meta["ask"]["attr"], parent.meta["ask"]["value"])])
    fresh = _zebra_to_item(meta, parent.id, parent.seed, parent.split, parent.template)
    return parent.derive(
        "v1",
        kind="variant",
        question=fresh.question,
        answer=fresh.answer,
        steps=fresh.steps,
        meta=dict(meta, augment="rename"),
    )


def zebra_negative(parent: Item, rng: Random) -> Item:
    ask = parent.meta["ask"]
    if ask["target"] == "house":
        wrong = str(rng.choice([h for h in range(1, parent.meta["n"] + 1) if str(h) != parent.answer]))
    else:
        names = dict((a, v) for a, v in parent.meta["attributes"])["name"]
        wrong = rng.choice([v for v in names if v != parent.answer])
    steps = parent.steps[:-1] + [f"So the answer is {wrong}."]
    return parent.derive(
        "neg-wrong_value",
        kind="negative",
        error_type="wrong_value",
        answer=wrong,
        steps=steps,
        meta=dict(parent.meta, reference=parent.answer),
    )


# ---------------------------------------------------------------- sudoku


def full_grid(rng: Random, size: int) -> list[int]:
    br, bc = SUDOKU_BOXES[size]
    base = [[(bc * (r % br) + r // br + c) % size + 1 for c in range(size)] for r in range(size)]
    bands = rng.sample(range(size // br), size // br)
    rows = [b * br + r for b in bands for r in rng.sample(range(br), br)]
    stacks = rng.sample(range(size // bc), size // bc)
    cols = [s * bc + c for s in stacks for c in rng.sample(range(bc), bc)]
    digits = rng.sample(range(1, size + 1), size)
    return [digits[base[r][c] - 1] for r in rows for c in cols]


def _rows(grid: list[int] | str, size: int) -> str:
    s = "".join(str(x) for x in grid).replace("0", ".")
    return "\n".join(s[r * size : (r + 1) * size] for r in range(size))


def make_sudoku(rng: Random, size: int, blanks: int) -> tuple[str, list[int]]:
    """(puzzle with '.' blanks, solution): blanked while singles alone still solve it."""
    box = SUDOKU_BOXES[size]
    solution = full_grid(rng, size)
    puzzle = [str(d) for d in solution]
    removed = 0
    for i in rng.sample(range(size * size), size * size):
        if removed >= blanks:
            break
        keep = puzzle[i]
        puzzle[i] = "."
        grid, _ = solve_sudoku_singles("".join(puzzle), size, box)
        if 0 in grid:
            puzzle[i] = keep
        else:
            removed += 1
    return "".join(puzzle), solution


def sudoku_question(puzzle: str, size: int) -> str:
    br, bc = SUDOKU_BOXES[size]
    return (
        f"Solve this {size}x{size} sudoku: fill the empty cells (.) so that every row, every column and every "
        f"{br}x{bc} box contains each digit 1-{size} exactly once. Answer with the completed grid, one row per line.\n"
        + _rows(puzzle, size)
    )


def sudoku_item(
    rng: Random, size: int, item_id: str, seed: int, split: str = "train", blanks: int | None = None
) -> Item:
    blanks = blanks if blanks is not None else rng.randint(size * size // 3, size * size * 2 // 3)
    puzzle, solution = make_sudoku(rng, size, blanks)
    return _sudoku_to_item(puzzle, size, item_id, seed, split)


def _sudoku_to_item(puzzle: str, size: int, item_id: str, seed: int, split: str) -> Item:
    box = SUDOKU_BOXES[size]
    grid, steps = solve_sudoku_singles(puzzle, size, box)
    assert sudoku_valid(grid, size, box) and count_sudoku_solutions(puzzle, size, box) == 1
    answer = _rows(grid, size)
    n_blank = puzzle.count(".")
    return Item(
        id=item_id,
        domain="logic",
        question=sudoku_question(puzzle, size),
        answer=answer,
        steps=steps + ["Completed grid:\n" + answer],
        verifier="sudoku",
        split=split,
        source="reasonkd",
        seed=seed,
        difficulty=min(5, 1 + {4: 0, 6: 1, 9: 2}[size] + (n_blank * 2 > size * size)),
        template=f"sudoku_{size}",
        meta={"puzzle": puzzle, "size": size, "box": list(box)},
    )


def sudoku_variant(parent: Item, rng: Random) -> Item:
    """Digits relabelled by a random permutation; the solution is re-derived."""
    size = parent.meta["size"]
    perm = list(range(1, size + 1))
    while perm == sorted(perm):  # the identity would give the parent back
        perm = rng.sample(range(1, size + 1), size)
    puzzle = "".join("." if ch == "." else str(perm[int(ch) - 1]) for ch in parent.meta["puzzle"])
    fresh = _sudoku_to_item(puzzle, size, parent.id, parent.seed, parent.split)
    return parent.derive(
        "v1",
        kind="variant",
        question=fresh.question,
        answer=fresh.answer,
        steps=fresh.steps,
        meta=dict(fresh.meta, augment="relabel_digits"),
    )


def sudoku_negative(parent: Item, rng: Random) -> Item:
    """Two blank cells of one row swapped: the row still looks fine, a column breaks."""
    size, puzzle = parent.meta["size"], parent.meta["puzzle"]
    grid = [int(c) for c in parent.answer if c.isdigit()]
    rows = [r for r in range(size) if sum(puzzle[r * size + c] == "." for c in range(size)) >= 2]
    r = rng.choice(rows)
    a, b = rng.sample([r * size + c for c in range(size) if puzzle[r * size + c] == "."], 2)
    grid[a], grid[b] = grid[b], grid[a]
    wrong = _rows(grid, size)
    return parent.derive(
        "neg-wrong_value",
        kind="negative",
        error_type="wrong_value",
        answer=wrong,
        steps=parent.steps[:-1] + ["Completed grid:\n" + wrong],
        meta=dict(parent.meta, reference=parent.answer),
    )
