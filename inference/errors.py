"""Errors raised by the inference engine."""

from __future__ import annotations

__all__ = ["InferenceError", "PixelDataError"]


class InferenceError(Exception):
    """Base class of every error the inference engine raises."""


class PixelDataError(InferenceError):
    """The pixel data of an instance cannot be turned into a model input.

    Parameters
    ----------
    reason:
        What was found and why it cannot be used, in English (also the message).
    reason_vi:
        The same in Vietnamese, for the people who sent the image.
    """

    def __init__(self, reason: str, reason_vi: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.reason_vi = reason_vi
