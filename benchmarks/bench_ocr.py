"""OCR front end: character error rate on clean and degraded renders, OCR time per image, and
end-to-end accuracy image -> OCR -> model against the same problems given as text (paired).

    .venv/bin/python benchmarks/bench_ocr.py cer --n 200 --max-minutes 9
    .venv/bin/python benchmarks/bench_ocr.py e2e --model smollm2-135m --e2e-n 40
    .venv/bin/python benchmarks/bench_ocr.py write        # rebuild the BENCHMARKS.md section from the results

Problems: math originals of a data-engine build of recipes/data/quick.yaml with more per family
and reasoning-gym's GSM8K-derived templates (made once in runs/bench-ocr/). Each is drawn clean
and degraded (`reasonkd ocr render`), then read with reasonkd.ocr.read_image. The named peer is
rapidocr with its own defaults (angle classifier on, box unclip 1.6, its own box order), run on
the first `--peer-n` images of each set. Every stage caches per image / per completion and
resumes where it stopped, so long runs can be split into several locked runs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, git_rev, machine, record_section  # noqa: E402

WORK = ROOT / "runs" / "bench-ocr"
NUM = re.compile(r"\d[\d,]*(?:\.\d+)?")
CONDITIONS = ("clean", "degraded")


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by an interrupted run: done again
    return rows


def _append(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row, ensure_ascii=False) + "\n")


def problems(n: int) -> Path:
    """problems.jsonl: n math originals spread over families, plus their renders (made once)."""
    from reasonkd.config import load_config
    from reasonkd.data import build_dataset, load_items
    from reasonkd.data.recipe import DataRecipe
    from reasonkd.ocr.render import render_dataset
    from reasonkd.utils.io import write_jsonl

    path = WORK / "problems.jsonl"
    if not path.is_file() or len(_jsonl(path)) < n:
        recipe = load_config(
            DataRecipe,
            ROOT / "recipes" / "data" / "quick.yaml",
            ["math.per_family=14", "math.gsm_symbolic=80", "augment.variants=0"],
        )
        data = build_dataset(recipe, WORK / "data")
        items = sorted(
            (r for r in load_items(data) if r["domain"] == "math" and r["kind"] == "original"), key=lambda r: r["id"]
        )
        if len(items) < n:
            raise SystemExit(f"only {len(items)} math problems built; lower --n")
        step = len(items) / n
        write_jsonl(path, [items[int(i * step)] for i in range(n)])
    for cond in CONDITIONS:
        if not (WORK / cond / "manifest.jsonl").is_file() or len(_jsonl(WORK / cond / "manifest.jsonl")) < n:
            render_dataset(path, WORK / cond, degraded=cond == "degraded", seed=0, split=None)
    return path


def peer_read(image_path: Path) -> str:
    """rapidocr as shipped: default settings, boxes in its own order joined by spaces."""
    from rapidocr_onnxruntime import RapidOCR

    global _PEER
    if "_PEER" not in globals():
        _PEER = RapidOCR()
    res, _ = _PEER(str(image_path))
    return " ".join(r[1] for r in res or [])


def stage_cer(args) -> None:
    from reasonkd.ocr.read import cer, read_image

    problems(args.n)
    deadline = time.time() + args.max_minutes * 60
    for kind, limit in (("ours", args.n), ("peer", args.peer_n)):  # ours on both sets first
        for cond in CONDITIONS:
            manifest = _jsonl(WORK / cond / "manifest.jsonl")[: args.n]
            cache = WORK / f"ocr_{cond}_{kind}.jsonl"
            done = {r["id"] for r in _jsonl(cache)}
            for row in manifest[:limit]:
                if row["id"] in done:
                    continue
                if time.time() > deadline:
                    print(f"time budget spent; rerun to resume ({cond}/{kind})")
                    return
                img = WORK / cond / row["source_image"]
                t0, c0 = time.perf_counter(), time.process_time()
                try:
                    text = read_image(img).text if kind == "ours" else peer_read(img)
                except Exception as e:  # a failed read counts as all characters wrong
                    text = f"<error: {e}>" if kind == "peer" else ""
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
                e, n = cer(row["question"], text)
                numbers_ok = NUM.findall(text) == NUM.findall(row["question"])
                _append(
                    cache,
                    {
                        "id": row["id"],
                        "text": text,
                        "errors": e,
                        "chars": n,
                        "wall_s": round(wall, 3),
                        "cpu_s": round(cpu, 3),
                        "numbers_ok": numbers_ok,
                    },
                )
            print(f"{cond}/{kind}: {len(_jsonl(cache))} images read")


def stage_e2e(args) -> None:
    from reasonkd.eval.tasks import get_task
    from reasonkd.models.engines import make_engine
    from reasonkd.models.generation import apply_chat
    from reasonkd.ocr.read import read_image
    from reasonkd.utils.io import write_json, write_jsonl

    src = _jsonl(problems(args.n))[: args.e2e_n]
    ocr = {cond: {r["id"]: r["text"] for r in _jsonl(WORK / f"ocr_{cond}_ours.jsonl")} for cond in CONDITIONS}
    files = {"text": WORK / "e2e_text.jsonl"}
    write_jsonl(files["text"], src)
    for cond in CONDITIONS:  # the OCR already done by the cer stage is reused (importer-style rows)
        man = {r["id"]: r for r in _jsonl(WORK / cond / "manifest.jsonl")}
        rows = []
        for r in src:
            text = ocr[cond].get(r["id"]) or read_image(WORK / cond / man[r["id"]]["source_image"]).text
            rows.append({**r, "source_image": str(WORK / cond / man[r["id"]]["source_image"]), "ocr_text": text})
        files[cond] = WORK / f"e2e_{cond}.jsonl"
        write_jsonl(files[cond], rows)
    import torch

    # on a CPU shared with other jobs, one thread per process avoids OpenMP threads waiting on each other
    if args.threads:
        torch.set_num_threads(args.threads)
    engine = make_engine(args.engine, args.model, dtype="float32")  # the same engine for text and images
    tok = engine.tokenizer
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", args.model)
    names = _model_names()
    if names.get(safe) != args.model:  # the table and the command name the model as it was given
        write_json(WORK / "e2e_models.json", {**names, safe: args.model})
    deadline = time.time() + args.max_minutes * 60
    for cond, data in files.items():  # text first: every image result is paired with it
        cache = WORK / f"e2e_{safe}_{cond}.jsonl"
        task = get_task("gsm8k", data=str(data), limit=len(src))
        done = {r["id"] for r in _jsonl(cache)}
        todo = [ex for ex in task.examples() if ex["id"] not in done]
        for start in range(0, len(todo), args.batch_size):  # saved batch by batch: a stopped run resumes
            if time.time() > deadline:
                print(f"time budget spent; rerun to resume ({args.model} {cond})")
                return
            exs = todo[start : start + args.batch_size]
            prompts = [apply_chat(tok, task.prompt(ex), task.system()) for ex in exs]
            t0 = time.perf_counter()
            outs = engine.generate(prompts, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size)
            dt = time.perf_counter() - t0
            for ex, o in zip(exs, outs):
                _append(
                    cache,
                    {
                        "id": ex["id"],
                        "question": ex["question"],
                        "completion": o.text,
                        "verdict": bool(task.score(ex, o.text)["verdict"]),
                        "seconds": dt / len(outs),
                    },
                )
            print(f"{args.model} {cond}: {len(_jsonl(cache))}/{len(src)} ({dt:.0f} s for {len(exs)})", flush=True)


def _cer_rows() -> list[str]:
    out = []
    for cond in CONDITIONS:
        for kind, name in (
            ("ours", "reasonkd.ocr (rapidocr, tuned + reading order + normalisation)"),
            ("peer", "peer: rapidocr defaults"),
        ):
            rows = _jsonl(WORK / f"ocr_{cond}_{kind}.jsonl")
            if not rows:
                continue
            cer = sum(r["errors"] for r in rows) / max(1, sum(r["chars"] for r in rows))
            nums = sum(r["numbers_ok"] for r in rows)
            out.append(
                f"| {cond} | {name} | {len(rows)} | **{cer:.2%}** | {nums}/{len(rows)} "
                f"({nums / len(rows):.1%}) | {statistics.median(r['wall_s'] for r in rows):.2f} | "
                f"{statistics.median(r['cpu_s'] for r in rows):.2f} |"
            )
    return out


def _model_names() -> dict[str, str]:
    """{file-safe name: the --model given} of the models asked end to end."""
    path = WORK / "e2e_models.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def _e2e_rows() -> list[str]:
    from reasonkd.eval.metrics import mcnemar_exact, paired_diff_ci

    out = []
    for text_file in sorted(WORK.glob("e2e_*_text.jsonl")):
        model = text_file.name[len("e2e_") : -len("_text.jsonl")]
        text = {r["id"]: r["verdict"] for r in _jsonl(text_file)}
        cells = [f"{sum(text.values())}/{len(text)} ({sum(text.values()) / max(1, len(text)):.1%})"]
        for cond in CONDITIONS:
            img = {r["id"]: r["verdict"] for r in _jsonl(WORK / f"e2e_{model}_{cond}.jsonl")}
            ids = [i for i in text if i in img]
            if not ids:
                cells += ["-", "-"]
                continue
            d = paired_diff_ci([img[i] for i in ids], [text[i] for i in ids])
            m = mcnemar_exact([img[i] for i in ids], [text[i] for i in ids])
            cells += [
                f"{sum(img[i] for i in ids)}/{len(ids)} ({sum(img[i] for i in ids) / len(ids):.1%})",
                f"{d['diff'] * 100:+.1f} [{d['lo'] * 100:+.1f}, {d['hi'] * 100:+.1f}]; "
                f"{m['a_only']} image-only / {m['b_only']} text-only right, McNemar p = {m['p_value']:.2f}",
            ]
        out.append(f"| {_model_names().get(model, model)} | {len(text)} | " + " | ".join(cells) + " |")
    return out


def cpu_flags() -> str:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile"))


def write_section(args) -> None:
    run = ".venv/bin/python benchmarks/bench_ocr.py"
    cmds = [f"{run} cer --n 200 --max-minutes 9   # rerun until every image is read"]
    ran = {f.name[len("e2e_") : -len("_text.jsonl")]: len(_jsonl(f)) for f in WORK.glob("e2e_*_text.jsonl")}
    names = _model_names()
    for model in sorted(ran):
        cmds.append(f"{run} e2e --model {names.get(model, model)} --e2e-n {ran[model]}")
    cmds = "\n".join(cmds)
    body = f"""Command:

