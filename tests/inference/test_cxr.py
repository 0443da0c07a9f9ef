"""The chest X-ray pipeline on phantoms, with a tiny ONNX model from the model registry."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from pydicom import Dataset

from inference import CxrAnalysis, CxrPipeline, RunnerError, make_runner
from models import ModelManifest, ModelRegistry, RegisteredModel
from store import ResultState
from tests.inference.gates.builders import chest, grey_dataset
from tests.inference.runners.builders import CHANNELS, FEATURE_SIZE, TARGETS, build_tiny_cnn
from tests.inference.runners.builders import weights as tiny_weights
from tests.models.builders import manifest_dict
from tests.support.data import make_cr

SIZE = 32
THRESHOLDS = (0.0, 0.3, 0.5, 0.7, 1.0)
KEYS = ("cardiomegaly", "effusion", "pneumothorax", "consolidation", "nodule")


def _targets() -> list[dict[str, Any]]:
    return [
        {
            "key": key,
            "display_en": key.capitalize(),
            "display_vi": f"Chẩn đoán {index}",
            "code_scheme": "SCT",
            "code_value": str(1000 + index),
            "code_meaning": key.capitalize(),
            "threshold": threshold,
        }
        for index, (key, threshold) in enumerate(zip(KEYS, THRESHOLDS, strict=True))
    ]


def _manifest(*, features: bool = True, name: str = "cxr") -> ModelManifest:
    outputs: list[dict[str, Any]] = [{"name": "logits", "dtype": "float32", "shape": ["N", 5]}]
    network: dict[str, Any] = {
        "inputs": [{"name": "pixels", "dtype": "float32", "shape": ["N", 1, SIZE, SIZE]}],
        "outputs": outputs,
    }
    if features:
        outputs.append(
            {
                "name": "features",
                "dtype": "float32",
                "shape": ["N", CHANNELS, FEATURE_SIZE, FEATURE_SIZE],
            }
        )
        network.update(features="features", class_weights="cam.npy")
    return ModelManifest.from_dict(
        manifest_dict(
            name=name,
            targets=_targets(),
            input={"size": SIZE, "channels": 1},
            network_data_format=network,
            artifacts={},
        )
    )


def _downsampled_tiny_cnn(path: Path) -> Path:
    """The tiny CNN behind a 2 × 2 average pool, so it takes the 32-pixel input."""
    inner = onnx.load(str(build_tiny_cnn(path.with_name("inner.onnx"))))
    graph = inner.graph
    old_input = graph.input[0]
    graph.input.remove(old_input)
    graph.input.append(
        helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])
    )
    graph.node.insert(
        0,
        helper.make_node(
            "AveragePool", ["pixels"], [old_input.name], kernel_shape=[2, 2], strides=[2, 2]
        ),
    )
    onnx.checker.check_model(inner)
    onnx.save(inner, str(path))
    return path


def _nan_model(path: Path) -> Path:
    """A model whose logits are 0 / 0 for every image."""
    zeros = numpy_helper.from_array(np.zeros((1, TARGETS), dtype=np.float32), "zeros")
    nodes = [
        helper.make_node("GlobalAveragePool", ["pixels"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("MatMul", ["flat", "zeros"], ["zero"]),
        helper.make_node("Div", ["zero", "zero"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes,
        "nan_model",
        [helper.make_tensor_value_info("pixels", TensorProto.FLOAT, ["N", 1, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", TARGETS])],
        initializer=[zeros],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _register(
    root: Path, manifest: ModelManifest, model: Path, cam: Path | None = None
) -> RegisteredModel:
    registry = ModelRegistry(root / "registry")
    files = {"model.onnx": model}
    if cam is not None:
        files["cam.npy"] = cam
    registry.register(manifest, files, "# test model\n")
    return registry.get(manifest.name, manifest.version)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> RegisteredModel:
    root = tmp_path_factory.mktemp("cxr-model")
    onnx_path = _downsampled_tiny_cnn(root / "model.onnx")
    cam = root / "cam.npy"
    np.save(cam, tiny_weights()["fc_w"])
    return _register(root, _manifest(), onnx_path, cam)


@pytest.fixture(scope="module")
def pipeline(model: RegisteredModel) -> CxrPipeline:
    return CxrPipeline(model)


@pytest.fixture(scope="module")
def frontal() -> Dataset:
    return chest("PA", seed=1)[0]


def _assert_same(one: CxrAnalysis, other: CxrAnalysis) -> None:
    assert one.state == other.state
    assert (one.reason_en, one.reason_vi) == (other.reason_en, other.reason_vi)
    assert [f.key for f in one.findings] == [f.key for f in other.findings]
    for a, b in zip(one.findings, other.findings, strict=True):
        assert a.probability == pytest.approx(b.probability, abs=1e-6)
        assert a.positive == b.positive
    assert sorted(one.heatmaps) == sorted(other.heatmaps)
    for key, heatmap in one.heatmaps.items():
        np.testing.assert_allclose(heatmap, other.heatmaps[key], atol=1e-5)


class TestComplete:
    def test_frontal_phantom_gets_findings_in_target_order(
        self, pipeline: CxrPipeline, frontal: Dataset
    ) -> None:
        analysis = pipeline.analyse(frontal)

        assert analysis.state is ResultState.COMPLETE
        assert (analysis.reason_en, analysis.reason_vi) == ("", "")
        assert analysis.gate_report is not None
        assert analysis.gate_report.passed
        assert [f.key for f in analysis.findings] == list(KEYS)
        assert [f.threshold for f in analysis.findings] == list(THRESHOLDS)
        assert (analysis.model_name, analysis.model_version) == ("cxr", "1.0.0")
        for finding in analysis.findings:
            assert 0.0 <= finding.probability <= 1.0
            assert finding.positive == (finding.probability >= finding.threshold)
            assert finding.code_scheme == "SCT"
        assert analysis.findings[0].positive  # threshold 0

    def test_probabilities_are_the_sigmoid_of_the_model_logits(
        self, pipeline: CxrPipeline, model: RegisteredModel, frontal: Dataset
    ) -> None:
        from inference import prepare
        from inference.pixels import InputSpec

        prepared = prepare(frontal, InputSpec.from_dict(model.manifest.input))
        with make_runner("onnx", model.runtime_path("onnx")) as runner:
            logits = runner.run(prepared.array[None])["logits"][0].astype(np.float64)

        analysis = pipeline.analyse(frontal)

        expected = 1.0 / (1.0 + np.exp(-logits))
        np.testing.assert_allclose([f.probability for f in analysis.findings], expected, atol=1e-6)

    def test_positive_findings_get_heatmaps_on_the_original_grid(
        self, pipeline: CxrPipeline, frontal: Dataset
    ) -> None:
        analysis = pipeline.analyse(frontal)

        positives = {f.key for f in analysis.findings if f.positive}
        assert set(analysis.heatmaps) == positives
        for heatmap in analysis.heatmaps.values():
            assert heatmap.shape == (int(frontal.Rows), int(frontal.Columns))
            assert heatmap.dtype == np.float32
            assert np.isfinite(heatmap).all()
            assert heatmap.min() >= 0.0
            assert heatmap.max() <= 1.0

    def test_without_class_weights_there_are_no_heatmaps(
        self, tmp_path: Path, frontal: Dataset
    ) -> None:
        registered = _register(
            tmp_path,
            _manifest(features=False, name="cxr-plain"),
            _downsampled_tiny_cnn(tmp_path / "model.onnx"),
        )

        analysis = CxrPipeline(registered).analyse(frontal)

        assert analysis.state is ResultState.COMPLETE
        assert analysis.findings[0].positive
        assert dict(analysis.heatmaps) == {}

    def test_to_json_is_json_and_marked_preliminary(
        self, pipeline: CxrPipeline, frontal: Dataset
    ) -> None:
        document = pipeline.analyse(frontal).to_json()

        decoded = json.loads(json.dumps(document, ensure_ascii=False))
        assert decoded["state"] == "complete"
        assert decoded["preliminary"] is True
        assert decoded["model"] == {"name": "cxr", "version": "1.0.0"}
        assert [f["key"] for f in decoded["findings"]] == list(KEYS)
        assert decoded["heatmaps"]["cardiomegaly"] == [int(frontal.Rows), int(frontal.Columns)]
        assert all(gate["passed"] for gate in decoded["gates"])


class TestUngradable:
    @pytest.mark.parametrize(
        ("make", "gate"),
        [
            (lambda: chest("LATERAL", seed=2)[0], "view"),
            (lambda: make_cr(modality="CT", body_part="HEAD", rows=64, columns=64), "modality"),
        ],
        ids=["lateral", "ct"],
    )
    def test_refused_by_a_gate_with_both_reasons(
        self, pipeline: CxrPipeline, make: Any, gate: str
    ) -> None:
        analysis = pipeline.analyse(make())

        assert analysis.state is ResultState.UNGRADABLE
        assert analysis.reason_en
        assert analysis.reason_vi
        assert analysis.reason_en != analysis.reason_vi
        assert analysis.findings == ()
        assert dict(analysis.heatmaps) == {}
        assert analysis.gate_report is not None
        assert [outcome.gate for outcome in analysis.gate_report.failures] == [gate]
        assert analysis.to_json()["reason"] == {
            "en": analysis.reason_en,
            "vi": analysis.reason_vi,
        }


class TestFailed:
    def test_a_one_pixel_image_fails_with_a_reason(self, pipeline: CxrPipeline) -> None:
        analysis = pipeline.analyse(grey_dataset(np.zeros((1, 1), dtype=np.uint16)))

        assert analysis.state is ResultState.FAILED
        assert "1 × Columns 1" in analysis.reason_en
        assert analysis.reason_vi
        assert analysis.gate_report is None
        assert analysis.findings == ()

    def test_undecodable_pixels_fail_with_a_reason(self, pipeline: CxrPipeline) -> None:
        dataset = make_cr(rows=64, columns=64)
        dataset.PixelData = dataset.PixelData[:100]

        analysis = pipeline.analyse(dataset)

        assert analysis.state is ResultState.FAILED
        assert "cannot be decoded" in analysis.reason_en
        assert analysis.reason_vi

    def test_nan_model_output_fails_with_a_precise_reason(
        self, tmp_path: Path, frontal: Dataset
    ) -> None:
        registered = _register(
            tmp_path, _manifest(features=False, name="cxr-nan"), _nan_model(tmp_path / "m.onnx")
        )

        analysis = CxrPipeline(registered).analyse(frontal)

        assert analysis.state is ResultState.FAILED
        assert "'logits' is not finite" in analysis.reason_en
        assert all(key in analysis.reason_en for key in KEYS)
        assert analysis.reason_vi
        assert analysis.findings == ()


class TestAnalyseMany:
    def test_batches_give_the_same_results_as_one_by_one(
        self, model: RegisteredModel, pipeline: CxrPipeline
    ) -> None:
        datasets = [
            chest("PA", seed=3)[0],
            chest("LATERAL", seed=4)[0],
            chest("AP", seed=5)[0],
            grey_dataset(np.zeros((1, 1), dtype=np.uint16)),
            chest("PA", seed=6)[0],
            chest("PA", seed=7)[0],
        ]
        with make_runner("onnx", model.runtime_path("onnx"), max_batch=2) as runner:
            batched = CxrPipeline(model, runner=runner).analyse_many(datasets)

        single = [pipeline.analyse(dataset) for dataset in datasets]

        assert [a.state for a in batched] == [a.state for a in single]
        assert [a.state.value for a in batched].count("complete") >= 3
        for one, other in zip(batched, single, strict=True):
            _assert_same(one, other)

    def test_no_datasets_give_no_results(self, pipeline: CxrPipeline) -> None:
        assert pipeline.analyse_many([]) == []


class TestConstruction:
    def test_a_missing_output_is_refused(self, tmp_path: Path) -> None:
        manifest = _manifest(features=False, name="cxr-missing")
        data = manifest.model_dump(mode="json")
        data["network_data_format"]["logits"] = "scores"
        data["network_data_format"]["outputs"][0]["name"] = "scores"
        registered = _register(
            tmp_path,
            ModelManifest.from_dict(data),
            _downsampled_tiny_cnn(tmp_path / "model.onnx"),
        )

        with pytest.raises(RunnerError, match="no output \\['scores'\\]"):
            CxrPipeline(registered)

    def test_class_weights_of_the_wrong_shape_are_refused(self, tmp_path: Path) -> None:
        cam = tmp_path / "cam.npy"
        np.save(cam, np.zeros((3, CHANNELS), dtype=np.float32))
        registered = _register(
            tmp_path, _manifest(), _downsampled_tiny_cnn(tmp_path / "model.onnx"), cam
        )

        with pytest.raises(RunnerError, match="must have shape \\[5, C\\]"):
            CxrPipeline(registered)

    def test_a_failed_analysis_needs_both_reasons(self) -> None:
        with pytest.raises(ValueError, match="reason_en"):
            CxrAnalysis(state=ResultState.FAILED, model_name="cxr", model_version="1.0.0")
