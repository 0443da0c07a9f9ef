"""Tests for :mod:`inference.pixels.lut` (modality and VOI transforms)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from pydicom.sequence import Sequence

from inference.errors import PixelDataError
from inference.pixels import VoiSource, display_array, read_dataset
from tests.inference.pixels.builders import cr_with, phantom, voi_lut_item
from tests.support.data import pydicom_file


def _linear(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """PS3.3 C.11.2.1.2.1 LINEAR window scaled to [0, 1]."""
    return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)


class TestApplyModality:
    @pytest.mark.parametrize(
        ("rescale", "slope", "intercept"),
        [
            ({"RescaleSlope": 2, "RescaleIntercept": -1000}, 2.0, -1000.0),
            ({"RescaleSlope": "0.5", "RescaleIntercept": "10"}, 0.5, 10.0),
            ({"RescaleSlope": 3}, 3.0, 0.0),  # no intercept: pydicom alone would skip it
            ({"RescaleIntercept": -1024}, 1.0, -1024.0),
            ({}, 1.0, 0.0),
        ],
    )
    def test_rescale_before_the_window(
        self, rescale: dict[str, Any], slope: float, intercept: float
    ) -> None:
        raw = phantom()
        ds = cr_with(raw, WindowCenter=500, WindowWidth=3000, **rescale)

        image = display_array(ds)

        expected = _linear(raw * slope + intercept, 500, 3000)
        np.testing.assert_allclose(image.array, expected, atol=1e-5)

    @pytest.mark.parametrize(
        "rescale",
        [{"RescaleSlope": "1e308", "RescaleIntercept": "0"}, {"RescaleSlope": "1e308"}],
    )
    def test_non_finite_values_after_rescale(self, rescale: dict[str, Any]) -> None:
        raw = phantom()
        raw[0, :4] = 0
        ds = cr_with(raw, **rescale)

        with pytest.raises(PixelDataError) as caught:
            display_array(ds)

        count = int(np.count_nonzero(raw))
        assert caught.value.reason == (
            f"{count} pixel values are not finite (NaN or infinity) after the Modality LUT "
            "or Rescale Slope and Intercept"
        )
        assert caught.value.reason_vi == (
            f"Có {count} giá trị điểm ảnh không hữu hạn (NaN hoặc vô cực) sau khi áp dụng "
            "Modality LUT hoặc Rescale Slope và Rescale Intercept"
        )

    def test_nan_float_pixel_data(self) -> None:
        values = phantom().astype(np.float32)
        values[3, 5] = np.nan
        ds = cr_with(phantom())
        del ds.PixelData, ds.BitsStored, ds.HighBit, ds.PixelRepresentation
        ds.BitsAllocated = 32
        ds.FloatPixelData = values.tobytes()

        with pytest.raises(PixelDataError, match=r"^1 pixel values are not finite"):
            display_array(ds)


class TestApplyVoiWindow:
    def test_window_present(self) -> None:
        raw = phantom()
        ds = cr_with(raw, WindowCenter=1000, WindowWidth=1500)
        ds.WindowCenterWidthExplanation = "LUNG"

        image = display_array(ds)

        np.testing.assert_allclose(image.array, _linear(raw, 1000, 1500), atol=1e-6)
        assert image.voi.source is VoiSource.WINDOW
        assert (image.voi.center, image.voi.width) == (1000.0, 1500.0)
        assert image.voi.explanation == "LUNG"

    def test_multi_valued_window_uses_the_first_pair(self) -> None:
        raw = phantom()
        ds = cr_with(raw, WindowCenter=[1000, 2000], WindowWidth=[1500, 4000])
        ds.WindowCenterWidthExplanation = ["FIRST", "SECOND"]

        image = display_array(ds)

        np.testing.assert_allclose(image.array, _linear(raw, 1000, 1500), atol=1e-6)
        assert (image.voi.center, image.voi.width, image.voi.explanation) == (
            1000.0,
            1500.0,
            "FIRST",
        )

    @pytest.mark.parametrize(
        ("attributes", "why"),
        [
            ({}, "no Window Center and Width"),
            ({"WindowCenter": 1000}, "no Window Center and Width"),
            ({"WindowCenter": 1000, "WindowWidth": 0}, "Window Width 0 is not valid for LINEAR"),
        ],
    )
    def test_percentile_window_without_a_usable_window(
        self, attributes: dict[str, Any], why: str
    ) -> None:
        raw = phantom()
        image = display_array(cr_with(raw, **attributes))

        low, high = np.percentile(raw, [0.5, 99.5])
        expected = np.clip((raw - low) / (high - low), 0.0, 1.0)
        np.testing.assert_allclose(image.array, expected, atol=1e-6)
        assert image.voi.source is VoiSource.PERCENTILE
        assert image.voi.explanation == f"{why}: 0.5th to 99.5th percentile"
        assert image.voi.width == pytest.approx(high - low)

    def test_constant_image_is_black(self) -> None:
        image = display_array(cr_with(np.full((64, 64), 700, dtype=np.uint16)))

        assert not image.array.any()

    @pytest.mark.parametrize(
        ("function", "expected"),
        [
            ("LINEAR_EXACT", lambda x: np.clip((x - 1000) / 1500 + 0.5, 0, 1)),
            ("SIGMOID", lambda x: 1 / (1 + np.exp(-4 * (x - 1000) / 1500))),
            ("LINEAR", lambda x: _linear(x, 1000, 1500)),
            ("UNKNOWN", lambda x: _linear(x, 1000, 1500)),
        ],
    )
    def test_voi_lut_function(self, function: str, expected: Any) -> None:
        raw = phantom()
        ds = cr_with(raw, WindowCenter=1000, WindowWidth=1500, VOILUTFunction=function)

        image = display_array(ds)

        np.testing.assert_allclose(image.array, expected(raw.astype(np.float64)), atol=1e-5)

    @pytest.mark.parametrize("declared_bits", [12, 16])
    def test_voi_lut_sequence_wins_over_the_window(self, declared_bits: int) -> None:
        raw = phantom()
        lut = [4095 - entry for entry in range(4096)]  # an inverting LUT
        ds = cr_with(raw, WindowCenter=1000, WindowWidth=1500)
        ds.VOILUTSequence = Sequence([voi_lut_item(lut, bits=declared_bits)])

        image = display_array(ds)

        np.testing.assert_allclose(image.array, (4095 - raw) / 4095, atol=1e-6)
        assert image.voi.source is VoiSource.VOI_LUT_SEQUENCE
        assert image.voi.explanation == "test LUT"

    def test_voi_lut_first_mapped_and_out_of_range_values(self) -> None:
        raw = phantom()
        ds = cr_with(raw, RescaleSlope=1, RescaleIntercept=-1000)
        ds.VOILUTSequence = Sequence([voi_lut_item(list(range(1024)), first_mapped=0, bits=10)])

        image = display_array(ds)

        expected = np.clip(raw.astype(np.float64) - 1000, 0, 1023) / 1023
        np.testing.assert_allclose(image.array, expected, atol=1e-6)

    def test_pydicom_voi_lut_file(self) -> None:
        image = display_array(read_dataset(pydicom_file("vlut_04.dcm")))

        assert image.voi.source is VoiSource.VOI_LUT_SEQUENCE
        assert float(image.array.min()) == 0.0
        assert float(image.array.max()) == 1.0
