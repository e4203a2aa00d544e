"""Run a whole distillation recipe: stages in order, each from the previous stage's student (spec S2).

    from reasonkd.distill.stages import run_recipe
    final_dir = run_recipe("recipes/distill/default.yaml", overrides=["student=smollm2-135m"])
    final_dir = run_recipe(recipe, resume=True)          # continue an interrupted run exactly

Run folder (recipe.output_dir):

    config.yaml                    the resolved recipe (a resumed run must match it)
    stages/<i>-<name>/metrics.jsonl    one line per optimizer step: loss, each term, lr, temperature, tok/s
    stages/<i>-<name>/checkpoints/step-NNNNNN/   resumable mid-stage state (newest kept)
    stages/<i>-<name>/student/     the stage's student (LoRA merged), save_pretrained format
    stages/<i>-<name>/projectors.safetensors     feature projectors (inspection only)
    stages/<i>-<name>/done.json    stage summary, written last: the stage is complete
    final/                         the last stage's student + tokenizer + README.md model card
    summary.json                   per-stage summaries and totals

Under `accelerate launch` every process runs this; the main one writes files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch

from reasonkd.config import load_config, save_config, to_dict
from reasonkd.distill.recipe import LOGIT_LOSSES, DistillRecipe, needs_teacher_online, soft_source
from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import atomic_dir, write_json

log = logging.getLogger(__name__)
# keys that may change between an interrupted run and its resume (they do not change the maths)
RESUMABLE_CHANGES = {"save_every", "log_every", "keep_checkpoints", "prune_finished_checkpoints"}


def make_accelerator(recipe: DistillRecipe):
    """An Accelerator for this recipe: bf16 autocast (fp32 master weights), CPU when there is no GPU;
    each stage sets DDP's find_unused_parameters (a feature-only stage never touches lm_head)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import DistributedDataParallelKwargs

    cpu = recipe.device == "cpu" or (recipe.device == "auto" and not torch.cuda.is_available())
    # the mixed-precision setting lives in a process-wide singleton; a second run in one
    # process (tests, notebooks) may ask for another one
    AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision="bf16" if recipe.bf16_autocast else "no",
                       kwargs_handlers=[DistributedDataParallelKwargs()])


def _check_output_dir(out: Path, recipe: DistillRecipe, resume: bool) -> None:
    saved = out / "config.yaml"
    if not saved.is_file():
        return
    if not resume:
        raise ReasonkdError(f"output_dir {out} already holds a run; pass --resume to continue it "
                            "(or choose another output_dir)")
    import yaml

    old, new = yaml.safe_load(saved.read_text()), to_dict(recipe)
    diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k) and k not in RESUMABLE_CHANGES)
    if diff:
        raise ReasonkdError(f"--resume: the recipe differs from the run in {out} in {', '.join(diff)}; resume with "
                            f"the same recipe (only {', '.join(sorted(RESUMABLE_CHANGES))} may change) or use "
                            "another output_dir")


def _load_teacher(recipe: DistillRecipe, device):
    from reasonkd.models import load_model

    dtype = recipe.teacher_dtype
    if dtype == "auto":
        dtype = "bfloat16" if recipe.bf16_autocast else "float32"
    teacher, tok = load_model(recipe.teacher, dtype=dtype, device=str(device))
    teacher.requires_grad_(False)
    teacher.eval()
    return teacher, tok


def _vocab_size(name: str, tokenizer) -> int:
    """Logits width of a model from its config without loading weights (len(tokenizer) when unknown)."""
    folder = _resolved_dir(name)
    if folder:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(folder)
        cfg = getattr(cfg, "text_config", None) or cfg
        if getattr(cfg, "vocab_size", None):
            return int(cfg.vocab_size)
    return len(tokenizer)


