"""A tiny CNN built as an ONNX graph with deterministic weights, and its numpy reference.

conv 3×3 stride 2 pad 1 (1 → 4 channels) → ReLU (``features`` [N, 4, 8, 8]) → global
average pool → Gemm (4 → 5) → ``logits`` [N, 5]; the batch axis ``N`` is dynamic.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnx
from onnx import TensorProto, helper, numpy_helper

CHANNELS = 4
TARGETS = 5
SIZE = 16
FEATURE_SIZE = 8


def weights() -> dict[str, npt.NDArray[np.float32]]:
    """The network's weights, the same on every call."""
    rng = np.random.default_rng(20261123)
    return {
        "conv_w": rng.normal(0, 0.5, (CHANNELS, 1, 3, 3)).astype(np.float32),
        "conv_b": rng.normal(0, 0.1, (CHANNELS,)).astype(np.float32),
        "fc_w": rng.normal(0, 0.5, (TARGETS, CHANNELS)).astype(np.float32),
        "fc_b": rng.normal(0, 0.1, (TARGETS,)).astype(np.float32),
    }


def build_tiny_cnn(path: Path, *, batch: int | str = "N", input_name: str = "image") -> Path:
    """Write the tiny CNN to ``path`` and return it; ``batch`` fixes or names the batch axis."""
    w = weights()
    nodes = [
        helper.make_node(
            "Conv",
            [input_name, "conv_w", "conv_b"],
            ["conv"],
            kernel_shape=[3, 3],
            strides=[2, 2],
            pads=[1, 1, 1, 1],
        ),
        helper.make_node("Relu", ["conv"], ["features"]),
        helper.make_node("GlobalAveragePool", ["features"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info(input_name, TensorProto.FLOAT, [batch, 1, SIZE, SIZE])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, TARGETS]),
            helper.make_tensor_value_info(
                "features", TensorProto.FLOAT, [batch, CHANNELS, FEATURE_SIZE, FEATURE_SIZE]
            ),
        ],
        initializer=[numpy_helper.from_array(value, name) for name, value in w.items()],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="soi-tests"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reference(batch: npt.NDArray[np.float32]) -> dict[str, npt.NDArray[np.float64]]:
    """The same network computed with numpy in float64."""
    w = {name: value.astype(np.float64) for name, value in weights().items()}
    padded = np.pad(batch.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))
    windows = windows[:, :, ::2, ::2]  # stride 2 → [N, 1, 8, 8, 3, 3]
    conv = np.einsum("nihwkl,oikl->nohw", windows, w["conv_w"]) + w["conv_b"][None, :, None, None]
    features = np.maximum(conv, 0.0)
    logits = features.mean(axis=(2, 3)) @ w["fc_w"].T + w["fc_b"]
    return {"logits": logits, "features": features}


def images(count: int, *, seed: int = 0) -> npt.NDArray[np.float32]:
    """``count`` deterministic random images [count, 1, 16, 16]."""
    rng = np.random.default_rng(seed)
    return rng.normal(0, 1, (count, 1, SIZE, SIZE)).astype(np.float32)
