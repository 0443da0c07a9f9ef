"""VinDr-CXR reader on fixture trees laid out like the PhysioNet and Kaggle releases."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from tests.support.data import make_cr, write_dataset
from training.datasets import (
    DatasetFormatError,
    DatasetLayoutError,
    MissingColumnError,
    read_vindr_cxr,
)
from training.labels import CxrFinding

BOX_HEADER = ["image_id", "rad_id", "class_name", "x_min", "y_min", "x_max", "y_max"]
A, B, C = "000434271f63a053c4128a0ba6352c7f", "00053190460d56c53cc3e57321387478", "0005e8e3701d"
BOXES = [
    [A, "R8", "Cardiomegaly", "691", "1375", "1653", "1831"],
    [A, "R9", "Cardiomegaly", "700", "1380", "1660", "1840"],
    [A, "R10", "Nodule/Mass", "400", "500", "460", "560"],
    [B, "R8", "No finding", "", "", "", ""],
    [B, "R9", "No finding", "", "", "", ""],
    [B, "R10", "Pleural effusion", "100", "1800", "600", "2100"],
    [C, "R8", "Pneumothorax", "1500", "200", "2000", "900"],
    [C, "R9", "Aortic enlargement", "1200", "700", "1400", "900"],
    [C, "R10", "Pneumothorax", "1510", "210", "2010", "910"],
]
LABEL_NAMES = [
    "Aortic enlargement",
    "Atelectasis",
    "Calcification",
    "Cardiomegaly",
    "Clavicle fracture",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged PA",
    "ILD",
    "Infiltration",
    "Lung Opacity",
    "Lung cavity",
    "Lung cyst",
    "Mediastinal shift",
    "Nodule/Mass",
    "Pleural effusion",
    "Pleural thickening",
    "Pneumothorax",
    "Pulmonary fibrosis",
    "Rib fracture",
    "Other lesion",
    "COPD",
    "Lung tumor",
    "Pneumonia",
    "Tuberculosis",
    "Other diseases",
    "No finding",
]


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def _images(root: Path, split: str, ids: list[str], view: str = "PA") -> None:
    for image_id in ids:
        write_dataset(
            make_cr(rows=8, columns=8, view_position=view), root / split / f"{image_id}.dicom"
        )


def _physionet(root: Path, *, image_labels: bool = False) -> Path:
    _csv(root / "annotations" / "annotations_train.csv", BOX_HEADER, BOXES)
    if image_labels:
        rows = []
        for rad in ("R8", "R9", "R10"):
            row = dict.fromkeys(LABEL_NAMES, "0")
            row["Consolidation" if rad != "R10" else "Pneumonia"] = "1"
            rows.append([B, rad, *row.values()])
        _csv(
            root / "annotations" / "image_labels_train.csv",
            ["image_id", "rad_ID", *LABEL_NAMES],
            rows,
        )
    _images(root, "train", [A, B, C])
    return root


class TestReadVindrCxr:
    def test_labels_from_boxes_by_majority(self, tmp_path: Path) -> None:
        records = {r.study_id: r for r in read_vindr_cxr(_physionet(tmp_path))}
        assert records[A].positives() == {CxrFinding.CARDIOMEGALY}  # nodule: 1 reader of 3
        assert records[B].positives() == frozenset()
        assert records[C].positives() == {CxrFinding.PNEUMOTHORAX}
        assert records[A].labels[CxrFinding.CONSOLIDATION] == 0

    def test_labels_from_boxes_by_any(self, tmp_path: Path) -> None:
        records = {r.study_id: r for r in read_vindr_cxr(_physionet(tmp_path), aggregation="any")}
        assert records[A].positives() == {CxrFinding.CARDIOMEGALY, CxrFinding.NODULE_MASS}
        assert records[B].positives() == {CxrFinding.PLEURAL_EFFUSION}

    def test_boxes_are_kept(self, tmp_path: Path) -> None:
        records = {r.study_id: r for r in read_vindr_cxr(_physionet(tmp_path))}
        boxes = records[C].boxes
        assert boxes is not None
        assert len(boxes) == 3
        aortic = next(b for b in boxes if b.class_name == "Aortic enlargement")
        assert aortic.finding is None
        assert aortic.reader == "R9"
        assert (aortic.x_min, aortic.y_min, aortic.x_max, aortic.y_max) == (1200, 700, 1400, 900)
        assert records[B].boxes is not None
        assert len(records[B].boxes) == 1

    def test_image_labels_win_and_include_pneumonia(self, tmp_path: Path) -> None:
        records = {r.study_id: r for r in read_vindr_cxr(_physionet(tmp_path, image_labels=True))}
        assert records[B].labels[CxrFinding.CONSOLIDATION] == 1
        assert records[B].labels[CxrFinding.PLEURAL_EFFUSION] == 0
        assert records[A].labels[CxrFinding.CARDIOMEGALY] == 1  # no image-label row: boxes

    def test_records(self, tmp_path: Path) -> None:
        records = read_vindr_cxr(_physionet(tmp_path))
        assert [r.patient_id for r in records] == sorted([A, B, C])
        assert all(r.image_path == tmp_path / "train" / f"{r.study_id}.dicom" for r in records)
        assert all(r.split == "train" and r.source == "vindr-cxr" for r in records)

    def test_kaggle_layout(self, tmp_path: Path) -> None:
        _csv(
            tmp_path / "train.csv",
            [*BOX_HEADER[:3], "class_id", *BOX_HEADER[3:]],
            [[*row[:3], "3", *row[3:]] for row in BOXES],
        )
        _images(tmp_path, "train", [A, B, C])
        assert len(read_vindr_cxr(tmp_path)) == 3

    def test_frontal_only_reads_the_view(self, tmp_path: Path) -> None:
        root = _physionet(tmp_path)
        _images(root, "train", [C], view="LL")
        records = read_vindr_cxr(root, frontal_only=True)
        assert [r.study_id for r in records] == sorted([A, B])
        assert records[0].view == "PA"

    def test_missing_csv(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetLayoutError, match=r"annotations_test\.csv does not exist"):
            read_vindr_cxr(tmp_path, split="test")

    def test_missing_column(self, tmp_path: Path) -> None:
        _csv(
            tmp_path / "annotations" / "annotations_train.csv",
            BOX_HEADER[:-1],
            [row[:-1] for row in BOXES],
        )
        with pytest.raises(
            MissingColumnError, match=r"annotations_train\.csv has no column 'y_max'"
        ):
            read_vindr_cxr(tmp_path)

    def test_missing_label_column(self, tmp_path: Path) -> None:
        root = _physionet(tmp_path)
        _csv(
            root / "annotations" / "image_labels_train.csv",
            ["image_id", "rad_ID", "Cardiomegaly"],
            [[A, "R8", "1"]],
        )
        with pytest.raises(MissingColumnError, match=r"image_labels_train\.csv has no column"):
            read_vindr_cxr(root)

    def test_missing_image(self, tmp_path: Path) -> None:
        root = _physionet(tmp_path)
        (root / "train" / f"{B}.dicom").unlink()
        with pytest.raises(DatasetLayoutError, match=f"{B}.dicom is missing"):
            read_vindr_cxr(root)
        assert len(read_vindr_cxr(root, require_images=False)) == 2

    def test_bad_coordinate(self, tmp_path: Path) -> None:
        rows = [[*BOXES[0][:3], "left", *BOXES[0][4:]]]
        _csv(tmp_path / "annotations" / "annotations_train.csv", BOX_HEADER, rows)
        with pytest.raises(DatasetFormatError, match="row 2, column 'x_min': 'left'"):
            read_vindr_cxr(tmp_path)

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [({"split": "valid"}, "`split` must be"), ({"aggregation": "mean"}, "`aggregation`")],
    )
    def test_bad_arguments(self, tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            read_vindr_cxr(tmp_path, **kwargs)  # type: ignore[arg-type]
