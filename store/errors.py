"""Errors raised by the store."""

from __future__ import annotations

__all__ = [
    "CredentialError",
    "DuplicateError",
    "FileStoreError",
    "ForeignStudyError",
    "InsufficientStorageError",
    "NotFoundError",
    "SignedReportImmutableError",
    "StaleReviewError",
    "StoreError",
]


class StoreError(Exception):
    """Base class of every error the store raises."""


class NotFoundError(StoreError):
    """A record that was asked for by its key does not exist."""


class DuplicateError(StoreError):
    """A record with the same unique key already exists."""


class FileStoreError(StoreError):
    """An instance file could not be written, read or removed."""


class ForeignStudyError(StoreError):
    """An instance names a study or series that another facility's study holds."""


class InsufficientStorageError(FileStoreError):
    """Free disk space is below the configured floor; nothing more can be kept."""


class StaleReviewError(StoreError):
    """A study's review changed since the reader loaded it (another save or signature),
    or the version the reader loaded is already signed."""


class SignedReportImmutableError(StoreError):
    """A signed report was about to be changed or removed; signed reports are kept as
    signed, and a correction is a new (amended) version."""


class CredentialError(StoreError):
    """An API token or browser session cannot be used.

    Parameters
    ----------
    reason:
        ``unknown`` (no such token or session), ``expired``, ``revoked`` or
        ``disabled`` (its user is disabled).
    message:
        What is wrong, for people.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
