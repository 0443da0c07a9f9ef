"""Soi: the composition root — settings, CLI, HTTP API, process wiring."""

__version__ = "0.1.0"

__all__ = ["__version__"]
