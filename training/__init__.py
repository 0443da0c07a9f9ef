"""Soi's training: dataset readers, synthetic phantoms, MONAI training, evaluation, export.

Depends on :mod:`models`, :mod:`inference` and :mod:`store`. Needs the ``train`` extra.
"""

from training.datasets import (
    BoundingBox,
    CxrRecord,
    DatasetError,
    DatasetFormatError,
    DatasetLayoutError,
    MissingColumnError,
    UncertaintyPolicy,
    read_chestxray14,
    read_chexpert,
    read_vindr_cxr,
)
from training.labels import CXR_FINDINGS, CXR_LABELS, CodedConcept, CxrFinding, CxrLabel, cxr_label
from training.phantoms import (
    Phantom,
    PhantomView,
    generate_cxr,
    phantom_to_dicom,
    read_phantom_dataset,
    write_phantom_dataset,
)

__all__ = [
    "CXR_FINDINGS",
    "CXR_LABELS",
    "BoundingBox",
    "CodedConcept",
    "CxrFinding",
    "CxrLabel",
    "CxrRecord",
    "DatasetError",
    "DatasetFormatError",
    "DatasetLayoutError",
    "MissingColumnError",
    "Phantom",
    "PhantomView",
    "UncertaintyPolicy",
    "cxr_label",
    "generate_cxr",
    "phantom_to_dicom",
    "read_chestxray14",
    "read_chexpert",
    "read_phantom_dataset",
    "read_vindr_cxr",
    "write_phantom_dataset",
]
