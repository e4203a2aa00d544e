"""Math word-problem families about money: market sales, change, wages, savings, tickets.

Each family is a sampler, a question and a program of `Op`s (reasonkd.data.math_program);
reasonkd.data.math_families registers them in FAMILIES, which is where callers take them from:

    from reasonkd.data.math_families import FAMILIES
    fam = FAMILIES["shopping_change"]
"""

from __future__ import annotations

from reasonkd.data.math_program import Family, Op, pick_names


def _eggs(rng):
    return {
        "laid": rng.randint(12, 30),
        "eat": rng.randint(2, 5),
        "bake": rng.randint(2, 6),
        "price": rng.randint(2, 5),
        "give": rng.randint(1, 4),
        "name": pick_names(rng)[0],
    }


def _q_eggs(p):
    q = (
        f"{p['name']}'s ducks lay {p['laid']} eggs per day. {p['name']} eats {p['eat']} for breakfast every morning "
        f"and bakes muffins with {p['bake']} every day."
    )
    if p["extra"]:
        q += f" {p['name']} also gives {p['give']} eggs to a neighbour each day."
    return (
        q
        + f" The rest are sold at the market for ${p['price']} per egg. How many dollars does {p['name']} make every day?"
    )


def _p_eggs(p):
    ops = [
        Op(
            "used",
            "+",
            "eat",
            "bake",
            "Eggs eaten or baked: {expr} = {r}.",
            "How many eggs are eaten or baked each day?",
        )
    ]
    if p["extra"]:
        ops.append(
            Op(
                "used",
                "+",
                "used",
                "give",
                "Adding the {b} given away: {expr} = {r} eggs not sold.",
                "How many eggs are not sold each day?",
            )
        )
    return ops + [
        Op("left", "-", "laid", "used", "Eggs left to sell: {expr} = {r}.", "How many eggs are left to sell each day?"),
        Op("money", "*", "left", "price", "Money made: {expr} = {r} dollars.", "How many dollars are made each day?"),
    ]


def _shopping(rng):
    return {
        "n1": rng.randint(2, 6),
        "p1": rng.randint(2, 9),
        "n2": rng.randint(2, 8),
        "p2": rng.randint(1, 5),
        "bill": rng.choice([50, 100]),
        "coupon": rng.randint(2, 8),
        "name": pick_names(rng)[0],
    }


def _q_shopping(p):
    q = f"{p['name']} buys {p['n1']} notebooks at ${p['p1']} each and {p['n2']} pens at ${p['p2']} each."
    if p["extra"]:
        q += f" A coupon takes ${p['coupon']} off the total."
    return q + f" {p['name']} pays with a ${p['bill']} bill. How much change, in dollars, does {p['name']} get?"


def _p_shopping(p):
    ops = [
        Op("c1", "*", "n1", "p1", "Notebooks cost {expr} = {r} dollars.", "How much do the notebooks cost?"),
        Op("c2", "*", "n2", "p2", "Pens cost {expr} = {r} dollars.", "How much do the pens cost?"),
        Op("total", "+", "c1", "c2", "Together: {expr} = {r} dollars.", "What is the total before change?"),
    ]
    if p["extra"]:
        ops.append(
            Op(
                "total",
                "-",
                "total",
                "coupon",
                "With the coupon: {expr} = {r} dollars.",
                "What is the total after the coupon?",
            )
        )
    return ops + [Op("change", "-", "bill", "total", "Change: {expr} = {r} dollars.", "How much change is given?")]


def _wages(rng):
    return {
        "rate": rng.randint(9, 30),
        "hours": rng.randint(3, 9),
        "days": rng.randint(3, 6),
        "rent": rng.randint(20, 200),
        "name": pick_names(rng)[0],
    }


def _q_wages(p):
    q = f"{p['name']} earns ${p['rate']} an hour and works {p['hours']} hours a day for {p['days']} days this week."
    if p["extra"]:
        return (
            q
            + f" {p['name']} then pays ${p['rent']} for rent. How many dollars does {p['name']} have left from this week's pay?"
        )
    return q + f" How many dollars does {p['name']} earn this week?"


