"""ONNX export of :class:`~training.cxr.network.CxrNet` and its parity check.

The exported graph has one input ``image`` [N, C, size, size] and two outputs,
``logits`` [N, targets] and ``features`` [N, C', h, w], with a dynamic batch axis.
The same network is also saved as TorchScript for the PyTorch runner (GPU serving and
Grad-CAM). Parity checks run each file with its serving runner
(:class:`inference.runners.onnx.OnnxRunner`, :class:`inference.runners.torch.TorchRunner`)
and compare with the PyTorch model in memory.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from inference.runners.base import Runner
from inference.runners.onnx import OnnxRunner
from inference.runners.torch import TorchRunner
from training.cxr.config import FEATURES_OUTPUT, INPUT_NAME, LOGITS_OUTPUT, ONNX_OPSET
from training.cxr.errors import ParityError
from training.cxr.network import CxrNet

__all__ = [
    "FEATURES_OUTPUT",
    "INPUT_NAME",
    "LOGITS_OUTPUT",
    "ONNX_OPSET",
    "PARITY_TOLERANCE",
    "check_parity",
    "check_torchscript_parity",
    "export_onnx",
    "export_torchscript",
    "save_class_weights",
]

PARITY_TOLERANCE = 1e-4


def export_onnx(model: CxrNet, path: Path, *, input_size: int, opset: int = ONNX_OPSET) -> Path:
    """Write ``model`` (in evaluation mode) as a single ONNX file at ``path``.

    Raises
    ------
    ValueError
        If ``opset`` < 17.
    """
    if opset < ONNX_OPSET:
        raise ValueError(f"`opset` must be >= {ONNX_OPSET}, {opset} is given")
    model.eval()
    example = torch.zeros(1, model.config.in_channels, input_size, input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=FutureWarning)
        torch.onnx.export(
            model,
            (example,),
            str(path),
            input_names=[INPUT_NAME],
            output_names=[LOGITS_OUTPUT, FEATURES_OUTPUT],
            dynamic_axes={
                INPUT_NAME: {0: "batch"},
                LOGITS_OUTPUT: {0: "batch"},
                FEATURES_OUTPUT: {0: "batch"},
            },
            opset_version=opset,
            dynamo=False,
            do_constant_folding=True,
        )
    return path


def export_torchscript(model: CxrNet, path: Path, *, input_size: int) -> Path:
    """Write ``model`` (in evaluation mode) as a traced TorchScript file at ``path``.

    The traced module takes ``image`` [N, C, size, size] and returns the tuple
    (``logits``, ``features``), on any device it is loaded to.
    """
    model.eval()
    example = torch.zeros(2, model.config.in_channels, input_size, input_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        # Deprecated in PyTorch 2.14 in favour of torch.export, still fully supported;
        # TorchScript keeps the runner free of Python model code.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, (example,), check_trace=True)  # type: ignore[no-untyped-call]
        torch.jit.save(traced, str(path))
    return path


def save_class_weights(model: CxrNet, path: Path) -> Path:
    """Save the last linear layer's weights [targets, C] as float32 ``.npy``."""
    np.save(path, model.class_weights().numpy().astype(np.float32))
    return path


def check_parity(
    model: CxrNet,
    onnx_path: Path,
    images: NDArray[np.float32],
    *,
    tolerance: float = PARITY_TOLERANCE,
    batch_size: int = 16,
) -> float:
    """Largest absolute difference between PyTorch and ONNX Runtime outputs on ``images``.

    Both outputs (``logits`` and ``features``) are compared.

    Raises
    ------
    ParityError
        If the difference exceeds ``tolerance``.
    ValueError
        If ``images`` is empty.
    """
    runner = OnnxRunner(onnx_path, threads=torch.get_num_threads(), max_batch=batch_size)
    return _parity(model, runner, images, "ONNX Runtime", onnx_path, tolerance, batch_size)


def check_torchscript_parity(
    model: CxrNet,
    script_path: Path,
    images: NDArray[np.float32],
    *,
    tolerance: float = PARITY_TOLERANCE,
    batch_size: int = 16,
) -> float:
    """Largest absolute difference between the model and its TorchScript file on ``images``.

    The file is run on the CPU by the serving runner, as :func:`check_parity` does.

    Raises
    ------
    ParityError
        If the difference exceeds ``tolerance``.
    ValueError
        If ``images`` is empty.
    """
    runner = TorchRunner(
        script_path,
        input_shape=(None, *images.shape[1:]),
        output_names=(LOGITS_OUTPUT, FEATURES_OUTPUT),
        threads=torch.get_num_threads(),
        device="cpu",
        max_batch=batch_size,
    )
    return _parity(model, runner, images, "TorchScript", script_path, tolerance, batch_size)


def _parity(
    model: CxrNet,
    runner: Runner,
    images: NDArray[np.float32],
    what: str,
    path: Path,
    tolerance: float,
    batch_size: int,
) -> float:
    if len(images) == 0:
        runner.close()
        raise ValueError("`images` must hold at least one image, none are given")
    model.eval()
    worst = 0.0
    try:
        for start in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(images[start : start + batch_size], dtype=np.float32)
            with torch.no_grad():
                logits, features = model(torch.from_numpy(batch))
            outputs = runner.run(batch)
            for name, reference in ((LOGITS_OUTPUT, logits), (FEATURES_OUTPUT, features)):
                difference = np.abs(outputs[name] - reference.numpy()).max()
                worst = max(worst, float(difference))
    finally:
        runner.close()
    if not worst <= tolerance:
        raise ParityError(
            f"{what} differs from PyTorch by {worst:.3g} on {len(images)} images "
            f"(tolerance {tolerance:.1g}); {path} must not be registered"
        )
    return worst
