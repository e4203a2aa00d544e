"""A 2-process `accelerate launch` run of a tiny recipe (DDP over gloo on CPU).

accelerate 1.15's `--cpu --num_processes 2` starts ONE process unless an mpirun hostfile is given;
`--multi_gpu --num_processes 2` starts two through torchrun and, with no GPU, the Accelerator runs
MULTI_CPU with gloo. This test checks that two ranks really trained together.
"""

import os
import subprocess
import sys

import pytest
import torch

from _tiny_distill import SUBPROCESS_ENV, build_pair, metric_rows, summary, write_recipe, write_traces


@pytest.mark.timeout(180)
def test_accelerate_launch_two_processes(tmp_path):
    teacher, student = build_pair(tmp_path)
    data = write_traces(tmp_path / "traces.jsonl")
    out = tmp_path / "run"
    recipe = write_recipe(tmp_path / "r.yaml", teacher, student, data, out, steps=3, save_every=2)
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    cmd = [
        accelerate,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "bf16",
        "--dynamo_backend",
        "no",
        "--num_cpu_threads_per_process",
        "1",
        "--main_process_port",
        "29517",
        "-m",
        "reasonkd.cli",
        "distill",
        str(recipe),
        "bf16_autocast=true",
        "--quiet",
    ]
    env = {**os.environ, **SUBPROCESS_ENV, "REASONKD_HOME": str(tmp_path / "home")}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=170)
    assert done.returncode == 0, done.stderr[-4000:]
    s = summary(out)
    assert s["total"]["world_size"] == 2 and s["total"]["steps"] == 9
    for stage in ("1-feature", "2-logic", "3-output"):
        rows = metric_rows(out, stage)
        # one process holds at most batch 4 x 96 tokens: more means both ranks' batches were counted
        assert len(rows) == 3 and all(r["tokens"] > 4 * 96 for r in rows)
        ckpt = next((out / "stages" / stage / "checkpoints").glob("step-*"))
        assert {p.name for p in ckpt.glob("rng-*.pt")} == {"rng-0.pt", "rng-1.pt"}
    from transformers import AutoModelForCausalLM

    # full fine-tuning under DDP: the tied lm_head/embedding, applied outside the DDP forward to the
    # trace rows, still receives (all-reduced) gradients
    model = AutoModelForCausalLM.from_pretrained(out / "final")
    first = AutoModelForCausalLM.from_pretrained(student)
    assert not torch.equal(model.model.embed_tokens.weight, first.model.embed_tokens.weight)
