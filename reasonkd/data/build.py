"""Build a verified, decontaminated reasoning dataset from a DataRecipe.

    reasonkd data build recipes/data/default.yaml --out data/default [key=value ...]
    from reasonkd.data import build_dataset, load_items
    out = build_dataset("recipes/data/quick.yaml", "data/quick"); rows = load_items(out, "train")

Stages: originals (math families, gsm_symbolic, imports of GSM8K files or any
dataset reasonkd.data.external reads, code tasks, puzzles)
-> split by template -> augmentation (variants, negatives, subtasks, bug
fixes) -> verification (every positive must pass its verifier, every
negative must fail, every variant must differ from its parent; anything else
is dropped and reported) -> decontamination -> files. Everything is written in
a temp folder renamed into place at the end, so a failed build leaves nothing.
Output: train/val/test.jsonl, parquet/<split>.parquet, stats.json,
decontam.json, config.yaml. Same recipe and seed -> byte-identical files.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
import time
from collections import Counter
from pathlib import Path
from random import Random

from reasonkd.config import load_config, save_config
from reasonkd.data import augment as aug
from reasonkd.data import code_gen, logic, longctx, perturb
from reasonkd.data.code_tasks import TASKS_BY_NAME
from reasonkd.data.external import dataset_items, is_dataset_spec
from reasonkd.data.math_families import FAMILIES, sample_valid
from reasonkd.data.recipe import DataRecipe
from reasonkd.data.schema import SPLITS, Item
from reasonkd.data.sources import gsm_symbolic_items, import_gsm8k
from reasonkd.utils.io import atomic_dir, write_json, write_jsonl

log = logging.getLogger(__name__)
IMPORTED = ("gsm8k_import", "dataset_import")


def sub_seed(seed: int, *parts: object) -> int:
    """A seed for one named stream: adding a family never shifts another one's items."""
    h = hashlib.sha256("/".join([str(seed), *map(str, parts)]).encode()).digest()
    return int.from_bytes(h[:8], "big") % (2**31)


def _unit(seed: int, *parts: object) -> float:
    return sub_seed(seed, *parts) / 2**31


# ---------------------------------------------------------------- originals


def originals(r: DataRecipe) -> list[Item]:
    items: list[Item] = []
    for name in r.math.families:
        rng = Random(sub_seed(r.seed, "math", name))
        fam = FAMILIES[name]
        for i in range(r.math.per_family):
            s = rng.randrange(2**31)
            items.append(aug.math_item(fam, sample_valid(fam, Random(s)), f"math-{name}-{i:05d}", seed=s))
    items += gsm_symbolic_items(r.math.gsm_symbolic, sub_seed(r.seed, "gsm_symbolic"))
    for imp in r.imports:
        if imp.columns or (is_dataset_spec(imp.path) and not imp.path.endswith(".jsonl")):  # hf:NAME, Parquet, ...
            items += dataset_items(
                imp.path, split=imp.split, columns=imp.columns, limit=imp.limit, name=imp.name or None
            )
        else:
            items += import_gsm8k(imp.path, split=imp.split, name=imp.name or "gsm8k", seed=r.seed)[: imp.limit]
    for name in r.code.tasks:
        task, rng = TASKS_BY_NAME[name], Random(sub_seed(r.seed, "code", name))
        for i in range(r.code.per_task):
            s = rng.randrange(2**31)
            k = None if task.k_range is None else Random(s).randint(*task.k_range)
            items.append(code_gen.code_item(task, k, f"code-{name}-{i:05d}", seed=s))
    for kind, count, sizes in (
        ("zebra", r.logic.zebra, r.logic.zebra_sizes),
        ("sudoku", r.logic.sudoku, r.logic.sudoku_sizes),
    ):
        rng = Random(sub_seed(r.seed, "logic", kind))
        for i in range(count):
            size, s = sizes[i % len(sizes)], rng.randrange(2**31)
            if kind == "zebra":
                n, m = map(int, str(size).split("x"))
                items.append(logic.zebra_item(Random(s), n, m, f"logic-zebra_{size}-{i:05d}", seed=s))
            else:
                items.append(logic.sudoku_item(Random(s), int(size), f"logic-sudoku_{size}-{i:05d}", seed=s))
    seen, unique = set(), []
    for it in items:  # small families can draw the same numbers twice; overlap ACROSS sources
        key = (it.source, it.question)  # (e.g. an imported eval file) is decontamination's job
        if key not in seen:
            seen.add(key)
            unique.append(it)
    return unique


def assign_splits(items: list[Item], r: DataRecipe) -> None:
    for it in items:
        if it.source in IMPORTED:
            continue  # an imported row keeps the split its import names
        elif any(fnmatch.fnmatchcase(it.template, p) for p in r.split.test_templates):
            it.split = "test"
        else:
            it.split = "val" if _unit(r.seed, "val", it.id) < r.split.val_fraction else "train"


