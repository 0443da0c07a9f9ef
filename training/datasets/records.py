"""What every dataset reader returns: one record per image, labelled in Soi's label set."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from training.labels import CxrFinding

__all__ = [
    "BoundingBox",
    "CxrRecord",
    "UncertaintyPolicy",
    "any_positive",
    "frontal_view",
    "labels_from",
]

#: View values of frontal images (DICOM View Position).
_FRONTAL = frozenset({"PA", "AP"})


class UncertaintyPolicy(StrEnum):
    """What an uncertain label (CheXpert's -1) becomes.

    ``IGNORE`` makes it None (not labelled), ``ONES`` positive, ``ZEROS`` negative
    (the U-Ignore, U-Ones and U-Zeros policies of the CheXpert paper).
    """

    IGNORE = "ignore"
    ONES = "ones"
    ZEROS = "zeros"


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """A finding's box drawn by one reader, in pixels of the original image.

    ``finding`` is the Soi finding ``class_name`` maps to, None when it maps to none.
    """

    class_name: str
    finding: CxrFinding | None
    x_min: float
    y_min: float
    x_max: float
    y_max: float
    reader: str = ""


@dataclass(frozen=True, slots=True)
class CxrRecord:
    """One chest radiograph of a dataset, labelled in Soi's label set.

    Attributes
    ----------
    image_path:
        The image file.
    labels:
        Every :class:`CxrFinding`: 1 present, 0 absent, None not labelled or uncertain.
        A finding the dataset does not label is None, never 0.
    patient_id:
        The dataset's patient identifier (the image identifier where it has none).
    view:
        ``"PA"``, ``"AP"``, ``"LATERAL"``, or the dataset's own value; empty if unknown.
    study_id:
        Identifies the study (visit) the image belongs to.
    source:
        The dataset: ``"nih-chestxray14"``, ``"chexpert"``, ``"vindr-cxr"``, ``"soi-phantom"``.
    split:
        The split the release or the writer assigned (``"train"``, ``"validation"``,
        ``"test"``); None where it assigns none.
    boxes:
        Finding boxes where the dataset has them (VinDr-CXR); None otherwise.
    """

    image_path: Path
    labels: dict[CxrFinding, int | None]
    patient_id: str
    view: str
    study_id: str
    source: str
    split: str | None = None
    boxes: tuple[BoundingBox, ...] | None = None

    @property
    def frontal(self) -> bool:
        """Whether the image is a frontal (PA or AP) view."""
        return frontal_view(self.view)

    def positives(self) -> frozenset[CxrFinding]:
        """The findings labelled present."""
        return frozenset(f for f, v in self.labels.items() if v == 1)


def frontal_view(view: str) -> bool:
    """Return whether a view value names a frontal (PA or AP) projection."""
    return view.upper() in _FRONTAL


def any_positive(values: Iterable[int | None]) -> int | None:
    """Combine several source labels into one with a three-valued OR.

    1 if any is 1, 0 if all are 0, otherwise None.
    """
    seen = list(values)
    if any(v == 1 for v in seen):
        return 1
    if seen and all(v == 0 for v in seen):
        return 0
    return None


def labels_from(
    sources: Mapping[CxrFinding, tuple[str, ...]], values: Mapping[str, int | None]
) -> dict[CxrFinding, int | None]:
    """Map a dataset's labels to Soi's through a mapping table.

    ``sources`` gives, per finding, the dataset's label names that make it up; a
    finding with no source is None. Names missing from ``values`` count as None.
    """
    return {
        finding: any_positive(values.get(name) for name in sources.get(finding, ()))
        for finding in CxrFinding
    }
