"""Existing teacher traces as verified traces: a trace dataset -> the folder `teacher generate` writes.

    reasonkd teacher import hf:open-r1/OpenR1-Math-220k@train --out runs/traces \\
        --traces-column generations --correct-column correctness_math_verify --thinking keep --max-tokens 4096 \\
        --tokenizer smollm2-135m
    from reasonkd.teacher.importer import ImportSettings, import_traces
    stats = import_traces(ImportSettings(data="r1.parquet", out="runs/traces", traces_column="generations"))

Each row of the dataset (any spec reasonkd.data.external reads, columns mapped the
same way) is a problem; its traces column holds one trace (text), several (a
list of texts, as OpenR1-Math's `generations`) or a chat (a list of
{"role", "content"} messages: the last assistant turn is the trace; a list of
chats is several). R1-style `<think>` blocks (inline or a `reasoning_content`
field) are kept or cut (`thinking`), and the prompt is the student's template
(reasonkd.data.prompts), as for generated traces.

Every trace is re-verified with our verifier (math_numeric, or math_latex for
LaTeX answers); only verified ones go to traces.jsonl, the rest to
negatives.jsonl with an error_type (`truncated` = longer than the length cap).
The dataset's own flag (`correct_column`, a bool or a list of bools, one per
trace) is stored with each row as `dataset_verdict` and set against ours in
stats.json's `import.agreement`. The folder is resumable like a generated one
(reasonkd.teacher.store): committed shards are skipped on a rerun.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass

from tqdm.auto import tqdm

from reasonkd.data.dataset_rows import row_item
from reasonkd.data.external import load_table, parse_spec, pick_splits, resolve_columns
from reasonkd.data.prompts import load_template, render
from reasonkd.errors import ReasonkdError
from reasonkd.teacher.parse import parse_output
from reasonkd.teacher.selection import finalize, judge
from reasonkd.teacher.store import ShardStore
from reasonkd.utils.io import write_json

log = logging.getLogger(__name__)

THINKING = ("keep", "cut")
IDENTITY_KEYS = (
    "data",
    "columns",
    "traces_column",
    "correct_column",
    "thinking",
    "max_tokens",
    "tokenizer",
    "template",
)


@dataclass
class ImportSettings:
    data: str
    """The trace dataset: hf:NAME[:CONFIG][@SPLIT], a Parquet / JSON / Arrow file, a save_to_disk folder."""
    out: str
    """Output folder: traces.jsonl, negatives.jsonl, stats.json (resumable)."""
    traces_column: str = "generations"
    """Column holding the traces: text, a list of texts, or chat messages (a list of {role, content})."""
    correct_column: str | None = None
    """Column with the dataset's own verdict per trace (bool or list of bools); reported next to ours."""
    columns: dict = dataclasses.field(default_factory=dict)
    """Role -> column for question / answer / solution; {} = the common schemas' names."""
    split: str | None = "train"
    """Which split the problems count as (train | val | test); None = the dataset's own splits."""
    thinking: str = "keep"
    """keep: the <think> block stays in the trace; cut: only the answer after it is trained on."""
    max_tokens: int | None = None
    """Traces longer than this (tokens of `tokenizer`) are negatives (`truncated`); None = no cap."""
    tokenizer: str | None = None
    """Model alias / folder whose tokenizer counts tokens (the student's); None = words are counted."""
    template: str | None = None
    """Prompt template file the student is asked with (reasonkd.data.prompts); None = the default."""
    prefer: str = "all"
    """Which verified traces per problem go to traces.jsonl: all | shortest."""
    limit: int | None = None
    """Import only the first N problems."""
    shard_size: int = 256
    """Problems per committed shard."""
    progress: bool = True


def trace_texts(value, where: str) -> list[tuple[str, str | None]]:
    """[(text, reasoning_content)] of one cell of the traces column; wrong types raise naming the row."""

    def chat(messages: list) -> tuple[str, str | None]:
        turns = [m for m in messages if isinstance(m, dict) and m.get("role") == "assistant"]
        if not turns or not isinstance(turns[-1].get("content"), str):
            raise ReasonkdError(f"{where}: a chat without an assistant message with text content")
        return turns[-1]["content"], turns[-1].get("reasoning_content") or None

    if isinstance(value, str):
        return [(value, None)]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return [chat(value)]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [(v, None) for v in value]
    if isinstance(value, list) and all(isinstance(v, list) for v in value):
        return [chat(v) for v in value]
    if value is None:
        return []
    kind = type(value).__name__ + (f" of {type(value[0]).__name__}" if isinstance(value, list) and value else "")
    raise ReasonkdError(
        f"{where}: holds a {kind}; a traces column holds text, a list of texts, or chat "
        "messages (a list of {role, content}); pick another with --traces-column"
    )


