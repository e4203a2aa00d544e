"""Does the exported model behave like the PyTorch one? Greedy-token parity and held-out math accuracy.

    from reasonkd.export.parity import token_parity, math_accuracy, held_out_examples
    rep = token_parity(torch_model, exported_model, tok)          # fp32: rep["identical"] must be True
    ex = held_out_examples(None)                                  # 20 fixed GSM8K-style problems
    acc = math_accuracy(exported_model, tok, ex)                  # {"correct", "n", "accuracy", ...}

fp32 exports compute the same function as PyTorch, so their greedy tokens must
match exactly on a few short prompts (run at batch 1, no padding). INT8 exports
are a different function: they are judged by accuracy on held-out math problems
(prompted and graded like `reasonkd eval --tasks gsm8k`), next to the fp32 model.
"""

from __future__ import annotations

import torch

from reasonkd.eval.metrics import paired_diff_ci
from reasonkd.eval.tasks import get_task
from reasonkd.models.generation import apply_chat, generate_batch

PROMPTS = [
    "A farmer has 12 chickens and 7 rabbits. How many legs are there in total?",
    "Solve step by step: 48 - 8 = ?",
    "Write a Python function that returns the sum of a list.",
    "The answer is",
]
"""Fixed parity prompts (chat-formatted per model before use): short, mixed domains."""

DEFAULT_PROBLEMS = [
    ("Tom has 5 apples and buys 7 more. How many apples does he have now?", 12),
    ("A box holds 6 pens. How many pens are in 4 boxes?", 24),
    ("Sara had 30 stickers and gave 12 to her friend. How many stickers does she have left?", 18),
    ("A book costs $8. How much do 3 books cost in dollars?", 24),
    ("There are 24 students split evenly into 4 groups. How many students are in each group?", 6),
    ("Mia reads 15 pages a day. How many pages does she read in 6 days?", 90),
    ("A train travels 60 km each hour. How far does it travel in 3 hours, in km?", 180),
    ("Jake has 9 marbles. His sister has twice as many. How many marbles do they have together?", 27),
    ("A shop sold 45 cakes on Monday and 38 on Tuesday. How many cakes did it sell in the two days?", 83),
    ("Anna has $50. She spends $18 on a shirt and $7 on lunch. How many dollars does she have left?", 25),
    ("A garden has 8 rows of 9 flowers. How many flowers are in the garden?", 72),
    ("Ben is 7 years old. His father is 5 times as old. How old is his father?", 35),
    ("A baker makes 120 cookies and packs them in bags of 10. How many bags does he fill?", 12),
    ("Lily had 14 balloons. 5 popped and she bought 9 more. How many balloons does she have now?", 18),
    ("A car park has 3 floors with 40 spaces each. 57 spaces are taken. How many spaces are free?", 63),
    ("Each ticket costs $12. A family buys 4 tickets and pays with $60. How much change do they get?", 12),
    ("A tank holds 200 litres. It is filled at 25 litres per minute. How many minutes does it take to fill?", 8),
    ("Sam runs 3 km every morning and 2 km every evening. How many km does he run in 5 days?", 25),
    ("A pack of 6 juice boxes costs $9. How much does one juice box cost in dollars?", 1.5),
    ("Emma has 3 times as many stamps as Leo. Leo has 16 stamps. How many more stamps does Emma have than Leo?", 32),
]
"""Default held-out math set for the INT8 accuracy check (no data needed; pass --parity-data for a real one)."""


def _chat(tok, texts: list[str]) -> list[str]:
    return [apply_chat(tok, t) for t in texts]


@torch.inference_mode()
def greedy_tokens(model, tok, prompts: list[str], new_tokens: int = 24) -> list[list[int]]:
    """Exactly `new_tokens` greedy token ids per chat-formatted prompt, one prompt at a time."""
    out = []
    for p in prompts:
        enc = tok(p, add_special_tokens=False, return_tensors="pt", return_token_type_ids=False)
        # min_new_tokens masks EOS identically on both sides, so every prompt compares `new_tokens` positions
        ids = model.generate(
            **enc,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tok.pad_token_id,
        )
        out.append(ids[0, enc["input_ids"].shape[1] :].tolist())
    return out