def _p_wages(p):
    ops = [
        Op("daily", "*", "rate", "hours", "Pay per day: {expr} = {r} dollars.", "How much is earned per day?"),
        Op("weekly", "*", "daily", "days", "Pay for the week: {expr} = {r} dollars.", "How much is earned this week?"),
    ]
    if p["extra"]:
        ops.append(
            Op("left", "-", "weekly", "rent", "After rent: {expr} = {r} dollars.", "How much is left after rent?")
        )
    return ops


def _savings(rng):
    w = rng.randint(3, 15)
    have = rng.randint(5, 60)
    gift = rng.randint(1, 5) * w
    weeks = rng.randint(2, 12)
    return {"weekly": w, "have": have, "gift": gift, "cost": have + gift + w * weeks, "name": pick_names(rng)[0]}


def _q_savings(p):
    q = f"{p['name']} wants a bike that costs ${p['cost']}. {p['name']} has already saved ${p['have']}."
    if p["extra"]:
        q += f" A grandparent gives {p['name']} ${p['gift']}."
    return q + f" If {p['name']} saves ${p['weekly']} each week, how many weeks until {p['name']} can buy the bike?"


def _p_savings(p):
    ops = [Op("need", "-", "cost", "have", "Still needed: {expr} = {r} dollars.", "How many more dollars are needed?")]
    if p["extra"]:
        ops.append(
            Op(
                "need",
                "-",
                "need",
                "gift",
                "After the gift: {expr} = {r} dollars.",
                "How many dollars are needed after the gift?",
            )
        )
    return ops + [
        Op("weeks", "/", "need", "weekly", "Weeks of saving: {expr} = {r}.", "How many weeks of saving are needed?")
    ]


def _tickets(rng):
    return {
        "adults": rng.randint(1, 6),
        "adult_price": rng.randint(8, 25),
        "kids": rng.randint(1, 6),
        "kid_price": rng.randint(3, 12),
        "off": rng.randint(1, 3),
        "name": pick_names(rng)[0],
    }


def _q_tickets(p):
    q = (
        f"The {p['name']} family buys {p['adults']} adult tickets at ${p['adult_price']} each and {p['kids']} child "
        f"tickets at ${p['kid_price']} each for the zoo."
    )
    if p["extra"]:
        q += f" A family offer takes ${p['off']} off every ticket."
    return q + " How many dollars do they pay?"


def _p_tickets(p):
    ops = [
        Op(
            "ca",
            "*",
            "adults",
            "adult_price",
            "Adult tickets: {expr} = {r} dollars.",
            "How much do the adult tickets cost?",
        ),
        Op(
            "ck",
            "*",
            "kids",
            "kid_price",
            "Child tickets: {expr} = {r} dollars.",
            "How much do the child tickets cost?",
        ),
        Op("total", "+", "ca", "ck", "Together: {expr} = {r} dollars.", "What do all tickets cost before any offer?"),
    ]
    if p["extra"]:
        ops += [
            Op("n", "+", "adults", "kids", "Tickets bought: {expr} = {r}.", "How many tickets are bought?"),
            Op("disc", "*", "n", "off", "Discount: {expr} = {r} dollars.", "How large is the discount?"),
            Op("pay", "-", "total", "disc", "To pay: {expr} = {r} dollars.", "How much do they pay after the offer?"),
        ]
    return ops


MONEY_FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family("eggs_market", _eggs, _q_eggs, _p_eggs),
        Family("shopping_change", _shopping, _q_shopping, _p_shopping),
        Family("weekly_wages", _wages, _q_wages, _p_wages),
        Family("savings_goal", _savings, _q_savings, _p_savings),
        Family("zoo_tickets", _tickets, _q_tickets, _p_tickets),
    ]
}