# ---------------------------------------------------------------- augmentation


def augmentations(items: list[Item], r: DataRecipe) -> list[Item]:
    a, out = r.augment, []
    base = [it for it in items if r.split.augment_test or it.split != "test"]
    neg_cycle = 0
    for it in base:
        rng = Random(sub_seed(r.seed, "augment", it.id))
        pick = lambda name, p: _unit(r.seed, name, it.id) < p  # noqa: E731, B023 - independent coin per item
        if it.domain == "math" and "family" in it.meta:
            out += [v for k in range(a.variants) if (v := aug.param_variant(it, rng, k + 1))]
            if pick("conditions", a.conditions) and (v := aug.condition_variant(it)):
                out.append(v)
            if pick("subtasks", a.subtasks):
                out += aug.subtasks(it, a.max_subtasks)
            adv = r.adversarial  # perturbed variants of the trained types only; held-out types never appear
            if adv.fraction and pick("adversarial", adv.fraction):
                out += perturb.training_items(
                    it, adv.types, sub_seed(r.seed, "adversarial"), adv.per_item, adv.negatives
                )
        if it.domain == "math":
            if it.verifier != "math_numeric":
                continue  # a LaTeX answer: distractors and wrong numbers are made for numeric answers only
            if pick("distractors", a.distractors):
                out.append(aug.distractor_variant(it, rng))
            if pick("negatives", a.negatives) and a.negative_types:
                types = [a.negative_types[(neg_cycle + j) % len(a.negative_types)] for j in range(a.negatives_per_item)]
                neg_cycle += a.negatives_per_item
                out += aug.negatives(it, rng, types)
        elif it.domain == "code":
            out += [v for k in range(a.variants) if (v := code_gen.code_variant(it, rng, k + 1))]
        elif pick("logic_variants", a.logic_variants):
            out.append((logic.zebra_variant if it.verifier == "zebra" else logic.sudoku_variant)(it, rng))
        if it.domain == "logic" and pick("negatives", a.negatives):
            out.append((logic.zebra_negative if it.verifier == "zebra" else logic.sudoku_negative)(it, rng))
    code = [it for it in items if it.domain == "code" and it.kind == "original"]
    neg_ids = {
        it.id
        for it in code
        if (it.split != "test" or r.split.augment_test) and _unit(r.seed, "negatives", it.id) < a.negatives
    }
    fixes, negs = code_gen.bug_items(code, r.seed, r.code.n_bugs, bugfix=r.code.bugfix, negative_ids=neg_ids)
    return out + fixes + negs


# ---------------------------------------------------------------- verification


def verify_all(items: list[Item]) -> tuple[list[Item], list[dict]]:
    """Keep items whose verdict matches their kind; report (and drop) the rest and their children."""
    from tqdm import tqdm

    from reasonkd.data.verify import _test_program, run_programs, verify_item

    by_id = {it.id: it for it in items}
    ok: dict[str, bool] = {}
    code = [it for it in items if it.verifier == "code_tests"]
    progs = [_test_program(it.answer, it.meta["tests"], it.meta["entry_point"]) for it in code]
    buggy = [it for it in code if "buggy_code" in it.meta and it.kind != "negative"]
    progs += [_test_program(it.meta["buggy_code"], it.meta["tests"], it.meta["entry_point"]) for it in buggy]
    results = run_programs(progs)
    for it, passed in zip(code, results):
        ok[it.id] = passed == (it.kind != "negative")
    for it, passed in zip(buggy, results[len(code) :]):
        ok[it.id] = ok[it.id] and not passed  # the buggy version must really fail
    for it in tqdm([it for it in items if it.verifier != "code_tests"], desc="verify", leave=False, mininterval=2):
        ok[it.id] = verify_item(it.to_dict(), it.solution_text()) == (it.kind != "negative")
    problems = []
    for it in items:
        if not ok[it.id]:
            problems.append(
                {
                    "id": it.id,
                    "problem": "negative passes its verifier" if it.kind == "negative" else "fails its verifier",
                }
            )
        elif it.kind == "variant" and (it.question == by_id[it.parent_id].question):
            ok[it.id] = False
            problems.append({"id": it.id, "problem": "variant identical to its parent"})
    bad = {p["id"] for p in problems}
    kept = [it for it in items if it.id not in bad and it.parent_id not in bad]
    return kept, problems


# ---------------------------------------------------------------- stats and files


def stats(items: list[Item], problems: list[dict], decontam: dict) -> dict:
    def count(key):
        return dict(sorted(Counter(str(key(it)) for it in items).items()))

    return {
        "total": len(items),
        "by_split": count(lambda i: i.split),
        "by_domain": count(lambda i: i.domain),
        "by_kind": count(lambda i: i.kind),
        "by_difficulty": count(lambda i: i.difficulty),
        "by_split_domain": count(lambda i: f"{i.split}/{i.domain}"),
        "by_error_type": dict(sorted(Counter(i.error_type for i in items if i.kind == "negative").items())),
        "by_template": count(lambda i: i.template),
        "test_templates": sorted({i.template for i in items if i.split == "test"}),
        "dropped_by_verification": len(problems),
        "verification_problems": problems,
        "removed_by_decontamination": decontam.get("removed", 0),
        "removed_as_split_repeats": decontam.get("split_repeats", 0),
    }


