"""A tiny end-to-end run: phantoms, training, evaluation, ONNX export, registry, serving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.pixels import InputSpec, prepare, read_dataset
from inference.runners.onnx import OnnxRunner
from models import ModelRegistry
from tests.support.tools import on_ci
from training.labels import CXR_FINDINGS, CXR_LABELS

try:
    import torch

    from training.cxr import (
        CxrTrainConfig,
        ParityError,
        TrainResult,
        check_parity,
        check_torchscript_parity,
        train_cxr,
    )
    from training.cxr.network import CxrNet
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    if on_ci():
        raise
    pytest.skip(
        f"PyTorch/MONAI (the `train` extra) is not installed: {exc}", allow_module_level=True
    )

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    work = tmp_path_factory.mktemp("cxr")
    return train_cxr(CxrTrainConfig.tiny(work / "run", registry_root=work / "registry"))


class TestTrainCxr:
    def test_history_and_metrics(self, run: TrainResult) -> None:
        assert [log.epoch for log in run.history] == [1, 2]
        assert 1 <= run.best_epoch <= 2
        assert all(np.isfinite(log.loss) for log in run.history)
        assert [m.key for m in run.metrics] == [str(f) for f in CXR_FINDINGS]
        assert sum(run.split_counts.values()) == 120
        for metric in run.metrics:
            assert 0.0 <= metric.threshold <= 1.0
            assert metric.positives + metric.negatives == run.split_counts["test"]
        assert run.parity_max_abs_diff <= 1e-4

    def test_registered_manifest_and_card(self, run: TrainResult) -> None:
        assert run.registered_dir is not None
        registry = ModelRegistry(run.config.registry_root)  # type: ignore[arg-type]
        model = registry.get("cxr", run.config.version)
        manifest = model.manifest
        assert manifest.target_keys == [str(f) for f in CXR_FINDINGS]
        for target, finding in zip(manifest.targets, CXR_FINDINGS, strict=True):
            assert target.code_value == CXR_LABELS[finding].concept.snomed_code
        metrics = {m.key: m for m in run.metrics}
        assert manifest.thresholds == pytest.approx(
            {key: metric.threshold for key, metric in metrics.items()}
        )
        assert manifest.training_data.synthetic is True
        assert InputSpec.from_dict(manifest.input) == run.config.input_spec
        assert manifest.network_data_format.class_weights == "class_weights.npy"
        assert set(manifest.artifacts) == {"model.onnx", "model.pt", "class_weights.npy"}
        assert model.runtime_path("torchscript").name == "model.pt"
        assert run.manifest.eval_metrics["torchscript_parity_max_abs_diff"] <= 1e-4
        card = model.card_path.read_text(encoding="utf-8")
        assert "only on synthetic" in card
        assert "no measured clinical performance" in card
        for metric in run.metrics:
            assert f"{metric.auroc.value:.3f}" in card

    def test_registered_model_serves_without_torch_code(self, run: TrainResult) -> None:
        model = ModelRegistry(run.config.registry_root).get("cxr")  # type: ignore[arg-type]
        spec = InputSpec.from_dict(model.manifest.input)
        files = sorted((run.config.work_dir / "phantoms" / "images").rglob("*.dcm"))[:3]
        batch = np.stack([prepare(read_dataset(path), spec).array for path in files])
        runner = OnnxRunner(model.runtime_path("onnx"))
        outputs = runner.run(batch)
        weights = np.load(model.artifact_path("class_weights.npy"))
        logits, features = outputs["logits"], outputs["features"]
        assert logits.shape == (3, len(CXR_FINDINGS))
        assert weights.shape == (len(CXR_FINDINGS), features.shape[1])
        # the logits are the linear layer over the pooled features: CAMs are consistent
        pooled = features.mean(axis=(2, 3)) @ weights.T
        assert np.allclose(logits - pooled, (logits - pooled)[0], atol=1e-4)

    def test_parity_refuses_a_different_model(self, run: TrainResult) -> None:
        other = CxrNet(run.config.net)
        torch.manual_seed(99)
        with torch.no_grad():
            for parameter in other.parameters():
                parameter.add_(torch.randn_like(parameter))
        images = np.zeros((2, 1, run.config.input_size, run.config.input_size), np.float32)
        with pytest.raises(ParityError, match="differs from PyTorch"):
            check_parity(other, run.onnx_path, images)
        script = ModelRegistry(run.config.registry_root).get("cxr").runtime_path("torchscript")  # type: ignore[arg-type]
        with pytest.raises(ParityError, match="TorchScript differs from PyTorch"):
            check_torchscript_parity(other, script, images)


class TestCxrTrainConfig:
    def test_rejects_bad_values(self, tmp_path: Path) -> None:
        with pytest.raises(ValueError, match="`epochs` must be a positive number, 0"):
            CxrTrainConfig(work_dir=tmp_path, epochs=0)
        with pytest.raises(ValueError, match="`target_sensitivity`"):
            CxrTrainConfig(work_dir=tmp_path, target_sensitivity=1.5)
