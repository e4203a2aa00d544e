"""`reasonkd teacher ...` commands.

    reasonkd teacher generate --teacher MODEL --data DIR_OR_JSONL --out DIR [--k 1] [--limit N] ...
    reasonkd teacher generate ... --samples-per-problem 4 --temperature 0.8 --prefer shortest   rejection sampling
    reasonkd teacher logits --teacher MODEL --traces DIR --out DIR [--k 20]
    reasonkd teacher logits --base-url URL --api-model NAME --traces DIR --out DIR   remote teacher forcing
    reasonkd teacher generate --backend openai --base-url URL --api-model NAME --logprobs 20 ...   + OUT/logits
    reasonkd teacher generate --teacher A --teacher B ... --prefer shortest|all|best_family   several teachers, pooled
    reasonkd teacher logits --teacher A --teacher B --traces DIR --out DIR   one cache per teacher, OUT/<name>
    reasonkd teacher check --traces DIR --data DIR_OR_JSONL   re-verify a finished run
    reasonkd teacher correct --teacher MODEL --traces DIR --out DIR --steps 100   LoRA pass on its own traces
    reasonkd teacher generate ... --out DIR --shard 0/2; ... --shard 1/2; reasonkd teacher merge --out DIR
    reasonkd teacher import DATASET --out DIR --traces-column generations --correct-column correctness_math_verify

See docs/teacher.md.
"""

from __future__ import annotations

import logging

from reasonkd.errors import ReasonkdError
from reasonkd.teacher.import_cli import register_import


def _generate(args) -> int:
    from reasonkd.teacher.generate import GenerateSettings, generate_traces
    from reasonkd.teacher.stats import format_stats

    fields = {f for f in GenerateSettings.__dataclass_fields__}
    teachers = args.teacher or [""]
    settings = GenerateSettings(
        **{k: v for k, v in vars(args).items() if k in fields and k != "teacher"}, teacher=teachers[0]
    )
    if len(teachers) > 1:  # several teachers: each solves the problems, traces pooled (reasonkd.teacher.pool)
        return _generate_pooled(settings, teachers, args)
    if settings.prefer == "best_family":
        raise ReasonkdError("--prefer best_family picks between teachers: give several --teacher")
    if settings.split in ("all", ""):
        settings.split = None
    if settings.shard:  # each shard is its own resumable folder under --out (reasonkd.teacher.shard)
        from reasonkd.teacher.shard import shard_dir

        settings.out = str(shard_dir(args.out, settings.shard))
    stats = generate_traces(settings)
    print(format_stats(stats))
    kept = stats.get("selection", {}).get("kept", stats["overall"]["accepted"])  # --prefer keeps one per problem
    print(
        f"wrote {settings.out}/traces.jsonl ({kept} traces), negatives.jsonl "
        f"({stats['overall']['samples'] - stats['overall']['accepted']}), stats.json"
    )
    if "logits" in stats:
        lg = stats["logits"]
        print(
            f"wrote the top-{lg['k']} logit cache of {lg['traces']} traces (token {lg['tokens']}) to {lg['folder']}"
            + (f"; {lg['left_out']} left out (their tokens do not spell the trace)" if lg["left_out"] else "")
        )
    return 0


def _generate_pooled(settings, teachers: list[str], args) -> int:
    from reasonkd.teacher.stats import format_stats
    from reasonkd.teacher.pool import TeacherSpec, format_pool, generate_pooled

    if settings.shard:
        raise ReasonkdError("--shard with several --teacher: shard each teacher's run separately, then pool")
    stats = generate_pooled(settings, [TeacherSpec(t, dtype=args.dtype, backend=args.backend) for t in teachers])
    print(format_stats(stats))
    print(format_pool(stats))
    print(
        f"wrote {settings.out}/traces.jsonl ({stats['selection']['kept']} traces, each with its teacher), "
        f"negatives.jsonl, stats.json, pool.json; per teacher: {settings.out}/teachers/"
    )
    return 0


def _merge(args) -> int:
    from reasonkd.teacher.stats import format_stats
    from reasonkd.teacher.shard import merge_shards

    stats = merge_shards(args.out)
    print(format_stats(stats))
    m = stats["merged"]
    print(
        f"merged {m['shards']} shards into {args.out}/traces.jsonl ({stats['overall']['accepted']} traces), "
        f"negatives.jsonl, stats.json; {m['duplicates_dropped']} duplicate rows dropped"
    )
    return 0


