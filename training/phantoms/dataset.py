"""A folder of phantom DICOM files with a ``labels.csv``, and its reader.

Layout::

    labels.csv                       file, patient_id, study_id, view, <finding>..., split
    images/<patient_id>/<n>.dcm

Finding columns hold 1 or 0; they are blank on lateral images, where no finding is
drawn (a lateral image is not a negative example). The split is by patient:
every image of a patient is in the same split.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final

import numpy as np

from training.datasets._tables import read_table
from training.datasets.errors import DatasetFormatError
from training.datasets.records import CxrRecord
from training.labels import CxrFinding
from training.phantoms.cxr import PhantomView, generate_cxr
from training.phantoms.dicom import Modality, WindowMode, phantom_to_dicom, random_patient

__all__ = [
    "LABELS_FILE",
    "PHANTOM_SOURCE",
    "SPLITS",
    "read_phantom_dataset",
    "write_phantom_dataset",
]

LABELS_FILE: Final = "labels.csv"
PHANTOM_SOURCE: Final = "soi-phantom"
#: Split names, in the order of the ``split_fractions``.
SPLITS: Final = ("train", "validation", "test")
_COLUMNS: Final = ("file", "patient_id", "study_id", "view", *CxrFinding, "split")


def _check_arguments(
    count: int,
    prevalence: Mapping[CxrFinding, float],
    split_fractions: tuple[float, float, float],
    images_per_patient: int,
    lateral_fraction: float,
) -> None:
    if count < 1:
        raise ValueError(f"`count` must be a positive number, {count} is given")
    if images_per_patient < 1:
        raise ValueError(
            f"`images_per_patient` must be a positive number, {images_per_patient} is given"
        )
    for finding, p in prevalence.items():
        CxrFinding(finding)
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"`prevalence` of {finding} must be in [0, 1], {p} is given")
    if len(split_fractions) != 3 or min(split_fractions) < 0 or sum(split_fractions) <= 0:
        raise ValueError(
            f"`split_fractions` must be three non-negative numbers, {split_fractions!r} is given"
        )
    if not 0.0 <= lateral_fraction <= 1.0:
        raise ValueError(f"`lateral_fraction` must be in [0, 1], {lateral_fraction} is given")


def _patient_splits(
    patients: int, split_fractions: tuple[float, float, float], rng: np.random.Generator
) -> list[str]:
    total = sum(split_fractions)
    cuts = np.round(np.cumsum(split_fractions) / total * patients).astype(int)
    order = rng.permutation(patients)
    split = [""] * patients
    for rank, patient in enumerate(order):
        split[int(patient)] = SPLITS[int(np.searchsorted(cuts, rank, side="right"))]
    return split


def write_phantom_dataset(
    folder: Path,
    *,
    count: int,
    seed: int,
    prevalence: Mapping[CxrFinding, float],
    image_size: int | Sequence[int] = 512,
    stored_rows: int | None = None,
    images_per_patient: int = 1,
    lateral_fraction: float = 0.0,
    split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
) -> Path:
    """Write ``count`` frontal phantoms as DICOM files and a ``labels.csv``.

    Parameters
    ----------
    folder:
        Created if needed; existing files of the same names are replaced.
    count:
        Number of frontal images.
    seed:
        The same seed writes the same images, labels and split.
    prevalence:
        Probability of each finding, drawn independently per image; a finding not
        listed is never drawn.
    image_size:
        Size of the drawn phantom; with several sizes, each image is drawn at one of
        them at random (store them at one ``stored_rows``: the model then sees images
        reduced from several detector resolutions, as in practice).
    stored_rows:
        Rows and columns of the stored image (the phantom is resampled); by default
        ``image_size``.
    images_per_patient:
        Frontal images (studies) per patient.
    lateral_fraction:
        Probability that a frontal image gets a lateral companion in its study.
    split_fractions:
        Shares of patients in train, validation and test.

    Returns
    -------
    pathlib.Path
        The ``labels.csv`` written.

    Raises
    ------
    ValueError
        When an argument is out of range or a prevalence names an unknown finding.
    """
    _check_arguments(count, prevalence, split_fractions, images_per_patient, lateral_fraction)
    rng = np.random.default_rng(seed)
    patients = -(-count // images_per_patient)
    splits = _patient_splits(patients, split_fractions, rng)
    identities = [random_patient(rng, patient_id=f"PH{i:06d}") for i in range(patients)]
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, str]] = []
    for index in range(count):
        patient = index // images_per_patient
        identity = identities[patient]
        findings = frozenset(
            CxrFinding(f) for f, p in sorted(prevalence.items()) if rng.uniform() < p
        )
        study_uid: str | None = None
        views = [PhantomView.PA if rng.uniform() < 0.8 else PhantomView.AP]
        if rng.uniform() < lateral_fraction:
            views.append(PhantomView.LATERAL)
        size = image_size if isinstance(image_size, int) else int(rng.choice(image_size))
        for view in views:
            phantom = generate_cxr(
                rng,
                findings=findings if view.frontal else frozenset(),
                size=size,
                view=view,
            )
            modality = Modality.DX if rng.uniform() < 0.5 else Modality.CR
            window = WindowMode.PRESENT
            if rng.uniform() < 0.3:
                window = WindowMode.MULTIPLE if modality is Modality.DX else WindowMode.ABSENT
            ds = phantom_to_dicom(
                phantom,
                rng,
                modality=modality,
                photometric="MONOCHROME1" if rng.uniform() < 0.3 else "MONOCHROME2",
                bits_stored=int(rng.choice([12, 14, 16])),
                window=window,
                rows=stored_rows,
                patient=identity,
                study_instance_uid=study_uid,
            )
            study_uid = str(ds.StudyInstanceUID)
            relative = Path("images") / identity.patient_id / f"{index:06d}-{view.value}.dcm"
            (folder / relative).parent.mkdir(parents=True, exist_ok=True)
            ds.save_as(folder / relative, enforce_file_format=True)
            row = {
                "file": relative.as_posix(),
                "patient_id": identity.patient_id,
                "study_id": study_uid,
                "view": view.value,
                "split": splits[patient],
            }
            for finding in CxrFinding:
                row[finding.value] = str(int(finding in findings)) if view.frontal else ""
            rows.append(row)
    path = folder / LABELS_FILE
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[str(c) for c in _COLUMNS])
        writer.writeheader()
        writer.writerows(rows)
    return path


def read_phantom_dataset(folder: Path) -> list[CxrRecord]:
    """Read a folder written by :func:`write_phantom_dataset`.

    Raises
    ------
    DatasetLayoutError
        When ``labels.csv`` is missing.
    MissingColumnError
        When it lacks a column.
    DatasetFormatError
        When a label is not 0, 1 or blank, or a listed file is missing.
    """
    path = folder / LABELS_FILE
    rows = read_table(path, [str(c) for c in _COLUMNS], what="phantom dataset labels")
    records: list[CxrRecord] = []
    for number, row in enumerate(rows, start=2):
        labels: dict[CxrFinding, int | None] = {}
        for finding in CxrFinding:
            text = row[finding.value]
            if text not in ("0", "1", ""):
                raise DatasetFormatError(
                    f"{path}, row {number}, column {finding.value!r}: {text!r} is not 0, 1 or blank"
                )
            labels[finding] = int(text) if text else None
        image = folder / row["file"]
        if not image.is_file():
            raise DatasetFormatError(f"{path}, row {number}: file {image} is missing")
        records.append(
            CxrRecord(
                image_path=image,
                labels=labels,
                patient_id=row["patient_id"],
                view=row["view"],
                study_id=row["study_id"],
                source=PHANTOM_SOURCE,
                split=row["split"],
            )
        )
    return records
