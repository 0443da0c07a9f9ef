"""Errors of the demonstration."""

from __future__ import annotations

__all__ = ["DemoError"]


class DemoError(Exception):
    """A step of ``soi demo`` failed; the message says which and why."""