def format_stats(s: dict) -> str:
    lines = [f"{s['total']} items"]
    for key in ("by_split", "by_domain", "by_kind", "by_difficulty", "by_error_type"):
        if s[key]:
            lines.append(f"  {key[3:]:<12} " + "  ".join(f"{k}={v}" for k, v in s[key].items()))
    lines.append(
        f"  test templates ({len(s['test_templates'])}): {', '.join(s['test_templates'][:12])}"
        + (" ..." if len(s["test_templates"]) > 12 else "")
    )
    lines.append(
        f"  dropped by verification: {s['dropped_by_verification']}; "
        f"removed by decontamination: {s['removed_by_decontamination']}"
    )
    return "\n".join(lines)


def _write_parquet(rows: list[dict], path: Path) -> None:
    from datasets import Dataset, Features, Sequence, Value
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()  # one bar per split file is noise next to the stats table
    text = Value("string")
    features = Features(
        {
            "id": text,
            "domain": text,
            "question": text,
            "answer": text,
            "steps": Sequence(text),
            "verifier": text,
            "kind": text,
            "parent_id": text,
            "error_type": text,
            "split": text,
            "source": text,
            "seed": Value("int64"),
            "difficulty": Value("int64"),
            "template": text,
            "meta": text,
        }
    )
    flat = [dict(r, meta=json.dumps(r["meta"], sort_keys=True)) for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    Dataset.from_list(flat, features=features).to_parquet(str(path))


def drop_split_repeats(items: list[Item]) -> tuple[list[Item], int]:
    """Items without a train item whose question is, word for word, one of val or test, or a val item whose
    question is one of test (an augmented variant can land on another problem's exact text): a held-out
    problem is never trainable. The held-out side is kept, so the eval sets do not move."""
    held = {
        "train": {it.question for it in items if it.split in ("val", "test")},
        "val": {it.question for it in items if it.split == "test"},
    }
    kept = [it for it in items if it.question not in held.get(it.split, ())]
    return kept, len(items) - len(kept)


def generate(r: DataRecipe) -> tuple[list[Item], dict, dict]:
    """(items sorted by id, stats, decontamination report) for a recipe; no files written."""
    from reasonkd.data.decontam import EvalIndex, decontaminate

    t0 = time.perf_counter()
    items = originals(r)
    assign_splits(items, r)
    log.info("%d originals (%.1fs)", len(items), time.perf_counter() - t0)
    items += augmentations(items, r)
    long = longctx.long_items(r.long, r.math.families, r.seed)  # long inputs: originals, never augmented
    assign_splits(long, r)
    items += long
    log.info("%d items after augmentation (%.1fs)", len(items), time.perf_counter() - t0)
    items, problems = verify_all(items)
    log.info("verified: kept %d, dropped %d (%.1fs)", len(items), len(problems), time.perf_counter() - t0)
    report: dict = {"removed": 0, "items": []}
    if r.decontam.enabled:
        eval_texts = [(it.id, it.question) for it in items if it.source in IMPORTED and it.split == "test"]
        index = EvalIndex.build(r.decontam.gsm8k_files, r.decontam.humaneval, r.decontam.ngram, extra=eval_texts)
        exempt = {eid for eid, _ in eval_texts}
        kept, report = decontaminate([it for it in items if it.id not in exempt], index)
        items = kept + [it for it in items if it.id in exempt]
    items, n_repeats = drop_split_repeats(items)  # after decontamination, which reports eval-file matches itself
    if n_repeats:
        log.info("dropped %d train/val items whose question is a held-out split's word for word", n_repeats)
    report["split_repeats"] = n_repeats
    items.sort(key=lambda it: it.id)
    return items, stats(items, problems, report), report


def build_dataset(recipe: DataRecipe | str | Path, out_dir: str | Path, overrides: list[str] | tuple = ()) -> Path:
    """Build the dataset for `recipe` (a DataRecipe or a YAML path) into `out_dir`; returns it."""
    r = recipe if isinstance(recipe, DataRecipe) else load_config(DataRecipe, recipe, overrides)
    out_dir = Path(out_dir)
    items, st, report = generate(r)  # all errors happen before anything is written
    with atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            rows = [it.to_dict() for it in items if it.split == split]
            write_jsonl(tmp / f"{split}.jsonl", rows)
            if r.parquet:
                _write_parquet(rows, tmp / "parquet" / f"{split}.parquet")
        write_json(tmp / "stats.json", st)
        write_json(tmp / "decontam.json", report)
        save_config(r, tmp)
    return out_dir
