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

Add a family: write `_sample_x`, `_question_x`, `_program_x` and register a
`Family` in FAMILIES (docs/data.md, "Adding a family").
"""

from __future__ import annotations

from random import Random

from reasonkd.data.math_program import Family, Op, fmt, run, sample_valid, solve  # noqa: F401 - re-exported

NAMES = ("Ava", "Ben", "Carla", "Diego", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal", "Kira",
         "Liam", "Mei", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Victor",
         "Wen", "Yara", "Zoe")


# ---------------------------------------------------------------- the families
# Each sampler draws numbers so that most draws are valid; solve() rejects the rest.

def _name(rng: Random, k: int = 1) -> list[str]:
    return rng.sample(NAMES, k)


def _chickens_rabbits(rng):
    c, r = rng.randint(3, 40), rng.randint(2, 30)
    return {"heads": c + r, "legs": 2 * c + 4 * r, "k": rng.randint(2, 12), "name": _name(rng)[0]}


def _q_chickens_rabbits(p):
    q = f"{p['name']}'s farm has only chickens and rabbits. Together they have {p['heads']} heads and {p['legs']} legs."
    if p["extra"]:
        return q + f" Then {p['name']} buys {p['k']} more rabbits. How many rabbits are on the farm now?"
    return q + " How many rabbits are on the farm?"


def _p_chickens_rabbits(p):
    ops = [
        Op("all_chickens", "*", "heads", 2, "If all {a} animals were chickens there would be {expr} = {r} legs.",
           "How many legs would there be if every animal were a chicken?"),
        Op("extra_legs", "-", "legs", "all_chickens", "There are {expr} = {r} legs more than that.",
           "How many more legs are there than if every animal were a chicken?"),
        Op("rabbits", "/", "extra_legs", 2, "Each rabbit has 2 legs more than a chicken, so there are {expr} = {r} rabbits.",
           "How many rabbits are on the farm at first?"),
    ]
    if p["extra"]:
        ops.append(Op("now", "+", "rabbits", "k", "After buying {b} more there are {expr} = {r} rabbits.",
                      "How many rabbits are there after the purchase?"))
    return ops


def _check_chickens_rabbits(p, v):
    chickens = p["heads"] - int(v["rabbits"])
    return (f"Check: {chickens} chickens and {v['rabbits']} rabbits make {chickens} + {v['rabbits']} = {p['heads']} heads "
            f"and {chickens} * 2 + {v['rabbits']} * 4 = {p['legs']} legs.")


def _eggs(rng):
    return {"laid": rng.randint(12, 30), "eat": rng.randint(2, 5), "bake": rng.randint(2, 6),
            "price": rng.randint(2, 5), "give": rng.randint(1, 4), "name": _name(rng)[0]}


def _q_eggs(p):
    q = (f"{p['name']}'s ducks lay {p['laid']} eggs per day. {p['name']} eats {p['eat']} for breakfast every morning "
         f"and bakes muffins with {p['bake']} every day.")
    if p["extra"]:
        q += f" {p['name']} also gives {p['give']} eggs to a neighbour each day."
    return q + f" The rest are sold at the market for ${p['price']} per egg. How many dollars does {p['name']} make every day?"


def _p_eggs(p):
    ops = [Op("used", "+", "eat", "bake", "Eggs eaten or baked: {expr} = {r}.", "How many eggs are eaten or baked each day?")]
    if p["extra"]:
        ops.append(Op("used", "+", "used", "give", "Adding the {b} given away: {expr} = {r} eggs not sold.",
                      "How many eggs are not sold each day?"))
    return ops + [
        Op("left", "-", "laid", "used", "Eggs left to sell: {expr} = {r}.", "How many eggs are left to sell each day?"),
        Op("money", "*", "left", "price", "Money made: {expr} = {r} dollars.", "How many dollars are made each day?"),
    ]


def _shopping(rng):
    return {"n1": rng.randint(2, 6), "p1": rng.randint(2, 9), "n2": rng.randint(2, 8), "p2": rng.randint(1, 5),
            "bill": rng.choice([50, 100]), "coupon": rng.randint(2, 8), "name": _name(rng)[0]}


def _q_shopping(p):
    q = (f"{p['name']} buys {p['n1']} notebooks at ${p['p1']} each and {p['n2']} pens at ${p['p2']} each.")
    if p["extra"]:
        q += f" A coupon takes ${p['coupon']} off the total."
    return q + f" {p['name']} pays with a ${p['bill']} bill. How much change, in dollars, does {p['name']} get?"


def _p_shopping(p):
    ops = [Op("c1", "*", "n1", "p1", "Notebooks cost {expr} = {r} dollars.", "How much do the notebooks cost?"),
           Op("c2", "*", "n2", "p2", "Pens cost {expr} = {r} dollars.", "How much do the pens cost?"),
           Op("total", "+", "c1", "c2", "Together: {expr} = {r} dollars.", "What is the total before change?")]
    if p["extra"]:
        ops.append(Op("total", "-", "total", "coupon", "With the coupon: {expr} = {r} dollars.",
                      "What is the total after the coupon?"))
    return ops + [Op("change", "-", "bill", "total", "Change: {expr} = {r} dollars.", "How much change is given?")]


def _wages(rng):
    return {"rate": rng.randint(9, 30), "hours": rng.randint(3, 9), "days": rng.randint(3, 6),
            "rent": rng.randint(20, 200), "name": _name(rng)[0]}


def _q_wages(p):
    q = (f"{p['name']} earns ${p['rate']} an hour and works {p['hours']} hours a day for {p['days']} days this week.")
    if p["extra"]:
        return q + f" {p['name']} then pays ${p['rent']} for rent. How many dollars does {p['name']} have left from this week's pay?"
    return q + f" How many dollars does {p['name']} earn this week?"


def _p_wages(p):
    ops = [Op("daily", "*", "rate", "hours", "Pay per day: {expr} = {r} dollars.", "How much is earned per day?"),
           Op("weekly", "*", "daily", "days", "Pay for the week: {expr} = {r} dollars.", "How much is earned this week?")]
    if p["extra"]:
        ops.append(Op("left", "-", "weekly", "rent", "After rent: {expr} = {r} dollars.", "How much is left after rent?"))
    return ops


def _trip(rng):
    return {"v1": rng.randint(4, 13) * 5, "t1": rng.randint(1, 4), "v2": rng.randint(4, 13) * 5, "t2": rng.randint(1, 3),
            "trip": rng.randint(50, 120) * 5, "name": _name(rng)[0]}


def _q_trip(p):
    hours = lambda t: f"{t} hour" + "s" * (t != 1)  # noqa: E731
    q = (f"{p['name']} drives at {p['v1']} miles per hour for {hours(p['t1'])}, then at {p['v2']} miles per hour "
         f"for {hours(p['t2'])}.")
    if p["extra"]:
        return q + f" The whole trip is {p['trip']} miles long. How many miles are still left to drive?"
    return q + " How many miles has {name} driven in total?".format(name=p["name"])


def _p_trip(p):
    ops = [Op("d1", "*", "v1", "t1", "First part: {expr} = {r} miles.", "How far is the first part of the drive?"),
           Op("d2", "*", "v2", "t2", "Second part: {expr} = {r} miles.", "How far is the second part of the drive?"),
           Op("dist", "+", "d1", "d2", "In total: {expr} = {r} miles.", "How many miles are driven in total?")]
    if p["extra"]:
        ops.append(Op("left", "-", "trip", "dist", "Still to go: {expr} = {r} miles.", "How many miles are left?"))
    return ops


def _savings(rng):
    w = rng.randint(3, 15)
    have = rng.randint(5, 60)
    gift = rng.randint(1, 5) * w
    weeks = rng.randint(2, 12)
    return {"weekly": w, "have": have, "gift": gift, "cost": have + gift + w * weeks, "name": _name(rng)[0]}


def _q_savings(p):
    q = f"{p['name']} wants a bike that costs ${p['cost']}. {p['name']} has already saved ${p['have']}."
    if p["extra"]:
        q += f" A grandparent gives {p['name']} ${p['gift']}."
    return q + f" If {p['name']} saves ${p['weekly']} each week, how many weeks until {p['name']} can buy the bike?"


def _p_savings(p):
    ops = [Op("need", "-", "cost", "have", "Still needed: {expr} = {r} dollars.", "How many more dollars are needed?")]
    if p["extra"]:
        ops.append(Op("need", "-", "need", "gift", "After the gift: {expr} = {r} dollars.",
                      "How many dollars are needed after the gift?"))
    return ops + [Op("weeks", "/", "need", "weekly", "Weeks of saving: {expr} = {r}.", "How many weeks of saving are needed?")]


def _recipe(rng):
    serves = rng.choice([2, 3, 4, 6])
    return {"serves": serves, "cups": rng.randint(2, 5), "guests": serves * rng.randint(2, 5),
            "has": rng.randint(1, 6), "name": _name(rng)[0]}


def _q_recipe(p):
    q = (f"A cake recipe for {p['serves']} people uses {p['cups']} cups of flour. "
         f"{p['name']} is baking for {p['guests']} people.")
    if p["extra"]:
        return q + f" {p['name']} already has {p['has']} cups of flour. How many more cups must {p['name']} buy?"
    return q + f" How many cups of flour does {p['name']} need?"


def _p_recipe(p):
    ops = [Op("times", "/", "guests", "serves", "{a} people is {expr} = {r} times the recipe.",
              "How many times the recipe is needed?"),
           Op("flour", "*", "cups", "times", "Flour needed: {expr} = {r} cups.", "How many cups of flour are needed?")]
    if p["extra"]:
        ops.append(Op("buy", "-", "flour", "has", "To buy: {expr} = {r} cups.", "How many cups must be bought?"))
    return ops


def _ages(rng):
    a, b, c = _name(rng, 3)
    return {"older": rng.randint(2, 9), "mult": rng.randint(2, 4), "young": rng.randint(2, 12),
            "years": rng.randint(2, 10), "pa": a, "pb": b, "pc": c}


def _q_ages(p):
    q = (f"{p['pa']} is {p['older']} years older than {p['pb']}. {p['pb']} is {p['mult']} times as old as {p['pc']}, "
         f"who is {p['young']}.")
    if p["extra"]:
        return q + f" What will the sum of their three ages be in {p['years']} years?"
    return q + " What is the sum of their three ages?"


def _p_ages(p):
    ops = [Op("bage", "*", "mult", "young", "{pb} is {expr} = {r}.", "How old is {pb}?"),
           Op("aage", "+", "bage", "older", "{pa} is {expr} = {r}.", "How old is {pa}?"),
           Op("s1", "+", "aage", "bage", "{pa} and {pb} together: {expr} = {r}.", "What is the sum of the two older ages?"),
           Op("total", "+", "s1", "young", "All three: {expr} = {r}.", "What is the sum of all three ages now?")]
    if p["extra"]:
        ops += [Op("grow", "*", "years", 3, "In {a} years the three gain {expr} = {r} years.", "How many years do the three gain together?"),
                Op("later", "+", "total", "grow", "Then the sum is {expr} = {r}.", "What is the sum of their ages then?")]
    return ops


def _classroom(rng):
    n = rng.choice([20, 25, 30, 40, 50])
    return {"students": n, "pct": rng.choice([20, 40, 60, 80]) if n % 5 == 0 else 50, "k": rng.choice([2, 3, 4]),
            "name": _name(rng)[0]}


def _q_classroom(p):
    q = f"Ms. {p['name']}'s class has {p['students']} students and {p['pct']}% of them are girls."
    if p["extra"]:
        return q + f" One in every {p['k']} boys plays chess. How many boys do not play chess?"
    return q + " How many boys are in the class?"


def _p_classroom(p):
    ops = [Op("g100", "*", "students", "pct", "{a} students times {b} percent: {expr} = {r}.",
              "What is the number of students times the girls' percentage?"),
           Op("girls", "/", "g100", 100, "Girls: {expr} = {r}.", "How many girls are in the class?"),
           Op("boys", "-", "students", "girls", "Boys: {expr} = {r}.", "How many boys are in the class?")]
    if p["extra"]:
        ops += [Op("chess", "/", "boys", "k", "Boys who play chess: {expr} = {r}.", "How many boys play chess?"),
                Op("nochess", "-", "boys", "chess", "Boys who do not: {expr} = {r}.", "How many boys do not play chess?")]
    return ops


def _reading(rng):
    a, d, b = rng.randint(10, 40), rng.randint(2, 7), rng.randint(10, 40)
    return {"per_day": a, "days": d, "then": b, "pages": a * d + b * rng.randint(1, 6), "name": _name(rng)[0]}


def _q_reading(p):
    q = f"A book has {p['pages']} pages. {p['name']} reads {p['per_day']} pages a day for {p['days']} days."
    if p["extra"]:
        return q + f" Then {p['name']} reads {p['then']} pages a day. How many more days does it take to finish the book?"
    return q + " How many pages are left to read?"


def _p_reading(p):
    ops = [Op("read", "*", "per_day", "days", "Pages read: {expr} = {r}.", "How many pages have been read?"),
           Op("left", "-", "pages", "read", "Pages left: {expr} = {r}.", "How many pages are left?")]
    if p["extra"]:
        ops.append(Op("more", "/", "left", "then", "Days to finish: {expr} = {r}.", "How many more days are needed?"))
    return ops


def _crates(rng):
    bag = rng.choice([4, 5, 6, 8, 10])
    crates, per = rng.randint(3, 12), rng.randint(10, 30)
    bags = (crates * per) // bag
    rotten = crates * per - bags * bag + bag * rng.randint(0, 2)
    return {"crates": crates, "per": per, "rotten": rotten, "bag": bag, "sold": rng.randint(1, 5), "name": _name(rng)[0]}


def _q_crates(p):
    q = (f"A grocer gets {p['crates']} crates with {p['per']} apples each. {p['rotten']} apples are rotten and thrown away. "
         f"The rest are packed in bags of {p['bag']}.")
    if p["extra"]:
        return q + f" The grocer sells {p['sold']} bags in the morning. How many bags are left?"
    return q + " How many bags are packed?"


def _p_crates(p):
    ops = [Op("apples", "*", "crates", "per", "Apples delivered: {expr} = {r}.", "How many apples are delivered?"),
           Op("good", "-", "apples", "rotten", "Good apples: {expr} = {r}.", "How many good apples are there?"),
           Op("bags", "/", "good", "bag", "Bags: {expr} = {r}.", "How many bags are packed?")]
    if p["extra"]:
        ops.append(Op("left", "-", "bags", "sold", "Bags left: {expr} = {r}.", "How many bags are left?"))
    return ops


def _tickets(rng):
    return {"adults": rng.randint(1, 6), "adult_price": rng.randint(8, 25), "kids": rng.randint(1, 6),
            "kid_price": rng.randint(3, 12), "off": rng.randint(1, 3), "name": _name(rng)[0]}


def _q_tickets(p):
    q = (f"The {p['name']} family buys {p['adults']} adult tickets at ${p['adult_price']} each and {p['kids']} child "
         f"tickets at ${p['kid_price']} each for the zoo.")
    if p["extra"]:
        q += f" A family offer takes ${p['off']} off every ticket."
    return q + " How many dollars do they pay?"


def _p_tickets(p):
    ops = [Op("ca", "*", "adults", "adult_price", "Adult tickets: {expr} = {r} dollars.", "How much do the adult tickets cost?"),
           Op("ck", "*", "kids", "kid_price", "Child tickets: {expr} = {r} dollars.", "How much do the child tickets cost?"),
           Op("total", "+", "ca", "ck", "Together: {expr} = {r} dollars.", "What do all tickets cost before any offer?")]
    if p["extra"]:
        ops += [Op("n", "+", "adults", "kids", "Tickets bought: {expr} = {r}.", "How many tickets are bought?"),
                Op("disc", "*", "n", "off", "Discount: {expr} = {r} dollars.", "How large is the discount?"),
                Op("pay", "-", "total", "disc", "To pay: {expr} = {r} dollars.", "How much do they pay after the offer?")]
    return ops


def _fence(rng):
    return {"length": rng.randint(5, 30), "width": rng.randint(3, 20), "price": rng.randint(2, 12),
            "gate": rng.randint(1, 3), "name": _name(rng)[0]}


def _q_fence(p):
    q = f"{p['name']}'s garden is a rectangle {p['length']} meters long and {p['width']} meters wide."
    if p["extra"]:
        q += f" A gate {p['gate']} meters wide needs no fence."
    return q + f" Fencing costs ${p['price']} per meter. How many dollars does it cost to fence the garden?"


def _p_fence(p):
    ops = [Op("half", "+", "length", "width", "Length plus width: {expr} = {r} meters.", "What is the length plus the width?"),
           Op("perim", "*", "half", 2, "Perimeter: {expr} = {r} meters.", "What is the perimeter?")]
    if p["extra"]:
        ops.append(Op("perim", "-", "perim", "gate", "Without the gate: {expr} = {r} meters.", "How many meters need fence?"))
    return ops + [Op("cost", "*", "perim", "price", "Cost: {expr} = {r} dollars.", "How much does the fence cost?")]


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
    ops = [Op("net", "-", "fill", "leak", "Net gain per minute: {expr} = {r} liters.", "How many liters are gained per minute?")]
    if p["extra"]:
        ops.append(Op("space", "-", "size", "has", "Still to fill: {expr} = {r} liters.", "How many liters are still to fill?"))
        return ops + [Op("min", "/", "space", "net", "Minutes: {expr} = {r}.", "How many minutes until full?")]
    return ops + [Op("min", "/", "size", "net", "Minutes: {expr} = {r}.", "How many minutes until full?")]


FAMILIES: dict[str, Family] = {f.name: f for f in [
    Family("chickens_rabbits", _chickens_rabbits, _q_chickens_rabbits, _p_chickens_rabbits, _check_chickens_rabbits),
    Family("eggs_market", _eggs, _q_eggs, _p_eggs),
    Family("shopping_change", _shopping, _q_shopping, _p_shopping),
    Family("weekly_wages", _wages, _q_wages, _p_wages),
    Family("road_trip", _trip, _q_trip, _p_trip),
    Family("savings_goal", _savings, _q_savings, _p_savings),
    Family("recipe_scaling", _recipe, _q_recipe, _p_recipe),
    Family("ages_sum", _ages, _q_ages, _p_ages),
    Family("class_percent", _classroom, _q_classroom, _p_classroom),
    Family("reading_pages", _reading, _q_reading, _p_reading),
    Family("apple_crates", _crates, _q_crates, _p_crates),
    Family("zoo_tickets", _tickets, _q_tickets, _p_tickets),
    Family("garden_fence", _fence, _q_fence, _p_fence),
    Family("leaky_tank", _tank, _q_tank, _p_tank),
]}
