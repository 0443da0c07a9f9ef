"""Reading a release's CSV files with precise errors."""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from training.datasets.errors import DatasetLayoutError, MissingColumnError

__all__ = ["read_table", "require_file"]


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise naming it and what it should hold."""
    if not path.is_file():
        raise DatasetLayoutError(f"{what} not found: {path} does not exist or is not a file")
    return path


def read_table(path: Path, required: Iterable[str], *, what: str) -> list[dict[str, str]]:
    """Read a CSV file with a header row into one dict per row.

    Raises
    ------
    DatasetLayoutError
        When the file is missing.
    MissingColumnError
        When the header lacks one of the ``required`` columns (the first missing one
        is named).
    """
    require_file(path, what)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or ()]
        for column in required:
            if column not in header:
                raise MissingColumnError(path, column)
        reader.fieldnames = header
        return [{k: (v or "").strip() for k, v in row.items() if k is not None} for row in reader]
