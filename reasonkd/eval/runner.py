"""Evaluate a model (or existing completions) on tasks; the Python API behind `reasonkd eval`.

    from reasonkd.eval import evaluate_model, evaluate_samples, write_report
    r = evaluate_model("smollm2-135m", ["gsm8k", "humaneval"], data="data/default", limit=50, label="student-before")
    s = evaluate_samples("humaneval", "samples.jsonl")            # score completions without a model
    write_report([r, s], "runs/eval")

Generation goes through a generation engine (reasonkd.models.engines, `engine=`):
hf batches length-sorted prompts with a KV cache (reasonkd.models.generation),
openvino runs OpenVINO GenAI's continuous batching on a cached fp32 conversion;
latency is measured separately at batch 1 on a few problems. With `out_dir`, each task's samples are written as soon as
the task is done and reused on a rerun with the same settings (resume; reasonkd.eval.sample_store).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.eval.sample_store import generate_resumable, load_cached, samples_path, save_rows
from reasonkd.eval.tasks import get_task
from reasonkd.models import count_parameters
from reasonkd.models.engines import Engine, make_engine, resolve_engine
from reasonkd.models.engines.hf import HFEngine
from reasonkd.models.generation import apply_chat
from reasonkd.models.window import check_window
from reasonkd.utils.hardware import dtype_name, resolve_dtype

log = logging.getLogger(__name__)


def _task_data(data, task: str):
    """--data may be one path for every task that needs data, or {task: path} ('*' = the rest).

    HumanEval ships in its package, so it only takes a path named for it."""
    if not isinstance(data, dict):
        data = {"*": data}
    return data.get(task, None if task == "humaneval" else data.get("*"))


def _score_rows(task, pairs: list[tuple[dict, str]], extra: list[dict] | None = None) -> list[dict]:
    examples = [p[0] for p in pairs]
    completions = [p[1] for p in pairs]
    scored = task.score_many(examples, completions)
    rows, seen = [], {}
    for i, (ex, completion, s) in enumerate(zip(examples, completions, scored)):
        j = seen[ex["idx"]] = seen.get(ex["idx"], -1) + 1
        row = {
            "idx": ex["idx"],
            "id": ex["id"],
            "sample": j,
            "prompt": task.prompt(ex),
            "completion": completion,
            "reference": task.reference(ex),
            **s,
        }
        if extra:
            row.update(extra[i])
        rows.append(row)
    return rows


def evaluate_samples(
    task_name: str,
    samples_file: str,
    data=None,
    limit: int | None = None,
    label: str | None = None,
    out_dir=None,
    **task_options,
) -> dict:
    """Score existing completions (`--samples`) for one task; no model is loaded."""
    from reasonkd.utils.io import read_jsonl

    p = Path(samples_file)
    if not p.is_file():
        raise ReasonkdError(f"--samples {samples_file}: no such file")
    task = get_task(task_name, data=_task_data(data, task_name), limit=limit, **task_options)
    pairs = task.match_samples(read_jsonl(p), str(p))
    if not pairs:
        raise ReasonkdError(f"{p}: no rows for task {task_name}")
    label = label or p.stem
    t0 = time.perf_counter()
    rows = _score_rows(task, pairs)
    log.info("%s on %s: scored %d samples in %.1fs", label, task_name, len(rows), time.perf_counter() - t0)
    result = {
        "label": label,
        "model": str(p),
        "kind": "samples",
        "params": None,
        "latency": None,
        "peak_rss_mb": None,
        "throughput": {},
        "cases": [],
        "tasks": {task_name: {"metrics": task.metrics(rows), "samples": rows}},
    }
    if out_dir:
        save_rows(samples_path(out_dir, label, task_name), {"samples": str(p), "task": task_name}, rows)
    return result


def _open(model_name_or_path, engine: str, dtype: str, device: str, window: int | None = None, sinks: int = 4):
    """(generation engine, torch model or None, dtype name, why that precision) for evaluate_model.
    `window`: the hf engine decodes with sliding-window attention (reasonkd.models.window)."""
    from reasonkd.models import load_model

    # auto: vllm on a GPU, openvino on a CPU with the export extra, else hf; a sliding window is hf's alone
    engine = "hf" if window and engine == "auto" else resolve_engine(engine, device, str(model_name_or_path))
    if window and engine != "hf":
        raise ReasonkdError(f"--window needs --engine hf (got {engine})")

    torch_dtype, precision = resolve_dtype(dtype, device)  # "auto" -> what runs fastest here, and why
    dtype = dtype_name(torch_dtype)
    if engine != "hf":  # the engine loads (and for openvino converts, once per weights) the model itself
        gen = make_engine(engine, str(model_name_or_path), dtype=dtype, device=device)
        return gen, None, gen.precision, f"{engine} engine"
    model, tok = load_model(model_name_or_path, dtype=torch_dtype, device=device)
    if getattr(model, "precision", None):  # an export folder: its precision was fixed when it was built
        dtype, precision = model.precision, "fixed by the export"
    gen = HFEngine.wrap(model, tok)
    if window:
        check_window(window, sinks, model)
        gen.window, gen.sinks = window, sinks
    return gen, model, dtype, precision


def evaluate_model(
    model_name_or_path: str,
    tasks,
    data=None,
    limit: int | None = None,
    *,
    label: str | None = None,
    out_dir=None,
    batch_size: int = 16,
    max_new_tokens: int = 512,
    temperature: float = 0.0,
    top_p: float = 1.0,
    n_samples: int = 1,
    few_shot: int = 0,
    dtype: str = "auto",
    device: str = "cpu",
    template: str | None = None,
    latency_problems: int = 5,
    latency_tokens: int = 64,
    cases: bool = True,
    case_tokens: int = 384,
    timeout: float = 10.0,
    workers: int = 2,
    seed: int = 0,
    progress: bool = True,
    engine: str = "hf",
    window: int | None = None,
    sinks: int = 4,
    per_type: int | None = None,
) -> dict:
    """Generate and score `tasks` (names or a comma list) with one model; return the result dict.
    `engine`: hf | openvino | vllm | auto (reasonkd.models.engines); openvino runs the weights as trained (fp32).
    `per_type`: the robustness task asks each perturbation type on the first K problems that take it."""
    from reasonkd.eval.measure import engine_latency, measure_latency, peak_rss_mb, reset_peak_rss, rss_mb

    task_objs = _make_tasks(tasks, data, limit, n_samples, temperature, template, timeout, workers, few_shot, per_type)
    label = label or str(model_name_or_path)
    settings = {
        "batch_size": batch_size,
        "max_new_tokens": max_new_tokens,
        "temperature": temperature,
        "n_samples": n_samples,
        "few_shot": few_shot,
        "limit": limit,
        "seed": seed,
        "window": window,
        "sinks": sinks if window else None,
        "per_type": per_type,
        **({"top_p": top_p} if top_p != 1.0 else {}),
    }
    reset_peak_rss()
    rss_before = rss_mb()  # what this process already held (earlier steps of a pipeline, torch itself)
    gen, model, result = _load(model_name_or_path, label, engine, dtype, device, window, sinks, settings)
    tok = gen.tokenizer
    first_prompts = _run_tasks(gen, task_objs, result, out_dir, template, progress, latency_problems, latency_tokens)
    if latency_problems and first_prompts:
        result["latency"] = (
            measure_latency(model, tok, first_prompts[:latency_problems], latency_tokens)
            if model is not None and not window  # the window decodes in the engine
            else engine_latency(gen, first_prompts[:latency_problems], latency_tokens)
        )
    if cases:
        result["cases"] = run_cases(model if model is not None else gen, tok, case_tokens)
    result["peak_rss_mb"] = peak_rss_mb()
    # the model's own footprint: comparable between models evaluated in one long-lived process
    result["rss_added_mb"] = max(0.0, result["peak_rss_mb"] - rss_before) if rss_before else None
    del model
    gen.close()
    return result


def _make_tasks(
    tasks,
    data,
    limit: int | None,
    n_samples: int,
    temperature: float,
    template: str | None,
    timeout: float,
    workers: int,
    few_shot: int,
    per_type: int | None,
) -> dict:
    """{name: task} of `tasks` (names or a comma list), built and checked before any model is loaded."""
    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    if n_samples > 1 and temperature <= 0:
        raise ReasonkdError(f"--n-samples {n_samples} needs --temperature > 0 (greedy samples are identical)")
    return {
        n: get_task(
            n,
            data=_task_data(data, n),
            limit=limit,
            template=template,
            timeout=timeout,
            workers=workers,
            few_shot=few_shot,
            per_type=per_type,
        )
        for n in names
    }


def _load(
    model_name_or_path, label: str, engine: str, dtype: str, device: str, window: int | None, sinks: int, settings: dict
) -> tuple:
    """(generation engine, torch model or None, the result dict: what was loaded, how, in how long)."""
    t0 = time.perf_counter()
    engine = resolve_engine(engine, device, str(model_name_or_path))
    gen, model, dtype, precision = _open(model_name_or_path, engine, dtype, device, window, sinks)
    load_s = time.perf_counter() - t0
    params = count_parameters(model) if model is not None else gen.num_parameters()
    result = {
        "label": label,
        "model": str(model_name_or_path),
        "kind": "model",
        "params": params,
        "engine": engine,
        "dtype": dtype,
        "precision": precision,
        "load_seconds": load_s,
        "throughput": {},
        "tasks": {},
        "cases": [],
        "settings": settings,
    }
    return gen, model, result


def _run_tasks(
    gen: Engine,
    task_objs: dict,
    result: dict,
    out_dir,
    template: str | None,
    progress: bool,
    latency_problems: int,
    latency_tokens: int,
) -> list[str] | None:
    """Generate (or reuse) and score every task into `result` (its label, model, dtype, engine and settings
    say how); returns the first task's prompts (for the latency measurement)."""
    s, label, tok = result["settings"], result["label"], gen.tokenizer
    first_prompts = None
    for name, task in task_objs.items():
        examples = task.examples()
        prompts = [apply_chat(tok, task.prompt(ex), task.system()) for ex in examples]
        first_prompts = first_prompts or prompts
        identity = _identity(result["model"], name, task, s, template, result["dtype"], result["engine"])
        path = samples_path(out_dir, label, name) if out_dir else None
        rows = _task_rows(gen, task, examples, prompts, path, identity, result["throughput"], name, label, progress, s)
        metrics = task.metrics(rows, seed=s["seed"])
        if hasattr(task, "length_profile") and latency_problems:  # latency, peak RSS per input length
            metrics["by_length_speed"] = task.length_profile(examples, prompts, gen, latency_problems, latency_tokens)
        result["tasks"][name] = {"metrics": metrics, "samples": rows}
        log.info(
            "%s on %s: accuracy %.3f [%.3f, %.3f] (n=%d)",
            label,
            name,
            metrics["accuracy"],
            *metrics["ci"],
            metrics["n"],
        )
    return first_prompts


