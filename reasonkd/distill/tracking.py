"""Experiment tracking for distillation runs: TensorBoard, Trackio or W&B through accelerate's trackers.

    # recipe.yaml
    report_to: [tensorboard]          # or trackio / wandb, several at once
    reasonkd distill recipe.yaml report_to=[tensorboard,wandb]
    tensorboard --logdir runs/distill/tracking

Logged on the main process, per stage (tag prefix "<i>-<stage>/", x = the stage's optimizer step):
loss, every loss term (terms/<name>), temperature, lr, grad_norm, tokens/s, trace tokens; at the end of a
stage its summary (seconds, tok_s); `log_eval_table` logs an evaluation table (text + one scalar per
model and column) when an evaluation follows the run. Offline modes: TensorBoard writes
output_dir/tracking; W&B runs with WANDB_MODE=offline unless you set WANDB_MODE; Trackio is local
unless you give it a Space. trackio / wandb are optional: a missing one fails at the start with the
pip command.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from reasonkd.errors import ConfigError

log = logging.getLogger(__name__)
INSTALL = {"tensorboard": "pip install tensorboard", "trackio": "pip install trackio", "wandb": "pip install wandb"}


def _available(name: str) -> bool:
    from accelerate.utils import is_tensorboard_available, is_trackio_available, is_wandb_available

    return bool(
        {"tensorboard": is_tensorboard_available, "trackio": is_trackio_available, "wandb": is_wandb_available}[name]()
    )


class Tracking:
    """The recipe's trackers (none when report_to is empty or off the main process)."""

    def __init__(
        self,
        report_to: list[str],
        output_dir: str | Path,
        config: dict | None = None,
        main_process: bool = True,
        project: str = "reasonkd",
    ):
        self.trackers: list = []
        if not report_to or not main_process:
            return
        missing = [t for t in report_to if not _available(t)]
        if missing:
            raise ConfigError(
                f"report_to: {', '.join(missing)} not installed; "
                f"{' && '.join(INSTALL[t] for t in missing)} (or drop it from report_to)"
            )
        # accelerate's tracker classes are used directly (not Accelerator(log_with=...)) so the trainer's
        # one Accelerator per run stays as it is; they are the same objects init_trackers would build.
        from accelerate.tracking import LOGGER_TYPE_TO_CLASS

        self.logging_dir = Path(output_dir) / "tracking"
        for name in report_to:
            cls = LOGGER_TYPE_TO_CLASS[name]
            if name == "tensorboard":
                tracker = cls(project, str(self.logging_dir))
            elif name == "wandb":
                os.environ.setdefault("WANDB_MODE", "offline")
                tracker = cls(project, dir=str(self.logging_dir))
            else:
                tracker = cls(project)
            tracker.start()
            if config:
                try:
                    tracker.store_init_configuration(_flat(config))
                except Exception as e:  # a tracker that rejects a config value must not stop training
                    log.warning("%s: could not store the recipe (%s)", name, e)
            self.trackers.append(tracker)

    def log(self, values: dict, step: int) -> None:
        for t in self.trackers:
            t.log(values, step=step)

    def log_step(self, stage_tag: str, row: dict) -> None:
        """One metrics.jsonl row of stage `stage_tag` (e.g. '2-logic')."""
        if not self.trackers:
            return
        values = {
            f"{stage_tag}/{k}": float(row[k])
            for k in (
                "loss",
                "temperature",
                "lr",
                "grad_norm",
                "tok_s",
                "trace_tokens",
                "on_policy_share",
                "eos_rate",
                "mean_length",
            )
            if k in row
        }
        values.update({f"{stage_tag}/terms/{k}": float(v) for k, v in (row.get("terms") or {}).items()})
        self.log(values, step=int(row["step"]))

    def log_stage_end(self, stage_tag: str, summary: dict, step: int) -> None:
        values = {
            f"{stage_tag}/summary/{k}": float(summary[k])
            for k in ("seconds", "tok_s", "tokens", "final_loss")
            if isinstance(summary.get(k), (int, float))
        }
        if values:
            self.log(values, step=step)
        self.flush()

    def flush(self) -> None:
        for t in self.trackers:
            writer = getattr(t, "writer", None)
            if writer is not None:
                writer.flush()

    def finish(self) -> None:
        for t in self.trackers:
            t.finish()
        self.trackers = []


def log_eval_table(tracking: Tracking, rows: list[dict], step: int = 0, name: str = "eval") -> None:
    """An evaluation table (one dict per model, with a 'model' key) as markdown text + numeric scalars."""
    if not tracking.trackers or not rows:
        return
    cols = [k for k in rows[0] if k != "model"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    lines += [f"| {r.get('model')} | " + " | ".join(str(r.get(c, "")) for c in cols) + " |" for r in rows]
    values: dict = {f"{name}/table": "\n".join(lines)}
    for r in rows:
        for c in cols:
            if isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool):
                values[f"{name}/{r.get('model')}/{c}"] = float(r[c])
    tracking.log(values, step=step)
    tracking.flush()


def log_eval_to(report_to: list[str], output_dir: str | Path, rows: list[dict], step: int = 0) -> None:
    """Open the run's trackers again (same output_dir/tracking), log the eval table, close them."""
    if not report_to:
        return
    tracking = Tracking(report_to, output_dir)
    try:
        log_eval_table(tracking, rows, step)
    finally:
        tracking.finish()


def _flat(d: dict, prefix: str = "") -> dict:
    """Nested recipe -> {dotted.key: int | float | str | bool} (what every tracker's config accepts)."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        elif isinstance(v, (int, float, str, bool)):
            out[key] = v
        else:
            out[key] = str(v)
    return out
