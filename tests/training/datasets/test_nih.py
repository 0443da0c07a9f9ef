"""NIH ChestX-ray14 reader on a fixture tree laid out like the release."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.datasets import (
    DatasetFormatError,
    DatasetLayoutError,
    MissingColumnError,
    read_chestxray14,
)
from training.labels import CxrFinding

HEADER = [
    "Image Index",
    "Finding Labels",
    "Follow-up #",
    "Patient ID",
    "Patient Age",
    "Patient Gender",
    "View Position",
    "OriginalImage[Width",
    "Height]",
    "OriginalImagePixelSpacing[x",
    "y]",
    "",
]
ROWS = [
    ["00000001_000.png", "Cardiomegaly", "0", "1", "58", "M", "PA"],
    ["00000001_001.png", "Cardiomegaly|Emphysema", "1", "1", "58", "M", "PA"],
    ["00000002_000.png", "No Finding", "0", "2", "81", "M", "PA"],
    ["00000003_000.png", "Effusion|Pneumonia|Mass", "0", "3", "74", "F", "AP"],
    ["00000004_000.png", "Pneumothorax|Nodule", "0", "4", "45", "F", "PA"],
]


def _png(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 128, dtype=np.uint8)).save(path)


def _release(root: Path, rows: list[list[str]] = ROWS, header: list[str] = HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    with (root / "Data_Entry_2017.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([*row, "2500", "2048", "0.143", "0.143", ""][: len(header)])
    for index, row in enumerate(rows):
        folder = root / f"images_{index % 2 + 1:03d}" / "images"
        _png(folder / row[0])
    return root


class TestReadChestXray14:
    def test_mapping(self, tmp_path: Path) -> None:
        records = {r.image_path.name: r for r in read_chestxray14(_release(tmp_path))}
        assert records["00000001_000.png"].positives() == {CxrFinding.CARDIOMEGALY}
        assert records["00000002_000.png"].labels == dict.fromkeys(CxrFinding, 0)
        assert records["00000003_000.png"].positives() == {
            CxrFinding.PLEURAL_EFFUSION,
            CxrFinding.CONSOLIDATION,
            CxrFinding.NODULE_MASS,
        }
        assert records["00000004_000.png"].positives() == {
            CxrFinding.PNEUMOTHORAX,
            CxrFinding.NODULE_MASS,
        }
        assert all(v in (0, 1) for r in records.values() for v in r.labels.values())

    def test_patients_studies_views_and_paths(self, tmp_path: Path) -> None:
        records = read_chestxray14(_release(tmp_path))
        first, second = records[0], records[1]
        assert (first.patient_id, first.study_id) == ("1", "1/0")
        assert (second.patient_id, second.study_id) == ("1", "1/1")
        assert records[3].view == "AP"
        assert first.image_path == tmp_path / "images_001" / "images" / "00000001_000.png"
        assert all(r.image_path.is_file() and r.source == "nih-chestxray14" for r in records)
        assert all(r.split is None for r in records)

    def test_flat_images_folder(self, tmp_path: Path) -> None:
        _release(tmp_path, rows=ROWS[:1])
        (tmp_path / "images_001" / "images" / ROWS[0][0]).unlink()
        _png(tmp_path / "images" / ROWS[0][0])
        (record,) = read_chestxray14(tmp_path)
        assert record.image_path == tmp_path / "images" / ROWS[0][0]

    def test_official_split(self, tmp_path: Path) -> None:
        root = _release(tmp_path)
        (root / "train_val_list.txt").write_text("00000001_000.png\n00000001_001.png\n")
        (root / "test_list.txt").write_text("00000002_000.png\n")
        split = {r.image_path.name: r.split for r in read_chestxray14(root)}
        assert split["00000001_000.png"] == "train"
        assert split["00000002_000.png"] == "test"
        assert split["00000004_000.png"] is None

    def test_frontal_only(self, tmp_path: Path) -> None:
        rows = [*ROWS, ["00000005_000.png", "No Finding", "0", "5", "30", "F", "LL"]]
        assert len(read_chestxray14(_release(tmp_path, rows=rows))) == 6
        records = read_chestxray14(tmp_path, frontal_only=True)
        assert [r.view for r in records] == ["PA", "PA", "PA", "AP", "PA"]

    def test_missing_image(self, tmp_path: Path) -> None:
        root = _release(tmp_path)
        (root / "images_002" / "images" / "00000001_001.png").unlink()
        with pytest.raises(DatasetLayoutError, match=r"lists image '00000001_001\.png'"):
            read_chestxray14(root)
        assert len(read_chestxray14(root, require_images=False)) == 4

    def test_missing_csv(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetLayoutError, match=r"Data_Entry_2017\.csv does not exist"):
            read_chestxray14(tmp_path)

    def test_missing_column(self, tmp_path: Path) -> None:
        header = [h if h != "Patient ID" else "PatientID" for h in HEADER]
        root = _release(tmp_path, header=header)
        with pytest.raises(
            MissingColumnError, match=r"Data_Entry_2017\.csv has no column 'Patient ID'"
        ) as info:
            read_chestxray14(root)
        assert info.value.column == "Patient ID"
        assert info.value.path == root / "Data_Entry_2017.csv"

    def test_unknown_label(self, tmp_path: Path) -> None:
        root = _release(tmp_path, rows=[["00000001_000.png", "Covid", "0", "1", "58", "M", "PA"]])
        with pytest.raises(DatasetFormatError, match="unknown Finding Labels 'Covid'"):
            read_chestxray14(root)
