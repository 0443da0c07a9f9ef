"""Phantom dataset folders: files, labels.csv, split by patient, reader."""

from __future__ import annotations

import csv
from pathlib import Path

import pydicom
import pytest

from training.datasets import DatasetFormatError, DatasetLayoutError, MissingColumnError
from training.labels import CxrFinding
from training.phantoms import LABELS_FILE, read_phantom_dataset, write_phantom_dataset

PREVALENCE = {CxrFinding.PNEUMOTHORAX: 0.5, CxrFinding.CARDIOMEGALY: 1.0}


def _write(folder: Path, **kwargs: object) -> Path:
    options: dict[str, object] = {
        "count": 8,
        "seed": 7,
        "prevalence": PREVALENCE,
        "image_size": 64,
        "images_per_patient": 2,
    }
    options.update(kwargs)
    return write_phantom_dataset(folder, **options)  # type: ignore[arg-type]


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


class TestWritePhantomDataset:
    def test_files_and_columns(self, tmp_path: Path) -> None:
        path = _write(tmp_path)
        assert path == tmp_path / LABELS_FILE
        rows = _rows(path)
        assert len(rows) == 8
        assert list(rows[0]) == [
            "file",
            "patient_id",
            "study_id",
            "view",
            *[f.value for f in CxrFinding],
            "split",
        ]
        for row in rows:
            ds = pydicom.dcmread(tmp_path / row["file"])
            assert ds.PatientID == row["patient_id"]
            assert ds.StudyInstanceUID == row["study_id"]
            assert ds.ViewPosition == row["view"]

    def test_prevalence(self, tmp_path: Path) -> None:
        rows = _rows(_write(tmp_path, count=20, images_per_patient=1))
        assert all(row["cardiomegaly"] == "1" for row in rows)
        assert all(row["nodule_mass"] == "0" for row in rows)
        assert 0 < sum(row["pneumothorax"] == "1" for row in rows) < 20

    def test_split_by_patient(self, tmp_path: Path) -> None:
        rows = _rows(_write(tmp_path, count=40, images_per_patient=2))
        by_patient: dict[str, set[str]] = {}
        for row in rows:
            by_patient.setdefault(row["patient_id"], set()).add(row["split"])
        assert all(len(splits) == 1 for splits in by_patient.values())
        counts = [
            sum(s == {name} for s in by_patient.values())
            for name in ("train", "validation", "test")
        ]
        assert counts == [14, 3, 3]

    def test_same_seed_same_dataset(self, tmp_path: Path) -> None:
        a, b = _write(tmp_path / "a"), _write(tmp_path / "b")
        assert a.read_text() == b.read_text()
        first = _rows(a)[0]["file"]
        assert (tmp_path / "a" / first).read_bytes() == (tmp_path / "b" / first).read_bytes()

    def test_lateral_images_are_unlabelled(self, tmp_path: Path) -> None:
        rows = _rows(_write(tmp_path, lateral_fraction=1.0, count=3))
        laterals = [row for row in rows if row["view"] == "LATERAL"]
        assert len(laterals) == 3
        assert all(row[f.value] == "" for row in laterals for f in CxrFinding)

    def test_stored_rows(self, tmp_path: Path) -> None:
        rows = _rows(_write(tmp_path, count=1, stored_rows=128))
        assert pydicom.dcmread(tmp_path / rows[0]["file"]).Rows == 128

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"count": 0}, "`count` must be a positive number, 0 is given"),
            ({"prevalence": {CxrFinding.NODULE_MASS: 1.5}}, "`prevalence` of nodule_mass"),
            ({"prevalence": {"edema": 0.1}}, "edema"),
            ({"split_fractions": (0.5, -0.1, 0.6)}, "`split_fractions`"),
            ({"images_per_patient": 0}, "`images_per_patient`"),
        ],
    )
    def test_errors(self, tmp_path: Path, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            _write(tmp_path, **kwargs)


class TestReadPhantomDataset:
    def test_roundtrip(self, tmp_path: Path) -> None:
        rows = _rows(_write(tmp_path, lateral_fraction=0.5))
        records = read_phantom_dataset(tmp_path)
        assert len(records) == len(rows)
        for row, record in zip(rows, records, strict=True):
            assert record.image_path == tmp_path / row["file"]
            assert record.patient_id == row["patient_id"]
            assert record.split == row["split"]
            assert record.source == "soi-phantom"
            if record.view == "LATERAL":
                assert set(record.labels.values()) == {None}
            else:
                assert record.labels[CxrFinding.CARDIOMEGALY] == 1
                assert record.labels[CxrFinding.NODULE_MASS] == 0

    def test_missing_labels_file(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetLayoutError, match=r"labels\.csv does not exist"):
            read_phantom_dataset(tmp_path)

    def test_missing_column(self, tmp_path: Path) -> None:
        path = _write(tmp_path, count=1)
        rows = _rows(path)
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, [k for k in rows[0] if k != "pneumothorax"])
            writer.writeheader()
            writer.writerows({k: v for k, v in r.items() if k != "pneumothorax"} for r in rows)
        with pytest.raises(MissingColumnError, match=r"labels\.csv has no column 'pneumothorax'"):
            read_phantom_dataset(tmp_path)

    def test_bad_label_value(self, tmp_path: Path) -> None:
        path = _write(tmp_path, count=1)
        path.write_text(path.read_text().replace(",1,", ",yes,", 1))
        with pytest.raises(DatasetFormatError, match="row 2, column 'cardiomegaly': 'yes'"):
            read_phantom_dataset(tmp_path)
