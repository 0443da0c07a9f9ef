"""What the DICOM documents of a result share: derived UIDs, LO values, the source images."""

from __future__ import annotations

import pydicom
from pydicom import Dataset
from pydicom.uid import generate_uid

from reports.context import ImageInfo, ReportContext

__all__ = ["document_uid", "long_string", "read_source"]


def document_uid(context: ReportContext, kind: str, *parts: str) -> str:
    """A UID that depends only on the study, the result, the document kind and ``parts``.

    Building the same document again gives the same UID, so a resend stores the same
    instance rather than a copy.
    """
    sources = [context.study.study_instance_uid, str(context.result_id), kind, *parts]
    return str(generate_uid(entropy_srcs=sources))


def long_string(value: str) -> str:
    """``value`` cut to the 64 bytes of a DICOM LO (UTF-8, whole characters)."""
    return value.encode("utf-8")[:64].decode("utf-8", errors="ignore")


def read_source(context: ReportContext, image: ImageInfo) -> Dataset:
    """A source image's attributes (no pixels), checked to be that image of that study.

    Raises
    ------
    ValueError
        When the file holds another instance or belongs to another study.
    """
    source = pydicom.dcmread(image.path, stop_before_pixels=True)
    if str(source.get("SOPInstanceUID", "")) != image.sop_instance_uid:
        raise ValueError(
            f"{image.path} holds SOP Instance UID {source.get('SOPInstanceUID')}, "
            f"not {image.sop_instance_uid}"
        )
    study_uid = str(source.get("StudyInstanceUID", ""))
    if study_uid != context.study.study_instance_uid:
        raise ValueError(
            f"{image.path} belongs to study {study_uid or '(none)'}, "
            f"not {context.study.study_instance_uid}"
        )
    return source