def _logits(args) -> int:
    import json

    from reasonkd.teacher.logits import teacher_logits
    from reasonkd.teacher.pool import teacher_slug

    if args.base_url:  # a remote teacher scores the traces by teacher forcing (reasonkd.teacher.remote)
        return _logits_remote(args)
    if not args.teacher:
        raise ReasonkdError("teacher logits needs --teacher MODEL (in-process) or --base-url URL --api-model NAME")

    several = len(args.teacher) > 1  # one cache per teacher, one teacher in memory at a time: OUT/<name>
    for teacher in args.teacher:
        out = teacher_logits(
            teacher,
            args.traces,
            f"{args.out}/{teacher_slug(teacher)}" if several else args.out,
            k=args.k,
            batch_size=args.batch_size,
            dtype=args.dtype,
            device=args.device,
            limit=args.limit,
            max_length=args.max_length,
            cache_dtype=args.cache_dtype,
        )
        meta = json.loads((out / "meta.json").read_text())
        print(
            f"wrote the top-{args.k} logit cache of {meta['n_examples']} traces ({meta['n_rows']} token rows, "
            f"tokenizer {meta['tokenizer_hash'][:12]}) of {teacher} to {out}"
        )
    return 0


def _logits_remote(args) -> int:
    import json

    from reasonkd.teacher.remote import score_traces

    if len(args.teacher) > 1:
        raise ReasonkdError("--base-url scores with one endpoint: give at most one --teacher (its tokenizer)")
    if not args.api_model:
        raise ReasonkdError("--base-url needs --api-model (the model name the endpoint serves)")
    out = score_traces(
        args.base_url,
        args.api_model,
        args.traces,
        args.out,
        tokenizer_name=(args.teacher or [""])[0],
        k=args.k,
        concurrency=args.concurrency,
        timeout=args.timeout,
        max_retries=args.max_retries,
        api_key_env=args.api_key_env,
        limit=args.limit,
        max_length=args.max_length,
        price_in=args.price_in,
        cache_dtype=args.cache_dtype,
    )
    meta = json.loads((out / "meta.json").read_text())
    print(
        f"wrote the top-{args.k} logit cache of {meta['n_examples']} traces ({meta['n_rows']} token rows, "
        f"tokenizer {meta['tokenizer_hash'][:12]}) of {args.api_model} at {args.base_url} to {out}"
    )
    return 0


def _check(args) -> int:
    from reasonkd.data import load_items
    from reasonkd.data.verify import verify_item
    from reasonkd.utils.io import read_jsonl

    items = {r["id"]: r for r in load_items(args.data)}
    bad = []
    for name, want in (("traces.jsonl", True), ("negatives.jsonl", False)):
        for row in read_jsonl(f"{args.traces}/{name}"):
            ok = row["finished"] and verify_item(items[row["id"]], row["trace"])
            if ok != want:
                bad.append(f"{name}:{row['id']}#{row['sample_idx']}")
    n_t = len(read_jsonl(f"{args.traces}/traces.jsonl"))
    print(f"{n_t} traces re-verified; {len(bad)} with the wrong verdict{': ' + ', '.join(bad[:10]) if bad else ''}")
    return 1 if bad else 0


def _correct(args) -> int:
    from reasonkd.config import from_dict
    from reasonkd.pipeline.correct import CorrectionConfig, correct_teacher

    keys = ("steps", "lr", "lora_r", "batch_size", "max_length", "bf16_autocast", "gradient_checkpointing")
    cfg = from_dict(CorrectionConfig, {k: getattr(args, k) for k in keys}, prefix="--")
    final = correct_teacher(args.teacher, args.traces, args.out, cfg, seed=args.seed, device=args.device)
    print(f"teacher corrected: {final} (a model folder: name it as the teacher of `teacher logits` or a recipe)")
    return 0


