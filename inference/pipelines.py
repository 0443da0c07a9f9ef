"""The registry of pipelines this installation can run."""

from __future__ import annotations

__all__ = ["available_pipelines"]

_PIPELINES: dict[str, str] = {}


def available_pipelines() -> frozenset[str]:
    """Return the names of the pipelines this installation can run (none yet)."""
    return frozenset(_PIPELINES)
