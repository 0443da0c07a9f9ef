"""``soi train cxr`` and ``soi infer``: a tiny model trained, registered and run from the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from models import ModelRegistry
from soi.cli import app
from soi.services.infer import compare_metrics
from soi.settings import SHIPPED_MODELS_DIR, SHIPPED_SAMPLES_DIR
from tests.support.data import pydicom_file
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom
from training.phantoms.samples import CXR_SAMPLES

runner = CliRunner()

_HAS_TORCH = importlib.util.find_spec("torch") is not None and (
    importlib.util.find_spec("monai") is not None
)


def _require_torch() -> None:
    if not _HAS_TORCH:
        if os.environ.get("CI") == "true":
            pytest.fail("PyTorch and MONAI must be installed on CI (the train extra)")
        pytest.skip("PyTorch and MONAI are not installed (pip install -e '.[train]')")


class TestInferWithoutModel:
    def test_missing_model_says_how_to_get_one(self, tmp_path: Path) -> None:
        result = runner.invoke(
            app, ["infer", str(pydicom_file("CT_small.dcm")), "--registry", str(tmp_path)]
        )
        assert result.exit_code == 1
        assert "soi train cxr" in result.output


@pytest.mark.slow
class TestTrainThenInfer:
    def test_tiny_model_end_to_end(self, tmp_path: Path) -> None:
        _require_torch()
        registry = tmp_path / "registry"
        trained = runner.invoke(
            app,
            ["train", "cxr", "--size", "tiny", "--work-dir", str(tmp_path / "work"),
             "--registry", str(registry)],
        )  # fmt: skip
        assert trained.exit_code == 0, trained.output
        assert "synthetic phantoms only" in trained.output
        assert (registry / "cxr" / "0.0.1-tiny" / "model.onnx").is_file()
        assert (registry / "cxr" / "0.0.1-tiny" / "model.pt").is_file()

        rng = np.random.default_rng(5)
        phantom = generate_cxr(rng, findings={CxrFinding.CARDIOMEGALY}, size=512)
        chest = tmp_path / "chest.dcm"
        phantom_to_dicom(phantom, rng, modality="CR").save_as(chest, enforce_file_format=True)
        heatmaps = tmp_path / "heatmaps"
        result = runner.invoke(
            app,
            ["infer", str(chest), str(pydicom_file("CT_small.dcm")), "--registry", str(registry),
             "--heatmaps", str(heatmaps), "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        studies = [json.loads(line) for line in result.output.splitlines() if line.strip()]
        instances = {Path(i["path"]).name: i for s in studies for i in s["instances"]}
        chest_result = instances["chest.dcm"]
        assert chest_result["state"] == "complete"
        assert chest_result["preliminary"] is True
        assert [f["key"] for f in chest_result["findings"]] == [f.value for f in CxrFinding]
        for finding in chest_result["findings"]:
            assert 0.0 <= finding["probability"] <= 1.0
            if finding["positive"]:
                assert Path(finding["heatmap"]["overlay"]).is_file()
                assert Path(finding["heatmap"]["array"]).is_file()
            else:
                assert finding["heatmap"] is None
        ct = instances["CT_small.dcm"]
        assert ct["state"] == "ungradable"
        assert "CT" in ct["reason"]["en"]
        assert ct["reason"]["vi"]

        # The same command retrains and compares with what it registered.
        reproduced = runner.invoke(
            app,
            ["train", "cxr", "--size", "tiny", "--work-dir", str(tmp_path / "again"),
             "--registry", str(registry), "--reproduce"],
        )  # fmt: skip
        assert reproduced.exit_code == 0, reproduced.output
        assert "Reproduced cxr 0.0.1-tiny" in reproduced.output
        assert ModelRegistry(registry).versions("cxr") == ["0.0.1-tiny"]


class TestCompareMetrics:
    def test_a_metric_out_of_tolerance_is_a_difference(self) -> None:
        manifest = ModelRegistry(SHIPPED_MODELS_DIR).get("cxr").manifest
        per_target = manifest.eval_metrics["per_target"]

        class Retrained:
            def __init__(self, key: str, shift: float) -> None:
                self.key = key
                for name in ("auroc", "sensitivity", "specificity"):
                    value = per_target[key][name]["value"] + shift
                    setattr(self, name, type("CI", (), {"value": value})())

        same = compare_metrics(manifest, [Retrained(k, 0.0) for k in per_target])
        assert same
        assert all(row.within for row in same)
        shifted = compare_metrics(manifest, [Retrained("pneumothorax", -0.06)])
        assert [row.metric for row in shifted if not row.within] == [
            "auroc",
            "sensitivity",
            "specificity",
        ]


class TestInferShippedSamples:
    def test_findings_and_heatmaps_for_each_sample(self, tmp_path: Path) -> None:
        heatmaps = tmp_path / "heatmaps"
        result = runner.invoke(
            app,
            ["infer", str(SHIPPED_SAMPLES_DIR / "cxr"), "--heatmaps", str(heatmaps), "--json"],
        )
        assert result.exit_code == 0, result.output
        studies = [json.loads(line) for line in result.output.splitlines() if line.strip()]
        by_file = {Path(i["path"]).name: i for s in studies for i in s["instances"]}
        assert len(by_file) == len(CXR_SAMPLES)
        for sample in CXR_SAMPLES:
            analysed = by_file[sample.file_name]
            assert analysed["model"] == {"name": "cxr", "version": "0.2.0"}
            if sample.view == "LATERAL":
                assert analysed["state"] == "ungradable"
                assert "lateral" in analysed["reason"]["en"]
                continue
            assert analysed["state"] == "complete"
            positives = {f["key"] for f in analysed["findings"] if f["positive"]}
            # Every finding drawn into the sample is found (the model is trained on such
            # phantoms; this says nothing about real radiographs).
            assert {str(f) for f in sample.findings} <= positives, analysed["findings"]
            for finding in analysed["findings"]:
                if finding["positive"]:
                    assert Path(finding["heatmap"]["overlay"]).is_file()
