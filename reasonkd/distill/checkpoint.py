"""Resumable mid-stage checkpoints: atomic, multi-process, exact.

    save_checkpoint(ctx, stage_dir, step, model, optimizer, scheduler, state)  # -> checkpoints/step-NNNNNN
    ckpt = latest_checkpoint(stage_dir); state = load_checkpoint(ctx, ckpt, model, optimizer, scheduler)

A checkpoint holds the trainable weights (LoRA adapters or the whole student,
plus projectors), optimizer and scheduler state, `state.json` (step, tokens,
loss-balancer state, world size) and one RNG file per process. Every process
writes into `.step-NNNNNN.tmp`; after a barrier the main process fsyncs and
renames it, so a kill at any moment leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from reasonkd.distill.fsdp import full_optimizer_state, full_trainable_state, is_fsdp, load_full_state
from reasonkd.errors import ReasonkdError
from reasonkd.utils.io import atomic_write, disk_full_error, is_disk_full

log = logging.getLogger(__name__)
CKPT = re.compile(r"^step-(\d{6,})$")


def _fsync_tree(folder: Path) -> None:
    for p in folder.iterdir():
        if p.is_file():
            with open(p, "rb") as f:
                os.fsync(f.fileno())


def _rng_state() -> dict:
    np_state = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def latest_checkpoint(stage_dir: Path) -> Path | None:
    folder = stage_dir / "checkpoints"
    found = sorted((int(m.group(1)), p) for p in folder.glob("step-*") if (m := CKPT.match(p.name)) and p.is_dir())
    return found[-1][1] if found else None


def _trainable_state(module) -> dict:
    return {n: p.detach().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}


def save_checkpoint(ctx, stage_dir: Path, step: int, module, optimizer, scheduler, state: dict) -> Path:
    """Atomic: every process writes into one temp folder, then the main process renames it.
    ctx: the run's context.RunContext."""
    from safetensors.torch import save_file

    acc = ctx.accelerator
    final = stage_dir / "checkpoints" / f"step-{step:06d}"
    tmp = final.with_name(f".{final.name}.tmp")
    if acc.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    acc.wait_for_everyone()
    try:
        torch.save(_rng_state(), tmp / f"rng-{acc.process_index}.pt")
        if is_fsdp(acc):  # sharded: gather full tensors (collective), saved in the same layout as below
            weights, optim_state = full_trainable_state(module), full_optimizer_state(module, optimizer)
        else:
            weights, optim_state = None, None
        if acc.is_main_process:
            save_file(weights or _trainable_state(acc.unwrap_model(module)), str(tmp / "trainable.safetensors"))
            torch.save(optim_state or optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
            (tmp / "state.json").write_text(json.dumps(state, indent=1))
    except Exception as e:  # a full disk: one clear error, the partial checkpoint removed (older ones stay)
        if is_disk_full(e, tmp):
            shutil.rmtree(tmp, ignore_errors=True)
            raise disk_full_error(final, e) from e
        raise
    acc.wait_for_everyone()
    if acc.is_main_process:
        _fsync_tree(tmp)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        kept = sorted(p for p in final.parent.glob("step-*") if CKPT.match(p.name))
        for old in kept[: -ctx.recipe.keep_checkpoints]:
            shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()
    return final


def load_checkpoint(ctx, ckpt: Path, module, optimizer, scheduler) -> dict:
    from safetensors.torch import load_file

    acc = ctx.accelerator
    state = json.loads((ckpt / "state.json").read_text())
    if state.get("world_size", 1) != acc.num_processes and acc.is_main_process:
        log.warning(
            "%s was written by %s processes, resuming on %d: weights and optimizer state carry over; "
            "the data order from here on follows the new process count",
            ckpt,
            state.get("world_size"),
            acc.num_processes,
        )
    weights = load_file(str(ckpt / "trainable.safetensors"))
    if is_fsdp(acc):
        optim_state = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=False)
        load_full_state(module, optimizer, weights, optim_state)
        scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
        return _load_rng(ckpt, acc, state)
    unwrapped = acc.unwrap_model(module)
    missing = set(_trainable_state(unwrapped)) - set(weights)
    if missing:
        raise ReasonkdError(
            f"{ckpt}: checkpoint lacks {len(missing)} trainable tensors (e.g. {sorted(missing)[0]}); "
            "was the recipe changed (lora, losses)? Start a new output_dir"
        )
    unwrapped.load_state_dict(weights, strict=False)
    optimizer.load_state_dict(torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=False))
    scheduler.load_state_dict(torch.load(ckpt / "scheduler.pt", weights_only=False))
    return _load_rng(ckpt, acc, state)


def _load_rng(ckpt: Path, acc, state: dict) -> dict:
    rng_file = ckpt / f"rng-{acc.process_index}.pt"
    if rng_file.is_file():  # a process that did not exist when it was written keeps its seeded state
        _set_rng_state(torch.load(rng_file, weights_only=False))
    return state


def trim_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after the checkpoint we resume from (they will be logged again)."""
    if not path.is_file():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    with atomic_write(path) as f:
        f.write("".join(line + "\n" for line in keep))
