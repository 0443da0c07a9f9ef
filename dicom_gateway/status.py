"""Status codes Soi answers a store with: DIMSE C-STORE statuses, which are also the
STOW-RS Failure Reasons.

References
----------
DICOM PS3.4 Annex B.2.3 (Storage Service Class statuses), PS3.7 Annex C (status
type encoding, general statuses) and PS3.18 section I.2.2 (Store Instances Response
Failure Reason values).
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
    #: Refused: not authorized: the study, series or instance belongs to another facility.
    NOT_AUTHORIZED = 0x0124
    #: Error: referenced transfer syntax not supported (STOW-RS, PS3.18 Table I.2-2).
    TRANSFER_SYNTAX_NOT_SUPPORTED = 0xC122
    #: Error: cannot understand: the instance is not of the study the STOW-RS request names.
    STUDY_INSTANCE_UID_MISMATCH = 0xC409
