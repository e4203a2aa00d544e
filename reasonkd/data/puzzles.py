"""Sudoku and zebra (Einstein) puzzles: solvers, constraint checks, answer checks.

These are the ground truth behind the `sudoku` and `zebra` verifiers: an
answer is right when it satisfies the puzzle's constraints (sudoku) or equals
the value in the unique solution the solver derives from the clues (zebra).
The generators in reasonkd.data.logic build on the same solvers.

Puzzle data lives in an item's `meta`:
  sudoku: {"puzzle": "1.3.....", "size": 4, "box": [2, 2]}   (row-major, "." = blank)
  zebra:  {"n": 3, "attributes": [["name", [...]], ["pet", [...]]],
           "clues": [{"type": "same", "x": ["name", "Alice"], "y": ["pet", "cat"]}, ...],
           "ask": {"attr": "pet", "value": "cat", "target": "name"}}   target may be "house"
"""

from __future__ import annotations

import re

from reasonkd.data.answers import boxed_contents, extract_answer, numbers_equal, strip_think

# ---------------------------------------------------------------- sudoku


def sudoku_units(size: int, box: tuple[int, int]) -> list[list[int]]:
    """Rows, columns and boxes as lists of cell indices (row-major)."""
    br, bc = box
    rows = [[r * size + c for c in range(size)] for r in range(size)]
    cols = [[r * size + c for r in range(size)] for c in range(size)]
    boxes = [
        [(r0 + r) * size + c0 + c for r in range(br) for c in range(bc)]
        for r0 in range(0, size, br)
        for c0 in range(0, size, bc)
    ]
    return rows + cols + boxes


def sudoku_valid(grid: list[int], size: int, box: tuple[int, int]) -> bool:
    """Complete grid obeying every row/column/box rule."""
    want = set(range(1, size + 1))
    return len(grid) == size * size and all({grid[i] for i in u} == want for u in sudoku_units(size, box))


def parse_grid(text: str, size: int) -> list[int] | None:
    """The last size*size digits 1..size of a text (after </think>; boxed content first)."""
    if "</think>" in text and text.rsplit("</think>", 1)[1].strip():
        text = text.rsplit("</think>", 1)[1]
    boxed = boxed_contents(text)
    if boxed:
        text = boxed[-1]
    digits = [int(d) for d in re.findall(rf"[1-{size}]", text)] if size <= 9 else []
    if len(digits) < size * size:
        return None
    return digits[-size * size :]


def check_sudoku_answer(meta: dict, answer: str) -> bool:
    size, box = int(meta["size"]), tuple(meta["box"])
    grid = parse_grid(answer, size)
    if grid is None or not sudoku_valid(grid, size, box):
        return False
    return all(ch in ".0" or int(ch) == g for ch, g in zip(meta["puzzle"], grid))


def _sudoku_cells(puzzle: str, size: int, box: tuple[int, int]) -> tuple[list[int], list, list[set[int]]]:
    """(grid with 0 for empty cells, the units (rows, columns, boxes), each cell's peers: the other cells
    of its units)."""
    grid = [0 if ch in ".0" else int(ch) for ch in puzzle]
    units = sudoku_units(size, box)
    peers = [set() for _ in grid]
    for u in units:
        for i in u:
            peers[i].update(u)
    for i in range(len(grid)):
        peers[i].discard(i)
    return grid, units, peers


def solve_sudoku_singles(puzzle: str, size: int, box: tuple[int, int]) -> tuple[list[int], list[str]]:
    """Fill cells by naked and hidden singles only; returns (grid with 0s left, steps).

    A puzzle this completes has exactly one solution, and the steps are a real
    human-readable deduction ("r1c3 = 4: the only candidate left").
    """
    grid, units, peers = _sudoku_cells(puzzle, size, box)
    full = set(range(1, size + 1))
    steps: list[str] = []
    progress = True
    while progress and 0 in grid:
        progress = False
        for i in range(len(grid)):
            if grid[i] == 0:
                cand = full - {grid[p] for p in peers[i]}
                if len(cand) == 1:
                    grid[i] = cand.pop()
                    steps.append(
                        f"r{i // size + 1}c{i % size + 1} = {grid[i]}: the only digit not already in its row, column or box."
                    )
                    progress = True
        for kind, u in zip(["row"] * size + ["column"] * size + ["box"] * size, units):
            for d in sorted(full - {grid[i] for i in u}):
                spots = [i for i in u if grid[i] == 0 and d not in {grid[p] for p in peers[i]}]
                if len(spots) == 1:
                    i = spots[0]
                    grid[i] = d
                    steps.append(f"r{i // size + 1}c{i % size + 1} = {d}: the only place for {d} in its {kind}.")
                    progress = True
    return grid, steps