def _add_correct(tsub) -> None:
    """`reasonkd teacher correct`: teacher correction (reasonkd.pipeline.correct) outside `reasonkd compare`."""
    c = tsub.add_parser(
        "correct",
        help="teacher correction: a LoRA pass of the teacher on its own verified traces, merged (resumable)",
    )
    c.add_argument("--teacher", required=True, help="the teacher model (alias, hub id or folder)")
    c.add_argument("--traces", required=True, help="its verified traces: a `teacher generate` folder or JSONL")
    c.add_argument("--out", required=True, help="output folder; the corrected teacher is OUT/final")
    c.add_argument("--steps", type=int, required=True, help="optimizer steps (about one epoch of the traces)")
    c.add_argument("--lr", type=float, default=1e-4)
    c.add_argument("--lora-r", type=int, default=16, help="LoRA rank (alpha = 2 r), merged at the end")
    c.add_argument("--batch-size", type=int, default=4)
    c.add_argument("--max-length", type=int, default=384)
    c.add_argument("--bf16-autocast", default="auto", choices=["auto", "true", "false"])
    c.add_argument(
        "--gradient-checkpointing", action="store_true", help="recompute activations: less memory, ~30%% slower"
    )
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="auto")
    c.set_defaults(func=_correct)


def register(sub) -> None:
    """Add `reasonkd teacher` and its subcommands to the top-level parser."""
    p = sub.add_parser("teacher", help="teacher traces (generate, verify) and top-k logit caches")
    tsub = p.add_subparsers(dest="teacher_command", metavar="SUBCOMMAND")
    register_import(tsub)  # `teacher import` (reasonkd.teacher.import_cli)

    _add_generate(tsub)

    mg = tsub.add_parser("merge", help="merge the OUT/shard-i-of-n folders of --shard runs (no duplicates)")
    mg.add_argument("--out", required=True, help="the --out given to every `teacher generate --shard i/n`")
    mg.set_defaults(func=_merge)

    _add_logits(tsub)

    c = tsub.add_parser("check", help="re-verify a finished run: traces must pass, negatives must fail")
    c.add_argument("--traces", required=True, help="a `teacher generate` output folder")
    c.add_argument("--data", required=True, help="the dataset it was made from")
    c.set_defaults(func=_check)
    _add_correct(tsub)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])
    logging.getLogger("reasonkd.teacher").setLevel(logging.INFO)


def _add_generate(tsub) -> None:
    """`reasonkd teacher generate`: which problems, how many samples, how they are sampled and kept."""
    g = tsub.add_parser("generate", help="sample k verified chain-of-thought traces per problem (resumable)")
    g.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="alias, folder, .gguf or hub id (openai: defaults to --api-model); repeat for several "
        "teachers: each solves the problems, one at a time, and the verified traces are pooled",
    )
    g.add_argument(
        "--data",
        required=True,
        help="dataset folder or JSONL (reasonkd data build), or any dataset: "
        "hf:NAME[:CONFIG][@SPLIT], Parquet / JSON / Arrow (docs/data.md)",
    )
    g.add_argument("--out", required=True, help="output folder; rerun the same command to resume")
    g.add_argument("--split", default="train", help="train | val | test | all (default train)")
    g.add_argument("--domain", default=None, choices=["math", "code", "logic"], help="only this domain")
    g.add_argument(
        "--k",
        "--samples-per-problem",
        dest="k",
        type=int,
        default=1,
        help="traces sampled per problem (default 1); only verified ones are kept",
    )
    g.add_argument("--seed", type=int, default=0, help="base seed of the samples (another seed, new samples)")
    g.add_argument(
        "--prefer",
        default="all",
        choices=["all", "shortest", "best_family"],
        help="verified traces kept per problem: all, or the shortest one (default all); several "
        "teachers also best_family (the teacher right most often on the problem's family)",
    )
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--max-new-tokens", type=int, default=384, help="longer traces are kept as 'truncated' negatives")
    g.add_argument("--batch-size", type=int, default=16, help="hf backend batch (default 16)")
    _add_backend_options(g)
    g.add_argument("--limit", type=int, default=None, help="use N problems (stable hash order of ids)")
    g.add_argument("--template", default=None, help="prompt template file (see docs/teacher.md)")
    g.add_argument("--shard-size", type=int, default=64, help="problems per committed shard")
    g.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float32", "float16"],
        help="auto = bf16 where the hardware runs it natively",
    )
    g.add_argument("--device", default="cpu")
    g.add_argument("--cache-dir", default=None, help="request cache folder (default OUT/cache)")
    g.add_argument("--no-progress", dest="progress", action="store_false")
    g.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="only shard I of N of the problems (deterministic), written to OUT/shard-I-of-N; "
        "then `reasonkd teacher merge --out OUT`",
    )
    g.set_defaults(func=_generate)


