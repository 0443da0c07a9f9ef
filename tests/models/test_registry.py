"""Tests for :mod:`models.registry`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from models import (
    ACTIVE_FILE,
    MANIFEST_FILE,
    MODEL_CARD_FILE,
    ArtifactChecksumError,
    ManifestError,
    ModelManifest,
    ModelRegistry,
    UnknownModelError,
    UnknownVersionError,
    VersionExistsError,
    sha256_file,
)
from tests.models.builders import manifest_dict


def make_manifest(version: str = "1.0.0", name: str = "cxr") -> ModelManifest:
    """A valid manifest without artifacts, as a trainer hands it to the registry."""
    return ModelManifest.from_dict(
        manifest_dict(name=name, version=version, changelog={version: "change"}, artifacts={})
    )


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    model = tmp_path / "src" / "exported.onnx"
    model.parent.mkdir()
    model.write_bytes(b"onnx bytes")
    cam = tmp_path / "src" / "weights.npy"
    cam.write_bytes(b"cam weights")
    return {"model.onnx": model, "cam.npy": cam}


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    return ModelRegistry(tmp_path / "registry")


class TestModelRegistry:
    def test_register_and_get(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        directory = registry.register(make_manifest(), sources, "# CXR\n")
        assert directory == registry.root / "cxr" / "1.0.0"
        assert sorted(p.name for p in directory.iterdir()) == sorted(
            ["cam.npy", "model.onnx", MANIFEST_FILE, MODEL_CARD_FILE]
        )
        found = registry.get("cxr")
        assert found.directory == directory
        assert found.manifest.artifacts["model.onnx"].sha256 == sha256_file(sources["model.onnx"])
        assert found.manifest.artifacts["model.onnx"].size == len(b"onnx bytes")
        assert found.runtime_path("onnx").read_bytes() == b"onnx bytes"
        assert found.card_path.read_text(encoding="utf-8") == "# CXR\n"
        assert registry.list() == ["cxr"]
        assert registry.versions("cxr") == ["1.0.0"]
        assert not list((registry.root / "cxr").glob(".staging-*"))

    def test_refuses_overwrite(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        registry.register(make_manifest(), sources, "card")
        with pytest.raises(VersionExistsError, match="already registered"):
            registry.register(make_manifest(), sources, "other card")
        assert registry.get("cxr").card_path.read_text(encoding="utf-8") == "card"

    def test_newest_by_semver(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        for version in ["1.9.0", "1.10.0", "1.2.0", "1.10.0-rc.1"]:
            registry.register(make_manifest(version), sources, "card")
        assert registry.versions("cxr") == ["1.2.0", "1.9.0", "1.10.0-rc.1", "1.10.0"]
        assert registry.get("cxr").manifest.version == "1.10.0"

    def test_activate(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        for version in ["1.9.0", "1.10.0"]:
            registry.register(make_manifest(version), sources, "card")
        assert registry.active("cxr") is None
        registry.activate("cxr", "1.9.0")
        assert (registry.root / "cxr" / ACTIVE_FILE).read_text().strip() == "1.9.0"
        assert registry.active("cxr") == "1.9.0"
        assert registry.get("cxr").manifest.version == "1.9.0"
        assert registry.get("cxr", "1.10.0").manifest.version == "1.10.0"
        with pytest.raises(UnknownVersionError, match=r"no version '2\.0\.0'"):
            registry.activate("cxr", "2.0.0")

    def test_unknown_model(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        assert registry.list() == []
        registry.register(make_manifest(), sources, "card")
        with pytest.raises(UnknownModelError, match=r"unknown model 'fundus'.*known models: cxr"):
            registry.get("fundus")
        with pytest.raises(UnknownModelError):
            registry.versions("../cxr")

    def test_unknown_version(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        registry.register(make_manifest(), sources, "card")
        with pytest.raises(UnknownVersionError, match=r"known versions: 1\.0\.0"):
            registry.get("cxr", "1.1.0")

    def test_stale_active_pointer(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        registry.register(make_manifest(), sources, "card")
        (registry.root / "cxr" / ACTIVE_FILE).write_text("3.0.0\n")
        with pytest.raises(UnknownVersionError, match=r"3\.0\.0"):
            registry.get("cxr")

    def test_corrupt_manifest(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        directory = registry.register(make_manifest(), sources, "card")
        (directory / MANIFEST_FILE).write_text("{", encoding="utf-8")
        with pytest.raises(ManifestError, match="not valid JSON"):
            registry.get("cxr")

    def test_manifest_must_match_directory(
        self, registry: ModelRegistry, sources: dict[str, Path]
    ) -> None:
        directory = registry.register(make_manifest(), sources, "card")
        moved = directory.parent / "2.0.0"
        directory.rename(moved)
        with pytest.raises(ManifestError, match=r"field 'version' = '1\.0\.0'"):
            registry.get("cxr", "2.0.0")

    def test_changed_artifact(self, registry: ModelRegistry, sources: dict[str, Path]) -> None:
        directory = registry.register(make_manifest(), sources, "card")
        (directory / "model.onnx").write_bytes(b"other bytes")
        with pytest.raises(ArtifactChecksumError, match=r"model\.onnx"):
            registry.get("cxr")
        assert registry.get("cxr", verify=False).manifest.version == "1.0.0"

    def test_missing_referenced_artifact(
        self, registry: ModelRegistry, sources: dict[str, Path]
    ) -> None:
        with pytest.raises(ManifestError, match=r"class_weights names 'cam\.npy'"):
            registry.register(make_manifest(), {"model.onnx": sources["model.onnx"]}, "card")
        assert registry.list() == []

    @pytest.mark.parametrize("file_name", ["../x.onnx", MANIFEST_FILE, MODEL_CARD_FILE, ".hidden"])
    def test_bad_file_names(
        self, registry: ModelRegistry, sources: dict[str, Path], file_name: str
    ) -> None:
        with pytest.raises(ManifestError, match="plain file names"):
            registry.register(make_manifest(), {file_name: sources["model.onnx"]}, "card")

    def test_missing_source(self, registry: ModelRegistry, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match=r"absent\.onnx"):
            registry.register(make_manifest(), {"model.onnx": tmp_path / "absent.onnx"}, "c")

    def test_register_writes_valid_manifest(
        self, registry: ModelRegistry, sources: dict[str, Path]
    ) -> None:
        directory = registry.register(make_manifest(), sources, "card")
        data = json.loads((directory / MANIFEST_FILE).read_text(encoding="utf-8"))
        assert set(data["artifacts"]) == {"model.onnx", "cam.npy"}
        assert ModelManifest.load(directory).version == "1.0.0"
