"""``soi train cxr`` and ``soi infer``: a tiny model trained, registered and run from the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from soi.cli import app
from tests.support.data import pydicom_file
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom

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
