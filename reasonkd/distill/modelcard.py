"""The README.md model card written into output_dir/final by `reasonkd distill`.

    write_model_card(final_dir / "README.md", recipe, summary)

It names the teacher, the student it started from, the data, every stage with
its losses and schedule, and the final metrics, so a folder found later says
how it was made. Loading needs nothing from reasonkd.
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.utils.io import atomic_write, sha256_file


def _fmt(x, digits: int = 4) -> str:
    return "-" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def _data_line(recipe) -> str:
    p = Path(recipe.data.path)
    f = p / "traces.jsonl" if p.is_dir() else p
    digest = sha256_file(f)[:16] if f.is_file() else "?"
    cache = f"; soft targets from the logit cache `{recipe.data.logit_cache}`" if recipe.data.logit_cache else ""
    return f"`{recipe.data.path}` (sha256 {digest}…){cache}"


def write_model_card(path: str | Path, recipe, summary: dict) -> None:
    """Write the model card for a finished run (`summary` as in output_dir/summary.json)."""
    lora = (
        f"LoRA r={recipe.lora.r}, alpha={recipe.lora.alpha} on {', '.join(recipe.lora.target_modules)}, "
        "merged into the weights"
        if recipe.lora.enabled
        else "full fine-tuning"
    )
    lines = [
        "---",
        "library_name: transformers",
        "tags: [reasonkd, knowledge-distillation, reasoning]",
        "---",
        "",
        f"# Student distilled from `{recipe.teacher or '(cached teacher logits)'}`",
        "",
        f"- Student initialised from: `{recipe.student}`",
        f"- Teacher: `{recipe.teacher or '-'}`",
        f"- Data: {_data_line(recipe)}, {summary.get('n_examples', '?')} traces, max_length {recipe.max_length}",
        f"- Training: {lora}; fp32 weights{' with bf16 autocast' if recipe.bf16_autocast else ''}; "
        f"batch {recipe.batch_size} x {recipe.grad_accum} accumulation x {summary['total']['world_size']} "
        f"process(es); seed {recipe.seed}",
        "",
        "## Stages",
        "",
        "| # | stage | kind | steps | lr | temperature | losses (weight) | first loss | final loss |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for st, s in zip(recipe.stages, summary["stages"]):
        t = st.temperature
        temp = f"{t.kind} {t.start:g}" + (f" -> {t.end:g}" if t.end != t.start else "")
        losses = ", ".join(f"{x.name} ({x.weight:g})" + (f" {x.options}" if x.options else "") for x in st.losses)
        lines.append(
            f"| {s.get('index', '')} | {st.name} | {st.kind} | {s['steps']} | {st.lr:g} | {temp} | {losses} "
            f"| {_fmt(s.get('first_loss'))} | {_fmt(s.get('final_loss'))} |"
        )
    final = summary["stages"][-1]
    terms = ", ".join(f"{k} {_fmt(v)}" for k, v in (final.get("final_terms") or {}).items())
    lines += [
        "",
        "## Final metrics",
        "",
        f"- Final training loss: {_fmt(summary['total'].get('final_loss'))} ({terms})",
        f"- Total optimizer steps: {summary['total']['steps']}, tokens: {summary['total']['tokens']}",
        "",
        "Feature projectors were used only during training and are not part of this model.",
        "",
        "## Use",
        "",
        "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        "model = AutoModelForCausalLM.from_pretrained(PATH)",
        "tok = AutoTokenizer.from_pretrained(PATH)",
        "```",
        "",
        "Made with `reasonkd distill`; the full recipe is in `distill_config.yaml`.",
        "",
    ]
    with atomic_write(path) as f:
        f.write("\n".join(lines))
