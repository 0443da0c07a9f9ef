"""Configuration of a chest X-ray training run (no PyTorch needed to build one)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from inference.pixels import InputSpec
from training.labels import CxrFinding

__all__ = [
    "DEFAULT_PREVALENCE",
    "FEATURES_OUTPUT",
    "INPUT_NAME",
    "LOGITS_OUTPUT",
    "ONNX_OPSET",
    "CxrNetConfig",
    "CxrTrainConfig",
]

#: Names of the exported ONNX graph's input and outputs, and its opset.
INPUT_NAME = "image"
LOGITS_OUTPUT = "logits"
FEATURES_OUTPUT = "features"
ONNX_OPSET = 17

#: Probability of each finding in a generated phantom.
DEFAULT_PREVALENCE: Mapping[CxrFinding, float] = MappingProxyType(
    {finding: 0.25 for finding in CxrFinding}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class CxrNetConfig:
    """Size of the DenseNet (MONAI ``DenseNet`` arguments)."""

    in_channels: int = 1
    out_channels: int = 5
    init_features: int = 24
    growth_rate: int = 12
    block_config: tuple[int, ...] = (4, 6, 8, 6)
    bn_size: int = 4
    dropout_prob: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CxrTrainConfig:
    """One training run: phantoms, network, optimiser, evaluation and registration.

    Parameters
    ----------
    work_dir:
        Holds the phantom data set (``phantoms/``, reused when its parameters match),
        ``model.onnx``, ``class_weights.npy`` and ``MODEL_CARD.md``.
    registry_root:
        Root of the :class:`models.ModelRegistry` to register into; ``None`` to skip.
    count, phantom_size, phantom_seed, prevalence:
        Arguments of :func:`training.phantoms.write_phantom_dataset`; images are
        stored at ``phantom_size`` rows.
    draw_sizes:
        Sizes the phantoms are drawn at (one per image at random) before they are
        reduced to ``phantom_size``; empty: drawn at ``phantom_size``.
    input_size:
        Side of the model input (``InputSpec.size``).
    epochs, batch_size, learning_rate, weight_decay:
        AdamW with a cosine learning-rate schedule over all steps.
    seed:
        Seeds python ``random``, numpy and torch (weights, shuffling, augmentation).
    threads:
        PyTorch intra-op threads.
    target_sensitivity:
        Each label's operating point reaches it on validation, with margin.
    bootstrap_resamples:
        Resamples of the 95 % percentile bootstrap intervals.

    Raises
    ------
    ValueError
        Naming the field and value that is out of range.
    """

    work_dir: Path
    registry_root: Path | None = None
    model_name: str = "cxr"
    version: str = "0.2.0"
    changelog_note: str = "Trained on Soi's synthetic chest X-ray phantoms."
    count: int = 3000
    phantom_size: int = 256
    draw_sizes: tuple[int, ...] = ()
    phantom_seed: int = 2026
    prevalence: Mapping[CxrFinding, float] = field(default_factory=lambda: DEFAULT_PREVALENCE)
    input_size: int = 256
    input_mean: float = 0.5
    input_std: float = 0.25
    net: CxrNetConfig = field(default_factory=CxrNetConfig)
    epochs: int = 8
    batch_size: int = 32
    learning_rate: float = 2e-3
    weight_decay: float = 1e-4
    augment: bool = True
    seed: int = 7
    threads: int = 2
    target_sensitivity: float = 0.9
    bootstrap_resamples: int = 1000

    def __post_init__(self) -> None:
        positive = {
            "count": self.count,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "threads": self.threads,
            "bootstrap_resamples": self.bootstrap_resamples,
        }
        for name, value in positive.items():
            if value < 1:
                raise ValueError(f"`{name}` must be a positive number, {value} is given")
        if not self.learning_rate > 0:
            raise ValueError(f"`learning_rate` must be > 0, {self.learning_rate} is given")
        if not 0.0 < self.target_sensitivity <= 1.0:
            raise ValueError(
                f"`target_sensitivity` must be in (0, 1], {self.target_sensitivity} is given"
            )
        _ = self.input_spec  # validates the input fields

    @property
    def input_spec(self) -> InputSpec:
        """The model input, as written into the manifest."""
        return InputSpec(size=self.input_size, mean=(self.input_mean,), std=(self.input_std,))

    @classmethod
    def tiny(cls, work_dir: Path, *, registry_root: Path | None = None) -> CxrTrainConfig:
        """A run of seconds for tests: 120 phantoms at 64 px, two epochs."""
        return cls(
            work_dir=work_dir,
            registry_root=registry_root,
            count=120,
            phantom_size=96,
            input_size=64,
            net=CxrNetConfig(init_features=8, growth_rate=8, block_config=(2, 2, 2)),
            epochs=2,
            batch_size=16,
            bootstrap_resamples=200,
            version="0.0.1-tiny",
        )

    @classmethod
    def shipped(cls, work_dir: Path, *, registry_root: Path | None = None) -> CxrTrainConfig:
        """The demo model: 3000 phantoms drawn at 256, 512 or 1024 px and stored at 256 px,
        8 epochs; about 20 min on two CPU cores."""
        return cls(work_dir=work_dir, registry_root=registry_root, draw_sizes=(256, 512, 1024))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the manifest and the model card (paths left out)."""
        return {
            "model_name": self.model_name,
            "version": self.version,
            "count": self.count,
            "phantom_size": self.phantom_size,
            "draw_sizes": list(self.draw_sizes),
            "phantom_seed": self.phantom_seed,
            "prevalence": {str(k): v for k, v in sorted(self.prevalence.items())},
            "input": self.input_spec.to_dict(),
            "net": {
                "architecture": "MONAI DenseNet (2D) + ReLU + global average pooling + linear",
                "init_features": self.net.init_features,
                "growth_rate": self.net.growth_rate,
                "block_config": list(self.net.block_config),
                "bn_size": self.net.bn_size,
                "dropout_prob": self.net.dropout_prob,
            },
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "optimizer": "AdamW",
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "schedule": "cosine over all steps",
            "loss": "binary cross-entropy with logits, masked where a label is unknown",
            "augment": self.augment,
            "seed": self.seed,
            "threads": self.threads,
            "target_sensitivity": self.target_sensitivity,
            "bootstrap_resamples": self.bootstrap_resamples,
        }
