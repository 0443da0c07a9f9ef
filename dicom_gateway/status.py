"""DIMSE status codes Soi answers with.

References
----------
DICOM PS3.4 Annex B.2.3 (Storage Service Class statuses) and PS3.7 Annex C
(status type encoding).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["StoreStatus"]


class StoreStatus(IntEnum):
    """Statuses of a C-STORE response."""

    SUCCESS = 0x0000
    #: Refused: out of resources (the free-space floor would be crossed).
    OUT_OF_RESOURCES = 0xA700
    #: Error: data set does not match SOP Class (required attribute or pixel data missing).
    DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
    #: Error: cannot understand: the data set cannot be decoded.
    CANNOT_DECODE = 0xC210
    #: Error: cannot understand: the data set disagrees with the C-STORE request.
    REQUEST_MISMATCH = 0xC211
    #: Error: cannot understand: a UID is not a valid DICOM UID.
    INVALID_UID = 0xC212
    #: Error: cannot understand: the data set is truncated.
    TRUNCATED = 0xC213
    #: Failure: processing failure (the index could not be written).
    PROCESSING_FAILURE = 0x0110
    #: Refused: SOP Class not supported (not on the accepted list).
    SOP_CLASS_NOT_SUPPORTED = 0x0122
