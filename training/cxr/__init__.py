"""Train, evaluate, export and register the chest X-ray model.

The configuration, metrics, card and registration need no PyTorch; the data set,
network, training and export (marked below) import PyTorch and MONAI (the ``train``
extra) when first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from training.cxr.card import model_card
from training.cxr.config import (
    DEFAULT_PREVALENCE,
    FEATURES_OUTPUT,
    INPUT_NAME,
    LOGITS_OUTPUT,
    ONNX_OPSET,
    CxrNetConfig,
    CxrTrainConfig,
)
from training.cxr.errors import CxrTrainingError, ParityError
from training.cxr.evaluate import (
    ConfidenceInterval,
    LabelMetrics,
    auroc,
    bootstrap_interval,
    evaluate_labels,
    operating_threshold,
    sensitivity_specificity,
)
from training.cxr.register import build_manifest, register_model

if TYPE_CHECKING:
    from training.cxr.data import CxrTorchDataset, label_arrays
    from training.cxr.export import (
        check_parity,
        check_torchscript_parity,
        export_onnx,
        export_torchscript,
        save_class_weights,
    )
    from training.cxr.network import CxrNet
    from training.cxr.train import EpochLog, TrainResult, predict, train_cxr

__all__ = [
    "DEFAULT_PREVALENCE",
    "FEATURES_OUTPUT",
    "INPUT_NAME",
    "LOGITS_OUTPUT",
    "ONNX_OPSET",
    "ConfidenceInterval",
    "CxrNet",
    "CxrNetConfig",
    "CxrTorchDataset",
    "CxrTrainConfig",
    "CxrTrainingError",
    "EpochLog",
    "LabelMetrics",
    "ParityError",
    "TrainResult",
    "auroc",
    "bootstrap_interval",
    "build_manifest",
    "check_parity",
    "check_torchscript_parity",
    "evaluate_labels",
    "export_onnx",
    "export_torchscript",
    "label_arrays",
    "model_card",
    "operating_threshold",
    "predict",
    "register_model",
    "save_class_weights",
    "sensitivity_specificity",
    "train_cxr",
]

#: Names that need PyTorch, and the module that defines each.
_TORCH_NAMES = {
    "CxrTorchDataset": "training.cxr.data",
    "label_arrays": "training.cxr.data",
    "check_parity": "training.cxr.export",
    "check_torchscript_parity": "training.cxr.export",
    "export_onnx": "training.cxr.export",
    "export_torchscript": "training.cxr.export",
    "save_class_weights": "training.cxr.export",
    "CxrNet": "training.cxr.network",
    "EpochLog": "training.cxr.train",
    "TrainResult": "training.cxr.train",
    "predict": "training.cxr.train",
    "train_cxr": "training.cxr.train",
}


def __getattr__(name: str) -> Any:
    module = _TORCH_NAMES.get(name)
    if module is None:
        raise AttributeError(f"module 'training.cxr' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