```bash
{cmds}
```

Machine: {machine()} ({cpu_flags()}); commit {git_rev()}; {time.strftime("%Y-%m-%d")}.
Problems: math originals of the data engine (14 program families and reasoning-gym's GSM8K-derived
templates), each drawn clean (DejaVu Sans 26 px, black on white, 1000 px wide) and degraded
(`reasonkd ocr render --degraded`: rotation up to 4 degrees, blur, noise, and by seed low contrast,
two columns, a photo-like background). CER = edit distance / source length over whitespace-collapsed
text; "numbers exact" = every number of the source read, in order, with nothing extra. OCR time is
per image (decode + detection + recognition), median; wall time on a CPU shared with other jobs,
CPU time summed over onnxruntime's threads.

| renders | reader | images | CER | numbers exact | wall s/img | CPU s/img |
|---|---|---|---|---|---|---|
{chr(10).join(_cer_rows())}

End to end: the same problems asked as text, as the OCR text of the clean render, and as the OCR text
of the degraded render, with the `reasonkd eval` gsm8k prompt (zero-shot, greedy, fp32, `--engine` auto = OpenVINO GenAI on a CPU, up to
{args.max_new_tokens} new tokens); image minus text accuracy with a paired bootstrap 95% CI (points).

| model | problems | text | clean image | clean - text | degraded image | degraded - text |
|---|---|---|---|---|---|---|
{chr(10).join(_e2e_rows())}

