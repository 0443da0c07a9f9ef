"""VinDr-CXR (Nguyen et al., Scientific Data 2022), as released on PhysioNet or Kaggle.

Layout (PhysioNet ``vindr-cxr/1.0.0``)::

    annotations/annotations_train.csv   image_id, rad_id, class_name, x_min, y_min, x_max, y_max
    annotations/annotations_test.csv
    annotations/image_labels_train.csv  image_id, rad_ID, one 0/1 column per label
    annotations/image_labels_test.csv
    train/<image_id>.dicom
    test/<image_id>.dicom

The Kaggle competition layout has ``train.csv`` (the box annotations, with a
``class_id`` column too) next to ``train/``. Training images were read by three
radiologists each, one row per box (or one ``No finding`` row); test images carry
the consensus of five.

=================  ==================================================
Soi finding        VinDr-CXR labels
=================  ==================================================
cardiomegaly       Cardiomegaly
pleural_effusion   Pleural effusion
pneumothorax       Pneumothorax
consolidation      Consolidation, Pneumonia (image labels only)
nodule_mass        Nodule/Mass
=================  ==================================================

Image-level labels come from ``image_labels_<split>.csv`` when present, else from the
boxes (a reader who drew a box of a class labels the image with it; Pneumonia, a
global label, is then not available and consolidation follows Consolidation alone).
Readers are combined by majority (positive when at least half of them say so) or by
``any``. VinDr-CXR publishes no patient identifier: each image is its own patient.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from types import MappingProxyType
from typing import Final, Literal

from pydicom import dcmread

from training.datasets._tables import read_table
from training.datasets.errors import DatasetFormatError, DatasetLayoutError, MissingColumnError
from training.datasets.records import BoundingBox, CxrRecord, frontal_view, labels_from
from training.labels import CxrFinding

__all__ = ["VINDR_SOURCE", "VINDR_TO_SOI", "read_vindr_cxr"]

VINDR_SOURCE: Final = "vindr-cxr"

#: Per Soi finding, the VinDr-CXR labels that make it up.
VINDR_TO_SOI: Final = MappingProxyType(
    {
        CxrFinding.CARDIOMEGALY: ("Cardiomegaly",),
        CxrFinding.PLEURAL_EFFUSION: ("Pleural effusion",),
        CxrFinding.PNEUMOTHORAX: ("Pneumothorax",),
        CxrFinding.CONSOLIDATION: ("Consolidation", "Pneumonia"),
        CxrFinding.NODULE_MASS: ("Nodule/Mass",),
    }
)
_BOX_TO_SOI: Final = {name: f for f, names in VINDR_TO_SOI.items() for name in names}
_NO_FINDING = "No finding"
_GLOBAL_ONLY = frozenset({"Pneumonia"})
_BOX_COLUMNS = ("image_id", "class_name", "x_min", "y_min", "x_max", "y_max")
_RAD_COLUMNS = ("rad_id", "rad_ID")

Aggregation = Literal["majority", "any"]


def _annotation_file(root: Path, split: str) -> Path:
    released = root / "annotations" / f"annotations_{split}.csv"
    kaggle = root / f"{split}.csv"
    if released.is_file() or not kaggle.is_file():
        return released
    return kaggle


def _number(text: str, path: Path, row: int, column: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise DatasetFormatError(
            f"{path}, row {row}, column {column!r}: {text!r} is not a number"
        ) from None


def _boxes(path: Path) -> tuple[dict[str, list[BoundingBox]], dict[str, dict[str, set[str]]]]:
    """Read the boxes and, per image and reader, the classes that reader reported."""
    rows = read_table(path, _BOX_COLUMNS, what="VinDr-CXR annotations")
    boxes: dict[str, list[BoundingBox]] = defaultdict(list)
    readers: dict[str, dict[str, set[str]]] = defaultdict(dict)
    for number, row in enumerate(rows, start=2):
        image_id, name = row["image_id"], row["class_name"]
        reader = next((row[c] for c in _RAD_COLUMNS if c in row), "")
        readers[image_id].setdefault(reader, set())
        if name == _NO_FINDING:
            continue
        readers[image_id][reader].add(name)
        coords = [_number(row[c], path, number, c) for c in _BOX_COLUMNS[2:]]
        if any(math.isnan(v) for v in coords):
            continue
        x_min, y_min, x_max, y_max = coords
        boxes[image_id].append(
            BoundingBox(name, _BOX_TO_SOI.get(name), x_min, y_min, x_max, y_max, reader=reader)
        )
    return boxes, readers


def _image_labels(path: Path) -> dict[str, list[dict[str, int | None]]]:
    rows = read_table(path, ("image_id",), what="VinDr-CXR image labels")
    names = {n for names in VINDR_TO_SOI.values() for n in names}
    if rows:
        for name in sorted(names):
            if name not in rows[0]:
                raise MissingColumnError(path, name)
    per_image: dict[str, list[dict[str, int | None]]] = defaultdict(list)
    for number, row in enumerate(rows, start=2):
        values: dict[str, int | None] = {}
        for name in names:
            value = _number(row[name], path, number, name)
            values[name] = int(value >= 0.5)
        per_image[row["image_id"]].append(values)
    return per_image


def _combine(votes: list[dict[str, int | None]], how: Aggregation) -> dict[str, int | None]:
    combined: dict[str, int | None] = {}
    for name in {n for vote in votes for n in vote}:
        ayes = sum(1 for vote in votes if vote.get(name) == 1)
        if how == "any":
            combined[name] = int(ayes > 0)
        else:
            combined[name] = int(2 * ayes >= len(votes))
    return combined


def read_vindr_cxr(
    root: Path,
    *,
    split: str = "train",
    aggregation: Aggregation = "majority",
    frontal_only: bool = False,
    require_images: bool = True,
) -> list[CxrRecord]:
    """Read one split of VinDr-CXR.

    Parameters
    ----------
    root:
        The release folder (holding ``annotations/`` or ``train.csv`` and the images).
    split:
        ``"train"`` or ``"test"``.
    aggregation:
        ``"majority"`` or ``"any"``: how the readers' labels are combined.
    frontal_only:
        Keep images whose DICOM View Position is PA or AP (the header is read).
    require_images:
        Raise when an image is missing; when False, such images are left out.

    Returns
    -------
    list of CxrRecord
        Sorted by image id, with every box in ``boxes`` (``finding`` None for
        classes Soi does not report). ``view`` is the DICOM View Position (read only
        with ``frontal_only``, else empty).

    Raises
    ------
    ValueError
        When ``split`` or ``aggregation`` is unknown.
    DatasetLayoutError
        When the annotations or (with ``require_images``) an image is missing.
    MissingColumnError
        When a CSV lacks a needed column.
    DatasetFormatError
        When a coordinate or a label value is not a number.
    """
    if split not in ("train", "test"):
        raise ValueError(f"`split` must be 'train' or 'test', {split!r} is given")
    if aggregation not in ("majority", "any"):
        raise ValueError(f"`aggregation` must be 'majority' or 'any', {aggregation!r} is given")
    boxes, readers = _boxes(_annotation_file(root, split))
    labels_path = root / "annotations" / f"image_labels_{split}.csv"
    image_votes = _image_labels(labels_path) if labels_path.is_file() else None
    box_sources = MappingProxyType(
        {f: tuple(n for n in names if n not in _GLOBAL_ONLY) for f, names in VINDR_TO_SOI.items()}
    )
    records: list[CxrRecord] = []
    for image_id in sorted(readers):
        image = root / split / f"{image_id}.dicom"
        if not image.is_file():
            if require_images:
                raise DatasetLayoutError(f"VinDr-CXR image {image} is missing")
            continue
        view = ""
        if frontal_only:
            header = dcmread(image, stop_before_pixels=True, specific_tags=["ViewPosition"])
            view = str(header.get("ViewPosition", "")).upper()
            if not frontal_view(view):
                continue
        if image_votes is not None and image_id in image_votes:
            labels = labels_from(VINDR_TO_SOI, _combine(image_votes[image_id], aggregation))
        else:
            votes: list[dict[str, int | None]] = [
                {n: int(n in classes) for n in _BOX_TO_SOI if n not in _GLOBAL_ONLY}
                for classes in readers[image_id].values()
            ]
            labels = labels_from(box_sources, _combine(votes, aggregation))
        records.append(
            CxrRecord(
                image_path=image,
                labels=labels,
                patient_id=image_id,
                view=view,
                study_id=image_id,
                source=VINDR_SOURCE,
                split=split,
                boxes=tuple(boxes.get(image_id, ())),
            )
        )
    return records
