"""Attributes of DICOMweb search results and the header reading that fills them.

References
----------
DICOM PS3.18 section 10.6.3.3 (Search response: Study, Series and Instance result
attributes, Tables 10.6.3-3 to 10.6.3-5) and Annex F.2 (DICOM JSON model).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydicom import Dataset, dcmread
from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.errors import InvalidDicomError

from dicom_gateway.dicomweb.errors import InvalidRequestError

__all__ = [
    "ALL_ATTRIBUTES",
    "LEVEL_ATTRIBUTES",
    "RESULT_ATTRIBUTES",
    "Level",
    "empty_element",
    "json_dataset",
    "read_header",
    "resolve_attribute",
]


class Level(StrEnum):
    """The query/retrieve level of a search."""

    STUDY = "study"
    SERIES = "series"
    INSTANCE = "instance"


#: Attributes every result of a level carries when they have a value.
RESULT_ATTRIBUTES: dict[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "SpecificCharacterSet",
        "StudyDate",
        "StudyTime",
        "AccessionNumber",
        "InstanceAvailability",
        "ModalitiesInStudy",
        "ReferringPhysicianName",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "PatientName",
        "PatientID",
        "PatientBirthDate",
        "PatientSex",
        "StudyInstanceUID",
        "StudyID",
        "NumberOfStudyRelatedSeries",
        "NumberOfStudyRelatedInstances",
    ),
    Level.SERIES: (
        "SpecificCharacterSet",
        "Modality",
        "TimezoneOffsetFromUTC",
        "SeriesDescription",
        "RetrieveURL",
        "SeriesInstanceUID",
        "SeriesNumber",
        "NumberOfSeriesRelatedInstances",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "RequestAttributesSequence",
    ),
    Level.INSTANCE: (
        "SpecificCharacterSet",
        "SOPClassUID",
        "SOPInstanceUID",
        "InstanceAvailability",
        "TimezoneOffsetFromUTC",
        "RetrieveURL",
        "InstanceNumber",
        "Rows",
        "Columns",
        "BitsAllocated",
        "NumberOfFrames",
    ),
}

#: What ``includefield=all`` adds at the study and series levels: the attributes of
#: the Patient, General Study and Patient Study modules, or of the General Series
#: module (PS3.3 C.7.1.1, C.7.2.1, C.7.2.2, C.7.3.1).
LEVEL_ATTRIBUTES: dict[Level, tuple[str, ...]] = {
    Level.STUDY: (
        "PatientName",
        "PatientID",
        "IssuerOfPatientID",
        "TypeOfPatientID",
        "OtherPatientIDsSequence",
        "PatientBirthDate",
        "PatientSex",
        "PatientAge",
        "PatientSize",
        "PatientWeight",
        "EthnicGroup",
        "StudyInstanceUID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
        "StudyID",
        "AccessionNumber",
        "IssuerOfAccessionNumberSequence",
        "StudyDescription",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "ProcedureCodeSequence",
        "AdmittingDiagnosesDescription",
        "InstitutionName",
    ),
    Level.SERIES: (
        "Modality",
        "SeriesInstanceUID",
        "SeriesNumber",
        "Laterality",
        "SeriesDate",
        "SeriesTime",
        "PerformingPhysicianName",
        "ProtocolName",
        "SeriesDescription",
        "OperatorsName",
        "BodyPartExamined",
        "PatientPosition",
        "Manufacturer",
        "ManufacturerModelName",
        "StationName",
        "PerformedProcedureStepStartDate",
        "PerformedProcedureStepStartTime",
        "RequestAttributesSequence",
    ),
    Level.INSTANCE: (),
}

#: ``includefield=all``.
ALL_ATTRIBUTES = "all"

_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_INLINE_BINARY_LIMIT = 1024
_PIXEL_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})


def resolve_attribute(name: str) -> tuple[int, str]:
    """Return the tag and keyword of an attribute named by keyword or 8-digit hex tag.

    Raises
    ------
    InvalidRequestError
        ``name`` is neither a keyword of the data dictionary nor a tag in it; a
        nested attribute (``A.B``) is refused too, as sequence matching is not
        supported.
    """
    text = name.strip()
    if "." in text:
        raise InvalidRequestError(
            f"{text[:80]!r}: nested attributes (sequence matching) are not supported"
        )
    if len(text) == 8 and all(c in "0123456789abcdefABCDEF" for c in text):
        tag = int(text, 16)
        keyword = keyword_for_tag(tag)
    else:
        found = tag_for_keyword(text) if text.isidentifier() else None
        tag, keyword = (found, text) if found is not None else (0, "")
    if not keyword:
        raise InvalidRequestError(
            f"{text[:80]!r} is neither a DICOM keyword nor a tag of the data dictionary"
        )
    return tag, keyword


def read_header(path: Path, keywords: Iterable[str] | None = None) -> Dataset:
    """Read the header of an instance file: ``keywords`` only, or all but pixel data.

    Raises
    ------
    OSError, InvalidDicomError
        The file cannot be read.
    """
    try:
        if keywords is None:
            return dcmread(path, stop_before_pixels=True, defer_size=_INLINE_BINARY_LIMIT)
        return dcmread(path, stop_before_pixels=True, specific_tags=list(keywords))
    except (EOFError, ValueError, KeyError, TypeError) as exc:
        raise InvalidDicomError(f"{path.name}: {exc}") from exc


def json_dataset(dataset: Dataset) -> dict[str, Any]:
    """``dataset`` in the DICOM JSON model, leaving out File Meta Information, pixel
    data and binary values over 1 KiB (which are not search results)."""
    left_out = [element.tag for element in dataset if _left_out(element)]
    kept = dataset
    if left_out:
        kept = Dataset()
        for element in dataset:
            if element.tag not in left_out:
                kept.add(element)
    result: dict[str, Any] = kept.to_json_dict(suppress_invalid_tags=True)
    return result


def _left_out(element: DataElement) -> bool:
    """Whether a search result leaves ``element`` out (see :func:`json_dataset`)."""
    tag = int(element.tag)
    if tag >> 16 == 0x0002 or tag in _PIXEL_TAGS:
        return True
    return element.VR in _BINARY_VRS and len(element.value or b"") > _INLINE_BINARY_LIMIT


def empty_element(dataset: Dataset, tag: int) -> None:
    """Add ``tag`` with no value, as a requested attribute the instance lacks."""
    if tag not in dataset:
        dataset.add_new(tag, dictionary_VR(tag), None)