def encode_for_pair(recipe: DistillRecipe, examples: list[dict], student_tok, ctx_fields: dict) -> list:
    """Tokenise the traces for this teacher/student pair and say which path the run takes.

    same         one tokenisation, shared ids, identity alignment (the usual same-family KD)
    same_padded  shared ids; logits widths differ (151,936 vs 152,064): compared on the common
                 vocabulary (align.truncate_to_common_vocab), with a warning
    different    each model reads the text in its own chat template and tokenizer; positions are
                 matched by character offsets (crosstok.PairEncoder), logit terms use the shared-
                 token buckets or ULD (objective._cross_vocab_term), feature terms aligned rows
    Fills ctx_fields with relation, vocab_map and teacher_pad_id for the RunContext.
    """
    from reasonkd.distill.align import build_vocab_map, tokenizer_relation
    from reasonkd.distill.data import encode_all
    from reasonkd.models import load_tokenizer

    ctx_fields.update(relation="same", vocab_map=None, teacher_pad_id=None,
                      encode=lambda rows: encode_all(rows, student_tok, recipe.max_length))
    if not recipe.teacher or not any(needs_teacher_online(s, recipe) for s in recipe.stages):
        return encode_all(examples, student_tok, recipe.max_length)  # the teacher model is never run
    teacher_tok = load_tokenizer(recipe.teacher)
    s_vocab, t_vocab = _vocab_size(recipe.student, student_tok), _vocab_size(recipe.teacher, teacher_tok)
    relation = tokenizer_relation(student_tok, teacher_tok, s_vocab, t_vocab)
    ctx_fields["relation"] = relation
    if relation == "same_padded":
        log.warning("student and teacher share the tokenizer but not the logits width (%d vs %d): logits are "
                    "compared on the common vocabulary", s_vocab, t_vocab)
    if relation != "different":
        log.info("tokenizer relation: %s (student vocab %d, teacher vocab %d)", relation, s_vocab, t_vocab)
        return encode_all(examples, student_tok, recipe.max_length)
    from reasonkd.distill.crosstok import PairEncoder, encode_for_trainer

    encoder = PairEncoder(student_tok, teacher_tok, s_vocab, t_vocab, max_length=recipe.max_length)
    ctx_fields["encode"] = lambda rows: encode_for_trainer(rows, encoder)
    encoded = encode_for_trainer(examples, encoder)
    vocab_map = build_vocab_map(student_tok, teacher_tok, s_vocab, t_vocab)
    aligned = sum(sum(j >= 0 for j in e.teacher_index[e.prompt_len:]) for e in encoded)
    total = sum(len(e.input_ids) - e.prompt_len for e in encoded)
    log.warning("cross-tokenizer path: student vocab %d vs teacher vocab %d; %d shared token strings; %.1f%% of "
                "trace tokens have a character-aligned teacher position", s_vocab, t_vocab, len(vocab_map),
                100.0 * aligned / max(total, 1))
    pad = teacher_tok.pad_token_id if teacher_tok.pad_token_id is not None else teacher_tok.eos_token_id
    ctx_fields.update(vocab_map=vocab_map, teacher_pad_id=int(pad or 0))
    return encoded


