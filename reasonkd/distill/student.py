"""The student a stage trains: loading (full or LoRA), what a stage saves, and merging it back.

model = load_student(recipe, init_from, seed)      # fp32; LoRA adapters + bf16 frozen base if enabled
trained = trained_student(model)                   # the model, or {"adapters", "config"} for LoRA
plain = merged_student(trained, init_from)         # adapters merged into the fp32 weights from disk
"""

from __future__ import annotations

import torch
from peft import LoraConfig, get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer

from reasonkd.distill.forward import hf_model
from reasonkd.distill.recipe import DistillRecipe
from reasonkd.models import load_model


def load_student(recipe: DistillRecipe, init_from: str, seed: int):
    """The stage's trainable student from `init_from`: fp32, LoRA-wrapped and checkpointed as the recipe says."""
    model, _ = load_model(str(init_from), dtype="float32", device="cpu")
    model.config.use_cache = False
    r = recipe
    if r.lora.enabled:
        torch.manual_seed(seed)
        model = get_peft_model(
            model,
            LoraConfig(
                r=r.lora.r,
                lora_alpha=r.lora.alpha,
                lora_dropout=r.lora.dropout,
                target_modules=list(r.lora.target_modules),
                task_type="CAUSAL_LM",
            ),
        )
        if r.bf16_autocast:
            bf16_frozen_base(model)
    if r.gradient_checkpointing:
        hf_model(model).gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if r.lora.enabled:
            model.enable_input_require_grads()
    model.train()
    return model


def bf16_frozen_base(model) -> None:
    """Store the frozen base linears under LoRA adapters in bf16.

    Autocast rounds them to bf16 for every matmul anyway, so forward and backward compute exactly
    the same numbers; what goes away is the fp32 copy of each frozen weight and the bf16 cast that
    autocast would make (and keep for backward) at every step. Embeddings, norms and the adapters
    stay fp32; the stage end merges the adapters into fp32 weights reloaded from disk (`merged_student`).
    """
    for module in model.modules():
        if isinstance(module, LoraLayer):
            module.get_base_layer().to(torch.bfloat16)
    # transformers memory-maps an fp32 checkpoint and the fp32 tensors left (embeddings, norms) are
    # views of that mapping, which keeps every page the conversion touched resident (~the whole file);
    # owning copies let it be unmapped
    with torch.no_grad():
        for p in model.parameters():
            if p.dtype == torch.float32:
                p.data = p.data.clone()


def trained_student(student):
    """What a stage saves: the model itself (full fine-tuning) or, for LoRA, its adapters and config."""
    if not hasattr(student, "peft_config"):
        return student
    return {
        "adapters": {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(student).items()},
        "config": student.peft_config["default"],
    }


def merged_student(trained, init_from: str):
    """The stage's student as a plain model: LoRA adapters merged into the fp32 weights from disk."""
    if not isinstance(trained, dict):
        return trained
    base, _ = load_model(str(init_from), dtype="float32", device="cpu")  # the exact fp32 weights we started from
    fresh = get_peft_model(base, trained["config"])
    set_peft_model_state_dict(fresh, trained["adapters"])
    return fresh.merge_and_unload()
