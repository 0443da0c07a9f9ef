"""Train, evaluate, export and register the chest X-ray model on synthetic phantoms.

:func:`train_cxr` runs the whole path: write (or reuse) a phantom data set, train a
:class:`~training.cxr.network.CxrNet` with a masked binary cross-entropy, keep the
epoch with the best validation mean AUROC, choose operating points on validation,
measure on the held-out test split, export to ONNX with a parity check, and register
the version with its model card.
"""

from __future__ import annotations

import copy
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch.utils.data import DataLoader

from models import ModelManifest
from training.cxr.card import model_card
from training.cxr.config import CxrTrainConfig
from training.cxr.data import CxrTorchDataset
from training.cxr.evaluate import LabelMetrics, auroc, evaluate_labels
from training.cxr.export import (
    check_parity,
    check_torchscript_parity,
    export_onnx,
    export_torchscript,
    save_class_weights,
)
from training.cxr.network import CxrNet
from training.cxr.register import build_manifest, register_model
from training.datasets import CxrRecord
from training.labels import CXR_FINDINGS
from training.phantoms import read_phantom_dataset, write_phantom_dataset

__all__ = ["EpochLog", "TrainResult", "predict", "train_cxr"]

_PHANTOM_PARAMETERS = "phantoms.json"


@dataclass(frozen=True, slots=True)
class EpochLog:
    """One epoch: mean training loss and validation mean AUROC."""

    epoch: int
    loss: float
    validation_auroc: float
    seconds: float


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a run produced and measured."""

    config: CxrTrainConfig
    onnx_path: Path
    class_weights_path: Path
    card_path: Path
    manifest: ModelManifest
    metrics: list[LabelMetrics]
    history: list[EpochLog]
    best_epoch: int
    split_counts: dict[str, int]
    parity_max_abs_diff: float
    training_seconds: float
    registered_dir: Path | None


def _phantoms(config: CxrTrainConfig) -> list[CxrRecord]:
    folder = config.work_dir / "phantoms"
    parameters = {
        "count": config.count,
        "seed": config.phantom_seed,
        "image_size": config.phantom_size,
        "draw_sizes": list(config.draw_sizes),
        "prevalence": {str(k): v for k, v in sorted(config.prevalence.items())},
    }
    stamp = folder / _PHANTOM_PARAMETERS
    reuse = stamp.is_file() and json.loads(stamp.read_text(encoding="utf-8")) == parameters
    if not reuse:
        write_phantom_dataset(
            folder,
            count=config.count,
            seed=config.phantom_seed,
            prevalence=config.prevalence,
            image_size=config.draw_sizes or config.phantom_size,
            stored_rows=config.phantom_size,
        )
        stamp.write_text(json.dumps(parameters, indent=2) + "\n", encoding="utf-8")
    return [record for record in read_phantom_dataset(folder) if record.frontal]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _masked_bce(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="none") * mask
    return loss.sum() / mask.sum().clamp(min=1.0)


def predict(model: CxrNet, images: NDArray[np.float32], *, batch_size: int = 64) -> NDArray[Any]:
    """Probabilities (sigmoid of the logits), (cases, targets), in evaluation mode."""
    model.eval()
    scores: list[NDArray[Any]] = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits, _ = model(torch.from_numpy(images[start : start + batch_size]))
            scores.append(torch.sigmoid(logits).numpy())
    return np.concatenate(scores).astype(np.float64)


def _mean_auroc(labels: NDArray[Any], scores: NDArray[Any]) -> float:
    values = []
    for column in range(labels.shape[1]):
        known = ~np.isnan(labels[:, column])
        values.append(auroc(labels[known, column].astype(np.int64), scores[known, column]))
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def _split(records: Sequence[CxrRecord], name: str) -> list[CxrRecord]:
    chosen = [record for record in records if record.split == name]
    if not chosen:
        raise ValueError(f"the phantom data set has no {name!r} cases; raise `count`")
    return chosen


def _fit(
    config: CxrTrainConfig, train: CxrTorchDataset, validation: CxrTorchDataset
) -> tuple[CxrNet, list[EpochLog], int]:
    model = CxrNet(config.net)
    generator = torch.Generator().manual_seed(config.seed)
    train.generator = torch.Generator().manual_seed(config.seed + 1)
    loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, generator=generator)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, config.epochs * len(loader))
    )
    validation_labels = np.where(validation.mask > 0, validation.labels, np.nan)
    history: list[EpochLog] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_epoch, best_auroc = 0, -np.inf
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        total, batches = 0.0, 0
        for images, labels, mask in loader:
            optimizer.zero_grad(set_to_none=True)
            logits, _ = model(images)
            loss = _masked_bce(logits, labels, mask)
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            scheduler.step()
            total += float(loss.item())
            batches += 1
        mean_auroc = _mean_auroc(validation_labels, predict(model, validation.images))
        log = EpochLog(epoch, total / max(batches, 1), mean_auroc, time.perf_counter() - started)
        history.append(log)
        print(
            f"epoch {epoch}/{config.epochs}: loss {log.loss:.4f}, "
            f"validation mean AUROC {mean_auroc:.4f} ({log.seconds:.1f} s)",
            flush=True,
        )
        if best_state is None or mean_auroc > best_auroc:
            best_state = copy.deepcopy(model.state_dict())
            best_epoch, best_auroc = epoch, mean_auroc
    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    return model, history, best_epoch


def train_cxr(config: CxrTrainConfig) -> TrainResult:
    """Run the whole path and return what it measured; see the module docstring.

    Raises
    ------
    ValueError
        If a split of the phantom data set is empty or has no positive of a label.
    ParityError
        If ONNX Runtime does not reproduce PyTorch within 1e-4.
    VersionExistsError
        If the registry already holds this name and version.
    """
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _run(config)
    finally:
        torch.set_num_threads(previous_threads)
        torch.use_deterministic_algorithms(previous_deterministic)


def _run(config: CxrTrainConfig) -> TrainResult:
    _seed_everything(config.seed)
    config.work_dir.mkdir(parents=True, exist_ok=True)
    records = _phantoms(config)
    spec = config.input_spec
    train = CxrTorchDataset(_split(records, "train"), spec, augment=config.augment)
    validation = CxrTorchDataset(_split(records, "validation"), spec)
    test = CxrTorchDataset(_split(records, "test"), spec)
    split_counts = {"train": len(train), "validation": len(validation), "test": len(test)}
    print(f"phantoms: {split_counts}", flush=True)

    started = time.perf_counter()
    model, history, best_epoch = _fit(config, train, validation)
    training_seconds = time.perf_counter() - started

    keys = [str(finding) for finding in CXR_FINDINGS]
    metrics = evaluate_labels(
        keys,
        validation_labels=np.where(validation.mask > 0, validation.labels, np.nan),
        validation_scores=predict(model, validation.images),
        test_labels=np.where(test.mask > 0, test.labels, np.nan),
        test_scores=predict(model, test.images),
        target_sensitivity=config.target_sensitivity,
        resamples=config.bootstrap_resamples,
        seed=config.seed,
    )

    onnx_path = export_onnx(model, config.work_dir / "model.onnx", input_size=spec.size)
    parity = check_parity(model, onnx_path, test.images)
    print(f"ONNX parity: max abs difference {parity:.3g}", flush=True)
    script_path = export_torchscript(model, config.work_dir / "model.pt", input_size=spec.size)
    script_parity = check_torchscript_parity(model, script_path, test.images)
    print(f"TorchScript parity: max abs difference {script_parity:.3g}", flush=True)
    weights_path = save_class_weights(model, config.work_dir / "class_weights.npy")

    created_at = datetime.now(UTC)
    facts = {
        "split_counts": split_counts,
        "best_epoch": best_epoch,
        "validation_mean_auroc": history[best_epoch - 1].validation_auroc,
        "parity_max_abs_diff": parity,
        "torchscript_parity_max_abs_diff": script_parity,
        "training_seconds": round(training_seconds, 1),
    }
    manifest = build_manifest(
        config,
        metrics=metrics,
        facts=facts,
        feature_shape=_feature_shape(model, spec.size),
        created_at=created_at,
    )
    card = model_card(
        config,
        metrics=metrics,
        facts=facts,
        onnx_size=onnx_path.stat().st_size,
        created_at=created_at,
    )
    card_path = config.work_dir / "MODEL_CARD.md"
    card_path.write_text(card, encoding="utf-8")
    registered = None
    if config.registry_root is not None:
        registered = register_model(
            config.registry_root,
            manifest,
            onnx_path=onnx_path,
            torchscript_path=script_path,
            class_weights_path=weights_path,
            card_markdown=card,
        )
    return TrainResult(
        config=config,
        onnx_path=onnx_path,
        class_weights_path=weights_path,
        card_path=card_path,
        manifest=manifest,
        metrics=metrics,
        history=history,
        best_epoch=best_epoch,
        split_counts=split_counts,
        parity_max_abs_diff=parity,
        training_seconds=training_seconds,
        registered_dir=registered,
    )


def _feature_shape(model: CxrNet, size: int) -> tuple[int, int, int]:
    with torch.no_grad():
        _, features = model(torch.zeros(1, model.config.in_channels, size, size))
    channels, height, width = features.shape[1:]
    return int(channels), int(height), int(width)
