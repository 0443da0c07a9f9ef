"""CheXpert-v1.0-small reader on a fixture tree laid out like the release."""

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
    UncertaintyPolicy,
    read_chexpert,
)
from training.labels import CxrFinding

HEADER = [
    "Path",
    "Sex",
    "Age",
    "Frontal/Lateral",
    "AP/PA",
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
]
D = "CheXpert-v1.0-small"


def _row(path: str, view: str, appa: str, **values: str) -> dict[str, str]:
    row = dict.fromkeys(HEADER, "")
    row.update({"Path": f"{D}/{path}", "Sex": "Female", "Age": "68"})
    row.update({"Frontal/Lateral": view, "AP/PA": appa})
    row.update({k.replace("_", " "): v for k, v in values.items()})
    return row


TRAIN = [
    _row(
        "train/patient00001/study1/view1_frontal.jpg",
        "Frontal",
        "AP",
        No_Finding="1.0",
        Support_Devices="1.0",
    ),
    _row(
        "train/patient00002/study2/view1_frontal.jpg",
        "Frontal",
        "AP",
        Cardiomegaly="-1.0",
        Pleural_Effusion="1.0",
        Lung_Lesion="1.0",
        Pneumothorax="0.0",
    ),
    _row(
        "train/patient00002/study2/view2_lateral.jpg",
        "Lateral",
        "",
        Cardiomegaly="-1.0",
        Pleural_Effusion="1.0",
    ),
    _row(
        "train/patient00003/study1/view1_frontal.jpg",
        "Frontal",
        "PA",
        Consolidation="0.0",
        Pneumonia="-1.0",
    ),
]
VALID = [
    _row(
        "valid/patient64541/study1/view1_frontal.jpg",
        "Frontal",
        "AP",
        **{h.replace(" ", "_"): "0.0" for h in HEADER[5:]},
    ),
]


def _jpg(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), 100, dtype=np.uint8)).save(path, format="JPEG")


def _write_csv(path: Path, rows: list[dict[str, str]], header: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def _release(root: Path, header: list[str] = HEADER) -> Path:
    _write_csv(root / D / "train.csv", TRAIN, header)
    _write_csv(root / D / "valid.csv", VALID, header)
    for row in TRAIN + VALID:
        _jpg(root / row["Path"])
    return root


class TestReadChexpert:
    def test_mapping_with_uncertainty_ignored(self, tmp_path: Path) -> None:
        records = read_chexpert(_release(tmp_path))
        assert len(records) == 5
        normal, effusion = records[0], records[1]
        assert normal.labels == dict.fromkeys(CxrFinding, None)  # blank is not negative
        assert effusion.labels == {
            CxrFinding.CARDIOMEGALY: None,
            CxrFinding.PLEURAL_EFFUSION: 1,
            CxrFinding.PNEUMOTHORAX: 0,
            CxrFinding.CONSOLIDATION: None,
            CxrFinding.NODULE_MASS: 1,
        }
        assert records[4].labels == dict.fromkeys(CxrFinding, 0)

    @pytest.mark.parametrize(
        ("policy", "cardiomegaly", "consolidation"),
        [("ignore", None, None), ("ones", 1, 1), ("zeros", 0, 0)],
    )
    def test_uncertainty_policy(
        self, tmp_path: Path, policy: str, cardiomegaly: int | None, consolidation: int | None
    ) -> None:
        records = read_chexpert(_release(tmp_path), uncertainty=policy)
        assert records[1].labels[CxrFinding.CARDIOMEGALY] == cardiomegaly
        # Consolidation 0.0 with Pneumonia -1.0
        assert records[3].labels[CxrFinding.CONSOLIDATION] == consolidation

    def test_patients_studies_views_splits(self, tmp_path: Path) -> None:
        records = read_chexpert(_release(tmp_path))
        assert [r.patient_id for r in records] == [
            "patient00001",
            "patient00002",
            "patient00002",
            "patient00003",
            "patient64541",
        ]
        assert records[1].study_id == records[2].study_id == "patient00002/study2"
        assert [r.view for r in records] == ["AP", "AP", "LATERAL", "PA", "AP"]
        assert [r.split for r in records] == ["train"] * 4 + ["validation"]
        assert records[0].image_path == tmp_path / D / "train/patient00001/study1/view1_frontal.jpg"
        assert all(r.source == "chexpert" for r in records)

    def test_frontal_only_and_one_split(self, tmp_path: Path) -> None:
        records = read_chexpert(_release(tmp_path), frontal_only=True, splits=["train"])
        assert [r.view for r in records] == ["AP", "AP", "PA"]

    def test_release_folder_itself(self, tmp_path: Path) -> None:
        assert len(read_chexpert(_release(tmp_path) / D)) == 5

    def test_missing_csv(self, tmp_path: Path) -> None:
        _release(tmp_path)
        (tmp_path / D / "valid.csv").unlink()
        with pytest.raises(
            DatasetLayoutError, match=r"CheXpert valid list not found: .*valid\.csv"
        ):
            read_chexpert(tmp_path)

    def test_missing_release(self, tmp_path: Path) -> None:
        with pytest.raises(DatasetLayoutError, match=r"CheXpert-v1\.0-small is not a folder"):
            read_chexpert(tmp_path)

    def test_missing_column(self, tmp_path: Path) -> None:
        _release(tmp_path, header=[h for h in HEADER if h != "Lung Lesion"])
        with pytest.raises(MissingColumnError, match=r"train\.csv has no column 'Lung Lesion'"):
            read_chexpert(tmp_path)

    def test_missing_image(self, tmp_path: Path) -> None:
        _release(tmp_path)
        (tmp_path / D / "train/patient00003/study1/view1_frontal.jpg").unlink()
        with pytest.raises(DatasetLayoutError, match=r"row 5: image .*patient00003.* is missing"):
            read_chexpert(tmp_path)
        assert len(read_chexpert(tmp_path, require_images=False)) == 4

    def test_bad_value(self, tmp_path: Path) -> None:
        _release(tmp_path)
        _write_csv(tmp_path / D / "valid.csv", [{**VALID[0], "Cardiomegaly": "maybe"}], HEADER)
        with pytest.raises(
            DatasetFormatError, match=r"valid\.csv, row 2, column 'Cardiomegaly': 'maybe'"
        ):
            read_chexpert(tmp_path)

    def test_unknown_policy(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="`uncertainty` must be one of ignore, ones, zeros"):
            read_chexpert(tmp_path, uncertainty="half")
        assert UncertaintyPolicy("ones") is UncertaintyPolicy.ONES
