"""Tests for :mod:`inference.runners.torch`: without PyTorch, and with it when installed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from inference.runners import RunnerUnavailable, make_runner
from inference.runners.torch import TorchRunner

_REAL_FIND_SPEC = importlib.util.find_spec


def _hide_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the runner see a box without PyTorch, whether or not this one has it."""

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "torch" or name.startswith("torch."):
            return None
        return _REAL_FIND_SPEC(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


class TestTorchRunnerUnavailable:
    def test_constructor_says_how_to_install(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _hide_torch(monkeypatch)
        with pytest.raises(
            RunnerUnavailable, match=r"PyTorch is not installed: pip install -e '\.\[train\]'"
        ):
            TorchRunner(tmp_path / "model.pt", input_shape=(None, 1, 16, 16), output_names=["x"])

    def test_make_runner_says_how_to_install(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        _hide_torch(monkeypatch)
        with pytest.raises(RunnerUnavailable, match=r"pip install -e '\.\[train\]'") as info:
            make_runner("torch", tmp_path / "model.pt")
        assert info.value.backend == "torch"


class TestTorchRunnerWithTorch:
    def test_torchscript_model_runs_and_names_its_outputs(self, tmp_path: Path) -> None:
        if importlib.util.find_spec("torch") is None:
            if os.environ.get("CI") == "true":
                pytest.fail("PyTorch must be installed on CI (the train extra)")
            pytest.skip("PyTorch is not installed (pip install -e '.[train]')")
        import torch

        torch.manual_seed(0)
        conv = torch.nn.Conv2d(1, 3, kernel_size=3, padding=1)

        class Net(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.conv = conv

            def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
                features = torch.relu(self.conv(x))
                return features.mean(dim=(2, 3)), features

        path = tmp_path / "model.pt"
        torch.jit.script(Net()).save(str(path))
        runner = TorchRunner(
            path, input_shape=(None, 1, 16, 16), output_names=["logits", "features"], device="cpu"
        )
        batch = np.random.default_rng(1).random((2, 1, 16, 16), dtype=np.float32)
        outputs = runner.run(batch)
        runner.close()
        with torch.no_grad():
            features = torch.relu(conv(torch.from_numpy(batch))).numpy()
        assert set(outputs) == {"logits", "features"}
        np.testing.assert_allclose(outputs["features"], features, atol=1e-6)
        np.testing.assert_allclose(outputs["logits"], features.mean(axis=(2, 3)), atol=1e-6)
