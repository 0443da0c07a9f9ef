"""Tests for :mod:`inference.runners.torch` on a box without PyTorch."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inference.runners import RunnerUnavailable
from inference.runners.torch import TorchRunner

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("torch") is not None, reason="PyTorch is installed here"
)


class TestTorchRunnerUnavailable:
    def test_constructor_says_how_to_install(self, tmp_path: Path) -> None:
        with pytest.raises(
            RunnerUnavailable, match=r"PyTorch is not installed: pip install -e '\.\[train\]'"
        ):
            TorchRunner(tmp_path / "model.pt", input_shape=(None, 1, 16, 16), output_names=["x"])