def dataset_flags(value, n: int, where: str) -> list[bool | None]:
    """The dataset's verdict per trace: one bool for all, a list of bools, or None (no verdict)."""
    if value is None:
        return [None] * n
    if isinstance(value, bool):
        return [value] * n
    if isinstance(value, list) and all(isinstance(v, bool) or v is None for v in value):
        return list(value) + [None] * (n - len(value)) if len(value) <= n else list(value[:n])
    raise ReasonkdError(
        f"{where}: holds a {type(value).__name__}; --correct-column must hold a bool or a list of bools (one per trace)"
    )


def _counter(tokenizer: str | None):
    if tokenizer is None:
        return lambda text: len(text.split()), "words"
    from reasonkd.models.loader import load_tokenizer  # lazy: transformers loads only when counting tokens

    tok = load_tokenizer(tokenizer)
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"]), "tokens"


def trace_rows(item, texts, flags, s: ImportSettings, template: dict, teacher: str, count) -> list[dict]:
    """One row per trace, in the shape `teacher generate` writes, plus `dataset_verdict`."""
    from reasonkd.data.verify import reference_answer

    d = item.to_dict()
    system, user = render(template, d)
    rows = []
    for j, ((text, reasoning), flag) in enumerate(zip(texts, flags)):
        parsed = parse_output(text, reasoning)
        if s.thinking == "cut" and parsed.r1:  # train on the answer part only
            parsed = dataclasses.replace(parsed, reasoning=parsed.final, r1=False, final="")
        n = count(parsed.trace)
        accepted, error_type, pred = judge(d, parsed, finished=True)
        verified = accepted
        if s.max_tokens is not None and n > s.max_tokens:  # too long to train on, whatever its answer
            accepted, error_type = False, "truncated"
        rows.append(
            {
                "id": item.id,
                "sample_idx": j,
                "prompt": user,
                "system": system,
                "trace": parsed.trace,
                "reasoning": parsed.reasoning,
                "final": parsed.final,
                "pred": pred,
                "answer": reference_answer(d),
                "domain": "math",
                "difficulty": item.difficulty,
                "template": item.template,
                "split": item.split,
                "teacher": teacher,
                "tokens": n,
                "prompt_tokens": count(user),
                "finished": True,
                "accepted": accepted,
                "error_type": error_type,
                "request": "",
                "verified": verified,
                "dataset_verdict": flag,
                "verifier": item.verifier,
            }
        )
    return rows


def agreement(rows: list[dict]) -> dict:
    """Our verifier's verdict on each trace's answer (before the length cap) against the dataset's."""
    out = {"both_correct": 0, "ours_only": 0, "dataset_only": 0, "both_wrong": 0, "no_dataset_verdict": 0}
    for r in rows:
        flag = r.get("dataset_verdict")
        if flag is None:
            out["no_dataset_verdict"] += 1
            continue
        out[
            {
                (True, True): "both_correct",
                (True, False): "ours_only",
                (False, True): "dataset_only",
                (False, False): "both_wrong",
            }[(bool(r["verified"]), bool(flag))]
        ] += 1
    return out


def _tables(s: ImportSettings, spec) -> list[tuple]:
    """[(our split, its split name, Dataset, role -> column)], every named column checked before any work."""
    out = []
    for ours, theirs, d in pick_splits(load_table(spec), spec, s.split):
        where = f"--data {s.data}"
        cols = resolve_columns(d.column_names, spec.columns, where)
        for flag, col in (("--traces-column", s.traces_column), ("--correct-column", s.correct_column)):
            if col is not None and col not in d.column_names:
                raise ReasonkdError(
                    f"{where}: {flag} {col}: no such column; the columns are {', '.join(d.column_names)}"
                )
        out.append((ours, theirs, d, cols))
    return out


