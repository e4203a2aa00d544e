"""`reasonkd` subcommands of reasonkd.distill (filled in by its issue)."""

from __future__ import annotations


def register(sub) -> None:
    """Add this package's subcommands to the top-level parser."""
