"""The ``soi`` command."""

from soi.cli.main import app, main

__all__ = ["app", "main"]
