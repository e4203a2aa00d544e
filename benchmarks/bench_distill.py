"""Logit-KD training throughput and memory: reasonkd (online teacher / offline top-k cache) vs TRL's GKDTrainer.

    .venv/bin/python benchmarks/bench_distill.py --steps 4 --warmup-steps 1 \
        --write-benchmarks

Same student, teacher, data, batch, sequence length and loss for every runner:
student qwen2.5-coder-0.5b + LoRA (r 16, all linear layers), fp32 weights with bf16 autocast; teacher
qwen2.5-coder-0.5b frozen in bf16 (a same-tokenizer pair; `--teacher qwen2.5-coder-1.5b` needs
`reasonkd models pull qwen2.5-coder-1.5b`, peak RSS 12.3 GiB for TRL);
forward KL(teacher || student) at T = 1 on the trace tokens (GKD with lmbda=0, beta=0: no on-policy
generation), AdamW lr 1e-4 constant, batch 4, sequences of 240-256 tokens (nothing truncated).

Each runner is a fresh subprocess, so its peak RSS (ru_maxrss, model loading included) is its own:
  trl-gkd       trl.experimental.gkd.GKDTrainer, teacher forward every step, full (B, L, V) logits,
                its SFT defaults (gradient checkpointing on); trl-gkd-nogc: the same with it off
  ours-online   reasonkd.distill.stages.run_recipe, teacher forward every step (no_grad)
  ours-offline  the same reading teacher top-20 log-probs from a logit cache (teacher never loaded)
The cache is built first (`write_logit_cache`, its time reported apart). Student tokens/s = non-pad
input tokens per second over the steps after warm-up. Achieved FLOP/s counts model FLOPs with one
formula for every runner (see `model_flops_per_token`) against a measured bf16 matmul peak.
`trl.DistillationTrainer` is not run: it always generates on-policy completions (a different job).
Use --student/--teacher for other pairs (e.g. smollm2-135m self-distillation) or tiny test folders.

TRL is not a dependency of reasonkd itself: install the `bench` extra for the trl-gkd runners,
`.venv/bin/pip install -e ".[bench]"` (scripts/setup.sh installs it).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import BENCH_MD, ROOT, peak_rss_mb, record_section  # noqa: E402
from distill_report import report  # noqa: E402
from flops import measure_matmul_peak, model_flops_per_token  # noqa: E402


# ---------------------------------------------------------------- data


def make_traces(tok, n: int, seq: int) -> list[dict]:
    """n word problems whose prompt + trace + end of turn is seq - 16 .. seq tokens in `tok`."""
    from reasonkd.models.encoding import encode_example

    rows = []
    for i in range(n):
        a, b = 3 + i, 5 + 2 * i
        prompt = (
            f"A farmer has {a} chickens and {b} rabbits. Each chicken has 2 legs, each rabbit 4. "
            "How many legs are there in total? Think step by step."
        )
        steps, k, total = [], 1, 0
        while True:
            x, y = a * k + i, b + k
            line = f"Step {k}: we have {x} + {y} = {x + y}, so we carry {x + y} forward to the next step."
            ids, _ = encode_example(tok, prompt, "\n".join(steps + [line]))
            if len(ids) > seq:
                break
            steps.append(line)
            total = len(ids)
            k += 1
        filler = " Then verify."
        while True:  # top up with short words to land within 16 tokens of seq
            ids, _ = encode_example(tok, prompt, "\n".join(steps) + filler)
            if len(ids) > seq:
                break
            steps[-1] += filler
            total = len(ids)
            if total >= seq - 4:
                break
        assert seq - 16 <= total <= seq, (total, seq)
        rows.append({"id": f"p{i}", "prompt": prompt, "trace": "\n".join(steps)})
    return rows


# ---------------------------------------------------------------- runners (each in its own process)


def _load_examples(work: Path) -> list[dict]:
    return [json.loads(line) for line in (work / "traces.jsonl").read_text().splitlines()]


def run_cache(args, work: Path) -> dict:
    from reasonkd.models import load_model
    from reasonkd.models.encoding import encode_example
    from reasonkd.models.logit_writer import write_logit_cache

    shutil.rmtree(work / "cache", ignore_errors=True)  # time a full build, not a resumed one
    teacher, tok = load_model(args.teacher, dtype="bfloat16")
    examples = _load_examples(work)
    t0 = time.perf_counter()
    write_logit_cache(teacher, tok, examples, work / "cache", k=args.k, batch_size=args.batch, progress=False)
    seconds = time.perf_counter() - t0
    tokens = sum(len(encode_example(tok, e["prompt"], e["trace"])[0]) for e in examples)
    size = sum(p.stat().st_size for p in (work / "cache").iterdir())
    return {
        "seconds": seconds,
        "tokens": tokens,
        "tok_s": tokens / seconds,
        "bytes": size,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_ours(args, work: Path, offline: bool, chunk_rows: int | None = None) -> dict:
    from reasonkd.config import from_dict
    from reasonkd.distill.recipe import DistillRecipe
    from reasonkd.distill.stages import run_recipe

    out = work / ("ours-offline" if offline else "ours-online")
    import shutil

    shutil.rmtree(out, ignore_errors=True)
    recipe = from_dict(
        DistillRecipe,
        {
            "student": args.student,
            "teacher": args.teacher,
            "data": {
                "path": str(work / "traces.jsonl"),
                "logit_cache": str(work / "cache") if offline else None,
                "bucket": False,
            },
            "output_dir": str(out),
            "seed": 0,
            "bf16_autocast": True,
            "teacher_dtype": "bfloat16",
            "max_length": args.seq,
            "batch_size": args.batch,
            "save_every": 0,
            "log_every": 1,
            "chunk_rows": args.chunk_rows if chunk_rows is None else chunk_rows,
            "lora": {"enabled": args.lora, "r": 16, "alpha": 32},
            "stages": [
                {
                    "name": "kd",
                    "kind": "output",
                    "steps": args.warmup_steps + args.steps,
                    "lr": 1e-4,
                    "lr_schedule": "constant",
                    "losses": [{"name": "forward_kl"}],
                    "temperature": {"kind": "constant", "start": 1.0},
                }
            ],
        },
    )
    run_recipe(recipe, progress=False)
    rows = [json.loads(line) for line in (out / "stages" / "1-kd" / "metrics.jsonl").read_text().splitlines()]
    timed = rows[args.warmup_steps :]
    done = json.loads((out / "stages" / "1-kd" / "done.json").read_text())
    return {
        "step_s": [r["seconds"] for r in timed],
        "tokens": sum(r["tokens"] for r in timed),
        "seconds": sum(r["seconds"] for r in timed),
        "loss": [r["loss"] for r in rows],
        "peak_rss_mb": done["peak_rss_mb"],  # load + train, as measured for TRL
        "peak_rss_with_save_mb": peak_rss_mb(),
    }  # + merging the adapters and writing final/


def run_trl(args, work: Path, gradient_checkpointing: bool = True) -> dict:
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback

    try:
        from trl.experimental.gkd import GKDConfig, GKDTrainer
        from trl.experimental.utils import DataCollatorForChatML
    except ImportError:
        raise SystemExit('the trl-gkd runners need TRL: .venv/bin/pip install -e ".[bench]"') from None

    from reasonkd.models import load_model

    torch.manual_seed(0)
    student, tok = load_model(args.student, dtype="float32")
    teacher, _ = load_model(args.teacher, dtype="bfloat16")
    student.train()
    examples = _load_examples(work)
    ds = Dataset.from_list(
        [
            {"messages": [{"role": "user", "content": e["prompt"]}, {"role": "assistant", "content": e["trace"]}]}
            for e in examples
        ]
    )
    collator = DataCollatorForChatML(tokenizer=tok, max_length=args.seq)
    counts: list[int] = []

    def counting(features):
        batch = collator(features)
        counts.append(int(batch["attention_mask"].sum()))
        return batch

    times: list[float] = []

    class Clock(TrainerCallback):
        def on_step_begin(self, *a, **k):
            self.t0 = time.perf_counter()

        def on_step_end(self, *a, **k):
            times.append(time.perf_counter() - self.t0)

    cfg, peft_config = _trl_configs(args, work, gradient_checkpointing, GKDConfig)
    trainer = GKDTrainer(
        model=student,
        teacher_model=teacher,
        args=cfg,
        train_dataset=ds,
        processing_class=tok,
        data_collator=counting,
        peft_config=peft_config,
        callbacks=[Clock()],
    )
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    w = args.warmup_steps
    # the dataloader may prefetch one batch ahead: count the tokens of the batches the timed steps used
    return {
        "step_s": times[w:],
        "tokens": sum(counts[w : w + args.steps]),
        "seconds": sum(times[w:]),
        "loss": losses,
        "peak_rss_mb": peak_rss_mb(),
    }


def _trl_configs(args, work: Path, gradient_checkpointing: bool, GKDConfig) -> tuple:
    """(GKDConfig, peft LoraConfig or None) of the trl-gkd runners: the budget and LoRA of our runners."""
    from peft import LoraConfig

    cfg = GKDConfig(
        output_dir=str(work / "trl"),
        per_device_train_batch_size=args.batch,
        max_steps=args.warmup_steps + args.steps,
        learning_rate=1e-4,
        lr_scheduler_type="constant",
        bf16=True,
        use_cpu=True,
        lmbda=0.0,
        beta=0.0,
        max_length=args.seq,
        logging_steps=1,
        save_strategy="no",
        report_to=[],
        seed=0,
        dataloader_num_workers=0,
        disable_dropout=True,
        warmup_steps=0,
        weight_decay=0.0,
        max_grad_norm=1.0,
        gradient_checkpointing=gradient_checkpointing,
    )  # TRL's SFT-based configs default to True
    peft_config = (
        LoraConfig(
            r=16,
            lora_alpha=32,
            lora_dropout=0.0,
            task_type="CAUSAL_LM",
            target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        )
        if args.lora
        else None
    )
    return cfg, peft_config


# ---------------------------------------------------------------- orchestration


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    work = Path(args.work)
    if args.mode == "matmul":
        result = measure_matmul_peak()
    elif args.mode == "cache":
        result = run_cache(args, work)
    elif args.mode.startswith(("ours-online", "ours-offline")):  # "ours-offline@0": chunk_rows override
        name, _, chunk = args.mode.partition("@")
        result = run_ours(args, work, offline=name == "ours-offline", chunk_rows=int(chunk) if chunk else None)
    elif args.mode in ("trl-gkd", "trl-gkd-nogc"):
        result = run_trl(args, work, gradient_checkpointing=args.mode == "trl-gkd")
    else:
        raise SystemExit(f"unknown mode {args.mode}")
    (work / f"{args.mode}.json").write_text(json.dumps(result))


def spawn(args, mode: str) -> dict:
    cmd = [sys.executable, __file__, "--child", mode] + args.passthrough
    print(f"[bench] {mode} ...", flush=True)
    t0 = time.perf_counter()
    done = subprocess.run(
        cmd, cwd=ROOT, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}, capture_output=True, text=True
    )
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-6000:])
        raise SystemExit(f"{mode} failed")
    result = json.loads((Path(args.work) / f"{mode}.json").read_text())
    result["wall_s"] = time.perf_counter() - t0
    print(f"[bench] {mode}: {json.dumps({k: v for k, v in result.items() if k != 'loss'})}", flush=True)
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", default="qwen2.5-coder-0.5b")
    p.add_argument("--teacher", default="qwen2.5-coder-0.5b")
    p.add_argument("--steps", type=int, default=4, help="timed optimizer steps")
    p.add_argument("--warmup-steps", type=int, default=1)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=256)
    p.add_argument("--k", type=int, default=20, help="top-k of the logit cache")
    p.add_argument("--chunk-rows", type=int, default=256, help="reasonkd chunk_rows")
    p.add_argument("--no-lora", dest="lora", action="store_false")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="/tmp/reasonkd-bench-distill")
    p.add_argument(
        "--modes",
        default="trl-gkd,trl-gkd-nogc,ours-online,ours-offline,ours-offline@0",
        help="runners in order; ours-*@N overrides chunk_rows (0 = unchunked)",
    )
    p.add_argument("--write-benchmarks", action="store_true", help="update the Distillation section of BENCHMARKS.md")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    args.examples = (args.warmup_steps + args.steps) * args.batch
    if args.child:
        args.mode = args.child
        child(args)
        return
    argv = sys.argv[1:]
    args.shown = [a for a in argv if a != "--write-benchmarks"]
    args.passthrough = [a for a in argv if a != "--write-benchmarks"]
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    from reasonkd.models import load_tokenizer
    from reasonkd.utils.io import write_jsonl

    tok = load_tokenizer(args.student)
    write_jsonl(work / "traces.jsonl", make_traces(tok, args.examples, args.seq))
    res = {"matmul": spawn(args, "matmul"), "cache": spawn(args, "cache")}
    for mode in args.modes.split(","):
        res[mode] = spawn(args, mode)
    from transformers import AutoConfig

    from reasonkd.models import resolve

    s_cfg = AutoConfig.from_pretrained(resolve(args.student).path)
    t_cfg = AutoConfig.from_pretrained(resolve(args.teacher).path)
    passes = 2 if args.lora else 3
    student_f = model_flops_per_token(s_cfg, args.seq, passes)
    teacher_f = model_flops_per_token(t_cfg, args.seq, 1)
    flops = {
        "trl-gkd": student_f + teacher_f,
        "trl-gkd-nogc": student_f + teacher_f,
        "ours-online": student_f + teacher_f,
        "ours-offline": student_f,
    }
    text = report(args, res, res["matmul"], flops)
    print(text)
    (work / "results.json").write_text(json.dumps(res, indent=1))
    if args.write_benchmarks:
        record_section("Distillation", text)
        print(f"updated {BENCH_MD}")


if __name__ == "__main__":
    main()
