"""GSM8K-style word-problem families, each a small program that computes its answer.

A family samples parameters, renders the question, and lists the solution as
arithmetic steps (`Op`s). Running the steps gives the answer and a reference
solution ending in "#### N"; running them with a perturbation gives a labelled
wrong solution (see reasonkd.data.augment). Every family has one optional
condition (`p["extra"]`): switching it on or off makes a harder / easier
variant whose answer is recomputed by the same program.

    from reasonkd.data.math_families import FAMILIES, sample_valid, solve
    fam = FAMILIES["chickens_rabbits"]; p = sample_valid(fam, random.Random(0))
    answer, steps, subquestions = solve(fam, p)

This module holds the counting, ages, percent and geometry families and the
registry FAMILIES (every family, in one fixed order); the money families live in
reasonkd.data.math_money, the rate and ratio families in reasonkd.data.math_rates.

Add a family: write `_sample_x`, `_question_x`, `_program_x` in the module of its
kind and register a `Family` in FAMILIES (docs/data.md, "Adding a family").
"""

from __future__ import annotations

from reasonkd.data.math_money import MONEY_FAMILIES
from reasonkd.data.math_program import Family, Op, fmt, pick_names, run, sample_valid, solve  # noqa: F401 - re-exported
from reasonkd.data.math_rates import RATE_FAMILIES


# ---------------------------------------------------------------- the families
# Each sampler draws numbers so that most draws are valid; solve() rejects the rest.


def _chickens_rabbits(rng):
    c, r = rng.randint(3, 40), rng.randint(2, 30)
    return {"heads": c + r, "legs": 2 * c + 4 * r, "k": rng.randint(2, 12), "name": pick_names(rng)[0]}


def _q_chickens_rabbits(p):
    q = f"{p['name']}'s farm has only chickens and rabbits. Together they have {p['heads']} heads and {p['legs']} legs."
    if p["extra"]:
        return q + f" Then {p['name']} buys {p['k']} more rabbits. How many rabbits are on the farm now?"
    return q + " How many rabbits are on the farm?"


def _p_chickens_rabbits(p):
    ops = [
        Op(
            "all_chickens",
            "*",
            "heads",
            2,
            "If all {a} animals were chickens there would be {expr} = {r} legs.",
            "How many legs would there be if every animal were a chicken?",
        ),
        Op(
            "extra_legs",
            "-",
            "legs",
            "all_chickens",
            "There are {expr} = {r} legs more than that.",
            "How many more legs are there than if every animal were a chicken?",
        ),
        Op(
            "rabbits",
            "/",
            "extra_legs",
            2,
            "Each rabbit has 2 legs more than a chicken, so there are {expr} = {r} rabbits.",
            "How many rabbits are on the farm at first?",
        ),
    ]
    if p["extra"]:
        ops.append(
            Op(
                "now",
                "+",
                "rabbits",
                "k",
                "After buying {b} more there are {expr} = {r} rabbits.",
                "How many rabbits are there after the purchase?",
            )
        )
    return ops


def _check_chickens_rabbits(p, v):
    chickens = p["heads"] - int(v["rabbits"])
    return (
        f"Check: {chickens} chickens and {v['rabbits']} rabbits make {chickens} + {v['rabbits']} = {p['heads']} heads "
        f"and {chickens} * 2 + {v['rabbits']} * 4 = {p['legs']} legs."
    )


def _ages(rng):
    a, b, c = pick_names(rng, 3)
    return {
        "older": rng.randint(2, 9),
        "mult": rng.randint(2, 4),
        "young": rng.randint(2, 12),
        "years": rng.randint(2, 10),
        "pa": a,
        "pb": b,
        "pc": c,
    }


def _q_ages(p):
    q = (
        f"{p['pa']} is {p['older']} years older than {p['pb']}. {p['pb']} is {p['mult']} times as old as {p['pc']}, "
        f"who is {p['young']}."
    )
    if p["extra"]:
        return q + f" What will the sum of their three ages be in {p['years']} years?"
    return q + " What is the sum of their three ages?"


def _p_ages(p):
    ops = [
        Op("bage", "*", "mult", "young", "{pb} is {expr} = {r}.", "How old is {pb}?"),
        Op("aage", "+", "bage", "older", "{pa} is {expr} = {r}.", "How old is {pa}?"),
        Op(
            "s1", "+", "aage", "bage", "{pa} and {pb} together: {expr} = {r}.", "What is the sum of the two older ages?"
        ),
        Op("total", "+", "s1", "young", "All three: {expr} = {r}.", "What is the sum of all three ages now?"),
    ]
    if p["extra"]:
        ops += [
            Op(
                "grow",
                "*",
                "years",
                3,
                "In {a} years the three gain {expr} = {r} years.",
                "How many years do the three gain together?",
            ),
            Op("later", "+", "total", "grow", "Then the sum is {expr} = {r}.", "What is the sum of their ages then?"),
        ]
    return ops


