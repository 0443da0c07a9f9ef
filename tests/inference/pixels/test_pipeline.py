"""Tests for :mod:`inference.pixels.pipeline`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.uid import JPEG2000, JPEG2000Lossless, RLELossless

from inference.pixels import InputSpec, Prepared, display_array, prepare, read_dataset
from tests.inference.pixels.builders import cr_with, jpeg_baseline, phantom
from tests.support.data import pydicom_file, write_dataset

IMAGENET = InputSpec(size=224, channels=3, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def _inside(prepared: Prepared, channel: int = 0) -> np.ndarray:
    return prepared.array[
        channel,
        prepared.pad_top : prepared.pad_top + prepared.resized_rows,
        prepared.pad_left : prepared.pad_left + prepared.resized_columns,
    ]


class TestPrepare:
    @pytest.mark.parametrize(
        "spec",
        [InputSpec(size=224), InputSpec(size=256, pad_value=0.5), InputSpec(size=320), IMAGENET],
    )
    def test_shape_and_layout(self, spec: InputSpec) -> None:
        prepared = prepare(cr_with(phantom(300, 200)), spec)

        assert prepared.array.shape == (spec.channels, spec.size, spec.size)
        assert prepared.array.dtype == np.float32
        assert prepared.array.flags.c_contiguous
        assert prepared.resized_rows == spec.size
        assert prepared.resized_columns == round(200 * spec.size / 300)
        assert prepared.scale == pytest.approx(spec.size / 300)
        assert not prepared.was_color
        assert (prepared.info.rows, prepared.info.columns) == (300, 200)

    def test_normalisation_per_channel(self) -> None:
        ds = cr_with(phantom(300, 200))
        plain = prepare(ds, InputSpec(size=224, pad_value=0.25))

        prepared = prepare(ds, InputSpec.from_dict({**IMAGENET.to_dict(), "pad_value": 0.25}))

        for channel, (mean, std) in enumerate(zip(IMAGENET.mean, IMAGENET.std, strict=True)):
            np.testing.assert_allclose(
                prepared.array[channel], (plain.array[0] - mean) / std, atol=1e-5
            )
            assert prepared.array[channel, 0, 0] == pytest.approx((0.25 - mean) / std)

    def test_colour_is_made_grey_and_recorded(self) -> None:
        ds = read_dataset(pydicom_file("US1_UNCR.dcm"))

        prepared = prepare(ds, InputSpec(size=128))

        assert prepared.was_color
        assert prepared.array.shape == (1, 128, 128)
        assert prepared.info.photometric_interpretation == "RGB"

    def test_deterministic(self, tmp_path: Path) -> None:
        path = write_dataset(
            cr_with(phantom(700, 500), WindowCenter=2000, WindowWidth=3000), tmp_path / "cr.dcm"
        )

        first = prepare(read_dataset(path), IMAGENET)
        second = prepare(read_dataset(path), IMAGENET)

        assert first.array.tobytes() == second.array.tobytes()

    @pytest.mark.parametrize(
        ("syntax", "options", "tolerance"),
        [
            (JPEG2000Lossless, {}, 0.0),
            (RLELossless, {}, 0.0),
            (JPEG2000, {"j2k_psnr": [70]}, 0.01),
        ],
    )
    def test_compressed_decodes_like_the_original(
        self, syntax: str, options: dict[str, object], tolerance: float
    ) -> None:
        ds = cr_with(phantom(200, 160), WindowCenter=2000, WindowWidth=4000)
        original = prepare(ds, InputSpec(size=128))

        ds.compress(syntax, **options)
        compressed = prepare(ds, InputSpec(size=128))

        assert ds.file_meta.TransferSyntaxUID == syntax
        np.testing.assert_allclose(compressed.array, original.array, atol=tolerance)

    def test_jpeg_baseline_decodes_like_the_original(self) -> None:
        pixels = (phantom(200, 160) >> 4).astype(np.uint8)
        original = display_array(cr_with(pixels, WindowCenter=128, WindowWidth=256))

        ds = jpeg_baseline(pixels)
        ds.WindowCenter, ds.WindowWidth = 128, 256
        decoded = display_array(ds)

        difference = np.abs(decoded.array - original.array)
        assert float(difference.mean()) < 0.005
        assert float(difference.max()) < 0.05

    def test_to_original_on_a_prepared_image(self) -> None:
        pixels = np.zeros((600, 400), dtype=np.uint16)
        pixels[100:180, 250:330] = 4000
        prepared = prepare(cr_with(pixels, WindowCenter=2000, WindowWidth=4000), IMAGENET)

        back = prepared.to_original(prepared.array[0])

        assert back.shape == (600, 400)
        hot_rows, hot_columns = np.nonzero(back > back.mean() + 0.5 * (back.max() - back.mean()))
        assert abs(hot_rows.mean() - 139.5) < 3
        assert abs(hot_columns.mean() - 289.5) < 3
