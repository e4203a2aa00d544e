"""`reasonkd distill` (and `reasonkd heads`, from reasonkd.distill.heads).

    reasonkd distill recipes/distill/default.yaml student=smollm2-135m stages.0.steps=20 [--resume]
    reasonkd distill --keys                     every recipe key with its help
    accelerate launch --multi_gpu --num_processes 2 -m reasonkd.cli distill RECIPE ...   # DDP (gloo on CPU)

See docs/distill.md.
"""

from __future__ import annotations


def _keys() -> str:
    from reasonkd.config import config_help
    from reasonkd.distill.recipe import DistillRecipe, LossSpec, StageConfig, TemperatureSchedule

    return "\n".join([config_help(DistillRecipe), "", "each of stages.N:", config_help(StageConfig, "stages.N."),
                      "", "each of stages.N.losses.M:", config_help(LossSpec, "stages.N.losses.M."),
                      "", "stages.N.temperature:", config_help(TemperatureSchedule, "stages.N.temperature.")])


def _distill(args) -> int:
    from reasonkd.errors import ConfigError

    if args.keys:
        print(_keys())
        return 0
    if not args.recipe:
        raise ConfigError("give a recipe file, e.g. reasonkd distill recipes/distill/default.yaml")
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
    p.set_defaults(func=_distill)
    try:
        from reasonkd.distill.heads import register_heads
    except ImportError:  # the head-scoring module is optional here
        return
    register_heads(sub)
