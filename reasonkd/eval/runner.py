"""Evaluate a model (or existing completions) on tasks; the Python API behind `reasonkd eval`.

    from reasonkd.eval import evaluate_model, evaluate_samples, write_report
    r = evaluate_model("smollm2-135m", ["gsm8k", "humaneval"], data="data/default", limit=50, label="student-before")
    s = evaluate_samples("humaneval", "samples.jsonl")            # score completions without a model
    write_report([r, s], "runs/eval")

Generation goes through a generation engine (reasonkd.models.engines, `engine=`):
hf batches length-sorted prompts with a KV cache (reasonkd.models.generation),
openvino runs OpenVINO GenAI's continuous batching on a cached fp32 conversion;
latency is measured separately at batch 1 on a few problems. With `out_dir`, each task's samples are written as soon as
the task is done and reused on a rerun with the same settings (resume).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
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


def safe_name(label: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label).strip("._") or "model"


def samples_path(out_dir, label: str, task: str) -> Path:
    return Path(out_dir) / "samples" / safe_name(label) / f"{task}.jsonl"


def _score_rows(task, pairs: list[tuple[dict, str]], extra: list[dict] | None = None) -> list[dict]:
    examples = [p[0] for p in pairs]
    completions = [p[1] for p in pairs]
    scored = task.score_many(examples, completions)
    rows, seen = [], {}
    for i, (ex, completion, s) in enumerate(zip(examples, completions, scored)):
        j = seen[ex["idx"]] = seen.get(ex["idx"], -1) + 1
        row = {"idx": ex["idx"], "id": ex["id"], "sample": j, "prompt": task.prompt(ex), "completion": completion,
               "reference": task.reference(ex), **s}
        if extra:
            row.update(extra[i])
        rows.append(row)
    return rows


def _load_cached(path: Path, identity: dict) -> tuple[list[dict], dict | None] | None:
    """(rows, throughput) of an earlier run of the same task with the same settings, else None."""
    meta = path.with_suffix(".meta.json")
    if not (path.is_file() and meta.is_file()):
        return None
    try:
        saved = json.loads(meta.read_text())
        if saved.get("identity") != json.loads(json.dumps(identity)):
            return None
    except (json.JSONDecodeError, AttributeError):
        return None
    from reasonkd.utils.io import read_jsonl

    return read_jsonl(path), saved.get("throughput")


def _save_rows(path: Path, identity: dict, rows: list[dict], throughput: dict | None = None) -> None:
    from reasonkd.utils.io import write_json, write_jsonl

    write_jsonl(path, rows)
    write_json(path.with_suffix(".meta.json"), {"identity": identity, "throughput": throughput})


def evaluate_samples(task_name: str, samples_file: str, data=None, limit: int | None = None,
                     label: str | None = None, out_dir=None, **task_options) -> dict:
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
    result = {"label": label, "model": str(p), "kind": "samples", "params": None, "latency": None,
              "peak_rss_mb": None, "throughput": {}, "cases": [],
              "tasks": {task_name: {"metrics": task.metrics(rows), "samples": rows}}}
    if out_dir:
        _save_rows(samples_path(out_dir, label, task_name), {"samples": str(p), "task": task_name}, rows)
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


EVAL_CHUNK = 256
"""With an output folder, an evaluation of more sequences than this generates them in chunks of this size,
each appended to <task>.partial.jsonl as it finishes: a stopped evaluation resumes at its last whole chunk.
Chunk i samples with seed + i, so a resumed run draws what an uninterrupted one draws."""


def _generate_resumable(gen: Engine, prompts: list[str], path: Path | None, identity: dict, *, seed: int,
                        progress: bool, desc: str, **kw) -> tuple[list, dict]:
    """(completions, throughput stats) of `prompts`, in chunks recorded under `path` (see EVAL_CHUNK)."""
    from reasonkd.models.generation import Completion
    from reasonkd.utils.io import atomic_write

    if path is None or len(prompts) <= EVAL_CHUNK:
        outs = gen.generate(prompts, seed=seed, progress=progress, desc=desc, **kw)
        return outs, dict(gen.stats)
    partial = path.with_suffix(".partial.jsonl")
    key = json.loads(json.dumps({**identity, "chunk": EVAL_CHUNK, "n": len(prompts)}))
    rows = []
    for line in (partial.read_text(encoding="utf-8").splitlines() if partial.is_file() else []):
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # the line a kill cut short: that chunk is generated again
            break
    if not rows or rows[0].get("identity") != key:  # another run's chunks (other settings): start over
        rows = [{"identity": key}]
    chunks = [r for r in rows[1:] if r.get("prompts") == [p[-64:] for p in prompts[r["start"]:r["start"] + EVAL_CHUNK]]]
    partial.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(partial) as f:  # the good lines only, so appends follow whole lines
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in [rows[0], *chunks])
    done = {c["start"]: c for c in chunks}
    if done:
        log.info("%s: resuming, %d of %d sequences generated earlier (%s)", desc, sum(len(c["outs"]) for c in chunks),
                 len(prompts), partial)
    new_tokens, seconds = sum(c["new_tokens"] for c in chunks), sum(c["seconds"] for c in chunks)
    for i, start in enumerate(range(0, len(prompts), EVAL_CHUNK)):
        if start in done:
            continue
        part = prompts[start:start + EVAL_CHUNK]
        outs = gen.generate(part, seed=seed + i, progress=progress, desc=f"{desc} [{start}/{len(prompts)}]", **kw)
        done[start] = {"start": start, "prompts": [p[-64:] for p in part], "new_tokens": gen.stats["new_tokens"],
                       "seconds": gen.stats["seconds"], "outs": [[o.text, o.prompt_tokens, o.new_tokens, o.finished]
                                                                 for o in outs]}
        new_tokens, seconds = new_tokens + gen.stats["new_tokens"], seconds + gen.stats["seconds"]
        with open(partial, "a", encoding="utf-8") as f:  # one line per whole chunk: a cut line is dropped
            f.write(json.dumps(done[start], ensure_ascii=False) + "\n")
    outs = [Completion(p, *o) for start in sorted(done) for p, o in
            zip(prompts[start:start + EVAL_CHUNK], done[start]["outs"])]
    stats = {**gen.stats, "new_tokens": new_tokens, "seconds": seconds,
             "tokens_per_s": new_tokens / max(seconds, 1e-9), "sequences": len(outs)}
    return outs, stats


def evaluate_model(model_name_or_path: str, tasks, data=None, limit: int | None = None, *,
                   label: str | None = None, out_dir=None, batch_size: int = 16, max_new_tokens: int = 512,
                   temperature: float = 0.0, top_p: float = 1.0, n_samples: int = 1, few_shot: int = 0,
                   dtype: str = "auto", device: str = "cpu", template: str | None = None, latency_problems: int = 5,
                   latency_tokens: int = 64, cases: bool = True, case_tokens: int = 384, timeout: float = 10.0,
                   workers: int = 2, seed: int = 0, progress: bool = True, engine: str = "hf",
                   window: int | None = None, sinks: int = 4, per_type: int | None = None) -> dict:
    """Generate and score `tasks` (names or a comma list) with one model; return the result dict.
    `engine`: hf | openvino | vllm | auto (reasonkd.models.engines); openvino runs the weights as trained (fp32).
    `per_type`: the robustness task asks each perturbation type on the first K problems that take it."""
    from reasonkd.eval.measure import measure_latency, peak_rss_mb, reset_peak_rss, rss_mb

    names = [t.strip() for t in tasks.split(",")] if isinstance(tasks, str) else list(tasks)
    if n_samples > 1 and temperature <= 0:
        raise ReasonkdError(f"--n-samples {n_samples} needs --temperature > 0 (greedy samples are identical)")
    task_objs = {n: get_task(n, data=_task_data(data, n), limit=limit, template=template, timeout=timeout,
                             workers=workers, few_shot=few_shot, per_type=per_type) for n in names}
    label = label or str(model_name_or_path)
    reset_peak_rss()
    rss_before = rss_mb()  # what this process already held (earlier steps of a pipeline, torch itself)
    t0 = time.perf_counter()
    engine = resolve_engine(engine, device, str(model_name_or_path))
    gen, model, dtype, precision = _open(model_name_or_path, engine, dtype, device, window, sinks)
    tok = gen.tokenizer
    load_s = time.perf_counter() - t0
    params = count_parameters(model) if model is not None else gen.num_parameters()
    result = {"label": label, "model": str(model_name_or_path), "kind": "model", "params": params, "engine": engine,
              "dtype": dtype, "precision": precision, "load_seconds": load_s, "throughput": {}, "tasks": {},
              "cases": [],
              "settings": {"batch_size": batch_size, "max_new_tokens": max_new_tokens, "temperature": temperature,
                           "n_samples": n_samples, "few_shot": few_shot, "limit": limit, "seed": seed,
                           "window": window, "sinks": sinks if window else None, "per_type": per_type,
                           **({"top_p": top_p} if top_p != 1.0 else {})}}
    first_prompts = None
    for name, task in task_objs.items():
        examples = task.examples()
        prompts = [apply_chat(tok, task.prompt(ex), task.system()) for ex in examples]
        first_prompts = first_prompts or prompts
        identity = {"model": str(model_name_or_path), "task": name, "data": str(task.data), "limit": limit,
                    "max_new_tokens": max_new_tokens, "temperature": temperature, "n_samples": n_samples,
                    "few_shot": few_shot, "template": template, "dtype": dtype, "seed": seed}
        identity.update({"engine": engine} if engine != "hf" else {})  # hf: the identity of older caches
        identity.update({"top_p": top_p} if top_p != 1.0 else {})  # 1: the identity of older caches
        identity.update({"window": window, "sinks": sinks} if window else {})
        identity.update({k: task.options[k] for k in task.identity_options if task.options.get(k)})
        path = samples_path(out_dir, label, name) if out_dir else None
        cached = _load_cached(path, identity) if path else None
        if cached is not None:
            rows, throughput = cached
            if throughput:
                result["throughput"][name] = throughput
            log.info("%s on %s: reusing %d samples from %s", label, name, len(rows), path)
        else:
            expanded = [(ex, p) for ex, p in zip(examples, prompts) for _ in range(n_samples)]
            outs, stats = _generate_resumable(
                gen, [p for _, p in expanded], path, identity, max_new_tokens=max_new_tokens, temperature=temperature,
                top_p=top_p, batch_size=batch_size, seed=seed, progress=progress, desc=f"{label}:{name}")
            result["throughput"][name] = {**stats, "batch_size": batch_size, "sequences": len(outs)}
            rows = _score_rows(task, [(ex, o.text) for (ex, _), o in zip(expanded, outs)],
                               [{"new_tokens": o.new_tokens, "finished": o.finished,
                                 "prompt_tokens": o.prompt_tokens} for o in outs])
            if path:
                _save_rows(path, identity, rows, result["throughput"][name])
                path.with_suffix(".partial.jsonl").unlink(missing_ok=True)
        metrics = task.metrics(rows, seed=seed)
        if hasattr(task, "length_profile") and latency_problems:  # latency, peak RSS per input length
            metrics["by_length_speed"] = task.length_profile(examples, prompts, gen, latency_problems, latency_tokens)
        result["tasks"][name] = {"metrics": metrics, "samples": rows}
        log.info("%s on %s: accuracy %.3f [%.3f, %.3f] (n=%d)", label, name, metrics["accuracy"],
                 *metrics["ci"], metrics["n"])
    if latency_problems and first_prompts:
        result["latency"] = (measure_latency(model, tok, first_prompts[:latency_problems], latency_tokens)
                             if model is not None and not window  # the window decodes in the engine
                             else engine_latency(gen, first_prompts[:latency_problems], latency_tokens))
    if cases:
        result["cases"] = run_cases(model if model is not None else gen, tok, case_tokens)
    result["peak_rss_mb"] = peak_rss_mb()
    # the model's own footprint: comparable between models evaluated in one long-lived process
    result["rss_added_mb"] = max(0.0, result["peak_rss_mb"] - rss_before) if rss_before else None
    del model
    gen.close()
    return result


def engine_latency(gen: Engine, prompts: list[str], max_new_tokens: int) -> dict:
    """measure_latency's numbers for an engine without a torch model (openvino, vllm)."""
    import os

    from reasonkd.eval.metrics import percentiles

    raw = gen.latency(prompts, max_new_tokens)
    seconds = sum(raw["total_s"])
    return {"problems": len(raw["total_s"]), "max_new_tokens": max_new_tokens,
            "ttft_ms": percentiles([t * 1000 for t in raw["ttft_s"]]),
            "latency_ms": percentiles([t * 1000 for t in raw["total_s"]]),
            "ms_per_token": (1000 * sum(raw["per_token_s"]) / len(raw["per_token_s"])) if raw["per_token_s"]
            else float("nan"), "new_tokens": sum(raw["new_tokens"]),
            "tokens_per_s": sum(raw["new_tokens"]) / seconds if seconds else float("nan"),
            "threads": None, "cpu_count": os.cpu_count(), "engine": gen.name}


def run_cases(model, tok, max_new_tokens: int = 384) -> list[dict]:
    """Greedy answers to the two qualitative cases (reasonkd.eval.cases), with their rough checks.
    `model`: a loaded model or a generation engine (reasonkd.models.engines)."""
    from reasonkd.eval.cases import CASES

    gen = model if isinstance(model, Engine) else HFEngine.wrap(model, tok)
    outs = gen.generate([apply_chat(tok, c.prompt) for c in CASES], max_new_tokens=max_new_tokens,
                        batch_size=len(CASES))
    return [{"name": c.name, "title": c.title, "prompt": c.prompt, "reference": c.reference, "answer": o.text,
             "check": bool(c.check(o.text)), "new_tokens": o.new_tokens, "finished": o.finished}
            for c, o in zip(CASES, outs)]
