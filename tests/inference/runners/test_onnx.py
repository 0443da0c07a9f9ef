"""Tests for :mod:`inference.runners.onnx` on a tiny CNN built in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from inference.runners import RunnerError, RunnerInputError
from inference.runners.onnx import OnnxRunner
from tests.inference.runners.builders import (
    CHANNELS,
    FEATURE_SIZE,
    TARGETS,
    build_tiny_cnn,
    images,
    reference,
)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cnn(tmp_path_factory.mktemp("onnx") / "tiny.onnx")


@pytest.fixture
def runner(model_path: Path) -> OnnxRunner:
    return OnnxRunner(model_path, threads=1, max_batch=8)


class TestOnnxRunner:
    def test_describes_model(self, runner: OnnxRunner) -> None:
        assert runner.input_name == "image"
        assert runner.input_dtype == np.float32
        assert runner.input_shape == (None, 1, 16, 16)
        assert runner.output_names == ("logits", "features")
        assert runner.max_batch == 8

    @pytest.mark.parametrize("count", [1, 3, 8])
    def test_matches_numpy_reference(self, runner: OnnxRunner, count: int) -> None:
        batch = images(count, seed=count)
        outputs = runner.run(batch)
        assert list(outputs) == ["logits", "features"]
        assert outputs["logits"].shape == (count, TARGETS)
        assert outputs["features"].shape == (count, CHANNELS, FEATURE_SIZE, FEATURE_SIZE)
        expected = reference(batch)
        for name in ("logits", "features"):
            np.testing.assert_allclose(outputs[name], expected[name], rtol=0, atol=1e-5)

    @pytest.mark.parametrize("threads", [1, 3])
    def test_session_options(self, model_path: Path, threads: int) -> None:
        options = OnnxRunner(model_path, threads=threads).session_options
        assert options.intra_op_num_threads == threads
        assert options.inter_op_num_threads == 1
        assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL

    @pytest.mark.parametrize(
        ("batch", "needle"),
        [
            (images(1).astype(np.float64), "input 'image' must have dtype float32, float64"),
            (images(1)[0], "input 'image' must have 4 axes [?, 1, 16, 16], 3 are given"),
            (np.zeros((1, 3, 16, 16), np.float32), "axis 1 must have size 1"),
            (np.zeros((1, 1, 16, 15), np.float32), "axis 3 must have size 16"),
            (images(9), "batch size must be between 1 and 8, 9 is given"),
        ],
    )
    def test_refuses_wrong_input(self, runner: OnnxRunner, batch: object, needle: str) -> None:
        with pytest.raises(RunnerInputError) as info:
            runner.run(batch)  # type: ignore[arg-type]
        assert needle in str(info.value)

    def test_fixed_batch_axis_caps_max_batch(self, tmp_path: Path) -> None:
        runner = OnnxRunner(build_tiny_cnn(tmp_path / "fixed.onnx", batch=2), max_batch=8)
        assert runner.max_batch == 2
        assert runner.run(images(2))["logits"].shape == (2, TARGETS)

    @pytest.mark.parametrize(
        ("kwargs", "needle"),
        [
            ({"threads": 0}, "`threads` must be a positive number, 0 is given"),
            ({"max_batch": 0}, "`max_batch` must be a positive number, 0 is given"),
            ({"device": "cuda"}, "`device` must be 'cpu' or 'auto'"),
        ],
    )
    def test_refuses_bad_arguments(
        self, model_path: Path, kwargs: dict[str, object], needle: str
    ) -> None:
        with pytest.raises(ValueError) as info:
            OnnxRunner(model_path, **kwargs)  # type: ignore[arg-type]
        assert needle in str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError, match="absent"):
            OnnxRunner(tmp_path / "absent.onnx")

    def test_not_a_model(self, tmp_path: Path) -> None:
        path = tmp_path / "junk.onnx"
        path.write_bytes(b"not a model")
        with pytest.raises(RunnerError, match="ONNX Runtime cannot load"):
            OnnxRunner(path)

    def test_closed(self, runner: OnnxRunner) -> None:
        with runner:
            runner.run(images(1))
        with pytest.raises(RunnerError, match="is closed"):
            runner.run(images(1))
