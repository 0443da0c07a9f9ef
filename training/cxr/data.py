"""A PyTorch data set of chest radiographs, read through the serving pixel pipeline.

Every image is read with :func:`inference.pixels.read_dataset` and turned into the
model input with :func:`inference.pixels.prepare`, exactly as at serving time; the
prepared arrays are kept in memory.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from torch.utils.data import Dataset

from inference.pixels import InputSpec, prepare, read_dataset
from training.datasets import CxrRecord
from training.labels import CXR_FINDINGS

__all__ = ["CxrItem", "CxrTorchDataset", "label_arrays"]

#: One item: the prepared image (C, size, size), labels (5,) with 0 where unknown,
#: and the mask (5,) that is 1 where the label is known.
CxrItem = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def label_arrays(records: Sequence[CxrRecord]) -> NDArray[np.float32]:
    """Labels of ``records`` as a (cases, findings) array in model output order; ``nan`` unknown."""
    table = np.full((len(records), len(CXR_FINDINGS)), np.nan, dtype=np.float32)
    for row, record in enumerate(records):
        for column, finding in enumerate(CXR_FINDINGS):
            value = record.labels.get(finding)
            if value is not None:
                table[row, column] = float(value)
    return table


class CxrTorchDataset(Dataset[CxrItem]):
    """Chest radiographs with their labels, for multi-label training with masked loss.

    Parameters
    ----------
    records:
        The cases; their files are read once, at construction.
    spec:
        The model input, as written into the manifest.
    augment:
        Apply a small random affine transform (rotation up to ``max_rotation_deg``,
        scale up to ``max_scale``, shift up to ``max_shift`` of the side) and a random
        contrast and brightness change; for training only.
    generator:
        Source of augmentation randomness (seeded by the caller for reproducibility).

    Raises
    ------
    ValueError
        If ``records`` is empty.
    PixelDataError
        If a file cannot be turned into a model input.
    """

    max_rotation_deg = 7.0
    max_scale = 0.06
    max_shift = 0.04
    max_contrast = 0.1
    max_brightness = 0.05

    def __init__(
        self,
        records: Sequence[CxrRecord],
        spec: InputSpec,
        *,
        augment: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        if not records:
            raise ValueError("`records` must hold at least one case, none are given")
        self.records = list(records)
        self.spec = spec
        self.augment = augment
        self.generator = generator
        self.images = np.stack(
            [prepare(read_dataset(record.image_path), spec).array for record in self.records]
        )
        labels = label_arrays(self.records)
        self.mask = (~np.isnan(labels)).astype(np.float32)
        self.labels = np.nan_to_num(labels, nan=0.0).astype(np.float32)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> CxrItem:
        image = torch.from_numpy(self.images[index])
        if self.augment:
            image = self._augment(image)
        return image, torch.from_numpy(self.labels[index]), torch.from_numpy(self.mask[index])

    def _uniform(self, bound: float) -> float:
        value = torch.rand((), generator=self.generator).item()
        return (2.0 * value - 1.0) * bound

    def _augment(self, image: torch.Tensor) -> torch.Tensor:
        angle = math.radians(self._uniform(self.max_rotation_deg))
        scale = 1.0 + self._uniform(self.max_scale)
        shift_x = 2.0 * self._uniform(self.max_shift)
        shift_y = 2.0 * self._uniform(self.max_shift)
        cos, sin = math.cos(angle) / scale, math.sin(angle) / scale
        theta = torch.tensor([[[cos, -sin, shift_x], [sin, cos, shift_y]]], dtype=torch.float32)
        grid = F.affine_grid(theta, [1, *image.shape], align_corners=False)
        pad = torch.tensor(
            [
                (self.spec.pad_value - m) / s
                for m, s in zip(self.spec.mean, self.spec.std, strict=True)
            ],
            dtype=torch.float32,
        ).reshape(-1, 1, 1)
        shifted = image[None] - pad
        warped = F.grid_sample(
            shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False
        )[0]
        warped = warped + pad
        contrast = 1.0 + self._uniform(self.max_contrast)
        brightness = self._uniform(self.max_brightness)
        return (warped * contrast + brightness).contiguous()
