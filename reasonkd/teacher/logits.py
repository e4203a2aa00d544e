"""`reasonkd teacher logits`: the teacher's top-k log-probs along its accepted traces (soft targets).

    reasonkd teacher logits --teacher qwen2.5-coder-0.5b --traces runs/traces --out runs/logits --k 20

The storage format, the tokenizer hash that makes a mismatched student refuse
the cache and the reader belong to `reasonkd.models.logit_cache`, writing and
resuming to `reasonkd.models.logit_writer`;
traces are read with `reasonkd.teacher.traces.load_traces`, so entry ids
(`id#sample_idx`) and encodings are exactly the ones the trainer looks up.
"""

from __future__ import annotations

from pathlib import Path

from reasonkd.errors import ReasonkdError
from reasonkd.models import load_model
from reasonkd.models.logit_writer import write_logit_cache
from reasonkd.teacher.backends import auto_dtype
from reasonkd.teacher.traces import load_traces


def teacher_logits(
    teacher: str,
    traces: str | Path,
    out: str | Path,
    *,
    k: int = 20,
    batch_size: int = 8,
    dtype: str = "auto",
    device: str = "cpu",
    limit: int | None = None,
    max_length: int | None = None,
    progress: bool = True,
    cache_dtype: str = "float16",
) -> Path:
    """Score the accepted traces with `teacher` and write the top-k cache to `out`; returns `out`."""
    if k < 1:
        raise ReasonkdError(f"--k must be >= 1, got {k}")
    if batch_size < 1:
        raise ReasonkdError(f"--batch-size must be >= 1, got {batch_size}")
    examples = load_traces(traces, limit)
    model, tok = load_model(teacher, dtype=auto_dtype(device) if dtype == "auto" else dtype, device=device)
    return Path(
        write_logit_cache(
            model,
            tok,
            examples,
            out,
            k=k,
            batch_size=batch_size,
            max_length=max_length,
            teacher_id=teacher,
            progress=progress,
            dtype=cache_dtype,
        )
    )
