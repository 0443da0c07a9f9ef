"""SOP classes and transfer syntaxes the gateway accepts."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom._uid_dict import UID_dictionary
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import register_uid
from pynetdicom.service_class import StorageServiceClass
from pynetdicom.sop_class import _STORAGE_CLASSES  # the standard's storage SOP classes

__all__ = [
    "PIPELINE_SOP_CLASSES",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "VERIFICATION_SOP_CLASS",
    "is_image_storage",
    "register_storage_classes",
    "resolve_sop_class",
    "resolve_sop_classes",
    "sop_class_name",
]

#: The Verification SOP Class (C-ECHO).
VERIFICATION_SOP_CLASS = UID("1.2.840.10008.1.1")

#: Transfer syntaxes accepted for every storage SOP class. Compressed pixel data is
#: decoded later through the pylibjpeg and GDCM plugins.
TRANSFER_SYNTAXES: tuple[UID, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    RLELossless,
)

_NOT_STORED_OVER_C_STORE = ("Commitment", "Media Storage Directory", "Print", "Hardcopy")


def _all_storage_sop_classes() -> tuple[UID, ...]:
    """The standard's storage SOP classes, current and retired.

    A hospital PACS forwards whole studies, old ones included: a retired class such as
    Ultrasound Image Storage (retired 1.2.840.10008.5.1.4.1.1.6) must not be refused.
    """
    uids = {str(uid) for uid in _STORAGE_CLASSES.values()}
    for uid, (name, kind, _info, _retired, _keyword) in UID_dictionary.items():
        if kind != "SOP Class" or "Storage" not in name:
            continue
        if any(word in name for word in _NOT_STORED_OVER_C_STORE):
            continue
        uids.add(uid)
    return tuple(UID(uid) for uid in sorted(uids, key=lambda u: [int(p) for p in u.split(".")]))


#: Every storage SOP class of the standard, current and retired (the default accepted list).
STORAGE_SOP_CLASSES: tuple[UID, ...] = _all_storage_sop_classes()

#: SOP classes that Soi's pipelines read (others are stored and marked not applicable).
PIPELINE_SOP_CLASSES: dict[str, str] = {
    "1.2.840.10008.5.1.4.1.1.1": "Computed Radiography Image Storage",
    "1.2.840.10008.5.1.4.1.1.1.1": "Digital X-Ray Image Storage - For Presentation",
    "1.2.840.10008.5.1.4.1.1.1.1.1": "Digital X-Ray Image Storage - For Processing",
    "1.2.840.10008.5.1.4.1.1.2": "CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.2.1": "Enhanced CT Image Storage",
    "1.2.840.10008.5.1.4.1.1.7": "Secondary Capture Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.1": "Ophthalmic Photography 8 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.5.2": "Ophthalmic Photography 16 Bit Image Storage",
    "1.2.840.10008.5.1.4.1.1.77.1.4": "VL Photographic Image Storage",
}

_NON_IMAGE_WORDS = ("Waveform", "Spectroscopy", "Raw Data", "Presentation State", "Segmentation")


def register_storage_classes(uids: Iterable[str]) -> None:
    """Make pynetdicom's storage service handle the retired classes it does not list.

    pynetdicom keeps a process-wide registry of the SOP classes its storage service
    handles; registering the same class again changes nothing.
    """
    known = {str(uid) for uid in _STORAGE_CLASSES.values()}
    for uid in uids:
        if str(uid) in known:
            continue
        keyword = "SoiStorage_" + str(uid).replace(".", "_")
        register_uid(str(uid), keyword, StorageServiceClass)
        known.add(str(uid))


def sop_class_name(uid: str) -> str:
    """Return the standard's name of a SOP class UID, or the UID if unknown."""
    entry = UID_dictionary.get(uid)
    return entry[0] if entry else uid


def is_image_storage(uid: str) -> bool:
    """Return whether instances of this storage SOP class must carry pixel data."""
    name = sop_class_name(uid)
    return "Image Storage" in name and not any(word in name for word in _NON_IMAGE_WORDS)


def resolve_sop_class(name_or_uid: str) -> UID:
    """Return the UID of a SOP class given by UID or by keyword.

    Raises
    ------
    ValueError
        The name is neither a known keyword nor a UID.
    """
    text = name_or_uid.strip()
    if text in _STORAGE_CLASSES:
        return UID(_STORAGE_CLASSES[text])
    if text in UID_dictionary:
        return UID(text)
    if UID(text).is_valid and text.replace(".", "").isdigit():
        return UID(text)
    raise ValueError(f"{name_or_uid!r} is neither a SOP class keyword nor a UID")


def resolve_sop_classes(names: Iterable[str]) -> tuple[UID, ...]:
    """Resolve several SOP classes given by UID or keyword."""
    return tuple(resolve_sop_class(name) for name in names)
