"""Soi's training: dataset readers, synthetic phantoms, MONAI training, evaluation, export.

Depends on :mod:`models`, :mod:`inference` and :mod:`store`. Training the chest X-ray
model (:mod:`training.cxr`) needs the ``train`` extra; its names are imported on first
use, so ``import training`` works without PyTorch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from training.cxr import CxrTrainConfig, TrainResult, evaluate_labels, train_cxr

__all__ = [
    "CXR_FINDINGS",
    "CXR_LABELS",
    "BoundingBox",
    "CodedConcept",
    "CxrFinding",
    "CxrLabel",
    "CxrRecord",
    "CxrTrainConfig",
    "DatasetError",
    "DatasetFormatError",
    "DatasetLayoutError",
    "MissingColumnError",
    "Phantom",
    "PhantomView",
    "TrainResult",
    "UncertaintyPolicy",
    "cxr_label",
    "evaluate_labels",
    "generate_cxr",
    "phantom_to_dicom",
    "read_chestxray14",
    "read_chexpert",
    "read_phantom_dataset",
    "read_vindr_cxr",
    "train_cxr",
    "write_phantom_dataset",
]

#: Names of :mod:`training.cxr`, imported on first use.
_CXR_NAMES = frozenset({"CxrTrainConfig", "TrainResult", "evaluate_labels", "train_cxr"})


def __getattr__(name: str) -> Any:
    if name not in _CXR_NAMES:
        raise AttributeError(f"module 'training' has no attribute {name!r}")
    return getattr(importlib.import_module("training.cxr"), name)