def _identity(model: str, name: str, task, settings: dict, template: str | None, dtype: str, engine: str) -> dict:
    """What the stored samples of one task must have been made with to be reused (sample_store.load_cached)."""
    s = settings
    identity = {
        "model": model,
        "task": name,
        "data": str(task.data),
        "limit": s["limit"],
        "max_new_tokens": s["max_new_tokens"],
        "temperature": s["temperature"],
        "n_samples": s["n_samples"],
        "few_shot": s["few_shot"],
        "template": template,
        "dtype": dtype,
        "seed": s["seed"],
    }
    identity.update({"engine": engine} if engine != "hf" else {})  # hf: the identity of older caches
    identity.update({"top_p": s["top_p"]} if "top_p" in s else {})  # 1 (left out of settings): as older caches
    identity.update({"window": s["window"], "sinks": s["sinks"]} if s["window"] else {})
    identity.update({k: task.options[k] for k in task.identity_options if task.options.get(k)})
    return identity


def _task_rows(
    gen: Engine,
    task,
    examples: list,
    prompts: list[str],
    path: Path | None,
    identity: dict,
    throughput: dict,
    name: str,
    label: str,
    progress: bool,
    settings: dict,
) -> list[dict]:
    """The scored samples of one task: reused from `path` when stored with the same identity, else generated
    (settings: n_samples per prompt, max_new_tokens, temperature, top_p, batch_size, seed), scored and stored.
    Records the task's throughput in `throughput[name]`."""
    s = settings
    cached = load_cached(path, identity) if path else None
    if cached is not None:
        rows, stored = cached
        if stored:
            throughput[name] = stored
        log.info("%s on %s: reusing %d samples from %s", label, name, len(rows), path)
        return rows
    expanded = [(ex, p) for ex, p in zip(examples, prompts) for _ in range(s["n_samples"])]
    outs, stats = generate_resumable(
        gen,
        [p for _, p in expanded],
        path,
        identity,
        max_new_tokens=s["max_new_tokens"],
        temperature=s["temperature"],
        top_p=s.get("top_p", 1.0),
        batch_size=s["batch_size"],
        seed=s["seed"],
        progress=progress,
        desc=f"{label}:{name}",
    )
    throughput[name] = {**stats, "batch_size": s["batch_size"], "sequences": len(outs)}
    rows = _score_rows(
        task,
        [(ex, o.text) for (ex, _), o in zip(expanded, outs)],
        [{"new_tokens": o.new_tokens, "finished": o.finished, "prompt_tokens": o.prompt_tokens} for o in outs],
    )
    if path:
        save_rows(path, identity, rows, throughput[name])
        path.with_suffix(".partial.jsonl").unlink(missing_ok=True)
    return rows


def run_cases(model, tok, max_new_tokens: int = 384) -> list[dict]:
    """Greedy answers to the two qualitative cases (reasonkd.eval.cases), with their rough checks.
    `model`: a loaded model or a generation engine (reasonkd.models.engines)."""
    from reasonkd.eval.cases import CASES

    gen = model if isinstance(model, Engine) else HFEngine.wrap(model, tok)
    outs = gen.generate(
        [apply_chat(tok, c.prompt) for c in CASES], max_new_tokens=max_new_tokens, batch_size=len(CASES)
    )
    return [
        {
            "name": c.name,
            "title": c.title,
            "prompt": c.prompt,
            "reference": c.reference,
            "answer": o.text,
            "check": bool(c.check(o.text)),
            "new_tokens": o.new_tokens,
            "finished": o.finished,
        }
        for c, o in zip(CASES, outs)
    ]
