"""Errors raised by the dataset readers."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DatasetError", "DatasetFormatError", "DatasetLayoutError", "MissingColumnError"]


class DatasetError(Exception):
    """Base class of every error a dataset reader raises."""


class DatasetLayoutError(DatasetError):
    """A file or folder the release should contain is missing."""


class DatasetFormatError(DatasetError):
    """A file is there but a value in it cannot be read."""


class MissingColumnError(DatasetFormatError):
    """A CSV file lacks a column the reader needs.

    Parameters
    ----------
    path:
        The CSV file.
    column:
        The missing column, as the release names it.
    """

    def __init__(self, path: Path, column: str) -> None:
        super().__init__(f"{path} has no column {column!r}")
        self.path = path
        self.column = column
