"""Errors raised by the model registry and manifests."""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "ArtifactChecksumError",
    "ManifestError",
    "ModelError",
    "UnknownModelError",
    "UnknownVersionError",
    "VersionExistsError",
]


class ModelError(Exception):
    """Base class of every error the :mod:`models` package raises."""


class ManifestError(ModelError):
    """A model manifest is missing, unreadable or invalid.

    Parameters
    ----------
    path:
        The manifest file (``None`` for a manifest built in memory).
    field:
        Dotted location of the offending field (``""`` for the whole document).
    value:
        The offending value, as found.
    reason:
        What is wrong with it.
    """

    def __init__(self, *, path: Path | None, field: str, value: object, reason: str) -> None:
        where = str(path) if path is not None else "<manifest>"
        if field:
            message = f"{where}: field {field!r} = {value!r}: {reason}"
        else:
            message = f"{where}: {reason}"
        super().__init__(message)
        self.path = path
        self.field = field
        self.value = value
        self.reason = reason


class ArtifactChecksumError(ModelError):
    """An artifact file does not match the size or SHA-256 its manifest records."""

    def __init__(self, *, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"artifact {path} does not match its manifest: expected sha256 {expected}, "
            f"found {actual}; refusing to load a changed model file"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


class UnknownModelError(ModelError, LookupError):
    """No model of this name is in the registry."""

    def __init__(self, name: str, *, root: Path, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(f"unknown model {name!r} in registry {root} (known models: {listed})")
        self.name = name


class UnknownVersionError(ModelError, LookupError):
    """The model exists but not in the requested version."""

    def __init__(self, name: str, version: str, *, known: list[str]) -> None:
        listed = ", ".join(known) if known else "none"
        super().__init__(f"model {name!r} has no version {version!r} (known versions: {listed})")
        self.name = name
        self.version = version


class VersionExistsError(ModelError):
    """A version is already registered; registered versions are never overwritten."""

    def __init__(self, name: str, version: str, *, path: Path) -> None:
        super().__init__(
            f"model {name!r} version {version!r} is already registered at {path}; "
            "register a new version instead of overwriting"
        )
        self.name = name
        self.version = version
