"""Errors of chest X-ray training, export and registration."""

from __future__ import annotations

__all__ = ["CxrTrainingError", "ParityError"]


class CxrTrainingError(Exception):
    """Base of the errors raised by :mod:`training.cxr`."""


class ParityError(CxrTrainingError):
    """The exported ONNX model does not reproduce the PyTorch model's outputs."""
