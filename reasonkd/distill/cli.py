"""`reasonkd distill` and `reasonkd heads` (head scoring lives in reasonkd.distill.heads).

    reasonkd distill recipes/distill/default.yaml student=smollm2-135m stages.0.steps=20 [--resume]
    reasonkd distill --keys                     every recipe key with its help
    accelerate launch --multi_gpu --num_processes 2 -m reasonkd.cli distill RECIPE ...   # DDP (gloo on CPU)
    reasonkd distill RECIPE --accelerate-config recipes/accelerate/fsdp.yaml   # = accelerate launch --config_file

See docs/distill.md. The handlers import the engine (torch, transformers, accelerate) when they run,
not at module level: building the CLI parser must stay fast (`reasonkd --help`).
"""

from __future__ import annotations

import time
from pathlib import Path

from reasonkd.errors import ConfigError


def _keys() -> str:
    from reasonkd.config import config_help
    from reasonkd.distill.recipe import DistillRecipe, LossSpec, StageConfig
    from reasonkd.distill.schedules import TemperatureSchedule

    return "\n".join(
        [
            config_help(DistillRecipe),
            "",
            "each of stages.N:",
            config_help(StageConfig, "stages.N."),
            "",
            "each of stages.N.losses.M:",
            config_help(LossSpec, "stages.N.losses.M."),
            "",
            "stages.N.temperature:",
            config_help(TemperatureSchedule, "stages.N.temperature."),
        ]
    )


def _distill(args) -> int:
    if args.keys:
        print(_keys())
        return 0
    if not args.recipe:
        raise ConfigError("give a recipe file, e.g. reasonkd distill recipes/distill/default.yaml")
    if args.accelerate_config:
        from reasonkd.distill.launch import relaunch

        return relaunch(args.accelerate_config, args)  # `accelerate launch --config_file FILE -m reasonkd distill ...`
    from reasonkd.distill.stages import run_recipe

    final = run_recipe(args.recipe, resume=args.resume, overrides=list(args.overrides), progress=not args.quiet)
    print(f"wrote the distilled student to {final}")
    return 0


def register(sub) -> None:
    """Add `reasonkd distill` and `reasonkd heads` to the top-level parser."""
    p = sub.add_parser("distill", help="multi-stage distillation of a teacher into a student (resumable)")
    p.add_argument("recipe", nargs="?", help="recipe YAML (see recipes/distill/ and docs/distill.md)")
    p.add_argument("overrides", nargs="*", help="key=value overrides, e.g. stages.1.steps=20 lora.enabled=true")
    p.add_argument("--resume", action="store_true", help="continue the run in output_dir exactly where it stopped")
    p.add_argument("--keys", action="store_true", help="list every recipe key with its default and help")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--accelerate-config",
        metavar="FILE",
        default=None,
        help="run under `accelerate launch --config_file FILE` (recipes/accelerate/: ddp, fsdp, deepspeed-zero3)",
    )
    p.set_defaults(func=_distill)
    register_heads(sub)


def register_heads(sub) -> None:
    """Add `reasonkd heads` to the top-level subparsers."""
    p = sub.add_parser("heads", help="rank the teacher's attention heads for selective distillation")
    p.add_argument("--teacher", required=True, help="alias, folder, .gguf file or hub id")
    p.add_argument("--data", required=True, help="teacher traces (JSONL / folder) or a built dataset")
    p.add_argument("--out", required=True, help="folder for heads.json and heads.png")
    # = reasonkd.distill.heads.METHODS, written out so building the CLI does not import torch
    p.add_argument(
        "--method",
        default="gradient",
        choices=["gradient", "ablation"],
        help="gradient: |dNLL/dgate|, one backward per batch; ablation: exact, one pass per head",
    )
    p.add_argument("--limit", type=int, default=32, help="number of traces to score on")
    p.add_argument("--top-k", type=int, default=16, help="heads to select (marked in the plot)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=256, help="tokens per prompt + trace")
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_heads)


def cmd_heads(args) -> int:
    from reasonkd.distill.heads import load_examples, plot_heads, score_heads
    from reasonkd.models import load_model
    from reasonkd.utils.io import write_json

    if args.limit < 1 or args.top_k < 1:
        raise ConfigError(f"--limit and --top-k must be >= 1, got {args.limit}, {args.top_k}")
    examples = load_examples(args.data, args.limit)
    model, tok = load_model(args.teacher, dtype=args.dtype, device=args.device)
    t0 = time.perf_counter()
    result = score_heads(
        model,
        tok,
        examples,
        method=args.method,
        batch_size=args.batch_size,
        max_length=args.max_length,
        model_id=args.teacher,
    )
    result["seconds"] = round(time.perf_counter() - t0, 2)
    result["top_k"] = min(args.top_k, len(result["ranking"]))
    out = Path(args.out)
    write_json(out / "heads.json", result)
    plot_heads(result, out / "heads.png", result["top_k"])
    print(
        f"{result['n_examples']} traces, {result['n_tokens']} trace tokens, NLL {result['nll']:.3f}, "
        f"{result['seconds']:.1f}s ({args.method})"
    )
    print("layer  head  score      entropy")
    for r in result["ranking"][: result["top_k"]]:
        print(f"{r['layer']:5d}  {r['head']:4d}  {r['score']:.3e}  {r['entropy']:.3f}")
    print(f"wrote {out / 'heads.json'} and {out / 'heads.png'}")
    return 0
