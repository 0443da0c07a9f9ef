"""Frames as stored or decoded, and instances transcoded to Explicit VR Little Endian."""

from __future__ import annotations

import io

import numpy as np
import pytest
from pydicom import dcmread
from pydicom.encaps import get_frame

from dicom_gateway.dicomweb import NotAcceptableError
from dicom_gateway.dicomweb.pixeldata import (
    decoded_frame,
    number_of_frames,
    stored_frame,
    to_explicit_little_endian,
)
from soi.settings import SHIPPED_SAMPLES_DIR
from tests.support.data import pydicom_file

EVLE = "1.2.840.10008.1.2.1"
J2K_SAMPLE = SHIPPED_SAMPLES_DIR / "cxr" / "01-normal-pa.dcm"


class TestFrames:
    def test_native_multiframe(self) -> None:
        ds = dcmread(pydicom_file("emri_small.dcm"))
        assert number_of_frames(ds) == 10
        for index in (0, 9):
            assert stored_frame(ds, index) == ds.pixel_array[index].astype("<u2").tobytes()
            assert decoded_frame(ds, index) == stored_frame(ds, index)

    def test_jpeg_2000_as_stored_and_decoded(self) -> None:
        ds = dcmread(J2K_SAMPLE)
        assert stored_frame(ds, 0) == get_frame(ds.PixelData, 0, number_of_frames=1)
        assert decoded_frame(ds, 0) == ds.pixel_array.astype("<u2").tobytes()

    def test_rle_colour_second_frame(self) -> None:
        ds = dcmread(pydicom_file("SC_rgb_rle_2frame.dcm"))
        assert decoded_frame(ds, 1) == ds.pixel_array[1].tobytes()

    def test_big_endian_is_decoded_to_little_endian(self) -> None:
        ds = dcmread(pydicom_file("MR_small_bigendian.dcm"))
        expected = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder("<")).tobytes()
        assert decoded_frame(ds, 0) == expected


class TestTranscode:
    @pytest.mark.parametrize("name", ["MR_small_implicit.dcm", "image_dfl.dcm", "JPEG2000.dcm"])
    def test_to_explicit_little_endian(self, name: str) -> None:
        original = dcmread(pydicom_file(name))
        data = pydicom_file(name).read_bytes()
        result = dcmread(io.BytesIO(to_explicit_little_endian(data)))
        assert result.file_meta.TransferSyntaxUID == EVLE
        assert result.SOPInstanceUID == original.SOPInstanceUID
        assert np.array_equal(result.pixel_array, original.pixel_array)

    def test_explicit_little_endian_is_unchanged(self) -> None:
        data = pydicom_file("CT_small.dcm").read_bytes()
        assert to_explicit_little_endian(data) is data

    def test_big_endian_is_not_acceptable(self) -> None:
        with pytest.raises(NotAcceptableError, match="Big Endian"):
            to_explicit_little_endian(pydicom_file("MR_small_bigendian.dcm").read_bytes())
