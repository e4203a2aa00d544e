"""Math word-problem families about rates and ratios: speed, reading pace, filling a tank, scaling a recipe.

Each family is a sampler, a question and a program of `Op`s (reasonkd.data.math_program);
reasonkd.data.math_families registers them in FAMILIES, which is where callers take them from:

    from reasonkd.data.math_families import FAMILIES
    fam = FAMILIES["road_trip"]
"""

from __future__ import annotations

from reasonkd.data.math_program import Family, Op, pick_names


def _trip(rng):
    return {
        "v1": rng.randint(4, 13) * 5,
        "t1": rng.randint(1, 4),
        "v2": rng.randint(4, 13) * 5,
        "t2": rng.randint(1, 3),
        "trip": rng.randint(50, 120) * 5,
        "name": pick_names(rng)[0],
    }


def _q_trip(p):
    hours = lambda t: f"{t} hour" + "s" * (t != 1)  # noqa: E731
    q = (
        f"{p['name']} drives at {p['v1']} miles per hour for {hours(p['t1'])}, then at {p['v2']} miles per hour "
        f"for {hours(p['t2'])}."
    )
    if p["extra"]:
        return q + f" The whole trip is {p['trip']} miles long. How many miles are still left to drive?"
    return q + " How many miles has {name} driven in total?".format(name=p["name"])


def _p_trip(p):
    ops = [
        Op("d1", "*", "v1", "t1", "First part: {expr} = {r} miles.", "How far is the first part of the drive?"),
        Op("d2", "*", "v2", "t2", "Second part: {expr} = {r} miles.", "How far is the second part of the drive?"),
        Op("dist", "+", "d1", "d2", "In total: {expr} = {r} miles.", "How many miles are driven in total?"),
    ]
    if p["extra"]:
        ops.append(Op("left", "-", "trip", "dist", "Still to go: {expr} = {r} miles.", "How many miles are left?"))
    return ops


def _reading(rng):
    a, d, b = rng.randint(10, 40), rng.randint(2, 7), rng.randint(10, 40)
    return {"per_day": a, "days": d, "then": b, "pages": a * d + b * rng.randint(1, 6), "name": pick_names(rng)[0]}


def _q_reading(p):
    q = f"A book has {p['pages']} pages. {p['name']} reads {p['per_day']} pages a day for {p['days']} days."
    if p["extra"]:
        return (
            q + f" Then {p['name']} reads {p['then']} pages a day. How many more days does it take to finish the book?"
        )
    return q + " How many pages are left to read?"


def _p_reading(p):
    ops = [
        Op("read", "*", "per_day", "days", "Pages read: {expr} = {r}.", "How many pages have been read?"),
        Op("left", "-", "pages", "read", "Pages left: {expr} = {r}.", "How many pages are left?"),
    ]
    if p["extra"]:
        ops.append(Op("more", "/", "left", "then", "Days to finish: {expr} = {r}.", "How many more days are needed?"))
    return ops


def _tank(rng):
    net = rng.randint(2, 9)
    leak = rng.randint(1, 5)
    minutes = rng.randint(5, 40)
    has = net * rng.randint(1, minutes - 1)
    return {"fill": net + leak, "leak": leak, "size": net * minutes, "has": has}


def _q_tank(p):
    q = f"A tank holds {p['size']} liters. A hose fills it at {p['fill']} liters per minute, but it leaks {p['leak']} liters per minute."
    if p["extra"]:
        return q + f" It already holds {p['has']} liters. How many minutes until it is full?"
    return q + " Starting empty, how many minutes until it is full?"


def _p_tank(p):
    ops = [
        Op(
            "net",
            "-",
            "fill",
            "leak",
            "Net gain per minute: {expr} = {r} liters.",
            "How many liters are gained per minute?",
        )
    ]
    if p["extra"]:
        ops.append(
            Op("space", "-", "size", "has", "Still to fill: {expr} = {r} liters.", "How many liters are still to fill?")
        )
        return ops + [Op("min", "/", "space", "net", "Minutes: {expr} = {r}.", "How many minutes until full?")]
    return ops + [Op("min", "/", "size", "net", "Minutes: {expr} = {r}.", "How many minutes until full?")]


def _recipe(rng):
    serves = rng.choice([2, 3, 4, 6])
    return {
        "serves": serves,
        "cups": rng.randint(2, 5),
        "guests": serves * rng.randint(2, 5),
        "has": rng.randint(1, 6),
        "name": pick_names(rng)[0],
    }


def _q_recipe(p):
    q = (
        f"A cake recipe for {p['serves']} people uses {p['cups']} cups of flour. "
        f"{p['name']} is baking for {p['guests']} people."
    )
    if p["extra"]:
        return q + f" {p['name']} already has {p['has']} cups of flour. How many more cups must {p['name']} buy?"
    return q + f" How many cups of flour does {p['name']} need?"


def _p_recipe(p):
    ops = [
        Op(
            "times",
            "/",
            "guests",
            "serves",
            "{a} people is {expr} = {r} times the recipe.",
            "How many times the recipe is needed?",
        ),
        Op("flour", "*", "cups", "times", "Flour needed: {expr} = {r} cups.", "How many cups of flour are needed?"),
    ]
    if p["extra"]:
        ops.append(Op("buy", "-", "flour", "has", "To buy: {expr} = {r} cups.", "How many cups must be bought?"))
    return ops


RATE_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("road_trip", _trip, _q_trip, _p_trip),
        Family("recipe_scaling", _recipe, _q_recipe, _p_recipe),
        Family("reading_pages", _reading, _q_reading, _p_reading),
        Family("leaky_tank", _tank, _q_tank, _p_tank),
    ]
}