def _problems(s: ImportSettings, spec, tables: list[tuple]):
    """(item, traces cell, verdicts cell, where) per usable row, read one row at a time (the table stays on
    disk: a trace dataset can be larger than memory)."""
    n = 0
    for ours, theirs, d, cols in tables:
        for i in range(len(d)):
            if s.limit is not None and n >= s.limit:
                return
            row = d[i]
            item = row_item(row, cols, spec.name, ours, theirs, i, s.data)
            if item is not None:
                n += 1
                yield (
                    item,
                    row[s.traces_column],
                    row.get(s.correct_column) if s.correct_column else None,
                    f"--data {s.data}: split {theirs} row {i}",
                )


def import_traces(s: ImportSettings) -> dict:
    """Import (or resume importing) a trace dataset into `s.out`; returns stats.json's content."""
    if s.thinking not in THINKING:
        raise ReasonkdError(f"--thinking {s.thinking!r}: choose one of {', '.join(THINKING)}")
    if s.max_tokens is not None and s.max_tokens < 1:
        raise ReasonkdError(f"--max-tokens must be >= 1, got {s.max_tokens}")
    spec = parse_spec(s.data, s.columns)
    template = load_template(s.template)
    tables = _tables(s, spec)
    count, unit = _counter(s.tokenizer)
    teacher = f"dataset:{s.data}"
    settings = {**dataclasses.asdict(s), "teacher": teacher, "template": template, "backend": "import"}
    store = ShardStore(s.out)
    try:
        store.check_settings(settings, IDENTITY_KEYS)
        done, seen, shard = store.done_ids, 0, []
        total = sum(len(t[2]) for t in tables)
        bar = tqdm(
            total=min(total, s.limit or total),
            desc="import",
            unit="problem",
            disable=not s.progress,
            dynamic_ncols=True,
        )

        def commit() -> None:
            rows = []
            for item, cell, flag_cell, where in shard:
                texts = trace_texts(cell, f"{where}, --traces-column {s.traces_column}")
                flags = dataset_flags(flag_cell, len(texts), f"{where}, --correct-column {s.correct_column}")
                rows += trace_rows(item, texts, flags, s, template, teacher, count)
            store.commit(rows, [p[0].id for p in shard], {"new_tokens": 0, "seconds": 0.0})
            bar.update(len(shard))
            shard.clear()

        for problem in _problems(s, spec, tables):
            seen += 1
            if problem[0].id in done:  # committed by an earlier run
                bar.update(1)
                continue
            shard.append(problem)
            if len(shard) >= s.shard_size:
                commit()
        if shard:
            commit()
        bar.close()
        if not seen:
            raise ReasonkdError(f"--data {s.data}: no rows with a question and an answer to verify traces against")
        stats = finalize(store, teacher, settings, {"new_tokens": 0, "seconds": 0.0, "tokens_per_s": None})
        rows = list(store.rows())
        stats["import"] = {
            "dataset": s.data,
            "traces_column": s.traces_column,
            "correct_column": s.correct_column,
            "thinking": s.thinking,
            "max_tokens": s.max_tokens,
            "length_unit": unit,
            "agreement": agreement(rows),
            "by_verifier": {
                v: sum(r["verifier"] == v and r["accepted"] for r in rows)
                for v in sorted({r["verifier"] for r in rows})
            },
        }
        write_json(store.out / "stats.json", stats)
        return stats
    finally:
        store.close()


def format_import(stats: dict) -> str:
    """Two lines: our verdicts against the dataset's own."""
    imp, a = stats["import"], stats["import"]["agreement"]
    judged = a["both_correct"] + a["ours_only"] + a["dataset_only"] + a["both_wrong"]
    return (
        f"verdicts, ours vs the dataset's ({imp['correct_column'] or 'none given'}) on {judged} traces: "
        f"both correct {a['both_correct']}, ours only {a['ours_only']}, dataset only {a['dataset_only']}, "
        f"both wrong {a['both_wrong']}; without a dataset verdict {a['no_dataset_verdict']}\n"
        f"lengths in {imp['length_unit']}; thinking {imp['thinking']}; cap {imp['max_tokens'] or 'none'}"
    )
