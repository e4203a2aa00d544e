"""The eval sets of `reasonkd compare` and its split discipline: OUT/eval/dev.jsonl and heldout.jsonl, drawn in a
fixed hash order, disjoint from each other and from every training trace of the arms that run."""

from __future__ import annotations

import logging
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.pipeline.compare_config import ArmConfig, CompareConfig
from reasonkd.utils.io import read_jsonl, write_jsonl

log = logging.getLogger(__name__)


def _hash_order(rows: list[dict]) -> list[dict]:
    import hashlib

    return sorted(rows, key=lambda r: hashlib.sha1(r["id"].encode()).hexdigest())


def _problem_rows(cfg: CompareConfig, out: Path) -> list[dict]:
    from reasonkd.data import build_dataset, load_items
    from reasonkd.data.external import is_dataset_spec

    src = Path(cfg.eval.data)
    external = is_dataset_spec(cfg.eval.data)  # hf:NAME, Parquet, JSON, ... (reasonkd.data.external)
    if src.suffix in (".yaml", ".yml"):  # a data recipe: build it once into OUT/data
        if not (out / "data" / "stats.json").is_file():
            build_dataset(str(src), out / "data")
        src = out / "data"
    if not (external or src.exists()):
        raise ReasonkdError(f"eval.data {cfg.eval.data}: no such dataset folder, JSONL, data recipe or dataset")
    src = cfg.eval.data if external else src
    rows = [
        r
        for r in load_items(src, split=cfg.eval.split)
        if r.get("domain") == cfg.eval.domain and r.get("kind", "original") == "original"
    ]
    # `reasonkd data build` drops a train item that repeats a held-out question word for word; a dataset built
    # before that (or elsewhere) may still hold one: such a problem is not held out, so it is left out here
    # (another dataset's splits are its publisher's: a lone file is all the eval split)
    elsewhere = (
        set()
        if external
        else {r.get("question") for r in load_items(src) if r.get("split", cfg.eval.split) != cfg.eval.split}
    )
    repeated = [r for r in rows if r.get("question") in elsewhere]
    if repeated:
        log.info(
            "eval sets: %d %s problems repeat a question of another split (e.g. %s); left out",
            len(repeated),
            cfg.eval.split,
            repeated[0]["id"],
        )
        rows = [r for r in rows if r.get("question") not in elsewhere]
    need = cfg.eval.n_dev + cfg.eval.n_heldout
    if len(rows) < need:
        raise ReasonkdError(
            f"eval.data {cfg.eval.data}: the {cfg.eval.split} split holds {len(rows)} "
            f"{cfg.eval.domain} originals, fewer than eval.n_dev + eval.n_heldout = {need}; "
            "lower them or build a larger dataset"
        )
    return _hash_order(rows)[:need]


def _trace_rows(path: str) -> tuple[set[str], list[str]]:
    """(ids, prompts) of a traces file or `teacher generate` folder."""
    p = Path(path)
    f = p / "traces.jsonl" if p.is_dir() else p
    if not f.is_file():
        raise ReasonkdError(f"traces {path}: no such JSONL file or folder with traces.jsonl")
    rows = read_jsonl(f)
    return {str(r.get("id")) for r in rows}, [str(r.get("prompt") or "") for r in rows]


def _leaks(path: str, eval_rows: list[dict]) -> list[str]:
    """Eval problems the traces train on: the same id, or the question inside a trace's prompt (traces
    from another build of the same generators can hold the same problem under another id)."""
    ids, prompts = _trace_rows(path)
    text = "\n\x00".join(prompts)
    return sorted(
        str(r["id"]) for r in eval_rows if str(r["id"]) in ids or (r.get("question") and str(r["question"]) in text)
    )


def prepare_eval_sets(cfg: CompareConfig, out: Path, arms: list[ArmConfig] | None = None) -> dict[str, Path]:
    """OUT/eval/dev.jsonl and heldout.jsonl; refuses overlap between them or with the training traces of
    `arms` (default: every arm; an arm's traces are checked whenever a run includes it)."""
    if cfg.eval.dev and cfg.eval.heldout:
        sets = {"dev": read_jsonl(cfg.eval.dev), "heldout": read_jsonl(cfg.eval.heldout)}
    else:
        rows = _problem_rows(cfg, out)
        sets = {"dev": rows[: cfg.eval.n_dev], "heldout": rows[cfg.eval.n_dev :]}
    dev_ids, held_ids = {r["id"] for r in sets["dev"]}, {r["id"] for r in sets["heldout"]}
    dev_q = {r.get("question") for r in sets["dev"]}
    both = (dev_ids & held_ids) | {r["id"] for r in sets["heldout"] if r.get("question") in dev_q}
    if both:
        raise ReasonkdError(
            f"the dev and held-out sets share {len(both)} problems (e.g. {sorted(both)[0]}); they must be disjoint"
        )
    arms = cfg.arms if arms is None else arms
    corrected = any(a.corrected_teacher for a in arms) and cfg.teacher_correction.traces
    # no arm (the teacher check, which runs before any trace exists): the traces are checked when arms run
    shared = {cfg.traces} if arms or Path(cfg.traces or "-").exists() else set()
    trace_files = shared | {a.traces for a in arms if a.traces} | ({corrected} if corrected else set())
    for path in sorted(t for t in trace_files if t):
        leak = _leaks(path, sets["dev"] + sets["heldout"])
        if leak:
            raise ReasonkdError(
                f"traces {path} train on {len(leak)} eval problems (e.g. {leak[0]}); "
                "take the traces from another split than eval.split, or drop those problems"
            )
    paths = {}
    for name, rows in sets.items():
        paths[name] = out / "eval" / f"{name}.jsonl"
        if not paths[name].is_file() or read_jsonl(paths[name]) != rows:
            write_jsonl(paths[name], rows)
    return paths
