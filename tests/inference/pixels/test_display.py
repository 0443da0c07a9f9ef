"""Tests for :mod:`inference.pixels.display`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from inference.pixels import DisplayImage, VoiSource, display_array, read_dataset, to_grey
from tests.inference.pixels.builders import cr_with, phantom
from tests.support.data import pydicom_file

RESCALE = {"RescaleSlope": 2, "RescaleIntercept": -100}


class TestDisplayArray:
    @pytest.mark.parametrize(
        ("monochrome2", "monochrome1"),
        [
            ({}, {}),  # percentile window
            # LINEAR maps c - 0.5 to the middle, so the mirrored center is (peak + 1) - c
            (
                {"WindowCenter": 1500, "WindowWidth": 2000},
                {"WindowCenter": 2596, "WindowWidth": 2000},
            ),
            (
                {**RESCALE, "WindowCenter": 3000, "WindowWidth": 5000},
                {**RESCALE, "WindowCenter": 4991, "WindowWidth": 5000},
            ),
        ],
    )
    def test_monochrome1_and_monochrome2_of_the_same_content_look_the_same(
        self, monochrome2: dict[str, Any], monochrome1: dict[str, Any]
    ) -> None:
        raw = phantom()
        bright_bone = display_array(cr_with(raw, **monochrome2))
        inverted = display_array(
            cr_with(4095 - raw, PhotometricInterpretation="MONOCHROME1", **monochrome1)
        )

        np.testing.assert_allclose(inverted.array, bright_bone.array, atol=1e-5)
        assert inverted.photometric_interpretation == "MONOCHROME1"

    def test_monochrome1_file_is_inverted_after_the_window(self) -> None:
        ds = read_dataset(pydicom_file("RG3_UNCR.dcm"))

        image = display_array(ds)

        raw = ds.pixel_array.astype(np.float64)
        expected = 1.0 - np.clip((raw - 549.5) / 1023 + 0.5, 0.0, 1.0)
        np.testing.assert_allclose(image.array, expected, atol=1e-5)
        assert image.voi.source is VoiSource.WINDOW

    def test_missing_window_and_rescale_tags(self) -> None:
        image = display_array(cr_with(phantom()))

        assert image.array.shape == (96, 80)
        assert float(image.array.min()) == 0.0
        assert float(image.array.max()) == 1.0
        assert image.voi.source is VoiSource.PERCENTILE

    def test_records_what_it_was_made_from(self) -> None:
        ds = cr_with(phantom(), PixelSpacing=[0.139, 0.143])

        image = display_array(ds)

        assert (image.rows, image.columns) == (96, 80)
        assert image.photometric_interpretation == "MONOCHROME2"
        assert image.pixel_spacing == (0.139, 0.143)
        assert image.info.number_of_frames == 1
        assert image.array.dtype == np.float32
        assert image.array.flags.c_contiguous

    @pytest.mark.parametrize(
        ("attributes", "spacing"),
        [
            ({"PixelSpacing": [0.2, 0.3], "ImagerPixelSpacing": [0.1, 0.1]}, (0.2, 0.3)),
            ({"ImagerPixelSpacing": [0.15, 0.16]}, (0.15, 0.16)),
            ({"PixelSpacing": [0, 0], "ImagerPixelSpacing": [0.15, 0.15]}, (0.15, 0.15)),
            ({"PixelSpacing": [0, 0]}, None),
            ({}, None),
        ],
    )
    def test_pixel_spacing(
        self, attributes: dict[str, Any], spacing: tuple[float, float] | None
    ) -> None:
        assert display_array(cr_with(phantom(), **attributes)).pixel_spacing == spacing

    def test_colour_image_stays_colour(self) -> None:
        image = display_array(read_dataset(pydicom_file("SC_rgb.dcm")))

        assert image.is_color
        assert image.array.shape == (100, 100, 3)
        assert image.voi.source is VoiSource.BIT_DEPTH
        assert image.voi.explanation == "Bits Stored 8"

    @pytest.mark.parametrize("name", ["SC_rgb_16bit.dcm", "SC_rgb_32bit.dcm"])
    def test_colour_bit_depths_scale_alike(self, name: str) -> None:
        wide = display_array(read_dataset(pydicom_file(name))).array
        narrow = display_array(read_dataset(pydicom_file("SC_rgb.dcm"))).array

        np.testing.assert_allclose(wide, narrow, atol=1e-6)


class TestToGrey:
    def test_colour_to_luma(self) -> None:
        image = display_array(read_dataset(pydicom_file("SC_rgb.dcm")))

        grey = to_grey(image)

        expected = image.array @ np.array([0.299, 0.587, 0.114])
        assert not grey.is_color
        assert grey.array.shape == (100, 100)
        assert grey.array.dtype == np.float32
        np.testing.assert_allclose(grey.array, expected, atol=1e-6)
        assert grey.info == image.info

    def test_grey_is_returned_as_is(self) -> None:
        image = display_array(cr_with(phantom()))

        assert to_grey(image) is image

    def test_equal_channels_give_that_channel(self) -> None:
        base = display_array(cr_with(phantom()))
        colour = DisplayImage(np.repeat(base.array[:, :, None], 3, axis=2), base.info)

        np.testing.assert_allclose(to_grey(colour).array, base.array, atol=1e-6)
