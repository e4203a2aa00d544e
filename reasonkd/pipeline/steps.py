"""Resumable step runner for multi-step pipelines.

A pipeline is a list of named steps; each writes its outputs under the run
folder and is marked done in `state.json` (atomically) only after it returns.
A rerun skips finished steps; an interrupted step is rerun (and the steps
themselves resume their own partial work where they can: teacher shards,
training checkpoints). `state.json` also records each step's wall time, which
the ETA printed at start and BENCHMARKS.md use.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from reasonkd.errors import ReasonkdError
from reasonkd.utils.child import run_in_child
from reasonkd.utils.io import write_json


@dataclass
class Step:
    name: str
    fn: Callable[[], object]
    eta_s: float
    """estimated seconds on the current machine (for the ETA printed at start)"""
    title: str = ""
    heavy: bool = False
    """Runs in a child process of its own when the runner isolates (`fn` must then pickle:
    functools.partial of a module-level function)."""


class StepRunner:
    def __init__(self, run_dir: Path, fingerprint: dict, defaults: dict | None = None, isolate: bool = False):
        """`defaults`: the fingerprint of the default config. A key that a run's recorded fingerprint
        lacks (added to the config after that run) counts as its default there, since a new key's
        default keeps the behaviour from before it existed. `isolate`: heavy steps run in a child process
        each (reasonkd/utils/child.py), which hands its memory back when the step ends."""
        self.isolate = isolate
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.run_dir / "state.json"
        self.state = json.loads(self.path.read_text()) if self.path.is_file() else {}
        # a changed config invalidates nothing automatically: we refuse, so results never mix
        old = self.state.get("fingerprint")
        if old is not None and defaults:
            old = {**{k: v for k, v in defaults.items() if k not in old}, **old}
        if old is not None and old != fingerprint:
            changed = sorted(k for k in set(old) | set(fingerprint) if old.get(k) != fingerprint.get(k))
            raise ReasonkdError(
                f"{self.run_dir} holds a run with different settings ({', '.join(changed)}); "
                f"use another --out folder or delete it to start over"
            )
        self.state["fingerprint"] = fingerprint
        self.state.setdefault("steps", {})
        self._save()

    def _save(self) -> None:
        write_json(self.path, self.state)

    def done(self, name: str) -> bool:
        return self.state["steps"].get(name, {}).get("done", False)

    def result(self, name: str):
        return self.state["steps"].get(name, {}).get("result")

    def eta(self, steps: list[Step]) -> float:
        return sum(s.eta_s for s in steps if not self.done(s.name))

    def run(self, steps: list[Step], log=print) -> dict:
        total = len(steps)
        for i, s in enumerate(steps, 1):
            if self.done(s.name):
                log(
                    f"[{i}/{total}] {s.title or s.name}: done earlier ({self.state['steps'][s.name]['seconds']:.0f} s), skipped"
                )
                continue
            log(f"[{i}/{total}] {s.title or s.name} (about {s.eta_s / 60:.1f} min) ...")
            t = time.perf_counter()
            result = run_in_child(s.title or s.name, s.fn) if self.isolate and s.heavy else s.fn()
            dt = time.perf_counter() - t
            self.state["steps"][s.name] = {
                "done": True,
                "seconds": round(dt, 1),
                "result": result,
                "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
            }
            self._save()
            log(f"[{i}/{total}] {s.title or s.name}: finished in {dt / 60:.1f} min")
        return self.state