def count_sudoku_solutions(puzzle: str, size: int, box: tuple[int, int], limit: int = 2) -> int:
    """Backtracking count, stopping at `limit` (used to double-check uniqueness)."""
    grid, _, peers = _sudoku_cells(puzzle, size, box)
    full = set(range(1, size + 1))

    def rec() -> int:
        best, best_c = -1, None
        for i, v in enumerate(grid):
            if v == 0:
                c = full - {grid[p] for p in peers[i]}
                if best_c is None or len(c) < len(best_c):
                    best, best_c = i, c
                    if len(c) <= 1:
                        break
        if best < 0:
            return 1
        total = 0
        for d in sorted(best_c):
            grid[best] = d
            total += rec()
            if total >= limit:
                break
        grid[best] = 0
        return total

    return rec()


# ---------------------------------------------------------------- zebra

Var = tuple[int, int]  # (attribute index, value index)


def _zebra_index(meta: dict) -> tuple[int, dict[tuple[str, str], Var]]:
    n = int(meta["n"])
    idx = {(a, v): (ai, vi) for ai, (a, vals) in enumerate(meta["attributes"]) for vi, v in enumerate(vals)}
    return n, idx


def clue_holds(clue: dict, pos: dict[Var, int], idx: dict) -> bool | None:
    """Truth of one clue under a (partial) house assignment; None if undecided."""
    x = pos.get(idx[tuple(clue["x"])])
    if clue["type"] in ("at", "not_at"):
        if x is None:
            return None
        return (x == clue["house"]) == (clue["type"] == "at")
    y = pos.get(idx[tuple(clue["y"])])
    if x is None or y is None:
        return None
    t = clue["type"]
    return {
        "same": x == y,
        "not_same": x != y,
        "left_of": x == y - 1,
        "next_to": abs(x - y) == 1,
        "somewhere_left": x < y,
    }[t]


def solve_zebra(meta: dict, limit: int = 2) -> list[dict[Var, int]]:
    """Up to `limit` solutions, each mapping (attr, value) -> house (1-based)."""
    n, idx = _zebra_index(meta)
    n_attr = len(meta["attributes"])
    clues_by_var: dict[Var, list[dict]] = {}
    for c in meta["clues"]:
        for key in ("x", "y"):
            if key in c:
                clues_by_var.setdefault(idx[tuple(c[key])], []).append(c)
    domains = {(a, v): set(range(1, n + 1)) for a in range(n_attr) for v in range(n)}
    for c in meta["clues"]:  # unary clues prune domains up front
        var = idx[tuple(c["x"])]
        if c["type"] == "at":
            domains[var] &= {c["house"]}
        elif c["type"] == "not_at":
            domains[var] -= {c["house"]}
    order = sorted(domains, key=lambda v: (len(domains[v]), -len(clues_by_var.get(v, [])), v))
    pos: dict[Var, int] = {}
    used: dict[int, set[int]] = {a: set() for a in range(n_attr)}
    out: list[dict[Var, int]] = []

    def rec(k: int) -> None:
        if len(out) >= limit:
            return
        if k == len(order):
            out.append(dict(pos))
            return
        var = order[k]
        for h in sorted(domains[var] - used[var[0]]):
            pos[var] = h
            used[var[0]].add(h)
            if all(clue_holds(c, pos, idx) is not False for c in clues_by_var.get(var, [])):
                rec(k + 1)
            used[var[0]].discard(h)
            del pos[var]
            if len(out) >= limit:
                return

    rec(0)
    return out


def zebra_answer(meta: dict, solution: dict[Var, int]) -> str:
    """The asked value (a value of `target`, or a house number) in a solution."""
    n, idx = _zebra_index(meta)
    ask = meta["ask"]
    house = solution[idx[(ask["attr"], ask["value"])]]
    if ask["target"] == "house":
        return str(house)
    ai = [a for a, _ in meta["attributes"]].index(ask["target"])
    return next(v for vi, v in enumerate(meta["attributes"][ai][1]) if solution[(ai, vi)] == house)


def check_zebra_answer(meta: dict, answer: str) -> bool:
    """Is the stated answer the asked value of the puzzle's unique solution?"""
    sols = solve_zebra(meta, limit=2)
    if len(sols) != 1:
        return False
    truth = zebra_answer(meta, sols[0])
    text = strip_think(answer, "answer_is") or ""
    boxed = boxed_contents(text)
    m = re.findall(r"answer\s*(?:is|:)\s*([^\n]*)", text, re.IGNORECASE)
    segment = boxed[-1] if boxed else (m[-1] if m else text)
    if meta["ask"]["target"] == "house":
        return numbers_equal(extract_answer(segment, "flexible") or "", truth)
    ai = [a for a, _ in meta["attributes"]].index(meta["ask"]["target"])
    values = meta["attributes"][ai][1]
    hits = sorted(
        (mm.start(), v) for v in values for mm in re.finditer(rf"(?<!\w){re.escape(v)}(?!\w)", segment, re.IGNORECASE)
    )
    if not hits:
        return False
    # in an "answer is" segment the first named value counts; in free text the last
    chosen = hits[0][1] if (boxed or m) else hits[-1][1]
    return chosen == truth
