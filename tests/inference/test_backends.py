"""The shipped chest X-ray model on both backends: same findings, CAM and Grad-CAM heatmaps."""

from __future__ import annotations

import dataclasses
import importlib.util
import os

import numpy as np
import pytest
from pydicom import Dataset

from inference import CxrPipeline, RunnerError, load_runner
from inference.explain import class_activation_map, grad_cam_map
from models import ModelRegistry, RegisteredModel
from soi.settings import SHIPPED_MODELS_DIR
from training.labels import CxrFinding
from training.phantoms import generate_cxr, phantom_to_dicom


def _need_torch() -> None:
    if importlib.util.find_spec("torch") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PyTorch must be installed on CI (the train extra)")
        pytest.skip("PyTorch is not installed (pip install -e '.[train]')")


@pytest.fixture(scope="module")
def shipped() -> RegisteredModel:
    return ModelRegistry(SHIPPED_MODELS_DIR).get("cxr")


@pytest.fixture(scope="module")
def chests() -> list[Dataset]:
    rng = np.random.default_rng(77)
    drawn = [
        {CxrFinding.CARDIOMEGALY, CxrFinding.PLEURAL_EFFUSION},
        {CxrFinding.PNEUMOTHORAX},
        {CxrFinding.CONSOLIDATION},
    ]
    return [
        phantom_to_dicom(generate_cxr(rng, findings=f, size=512), rng, modality="DX") for f in drawn
    ]


class TestLoadRunner:
    def test_unknown_backend(self, shipped: RegisteredModel) -> None:
        with pytest.raises(ValueError, match="`backend` must be one of"):
            load_runner(shipped, backend="tensorrt")

    def test_a_version_without_the_backend_artifact(self, shipped: RegisteredModel) -> None:
        runtime = {"onnx": shipped.manifest.runtime["onnx"]}
        onnx_only = dataclasses.replace(
            shipped, manifest=shipped.manifest.model_copy(update={"runtime": runtime})
        )
        with pytest.raises(RunnerError, match="has no torchscript artifact"):
            load_runner(onnx_only, backend="torch")


class TestBothBackends:
    def test_same_findings_and_heatmaps_that_agree(
        self, shipped: RegisteredModel, chests: list[Dataset]
    ) -> None:
        _need_torch()
        onnx = CxrPipeline(shipped, backend="onnx", threads=2)
        torch = CxrPipeline(shipped, backend="torch", threads=2, device="cpu")
        try:
            assert (onnx.explanation, torch.explanation) == ("cam", "grad-cam")
            by_onnx = onnx.analyse_many(chests)
            by_torch = torch.analyse_many(chests)
        finally:
            onnx.close()
            torch.close()
        positives = 0
        for one, other in zip(by_onnx, by_torch, strict=True):
            assert one.state.value == other.state.value == "complete"
            for a, b in zip(one.findings, other.findings, strict=True):
                assert a.probability == pytest.approx(b.probability, abs=1e-4)
                assert a.positive == b.positive
            assert set(one.heatmaps) == set(other.heatmaps)
            for key, cam in one.heatmaps.items():
                positives += 1
                assert other.explanation == "grad-cam"
                # With global average pooling then one linear layer, Grad-CAM's weights
                # are the class weights divided by the map's area: the same map.
                np.testing.assert_allclose(other.heatmaps[key], cam, atol=2e-3)
        assert positives >= 3


class TestGradCamMap:
    def test_equals_cam_for_a_pooled_linear_head(self) -> None:
        rng = np.random.default_rng(0)
        features = np.maximum(rng.standard_normal((6, 4, 4)), 0.0)
        weights = rng.standard_normal(6)
        # d(w · mean(F)) / dF = w / (h w) everywhere
        gradients = np.broadcast_to((weights / 16.0)[:, None, None], features.shape)
        np.testing.assert_allclose(
            grad_cam_map(features, gradients), class_activation_map(features, weights), atol=1e-6
        )

    def test_refuses_a_gradient_of_another_shape(self) -> None:
        with pytest.raises(ValueError, match="shape of `features`"):
            grad_cam_map(np.ones((2, 3, 3)), np.ones((2, 3)))