def run_recipe(recipe: DistillRecipe | str | Path, resume: bool = False, overrides: list[str] | tuple = (), *,
               stop_after: int | None = None, progress: bool = True) -> Path:
    """Train every stage of `recipe` (a DistillRecipe or a YAML path) and return output_dir/final.

    resume=True continues an interrupted run in the same output_dir exactly (same data order, same
    step count, same numbers). stop_after (tests; also REASONKD_DISTILL_STOP_AFTER): raise
    StopRequested at the first checkpoint once this many steps ran in this call.
    """
    from reasonkd.distill.cache import LogitCache
    from reasonkd.distill.data import load_traces
    from reasonkd.distill.trainer import RunContext, train_stage
    from reasonkd.models import load_tokenizer

    if not isinstance(recipe, DistillRecipe):
        recipe = load_config(DistillRecipe, recipe, overrides)
    recipe.check_ready()
    if stop_after is None and os.environ.get("REASONKD_DISTILL_STOP_AFTER"):
        stop_after = int(os.environ["REASONKD_DISTILL_STOP_AFTER"])
    out = Path(recipe.output_dir)
    acc = make_accelerator(recipe)
    _check_output_dir(out, recipe, resume)  # every process checks: an error stops all of them alike
    if (out / "final" / "config.json").is_file() and (out / "summary.json").is_file():
        log.info("%s is already complete", out / "final")
        return out / "final"
    acc.wait_for_everyone()
    if acc.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        save_config(recipe, out)
    examples = load_traces(recipe.data.path, recipe.data.limit)
    student_tok = load_tokenizer(recipe.student)
    pair: dict = {}
    encoded = encode_for_pair(recipe, examples, student_tok, pair)
    if recipe.data.negatives:
        from reasonkd.distill.negatives import attach_negatives, load_negatives

        n_neg = attach_negatives(encoded, {ex["id"]: ex for ex in examples}, load_negatives(recipe.data.negatives),
                                 student_tok, recipe.max_length)
        log.info("negatives: %d of %d traces have a wrong trace of the same problem", n_neg, len(encoded))
    uses_cache = any(soft_source(s, recipe) == "cache" for st in recipe.stages for s in st.losses
                     if s.name in LOGIT_LOSSES)
    cache = None
    if uses_cache:
        cache = LogitCache(recipe.data.logit_cache)
        cache.check_tokenizer(student_tok)
    ctx = RunContext(recipe, acc, student_tok, encoded, cache=cache, stop_after=stop_after, progress=progress,
                     examples={ex["id"]: ex for ex in examples}, **pair)
    needs_teacher = [needs_teacher_online(s, recipe) for s in recipe.stages]
    done = [(out / "stages" / _stage_name(i, s) / "done.json").is_file() for i, s in enumerate(recipe.stages)]
    if any(n and not d for n, d in zip(needs_teacher, done)):
        ctx.teacher, _ = _load_teacher(recipe, acc.device)

    summaries, init_from = [], recipe.student
    for i, stage in enumerate(recipe.stages):
        stage_dir = out / "stages" / _stage_name(i, stage)
        if done[i]:
            summaries.append(json.loads((stage_dir / "done.json").read_text()))
            log.info("stage %s already done", stage.name)
        else:
            summaries.append(train_stage(ctx, i, stage, stage_dir, init_from))
        init_from = str(stage_dir / "student")
        if ctx.teacher is not None and not any(n and not d for n, d in zip(needs_teacher[i + 1:], done[i + 1:])):
            ctx.teacher = None  # no later stage needs it: free its memory
    return _finish_run(ctx, out, Path(init_from), summaries, examples)


def _stage_name(i: int, stage) -> str:
    return f"{i + 1}-{stage.name}"


def _resolved_dir(name: str) -> str | None:
    from reasonkd.models import resolve

    r = resolve(name)
    return r.path if r.kind in ("alias", "folder") else None


def _finish_run(ctx, out: Path, last_student: Path, summaries: list[dict], examples: list[dict]) -> Path:
    from reasonkd.distill.modelcard import write_model_card

    acc, recipe = ctx.accelerator, ctx.recipe
    if acc.is_main_process:
        total = {"steps": sum(s["steps"] for s in summaries), "tokens": sum(s.get("tokens", 0) for s in summaries),
                 "final_loss": summaries[-1].get("final_loss"), "world_size": acc.num_processes}
        summary = {"stages": summaries, "total": total, "n_examples": len(examples), "tokenizer_relation": ctx.relation}
        with atomic_dir(out / "final") as tmp:
            for f in last_student.iterdir():
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
            save_config(recipe, tmp, "distill_config.yaml")
            write_model_card(tmp / "README.md", recipe, summary)
        write_json(out / "summary.json", summary)
    acc.wait_for_everyone()
    return out / "final"
