"""NIH ChestX-ray14 (Wang et al., CVPR 2017), as released by the NIH Clinical Center.

Layout::

    Data_Entry_2017.csv          Image Index, Finding Labels, Follow-up #, Patient ID,
                                 Patient Age, Patient Gender, View Position, ...
    train_val_list.txt           optional: the official train/validation images
    test_list.txt                optional: the official test images
    images/*.png                 or, as unpacked from images_001.tar.gz ... on Kaggle,
    images_001/images/*.png      images_012/images/*.png

``Finding Labels`` holds ``|``-separated labels, or ``No Finding``. Every image is
labelled for all fourteen labels (text-mined from the reports), so each Soi finding
is 0 or 1:

=================  ===========================
Soi finding        ChestX-ray14 labels
=================  ===========================
cardiomegaly       Cardiomegaly
pleural_effusion   Effusion
pneumothorax       Pneumothorax
consolidation      Consolidation, Pneumonia
nodule_mass        Nodule, Mass
=================  ===========================
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType
from typing import Final

from training.datasets._tables import read_table
from training.datasets.errors import DatasetFormatError, DatasetLayoutError
from training.datasets.records import CxrRecord, frontal_view, labels_from
from training.labels import CxrFinding

__all__ = ["NIH_LABELS", "NIH_SOURCE", "NIH_TO_SOI", "read_chestxray14"]

NIH_SOURCE: Final = "nih-chestxray14"

#: The fourteen ChestX-ray14 labels.
NIH_LABELS: Final = (
    "Atelectasis",
    "Cardiomegaly",
    "Effusion",
    "Infiltration",
    "Mass",
    "Nodule",
    "Pneumonia",
    "Pneumothorax",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Pleural_Thickening",
    "Hernia",
)
_NO_FINDING = "No Finding"

#: Per Soi finding, the ChestX-ray14 labels that make it up.
NIH_TO_SOI: Final = MappingProxyType(
    {
        CxrFinding.CARDIOMEGALY: ("Cardiomegaly",),
        CxrFinding.PLEURAL_EFFUSION: ("Effusion",),
        CxrFinding.PNEUMOTHORAX: ("Pneumothorax",),
        CxrFinding.CONSOLIDATION: ("Consolidation", "Pneumonia"),
        CxrFinding.NODULE_MASS: ("Nodule", "Mass"),
    }
)

_ENTRY_FILE = "Data_Entry_2017.csv"
_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "View Position")


def _image_index(root: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pattern in ("images/*.png", "images*/images/*.png"):
        for path in sorted(root.glob(pattern)):
            found.setdefault(path.name, path)
    return found


def _official_split(root: Path) -> dict[str, str]:
    split: dict[str, str] = {}
    for name, value in (("train_val_list.txt", "train"), ("test_list.txt", "test")):
        path = root / name
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    split[line.strip()] = value
    return split


def _parse_labels(text: str, path: Path, image: str) -> dict[str, int | None]:
    names = [n.strip() for n in text.split("|") if n.strip()]
    if names == [_NO_FINDING]:
        return dict.fromkeys(NIH_LABELS, 0)
    unknown = [n for n in names if n not in NIH_LABELS]
    if not names or unknown:
        raise DatasetFormatError(
            f"{path}: image {image!r} has unknown Finding Labels {text!r}; expected "
            f"{_NO_FINDING!r} or labels among {', '.join(NIH_LABELS)}"
        )
    return {label: int(label in names) for label in NIH_LABELS}


def read_chestxray14(
    root: Path, *, frontal_only: bool = False, require_images: bool = True
) -> list[CxrRecord]:
    """Read ChestX-ray14 from its release folder.

    Parameters
    ----------
    root:
        The folder holding ``Data_Entry_2017.csv`` and the images.
    frontal_only:
        Keep PA and AP images only (the release holds only those, but a modified
        copy may not).
    require_images:
        Raise when an image listed in the CSV is missing; when False, such rows are
        left out.

    Returns
    -------
    list of CxrRecord
        In CSV order; ``split`` is ``"train"`` or ``"test"`` from the official lists
        when present, else None. ``study_id`` is ``"<Patient ID>/<Follow-up #>"``.

    Raises
    ------
    DatasetLayoutError
        When the CSV, or an image while ``require_images``, is missing.
    MissingColumnError
        When the CSV lacks a needed column.
    DatasetFormatError
        When a row has an unknown label.
    """
    path = root / _ENTRY_FILE
    rows = read_table(path, _COLUMNS, what="ChestX-ray14 entry file")
    images = _image_index(root)
    split = _official_split(root)
    records: list[CxrRecord] = []
    for row in rows:
        name = row["Image Index"]
        view = row["View Position"].upper()
        if frontal_only and not frontal_view(view):
            continue
        image = images.get(name)
        if image is None:
            if require_images:
                raise DatasetLayoutError(
                    f"{path} lists image {name!r}, found neither under {root / 'images'} "
                    f"nor under {root / 'images_*/images'}"
                )
            continue
        values = _parse_labels(row["Finding Labels"], path, name)
        records.append(
            CxrRecord(
                image_path=image,
                labels=labels_from(NIH_TO_SOI, values),
                patient_id=row["Patient ID"],
                view=view,
                study_id=f"{row['Patient ID']}/{row['Follow-up #']}",
                source=NIH_SOURCE,
                split=split.get(name),
            )
        )
    return records
