"""An arm of `reasonkd compare` trained by TRL's GKDTrainer: the field's reference implementation of
knowledge distillation for LLMs, run on the same pair, traces, tokens and budget as our arms.

    arms:
      - name: trl
        runner: trl-gkd              # TRL's GKDTrainer (trl.experimental.gkd) instead of reasonkd's trainer
        trl: {}                      # GKDConfig keys; {} = TRL's documented defaults (lmbda 0.5, beta 0.5,
                                     # temperature 0.9, max_new_tokens 128, gradient checkpointing on)
                                     # + micro_batch_size: sequences per forward (memory only, see below)

What is shared with every other arm (so a difference is TRL's method, not its budget): the student and
teacher, the traces, the tokens of each example (our chat encoding: prompt + trace + end-of-turn, cut at
max_length; labels on the trace only), optimizer steps, batch, grad_accum, peak lr, warm-up and the cosine
decay to min_lr_ratio * lr, LoRA (r, alpha, dropout, target modules), bf16 autocast, teacher dtype, seed.
Everything GKD-specific comes from `trl:` or TRL's own defaults: the on-policy fraction `lmbda`, the JSD
`beta`, the sampling temperature and length of its on-policy completions, `seq_kd`, gradient checkpointing.

Memory: GKDTrainer's loss holds several full-vocabulary (batch, length, vocab) tensors at once (both models'
log-softmax, their mixture, two KLs and their graph); for a 151,936-token vocabulary at batch 8 x ~300 tokens
that is >24 GB. `micro_batch_size: m` runs each optimizer step as batch_size * grad_accum / m forwards of m
sequences with gradient accumulation: the same sequences per optimizer step, each forward's summed loss
divided by the whole step's label-token count (HF Trainer's `num_items_in_batch`, as with one forward per
step). One thing does change with it: TRL draws its on-policy coin (`lmbda`) per forward, so a step may mix
on-policy and trace micro-batches, at the same expected on-policy fraction.

Resumable: TRL writes a checkpoint every `save_every` steps (OUT/arms/<arm>/seed-<s>/trl/checkpoint-N,
the newest kept) and a rerun continues from the newest one (HF Trainer restores optimizer, scheduler and RNG
states). final/ is the student with the adapters merged, as for our arms.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import atomic_dir, write_json

log = logging.getLogger(__name__)

BUDGET_KEYS = (
    "output_dir",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "learning_rate",
    "warmup_steps",
    "lr_scheduler_type",
    "lr_scheduler_kwargs",
    "seed",
    "bf16",
    "max_length",
    "use_cpu",
    "save_steps",
    "save_strategy",
    "save_total_limit",
    "weight_decay",
    "max_grad_norm",
)
"""GKDConfig keys the harness sets from the shared budget: an arm's `trl:` may not set them."""


def _collator(tokenizer, max_length: int):
    """Batches of our encoding (models.encoding.encode_example) in the keys GKDTrainer reads: input_ids,
    attention_mask, labels (-100 off the trace), right-padded; prompts / prompt_attention_mask left-padded
    (its on-policy generation continues them)."""
    import torch

    from reasonkd.models.encoding import encode_example

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    def collate(rows: list[dict]) -> dict:
        enc = [encode_example(tokenizer, r["prompt"], r["trace"], r.get("system"), max_length) for r in rows]
        width = max(len(ids) for ids, _ in enc)
        pwidth = max(n for _, n in enc)
        b = {
            k: torch.full((len(enc), w), v, dtype=torch.long)
            for k, w, v in (
                ("input_ids", width, pad),
                ("attention_mask", width, 0),
                ("labels", width, -100),
                ("prompts", pwidth, pad),
                ("prompt_attention_mask", pwidth, 0),
            )
        }
        for i, (ids, n) in enumerate(enc):
            b["input_ids"][i, : len(ids)] = torch.tensor(ids)
            b["attention_mask"][i, : len(ids)] = 1
            b["labels"][i, n : len(ids)] = torch.tensor(ids[n:])
            b["prompts"][i, pwidth - n :] = torch.tensor(ids[:n])
            b["prompt_attention_mask"][i, pwidth - n :] = 1
        return b

    return collate