{args.note}
"""
    if not args.no_record:
        record_section("OCR", body)
    print(body)


def main() -> None:
    global WORK
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=["cer", "e2e", "write"])
    ap.add_argument("--n", type=int, default=200, help="problems rendered and read per condition")
    ap.add_argument("--peer-n", type=int, default=50, help="images per condition read by the peer too")
    ap.add_argument("--max-minutes", type=float, default=9.0, help="cer: stop after this long (resumable)")
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--e2e-n", type=int, default=40, help="problems asked end to end (text / clean / degraded)")
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument(
        "--engine",
        default="auto",
        help="e2e: generation engine (reasonkd.models.engines; auto = "
        "openvino on a CPU), the same for text and image inputs",
    )
    ap.add_argument("--threads", type=int, default=0, help="e2e: torch threads (0 = torch's default)")
    ap.add_argument("--work", default=str(WORK), help="folder of renders, caches and results")
    ap.add_argument("--no-record", action="store_true", help="print the section, leave BENCHMARKS.md alone")
    ap.add_argument("--note", default="", help="write: a paragraph added under the tables (e.g. what is pending)")
    args = ap.parse_args()
    WORK = Path(args.work)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.stage == "cer":
        stage_cer(args)
    elif args.stage == "e2e":
        stage_e2e(args)
    write_section(args)


if __name__ == "__main__":
    main()