def _classroom(rng):
    n = rng.choice([20, 25, 30, 40, 50])
    return {
        "students": n,
        "pct": rng.choice([20, 40, 60, 80]) if n % 5 == 0 else 50,
        "k": rng.choice([2, 3, 4]),
        "name": pick_names(rng)[0],
    }


def _q_classroom(p):
    q = f"Ms. {p['name']}'s class has {p['students']} students and {p['pct']}% of them are girls."
    if p["extra"]:
        return q + f" One in every {p['k']} boys plays chess. How many boys do not play chess?"
    return q + " How many boys are in the class?"


def _p_classroom(p):
    ops = [
        Op(
            "g100",
            "*",
            "students",
            "pct",
            "{a} students times {b} percent: {expr} = {r}.",
            "What is the number of students times the girls' percentage?",
        ),
        Op("girls", "/", "g100", 100, "Girls: {expr} = {r}.", "How many girls are in the class?"),
        Op("boys", "-", "students", "girls", "Boys: {expr} = {r}.", "How many boys are in the class?"),
    ]
    if p["extra"]:
        ops += [
            Op("chess", "/", "boys", "k", "Boys who play chess: {expr} = {r}.", "How many boys play chess?"),
            Op("nochess", "-", "boys", "chess", "Boys who do not: {expr} = {r}.", "How many boys do not play chess?"),
        ]
    return ops


def _crates(rng):
    bag = rng.choice([4, 5, 6, 8, 10])
    crates, per = rng.randint(3, 12), rng.randint(10, 30)
    bags = (crates * per) // bag
    rotten = crates * per - bags * bag + bag * rng.randint(0, 2)
    return {
        "crates": crates,
        "per": per,
        "rotten": rotten,
        "bag": bag,
        "sold": rng.randint(1, 5),
        "name": pick_names(rng)[0],
    }


def _q_crates(p):
    q = (
        f"A grocer gets {p['crates']} crates with {p['per']} apples each. {p['rotten']} apples are rotten and thrown away. "
        f"The rest are packed in bags of {p['bag']}."
    )
    if p["extra"]:
        return q + f" The grocer sells {p['sold']} bags in the morning. How many bags are left?"
    return q + " How many bags are packed?"


def _p_crates(p):
    ops = [
        Op("apples", "*", "crates", "per", "Apples delivered: {expr} = {r}.", "How many apples are delivered?"),
        Op("good", "-", "apples", "rotten", "Good apples: {expr} = {r}.", "How many good apples are there?"),
        Op("bags", "/", "good", "bag", "Bags: {expr} = {r}.", "How many bags are packed?"),
    ]
    if p["extra"]:
        ops.append(Op("left", "-", "bags", "sold", "Bags left: {expr} = {r}.", "How many bags are left?"))
    return ops


def _fence(rng):
    return {
        "length": rng.randint(5, 30),
        "width": rng.randint(3, 20),
        "price": rng.randint(2, 12),
        "gate": rng.randint(1, 3),
        "name": pick_names(rng)[0],
    }


def _q_fence(p):
    q = f"{p['name']}'s garden is a rectangle {p['length']} meters long and {p['width']} meters wide."
    if p["extra"]:
        q += f" A gate {p['gate']} meters wide needs no fence."
    return q + f" Fencing costs ${p['price']} per meter. How many dollars does it cost to fence the garden?"


def _p_fence(p):
    ops = [
        Op(
            "half",
            "+",
            "length",
            "width",
            "Length plus width: {expr} = {r} meters.",
            "What is the length plus the width?",
        ),
        Op("perim", "*", "half", 2, "Perimeter: {expr} = {r} meters.", "What is the perimeter?"),
    ]
    if p["extra"]:
        ops.append(
            Op("perim", "-", "perim", "gate", "Without the gate: {expr} = {r} meters.", "How many meters need fence?")
        )
    return ops + [Op("cost", "*", "perim", "price", "Cost: {expr} = {r} dollars.", "How much does the fence cost?")]


# The order is the families' order everywhere (builds, reports), as before the money and rate families moved out.
FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "chickens_rabbits", _chickens_rabbits, _q_chickens_rabbits, _p_chickens_rabbits, _check_chickens_rabbits
        ),
        MONEY_FAMILIES["eggs_market"],
        MONEY_FAMILIES["shopping_change"],
        MONEY_FAMILIES["weekly_wages"],
        RATE_FAMILIES["road_trip"],
        MONEY_FAMILIES["savings_goal"],
        RATE_FAMILIES["recipe_scaling"],
        Family("ages_sum", _ages, _q_ages, _p_ages),
        Family("class_percent", _classroom, _q_classroom, _p_classroom),
        RATE_FAMILIES["reading_pages"],
        Family("apple_crates", _crates, _q_crates, _p_crates),
        MONEY_FAMILIES["zoo_tickets"],
        Family("garden_fence", _fence, _q_fence, _p_fence),
        RATE_FAMILIES["leaky_tank"],
    ]
}
