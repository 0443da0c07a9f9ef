"""CheXpert v1.0 (Irvin et al., AAAI 2019), the downsampled ("small") release.

Layout::

    CheXpert-v1.0-small/train.csv
    CheXpert-v1.0-small/valid.csv
    CheXpert-v1.0-small/train/patient00001/study1/view1_frontal.jpg
    CheXpert-v1.0-small/valid/patient64541/study1/view1_frontal.jpg

The CSV columns are ``Path`` (relative to the folder holding
``CheXpert-v1.0-small``), ``Sex``, ``Age``, ``Frontal/Lateral``, ``AP/PA`` and the
fourteen observations, each 1.0 (positive), 0.0 (negative), -1.0 (uncertain) or
blank (not mentioned in the report). Blank becomes None; uncertain follows the
:class:`UncertaintyPolicy`.

=================  ===========================
Soi finding        CheXpert observations
=================  ===========================
cardiomegaly       Cardiomegaly
pleural_effusion   Pleural Effusion
pneumothorax       Pneumothorax
consolidation      Consolidation, Pneumonia
nodule_mass        Lung Lesion
=================  ===========================

Where two observations make one finding, it is 1 if either is 1, 0 if both are 0,
and None otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from types import MappingProxyType
from typing import Final

from training.datasets._tables import read_table
from training.datasets.errors import DatasetFormatError, DatasetLayoutError
from training.datasets.records import CxrRecord, UncertaintyPolicy, frontal_view, labels_from
from training.labels import CxrFinding

__all__ = ["CHEXPERT_DIR", "CHEXPERT_SOURCE", "CHEXPERT_TO_SOI", "read_chexpert"]

CHEXPERT_SOURCE: Final = "chexpert"
CHEXPERT_DIR: Final = "CheXpert-v1.0-small"

#: Per Soi finding, the CheXpert observations that make it up.
CHEXPERT_TO_SOI: Final = MappingProxyType(
    {
        CxrFinding.CARDIOMEGALY: ("Cardiomegaly",),
        CxrFinding.PLEURAL_EFFUSION: ("Pleural Effusion",),
        CxrFinding.PNEUMOTHORAX: ("Pneumothorax",),
        CxrFinding.CONSOLIDATION: ("Consolidation", "Pneumonia"),
        CxrFinding.NODULE_MASS: ("Lung Lesion",),
    }
)
_SPLITS: Final = {"train": "train", "valid": "validation"}
_OBSERVATIONS = tuple(sorted({name for names in CHEXPERT_TO_SOI.values() for name in names}))
_COLUMNS = ("Path", "Frontal/Lateral", "AP/PA", *_OBSERVATIONS)


def _value(
    text: str, policy: UncertaintyPolicy, *, path: Path, row: int, column: str
) -> int | None:
    if text == "":
        return None
    try:
        number = float(text)
    except ValueError:
        number = float("nan")
    if number == 1.0:
        return 1
    if number == 0.0:
        return 0
    if number == -1.0:
        return {UncertaintyPolicy.IGNORE: None, UncertaintyPolicy.ONES: 1}.get(policy, 0)
    raise DatasetFormatError(
        f"{path}, row {row}, column {column!r}: {text!r} is not 1.0, 0.0, -1.0 or blank"
    )


def _base(root: Path) -> Path:
    if (root / CHEXPERT_DIR).is_dir():
        return root
    if root.name == CHEXPERT_DIR and root.is_dir():
        return root.parent
    raise DatasetLayoutError(f"CheXpert release not found: {root / CHEXPERT_DIR} is not a folder")


def read_chexpert(
    root: Path,
    *,
    uncertainty: UncertaintyPolicy | str = UncertaintyPolicy.IGNORE,
    splits: Iterable[str] = ("train", "valid"),
    frontal_only: bool = False,
    require_images: bool = True,
) -> list[CxrRecord]:
    """Read CheXpert-v1.0-small.

    Parameters
    ----------
    root:
        The folder holding ``CheXpert-v1.0-small`` (or that folder itself).
    uncertainty:
        ``"ignore"`` (uncertain is None), ``"ones"`` or ``"zeros"``.
    splits:
        The CSV files to read: ``"train"`` and/or ``"valid"``.
    frontal_only:
        Leave out lateral images.
    require_images:
        Raise when an image named in a CSV is missing; when False, such rows are
        left out.

    Returns
    -------
    list of CxrRecord
        ``split`` is ``"train"`` or ``"validation"``; ``patient_id`` the
        ``patientNNNNN`` folder; ``study_id`` ``"patientNNNNN/studyN"``; ``view`` the
        ``AP/PA`` value of frontal images and ``"LATERAL"`` for laterals.

    Raises
    ------
    ValueError
        When ``uncertainty`` or a split is unknown.
    DatasetLayoutError
        When the release folder, a CSV or (with ``require_images``) an image is missing.
    MissingColumnError
        When a CSV lacks a needed column.
    DatasetFormatError
        When a label value or a path cannot be read.
    """
    try:
        policy = UncertaintyPolicy(uncertainty)
    except ValueError:
        known = ", ".join(p.value for p in UncertaintyPolicy)
        raise ValueError(
            f"`uncertainty` must be one of {known}, {uncertainty!r} is given"
        ) from None
    wanted = list(splits)
    for split in wanted:
        if split not in _SPLITS:
            raise ValueError(f"`splits` may hold 'train' and 'valid', {split!r} is given")
    base = _base(root)
    records: list[CxrRecord] = []
    for split in wanted:
        path = base / CHEXPERT_DIR / f"{split}.csv"
        rows = read_table(path, _COLUMNS, what=f"CheXpert {split} list")
        for number, row in enumerate(rows, start=2):
            frontal = row["Frontal/Lateral"].lower() == "frontal"
            view = row["AP/PA"].upper() if frontal else "LATERAL"
            if frontal_only and not frontal_view(view):
                continue
            relative = PurePosixPath(row["Path"])
            parts = relative.parts
            if len(parts) < 5 or not parts[2].startswith("patient"):
                raise DatasetFormatError(
                    f"{path}, row {number}: Path {row['Path']!r} is not "
                    f"{CHEXPERT_DIR}/<split>/patientNNNNN/studyN/<view>.jpg"
                )
            image = base.joinpath(*parts)
            if not image.is_file():
                if require_images:
                    raise DatasetLayoutError(f"{path}, row {number}: image {image} is missing")
                continue
            values = {
                name: _value(row[name], policy, path=path, row=number, column=name)
                for name in _OBSERVATIONS
            }
            records.append(
                CxrRecord(
                    image_path=image,
                    labels=labels_from(CHEXPERT_TO_SOI, values),
                    patient_id=parts[2],
                    view=view,
                    study_id=f"{parts[2]}/{parts[3]}",
                    source=CHEXPERT_SOURCE,
                    split=_SPLITS[split],
                )
            )
    return records
