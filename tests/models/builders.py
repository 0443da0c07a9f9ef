"""Manifest documents for the model tests: a complete valid one, and a version on disk."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from models import MANIFEST_FILE, sha256_file


def manifest_dict(**changes: Any) -> dict[str, Any]:
    """A complete, valid manifest document with two targets."""
    data: dict[str, Any] = {
        "name": "cxr",
        "version": "1.0.0",
        "task": "chest radiograph screening",
        "changelog": {"1.0.0": "first version"},
        "targets": [
            {
                "key": "pneumothorax",
                "display_en": "Pneumothorax",
                "display_vi": "Tràn khí màng phổi",
                "code_scheme": "SCT",
                "code_value": "36118008",
                "code_meaning": "Pneumothorax",
                "threshold": 0.4,
                "operating_point_note": "sensitivity 0.90 on validation",
            },
            {
                "key": "effusion",
                "display_en": "Pleural effusion",
                "display_vi": "Tràn dịch màng phổi",
                "code_scheme": "SCT",
                "code_value": "60046008",
                "code_meaning": "Pleural effusion",
                "threshold": 0.5,
            },
        ],
        "input": {"size": [224, 224], "channels": 1},
        "network_data_format": {
            "inputs": [{"name": "image", "dtype": "float32", "shape": ["N", 1, 224, 224]}],
            "outputs": [
                {"name": "logits", "dtype": "float32", "shape": ["N", 2]},
                {"name": "features", "dtype": "float32", "shape": ["N", 8, 7, 7]},
            ],
            "features": "features",
            "class_weights": "cam.npy",
        },
        "artifacts": {
            "model.onnx": {"sha256": "0" * 64, "size": 3},
            "cam.npy": {"sha256": "1" * 64, "size": 3},
        },
        "runtime": {"onnx": {"artifact": "model.onnx", "opset": 17}},
        "training_data": {"description": "synthetic phantoms", "synthetic": True},
        "eval_metrics": {"auroc": {"pneumothorax": 0.91}},
        "intended_use": "research demonstration only",
        "seed": 7,
        "created_at": "2026-11-01T00:00:00+00:00",
    }
    data.update(changes)
    return data


def write_version(directory: Path, data: dict[str, Any]) -> Path:
    """Write artifacts and a manifest whose checksums match them."""
    directory.mkdir(parents=True, exist_ok=True)
    data = copy.deepcopy(data)
    for file_name in data["artifacts"]:
        path = directory / file_name
        path.write_bytes(file_name.encode())
        data["artifacts"][file_name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    manifest_path = directory / MANIFEST_FILE
    manifest_path.write_text(json.dumps(data), encoding="utf-8")
    return manifest_path
