"""Readers of public chest X-ray releases, each mapping its labels to Soi's label set."""

from training.datasets.chexpert import CHEXPERT_TO_SOI, read_chexpert
from training.datasets.errors import (
    DatasetError,
    DatasetFormatError,
    DatasetLayoutError,
    MissingColumnError,
)
from training.datasets.nih import NIH_TO_SOI, read_chestxray14
from training.datasets.records import BoundingBox, CxrRecord, UncertaintyPolicy
from training.datasets.vindr import VINDR_TO_SOI, read_vindr_cxr

__all__ = [
    "CHEXPERT_TO_SOI",
    "NIH_TO_SOI",
    "VINDR_TO_SOI",
    "BoundingBox",
    "CxrRecord",
    "DatasetError",
    "DatasetFormatError",
    "DatasetLayoutError",
    "MissingColumnError",
    "UncertaintyPolicy",
    "read_chestxray14",
    "read_chexpert",
    "read_vindr_cxr",
]
