"""Where reasonkd keeps its caches: one rule for every layer (models, engines, hardware figures, experiments)."""

from __future__ import annotations

import os
from pathlib import Path


def reasonkd_home() -> Path:
    """`$REASONKD_HOME`, else `$XDG_CACHE_HOME/reasonkd`, else `~/.cache/reasonkd`."""
    env = os.environ.get("REASONKD_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "reasonkd"
