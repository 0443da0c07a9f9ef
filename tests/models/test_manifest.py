"""Tests for :mod:`models.manifest`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models import (
    MANIFEST_FILE,
    ArtifactChecksumError,
    ManifestError,
    ModelManifest,
    parse_semver,
    sha256_file,
)
from tests.models.builders import manifest_dict, write_version


class TestModelManifest:
    def test_round_trip(self, tmp_path: Path) -> None:
        path = write_version(tmp_path, manifest_dict())
        loaded = ModelManifest.load(path)
        loaded.save(tmp_path / "again.json")
        again = ModelManifest.load(tmp_path / "again.json")
        assert again == loaded
        assert loaded.target_keys == ["pneumothorax", "effusion"]
        assert loaded.thresholds == {"pneumothorax": 0.4, "effusion": 0.5}
        assert loaded.targets[0].display_vi == "Tràn khí màng phổi"
        assert "Tràn khí" in loaded.to_json()

    def test_load_directory(self, tmp_path: Path) -> None:
        write_version(tmp_path, manifest_dict())
        assert ModelManifest.load(tmp_path).name == "cxr"

    def test_frozen(self) -> None:
        manifest = ModelManifest.from_dict(manifest_dict())
        with pytest.raises(ValueError):
            manifest.name = "other"  # type: ignore[misc]

    @pytest.mark.parametrize(
        ("changes", "field", "needle"),
        [
            ({"version": "1.0"}, "version", "semantic version"),
            ({"name": "CXR model"}, "name", "pattern"),
            ({"changelog": {"0.9.0": "old"}}, "", "no entry for version '1.0.0'"),
            ({"changelog": {"1.0.0": "x", "latest": "y"}}, "changelog", "semantic version"),
            ({"targets": []}, "targets", "at least 1"),
            ({"runtime": {}}, "runtime", "at least 1"),
            ({"runtime": {"tensorrt": {"artifact": "model.onnx"}}}, "runtime.tensorrt", ""),
            ({"runtime": {"onnx": {"artifact": "other.onnx"}}}, "", "runtime.onnx.artifact"),
            ({"artifacts": {"../evil": {"sha256": "0" * 64, "size": 1}}}, "artifacts", "plain"),
            ({"artifacts": {"model.onnx": {"sha256": "xyz", "size": 1}}}, "artifacts", "pattern"),
            ({"seed": "seven"}, "seed", "integer"),
            ({"created_at": "2026-11-01T00:00:00"}, "created_at", "time zone"),
            ({"training_data": {"description": "x"}}, "training_data.synthetic", "required"),
            ({"unexpected": 1}, "unexpected", "not permitted"),
        ],
    )
    def test_invalid(
        self, tmp_path: Path, changes: dict[str, Any], field: str, needle: str
    ) -> None:
        path = tmp_path / MANIFEST_FILE
        path.write_text(json.dumps(manifest_dict(**changes)), encoding="utf-8")
        with pytest.raises(ManifestError) as info:
            ModelManifest.load(path, verify=False)
        assert info.value.path == path
        assert info.value.field.startswith(field)
        assert needle in str(info.value)
        assert str(path) in str(info.value)

    @pytest.mark.parametrize(
        ("mutate", "needle"),
        [
            (lambda d: d["targets"][0].update(threshold=1.5), "less than or equal to 1"),
            (lambda d: d["targets"][1].update(key="pneumothorax"), "repeated: ['pneumothorax']"),
            (lambda d: d["targets"][0].update(display_vi=""), "at least 1 character"),
            (
                lambda d: d["network_data_format"]["outputs"][0].update(shape=["N", 5]),
                "5 scores on its last axis but 2 targets",
            ),
            (lambda d: d["network_data_format"].update(logits="scores"), "'scores'"),
            (
                lambda d: d["network_data_format"]["outputs"][1].update(shape=["N", 8]),
                "must be [N, C, h, w]",
            ),
            (lambda d: d["network_data_format"].update(features=None), "needs a `features`"),
            (
                lambda d: d["network_data_format"]["inputs"][0].update(shape=["N", 0, 224]),
                "positive, 0 is given",
            ),
            (
                lambda d: d["network_data_format"]["inputs"][0].update(dtype="float8"),
                "float32",
            ),
        ],
    )
    def test_invalid_nested(self, mutate: Any, needle: str) -> None:
        data = manifest_dict()
        mutate(data)
        with pytest.raises(ManifestError, match=None) as info:
            ModelManifest.from_dict(data)
        assert needle in str(info.value)

    def test_not_json(self, tmp_path: Path) -> None:
        path = tmp_path / MANIFEST_FILE
        path.write_text("{not json", encoding="utf-8")
        with pytest.raises(ManifestError, match="not valid JSON"):
            ModelManifest.load(path)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ManifestError, match="file not found"):
            ModelManifest.load(tmp_path / MANIFEST_FILE)

    def test_saved_manifest_lists_artifacts(self, tmp_path: Path) -> None:
        path = tmp_path / MANIFEST_FILE
        path.write_text(json.dumps(manifest_dict(artifacts={})), encoding="utf-8")
        with pytest.raises(ManifestError, match="lists its artifacts"):
            ModelManifest.load(path)

    def test_changed_artifact_refused(self, tmp_path: Path) -> None:
        path = write_version(tmp_path, manifest_dict())
        expected = json.loads(path.read_text())["artifacts"]["model.onnx"]["sha256"]
        (tmp_path / "model.onnx").write_bytes(b"tampered")
        with pytest.raises(ArtifactChecksumError) as info:
            ModelManifest.load(path)
        message = str(info.value)
        assert "model.onnx" in message
        assert expected in message
        assert sha256_file(tmp_path / "model.onnx") in message
        assert ModelManifest.load(path, verify=False).name == "cxr"

    def test_missing_artifact(self, tmp_path: Path) -> None:
        path = write_version(tmp_path, manifest_dict())
        (tmp_path / "cam.npy").unlink()
        with pytest.raises(ManifestError, match=r"cam\.npy is missing"):
            ModelManifest.load(path)


class TestSemVer:
    @pytest.mark.parametrize(
        ("older", "newer"),
        [
            ("1.9.0", "1.10.0"),
            ("1.0.9", "1.0.10"),
            ("0.9.9", "1.0.0"),
            ("1.0.0-rc.1", "1.0.0"),
            ("1.0.0-alpha", "1.0.0-beta"),
            ("1.0.0-rc.2", "1.0.0-rc.10"),
            ("1.0.0-1", "1.0.0-alpha"),
        ],
    )
    def test_order(self, older: str, newer: str) -> None:
        assert parse_semver(older).key() < parse_semver(newer).key()

    @pytest.mark.parametrize("text", ["1", "1.0", "01.0.0", "1.0.0.0", "v1.0.0", ""])
    def test_invalid(self, text: str) -> None:
        with pytest.raises(ValueError, match="semantic version"):
            parse_semver(text)
