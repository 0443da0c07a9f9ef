"""Tests for :mod:`inference.runners.base`: the backend registry and input checks."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inference.runners import (
    RunnerInputError,
    available_backends,
    check_input,
    make_runner,
    missing_dependencies,
)
from inference.runners.onnx import OnnxRunner
from tests.inference.runners.builders import build_tiny_cnn

TORCH_INSTALLED = importlib.util.find_spec("torch") is not None


class TestBackendRegistry:
    def test_available_backends(self) -> None:
        backends = available_backends()
        assert backends["onnx"] is True
        assert backends["torch"] is TORCH_INSTALLED
        assert set(backends) == {"onnx", "torch"}

    def test_missing_dependencies(self) -> None:
        assert missing_dependencies("onnx") == []
        if not TORCH_INSTALLED:
            assert missing_dependencies("torch") == [
                "PyTorch is not installed: pip install -e '.[train]'"
            ]

    @pytest.mark.parametrize("call", [missing_dependencies, lambda b: make_runner(b, Path("x"))])
    def test_unknown_backend(self, call: object) -> None:
        with pytest.raises(ValueError, match=r"`backend` must be one of \['onnx', 'torch'\]"):
            call("tensorrt")  # type: ignore[operator]

    def test_make_onnx_runner(self, tmp_path: Path) -> None:
        runner = make_runner("onnx", build_tiny_cnn(tmp_path / "m.onnx"), threads=2, max_batch=4)
        assert isinstance(runner, OnnxRunner)
        assert runner.max_batch == 4

    def test_import_needs_no_torch(self) -> None:
        code = (
            "import sys, inference, inference.runners, inference.batching, "
            "inference.runners.onnx, inference.runners.torch; "
            "assert 'torch' not in sys.modules"
        )
        subprocess.run([sys.executable, "-c", code], check=True)


class TestCheckInput:
    SHAPE = (None, 1, 4, 4)

    def test_accepts_and_makes_contiguous(self) -> None:
        array = np.zeros((2, 1, 4, 8), np.float32)[..., ::2]
        checked = check_input(array, dtype=np.dtype(np.float32), shape=self.SHAPE, max_batch=2)
        assert checked.flags.c_contiguous
        np.testing.assert_array_equal(checked, array)

    @pytest.mark.parametrize(
        ("array", "needle"),
        [
            ([[0.0]], "must be a numpy array, list is given"),
            (np.zeros((1, 1, 4, 4), np.float64), "must have dtype float32, float64 is given"),
            (np.zeros((1, 4, 4), np.float32), "must have 4 axes [?, 1, 4, 4], 3 are given"),
            (np.zeros((1, 3, 4, 4), np.float32), "axis 1 must have size 1"),
            (np.zeros((1, 1, 4, 5), np.float32), "axis 3 must have size 4"),
            (np.zeros((0, 1, 4, 4), np.float32), "batch size must be between 1 and 2, 0 is given"),
            (np.zeros((3, 1, 4, 4), np.float32), "batch size must be between 1 and 2, 3 is given"),
        ],
    )
    def test_refuses(self, array: object, needle: str) -> None:
        with pytest.raises(RunnerInputError) as info:
            check_input(
                array, dtype=np.dtype(np.float32), shape=self.SHAPE, max_batch=2, what="image"
            )
        assert needle in str(info.value)
        assert str(info.value).startswith("image ")
