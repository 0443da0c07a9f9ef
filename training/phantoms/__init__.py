"""Synthetic chest radiographs that carry each finding's visual signature, as DICOM."""

from training.phantoms.cxr import DEFAULT_FIELD_OF_VIEW_MM, Phantom, PhantomView, generate_cxr
from training.phantoms.dataset import (
    LABELS_FILE,
    PHANTOM_SOURCE,
    read_phantom_dataset,
    write_phantom_dataset,
)
from training.phantoms.dicom import (
    NATIONAL_ID_ISSUER,
    Modality,
    PatientIdentity,
    Photometric,
    WindowMode,
    phantom_to_dicom,
    random_patient,
)

__all__ = [
    "DEFAULT_FIELD_OF_VIEW_MM",
    "LABELS_FILE",
    "NATIONAL_ID_ISSUER",
    "PHANTOM_SOURCE",
    "Modality",
    "PatientIdentity",
    "Phantom",
    "PhantomView",
    "Photometric",
    "WindowMode",
    "generate_cxr",
    "phantom_to_dicom",
    "random_patient",
    "read_phantom_dataset",
    "write_phantom_dataset",
]
