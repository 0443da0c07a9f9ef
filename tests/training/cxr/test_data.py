"""The training data set reads images through the serving pixel pipeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inference.pixels import InputSpec, prepare, read_dataset
from tests.support.tools import on_ci
from training.datasets import CxrRecord
from training.labels import CXR_FINDINGS, CxrFinding
from training.phantoms import read_phantom_dataset, write_phantom_dataset

try:
    import torch

    from training.cxr.data import CxrTorchDataset, label_arrays
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    if on_ci():
        raise
    pytest.skip(
        f"PyTorch/MONAI (the `train` extra) is not installed: {exc}", allow_module_level=True
    )

SPEC = InputSpec(size=48, mean=(0.5,), std=(0.25,))


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[CxrRecord]:
    folder = tmp_path_factory.mktemp("phantoms")
    write_phantom_dataset(
        folder,
        count=6,
        seed=3,
        prevalence={CxrFinding.CARDIOMEGALY: 0.5, CxrFinding.PNEUMOTHORAX: 0.5},
        image_size=64,
        lateral_fraction=0.5,
    )
    return read_phantom_dataset(folder)


class TestCxrTorchDataset:
    def test_same_array_as_serving_pipeline(self, records: list[CxrRecord]) -> None:
        dataset = CxrTorchDataset(records, SPEC)
        for index, record in enumerate(records):
            image, _, _ = dataset[index]
            expected = prepare(read_dataset(Path(record.image_path)), SPEC).array
            assert image.dtype == torch.float32
            np.testing.assert_array_equal(image.numpy(), expected)

    def test_labels_and_mask(self, records: list[CxrRecord]) -> None:
        dataset = CxrTorchDataset(records, SPEC)
        table = label_arrays(records)
        for index, record in enumerate(records):
            _, labels, mask = dataset[index]
            for column, finding in enumerate(CXR_FINDINGS):
                value = record.labels[finding]
                assert mask[column].item() == (0.0 if value is None else 1.0)
                assert labels[column].item() == float(value or 0)
                assert np.isnan(table[index, column]) == (value is None)
        assert any(v is None for r in records for v in r.labels.values())  # laterals

    def test_augmentation_is_seeded_and_training_only(self, records: list[CxrRecord]) -> None:
        plain = CxrTorchDataset(records, SPEC)
        first = CxrTorchDataset(
            records, SPEC, augment=True, generator=torch.Generator().manual_seed(1)
        )
        second = CxrTorchDataset(
            records, SPEC, augment=True, generator=torch.Generator().manual_seed(1)
        )
        augmented, _, _ = first[0]
        assert augmented.shape == plain[0][0].shape
        assert not torch.equal(augmented, plain[0][0])
        assert torch.equal(augmented, second[0][0])
        assert torch.equal(plain[0][0], plain[0][0])

    def test_rejects_empty(self) -> None:
        with pytest.raises(ValueError, match="`records` must hold at least one case"):
            CxrTorchDataset([], SPEC)
