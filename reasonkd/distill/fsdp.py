"""FSDP for the distillation trainer: turn it on where accelerate leaves it off, gather full state.

    accelerate launch --config_file recipes/accelerate/fsdp.yaml -m reasonkd distill RECIPE ...
    reasonkd distill RECIPE --accelerate-config recipes/accelerate/fsdp.yaml

The trainer calls `prepare_fsdp(acc, student)` before `acc.prepare` and, when `is_fsdp(acc)`, uses
`full_trainable_state` / `full_optimizer_state` / `load_full_state` for checkpoints and
`gathered_student` at the end of a stage. What is sharded: the student (one FSDP2 unit per decoder
layer, auto-wrapped by the model's own decoder-layer class, plus a root unit holding embeddings,
final norm, lm_head and projectors). The teacher is replicated: frozen, under no_grad, never prepared.

Checkpoints hold FULL (gathered) tensors in the same layout as a DDP / single-process checkpoint
(trainable.safetensors by parameter name, optimizer.pt by parameter index), so a stage can resume on
another process count, with or without FSDP.
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger(__name__)


def _fsdp_requested() -> bool:
    return os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true"


def is_fsdp(acc) -> bool:
    from accelerate.utils import DistributedType

    return acc.distributed_type == DistributedType.FSDP


def prepare_fsdp(acc, student) -> None:
    """Before `acc.prepare`: enable FSDP2 on CPU processes and wrap by the student's decoder layer.

    accelerate 1.15 turns an FSDP launch config into FSDP only on accelerator devices; without one it
    silently falls back to DDP over gloo. torch's FSDP2 (fully_shard) runs on CPU/gloo, which is how
    the FSDP path is tested on machines without a GPU, so the state is promoted here.
    """
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if not _fsdp_requested():
        return
    state = acc.state
    if state.distributed_type == DistributedType.MULTI_CPU:
        plugin = FullyShardedDataParallelPlugin()  # reads the FSDP_* variables `accelerate launch` set
        if plugin.fsdp_version != 2:
            from reasonkd.errors import ConfigError

            raise ConfigError("FSDP on CPU processes needs fsdp_version: 2 in the accelerate config")
        from accelerate.state import PartialState

        state.distributed_type = DistributedType.FSDP
        state.fsdp_plugin = plugin
        PartialState._shared_state["distributed_type"] = DistributedType.FSDP  # as accelerate does on GPUs
        if acc.is_main_process:
            log.warning("FSDP2 on CPU processes (gloo): for testing the sharded path; DDP is faster on CPU")
    if not is_fsdp(acc):
        return
    if hasattr(student, "peft_config"):
        from reasonkd.errors import ConfigError

        raise ConfigError(
            "lora.enabled: LoRA under FSDP is not supported; use recipes/accelerate/ddp.yaml "
            "(adapters are small: DDP replicates them cheaply)"
        )
    plugin = state.fsdp_plugin
    names = [n for n in (plugin.transformer_cls_names_to_wrap or []) if n]
    if not names:  # auto-wrap by decoder layer: the model says which class that is
        base = getattr(student, "get_base_model", lambda: student)()
        plugin.transformer_cls_names_to_wrap = list(getattr(base, "_no_split_modules", None) or [])
    else:
        plugin.transformer_cls_names_to_wrap = names


def trainable_names(module) -> list[str]:
    """Names of the trainable parameters in optimizer order (the trainer builds the optimizer this way)."""
    return [n for n, p in module.named_parameters() if p.requires_grad]


def full_trainable_state(module) -> dict:
    """{name: full tensor} of the trainable parameters on the main process ({} elsewhere); collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    names = trainable_names(module)
    return {n: full[n].detach().clone() for n in names if n in full}  # own storage: safetensors needs it


def full_optimizer_state(module, optimizer) -> dict:
    """The optimizer's full state in torch's ordinary layout (keys = parameter index); collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    fqn = get_optimizer_state_dict(module, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not fqn:
        return {}
    index = {n: i for i, n in enumerate(trainable_names(module))}
    groups = [{**g, "params": [index[n] for n in g["params"]]} for g in fqn["param_groups"]]
    return {"state": {index[n]: s for n, s in fqn["state"].items()}, "param_groups": groups}


def load_full_state(module, optimizer, weights: dict, optim_state: dict) -> None:
    """Load a full checkpoint (any process count) into the sharded module and optimizer; collective."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_state_dict

    names = trainable_names(module)
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in optim_state["param_groups"]]
    fqn = {"state": {names[i]: s for i, s in optim_state["state"].items()}, "param_groups": groups}
    set_state_dict(
        module,
        optimizer,
        model_state_dict=weights,
        optim_state_dict=fqn,
        options=StateDictOptions(full_state_dict=True, strict=False),
    )


def gathered_student(module, init_from: str, is_main: bool):
    """(student, projector_state) with full weights on the main process, (None, None) elsewhere; collective.

    The trained weights are gathered into a fresh copy of the stage's starting model, so what is saved
    is an ordinary transformers model.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    full = get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not is_main:
        return None, None
    from reasonkd.models import load_model

    student, _ = load_model(str(init_from), dtype="float32", device="cpu")
    weights = {k[len("model.") :]: v for k, v in full.items() if k.startswith("model.")}
    student.load_state_dict(weights, strict=False)
    projector = {k[len("projector.") :]: v.contiguous() for k, v in full.items() if k.startswith("projector.")}
    return student, (projector or None)