def token_parity(ref_model, model, tok, prompts: list[str] | None = None, new_tokens: int = 24) -> dict:
    """Compare greedy tokens of `model` with `ref_model` (PyTorch) on the fixed prompts."""
    chats = _chat(tok, prompts or PROMPTS)
    ref, got = greedy_tokens(ref_model, tok, chats, new_tokens), greedy_tokens(model, tok, chats, new_tokens)
    matching = sum(a == b for a, b in zip(ref, got))
    report = {
        "prompts": len(chats),
        "new_tokens": new_tokens,
        "identical_prompts": matching,
        "identical": matching == len(chats),
    }
    for i, (a, b) in enumerate(zip(ref, got)):
        if a != b:
            pos = next(j for j, (x, y) in enumerate(zip(a, b)) if x != y)
            report["first_mismatch"] = {
                "prompt": i,
                "position": pos,
                "torch": tok.decode(a[: pos + 1]),
                "exported": tok.decode(b[: pos + 1]),
            }
            break
    return report


def held_out_examples(parity_data: str | None = None, limit: int | None = None) -> list[dict]:
    """Math examples as the gsm8k task yields them: {idx, id, domain, question, reference}.

    `parity_data`: GSM8K JSONL, a reasonkd dataset JSONL, or a data-engine folder (its test split);
    None: DEFAULT_PROBLEMS.
    """
    if parity_data:
        return get_task("gsm8k", data=str(parity_data), limit=limit).examples()
    rows = DEFAULT_PROBLEMS[:limit] if limit else DEFAULT_PROBLEMS
    return [
        {"idx": i, "id": f"export-{i}", "domain": "math", "question": q, "reference": str(a)}
        for i, (q, a) in enumerate(rows)
    ]


def math_accuracy(
    model,
    tok,
    examples: list[dict],
    max_new_tokens: int = 160,
    batch_size: int = 8,
    progress: bool = False,
    template: str | None = None,
) -> dict:
    """Greedy accuracy on `examples`, prompted and graded by the gsm8k task (verify_math).

    `template`: a prompt-template YAML as `reasonkd eval --template` takes (e.g. a demo run's
    prompt.yaml, the prompt its student was trained on); None: the gsm8k task's own prompt.
    """
    task = get_task("gsm8k", template=template)
    prompts = [apply_chat(tok, task.prompt(e), task.system()) for e in examples]
    stats: dict = {}
    outs = generate_batch(
        model,
        tok,
        prompts,
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        progress=progress,
        desc="accuracy",
        stats=stats,
    )
    verdicts = [bool(task.score(e, o.text)["verdict"]) for e, o in zip(examples, outs)]
    n = len(examples)
    return {
        "correct": sum(verdicts),
        "n": n,
        "accuracy": sum(verdicts) / n if n else float("nan"),
        "verdicts": verdicts,
        "texts": [o.text for o in outs],
        "new_tokens": stats.get("new_tokens"),
        "seconds": stats.get("seconds"),
        "max_new_tokens": max_new_tokens,
    }


def int8_check(
    ref_model,
    model,
    tok,
    examples: list[dict],
    max_new_tokens: int = 160,
    batch_size: int = 8,
    progress: bool = False,
    template: str | None = None,
) -> dict:
    """Accuracy of the INT8 export next to the fp32 PyTorch model, and how often their answers agree."""
    ref = math_accuracy(ref_model, tok, examples, max_new_tokens, batch_size, progress, template)
    got = math_accuracy(model, tok, examples, max_new_tokens, batch_size, progress, template)
    # paired over the same problems: only the ones where the two disagree carry information
    ci = paired_diff_ci(ref["verdicts"], got["verdicts"])
    return {
        "n": got["n"],
        "max_new_tokens": max_new_tokens,
        "torch_fp32_correct": ref["correct"],
        "int8_correct": got["correct"],
        "torch_fp32_accuracy": ref["accuracy"],
        "int8_accuracy": got["accuracy"],
        "drop_points": 100 * (ref["accuracy"] - got["accuracy"]),
        "same_completion": sum(a == b for a, b in zip(ref["texts"], got["texts"])),
        "same_verdict": sum(a == b for a, b in zip(ref["verdicts"], got["verdicts"])),
        "drop_ci95_points": [100 * ci["lo"], 100 * ci["hi"]],
        "drop_p_value": ci["p_value"],
        "fp32_only_correct": ci["a_only"],
        "int8_only_correct": ci["b_only"],
    }