def _gkd():
    """TRL's (GKDConfig, GKDTrainer); a clear error where TRL is missing."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")  # GKD lives in trl.experimental since TRL 0.2x
    try:
        from trl.experimental.gkd import GKDConfig, GKDTrainer
    except ImportError:
        raise ReasonkdError('runner: trl-gkd needs TRL: pip install -e ".[bench]"') from None
    return GKDConfig, GKDTrainer


def gkd_config(recipe, options: dict, out: Path, steps: int, use_cpu: bool):
    """TRL's GKDConfig: the shared budget from `recipe` (its one stage), the rest from `options` or TRL."""
    import dataclasses

    GKDConfig, _ = _gkd()
    options = dict(options)
    per_step = recipe.batch_size * recipe.grad_accum
    micro = options.pop("micro_batch_size", recipe.batch_size)
    if isinstance(micro, bool) or not isinstance(micro, int) or micro < 1 or per_step % micro:
        raise ReasonkdError(
            f"trl: micro_batch_size must be a whole divisor of batch_size x grad_accum = {per_step} "
            f"(sequences per optimizer step), got {micro!r}"
        )
    known = {f.name for f in dataclasses.fields(GKDConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ReasonkdError(
            f"trl: unknown GKDConfig key(s) {unknown}; see TRL's GKDConfig "
            "(lmbda, beta, temperature, max_new_tokens, seq_kd, gradient_checkpointing, ...) "
            "or micro_batch_size"
        )
    shared = sorted(set(options) & set(BUDGET_KEYS))
    if shared:
        raise ReasonkdError(
            f"trl: {shared} come from the shared budget (steps, batch_size, lr, warmup, "
            "recipe.max_length, ...); set them at the top level of ARMS.yaml"
        )
    st = recipe.stages[0]
    return GKDConfig(
        output_dir=str(out),
        max_steps=steps,
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=per_step // micro,
        learning_rate=st.lr,
        warmup_steps=st.warmup,
        weight_decay=st.weight_decay,
        max_grad_norm=recipe.max_grad_norm or 0.0,
        lr_scheduler_type="cosine_with_min_lr" if st.lr_schedule == "cosine" else st.lr_schedule,
        lr_scheduler_kwargs={"min_lr_rate": st.min_lr_ratio} if st.lr_schedule == "cosine" else {},
        seed=recipe.seed,
        bf16=bool(recipe.bf16_autocast),
        use_cpu=use_cpu,
        max_length=recipe.max_length,
        save_strategy="steps",
        save_steps=max(1, recipe.save_every or steps),
        save_total_limit=1,
        logging_steps=1,
        report_to=[],
        dataloader_num_workers=0,
        remove_unused_columns=False,
        dataset_kwargs={"skip_prepare_dataset": True},
        **options,
    )


def newest_checkpoint(folder: Path) -> tuple[Path, int] | None:
    """The newest complete HF Trainer checkpoint in `folder` (checkpoint-<global step>, trainer_state.json
    written last) and its step: where a resume starts; None when there is none."""
    done = [p for p in folder.glob("checkpoint-*") if p.name[11:].isdigit() and (p / "trainer_state.json").is_file()]
    newest = max(done, key=lambda p: int(p.name[11:]), default=None)
    return (newest, int(newest.name[11:])) if newest else None


def train_trl_arm(recipe, options: dict, steps: int, progress: bool = True) -> Path:
    """Train one seed of a `runner: trl-gkd` arm into recipe.output_dir/final; returns final/."""
    from datasets import Dataset
    from peft import LoraConfig

    from reasonkd.teacher.traces import load_traces

    run_dir = Path(recipe.output_dir)
    _, GKDTrainer = _gkd()
    student, teacher, tok, device = _load_pair(recipe)
    rows = load_traces(recipe.data.path)
    ds = Dataset.from_list(
        [{"prompt": r["prompt"], "trace": r["trace"], "system": r.get("system") or ""} for r in rows]
    )
    cfg = gkd_config(recipe, options, run_dir / "trl", steps, use_cpu=device == "cpu")
    cfg.disable_tqdm = not progress
    lora = recipe.lora
    peft_config = (
        LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            task_type="CAUSAL_LM",
            target_modules=list(lora.target_modules),
        )
        if lora.enabled
        else None
    )
    tokens = {"student": 0}  # tokens of the collated batches since this process started (prompt + trace)

    collate = _collator(tok, recipe.max_length)

    def counting(features):
        b = collate(features)
        tokens["student"] += int(b["attention_mask"].sum())
        return b

    trainer = GKDTrainer(
        model=student,
        teacher_model=teacher,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        data_collator=counting,
        peft_config=peft_config,
    )
    resume = str(newest[0]) if (newest := newest_checkpoint(run_dir / "trl")) else None
    log.info(
        "TRL GKDTrainer: %d steps of batch %d x %d%s",
        steps,
        cfg.per_device_train_batch_size,
        cfg.gradient_accumulation_steps,
        f", resuming from {resume}" if resume else "",
    )
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume)
    seconds = time.perf_counter() - t0
    return _save_trained(trainer, cfg, tok, recipe, options, tokens["student"], seconds)


def _load_pair(recipe):
    """(student in fp32 and train mode, teacher in the recipe's teacher dtype, student tokenizer, device)."""
    import torch

    from reasonkd.models import load_model

    torch.manual_seed(recipe.seed)
    device = "cuda" if recipe.device == "cuda" or (recipe.device == "auto" and torch.cuda.is_available()) else "cpu"
    student, tok = load_model(recipe.student, dtype="float32", device=device)
    teacher_dtype = (
        recipe.teacher_dtype if recipe.teacher_dtype != "auto" else ("bfloat16" if recipe.bf16_autocast else "float32")
    )
    teacher, _ = load_model(recipe.teacher, dtype=teacher_dtype, device=device)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    student.train()
    return student, teacher, tok, device


def _save_trained(trainer, cfg, tok, recipe, options: dict, tokens: int, seconds: float) -> Path:
    """final/ (the student, LoRA merged), summary.json and trl-loss.json of a trained arm; returns final/."""
    run_dir = Path(recipe.output_dir)
    final = run_dir / "final"
    model = trainer.model
    if recipe.lora.enabled:
        model = model.merge_and_unload()
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    summary = {
        "runner": "trl-gkd",
        "trl_options": options,
        "gkd": {
            k: getattr(cfg, k)
            for k in ("lmbda", "beta", "temperature", "max_new_tokens", "seq_kd", "gradient_checkpointing")
        },
        # the teacher scores every token the student trains on (traces or its own samples)
        "stages": [
            {
                "name": "trl-gkd",
                "steps": trainer.state.global_step,
                "tokens": tokens,
                "seconds": round(seconds, 1),
                "final_loss": losses[-1] if losses else None,
            }
        ],
        "total": {"steps": trainer.state.global_step, "tokens": tokens},
    }
    write_json(run_dir / "summary.json", summary)
    (run_dir / "trl-loss.json").write_text(json.dumps(losses))
    return final