def _add_backend_options(g) -> None:
    """`teacher generate`: what runs the teacher (a local engine, or an OpenAI-compatible endpoint) and its costs."""
    g.add_argument("--backend", default="hf", choices=["hf", "vllm", "openai"])
    g.add_argument(
        "--engine",
        default="auto",
        choices=["hf", "openvino", "vllm", "auto"],
        help="generation engine of a local teacher: auto (default: vllm on a GPU, openvino on a CPU "
        "with the export extra, else hf), hf, openvino (CPU), vllm (GPU)",
    )
    g.add_argument(
        "--teacher-int8",
        action="store_true",
        help="--engine openvino: INT8 teacher weights (traces are verified anyway; noted in stats.json)",
    )
    g.add_argument("--base-url", default="", help="openai backend: e.g. http://127.0.0.1:8000/v1")
    g.add_argument("--api-model", default="", help="openai backend: the model name the endpoint serves")
    g.add_argument(
        "--api-key-env",
        default="OPENAI_API_KEY",
        help="name of the environment variable holding the API key (never stored)",
    )
    g.add_argument("--concurrency", type=int, default=4, help="openai backend: requests in flight")
    g.add_argument("--timeout", type=float, default=600.0, help="openai backend: per-request timeout, s")
    g.add_argument(
        "--max-retries",
        type=int,
        default=5,
        help="openai backend: retries on 429 (after its Retry-After), 5xx, timeouts, dropped connections",
    )
    g.add_argument(
        "--logprobs",
        type=int,
        default=0,
        metavar="K",
        help="openai backend: keep the top-K (<= 20) log-probs of each generated token; the kept "
        "traces' go to OUT/logits, a logit cache distillation reads like a local one",
    )
    g.add_argument(
        "--logprobs-tokenizer",
        default="",
        help="the endpoint's tokenizer for OUT/logits (default: --teacher when it resolves here): token "
        "ids; 'none' (or unknown): token strings, aligned to any student by characters",
    )
    g.add_argument("--price-in", type=float, default=0.0, help="USD per 1M prompt tokens: a cost counter on the bar")
    g.add_argument("--price-out", type=float, default=0.0, help="USD per 1M generated tokens (cost counter)")


def _add_logits(tsub) -> None:
    """`reasonkd teacher logits`: the teachers' top-k log-probs along the kept traces (local, or an endpoint)."""
    lg = tsub.add_parser("logits", help="store the teacher's top-k log-probs along accepted traces")
    lg.add_argument(
        "--teacher",
        action="append",
        default=[],
        help="repeat for several teachers: one cache each, OUT/<name>, built one teacher at a time; "
        "with --base-url: the endpoint's tokenizer (default --api-model)",
    )
    lg.add_argument("--traces", required=True, help="a `teacher generate` output folder (or its traces.jsonl)")
    lg.add_argument("--out", required=True)
    lg.add_argument("--k", type=int, default=20)
    lg.add_argument("--batch-size", type=int, default=8)
    lg.add_argument("--dtype", default="auto", choices=["auto", "bfloat16", "float32", "float16"])
    lg.add_argument(
        "--cache-dtype",
        default="float16",
        choices=["float16", "float32"],
        help="how the log-probs are stored (float16 halves the size; float32 keeps them to ~1e-7)",
    )
    lg.add_argument("--limit", type=int, default=None, help="only the first N traces")
    lg.add_argument("--max-length", type=int, default=None, help="cut prompt + trace at this many tokens")
    lg.add_argument("--device", default="cpu")
    lg.add_argument(
        "--base-url",
        default="",
        help="score through an OpenAI-compatible endpoint (vLLM prompt_logprobs, else echo + logprobs)",
    )
    lg.add_argument("--api-model", default="", help="--base-url: the model name the endpoint serves")
    lg.add_argument("--api-key-env", default="OPENAI_API_KEY", help="--base-url: env variable holding the API key")
    lg.add_argument("--concurrency", type=int, default=4, help="--base-url: requests in flight")
    lg.add_argument("--timeout", type=float, default=600.0, help="--base-url: per-request timeout, s")
    lg.add_argument("--max-retries", type=int, default=5, help="--base-url: retries (429 Retry-After, 5xx, drops)")
    lg.add_argument("--price-in", type=float, default=0.0, help="--base-url: USD per 1M prompt tokens (cost counter)")
    lg.set_defaults(func=_logits)
