"""Tests for :mod:`inference.pixels.decode` (reached through ``display_array``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.encaps import encapsulate
from pydicom.uid import JPEG2000Lossless

from inference.errors import PixelDataError
from inference.pixels import display_array, read_dataset
from tests.inference.pixels.builders import cr_with, phantom
from tests.support.data import pydicom_file, write_dataset


class TestReadDataset:
    def test_reads_a_dicom_file(self, tmp_path: Path) -> None:
        path = write_dataset(cr_with(phantom()), tmp_path / "cr.dcm")

        assert read_dataset(path).Modality == "CR"

    @pytest.mark.parametrize("content", [b"not an image\n", b"\x89PNG\r\n\x1a\n" + bytes(200)])
    def test_refuses_a_file_that_is_not_dicom(self, tmp_path: Path, content: bytes) -> None:
        path = tmp_path / "upload.bin"
        path.write_bytes(content)

        with pytest.raises(PixelDataError) as caught:
            read_dataset(path)

        assert caught.value.reason.startswith("'upload.bin' is not a DICOM file")
        assert caught.value.reason_vi == "Tệp 'upload.bin' không phải là tệp DICOM"

    def test_missing_file_is_an_os_error(self, tmp_path: Path) -> None:
        with pytest.raises(FileNotFoundError):
            read_dataset(tmp_path / "absent.dcm")


class TestDecodeFirstFrame:
    @pytest.mark.parametrize(
        ("name", "shape", "is_color"),
        [
            ("CT_small.dcm", (128, 128), False),
            ("MR_small.dcm", (64, 64), False),
            ("JPEG2000.dcm", (1024, 256), False),
            ("MR_small_RLE.dcm", (64, 64), False),
            ("emri_small.dcm", (64, 64), False),
            ("SC_rgb.dcm", (100, 100, 3), True),
            ("SC_rgb_jpeg_dcmtk.dcm", (100, 100, 3), True),
            ("SC_ybr_full_422_uncompressed.dcm", (100, 100, 3), True),
            ("US1_J2KR.dcm", (480, 640, 3), True),
            ("OBXXXX1A.dcm", (600, 800, 3), True),
        ],
    )
    def test_pydicom_files(self, name: str, shape: tuple[int, ...], is_color: bool) -> None:
        image = display_array(read_dataset(pydicom_file(name)))

        assert image.array.shape == shape
        assert image.array.dtype == np.float32
        assert image.array.flags.c_contiguous
        assert image.is_color is is_color
        assert 0.0 <= float(image.array.min()) <= float(image.array.max()) <= 1.0

    @pytest.mark.parametrize(
        ("compressed", "original"),
        [
            ("MR_small_RLE.dcm", "MR_small.dcm"),
            ("MR_small_jp2klossless.dcm", "MR_small.dcm"),
            ("MR_small_bigendian.dcm", "MR_small.dcm"),
            ("emri_small_RLE.dcm", "emri_small.dcm"),
            ("SC_rgb_rle.dcm", "SC_rgb.dcm"),
            ("color-pl.dcm", "color-px.dcm"),  # planar configuration 1 and 0
            ("US1_J2KR.dcm", "US1_UNCR.dcm"),  # YBR_RCT
        ],
    )
    def test_lossless_syntaxes_decode_to_the_same_image(
        self, compressed: str, original: str
    ) -> None:
        decoded = display_array(read_dataset(pydicom_file(compressed))).array
        expected = display_array(read_dataset(pydicom_file(original))).array

        np.testing.assert_array_equal(decoded, expected)

    @pytest.mark.parametrize(
        "name",
        ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cy+np.dcm", "SC_ybr_full_uncompressed.dcm"],
    )
    def test_ybr_is_converted_to_rgb(self, name: str) -> None:
        decoded = display_array(read_dataset(pydicom_file(name))).array
        expected = display_array(read_dataset(pydicom_file("SC_rgb.dcm"))).array

        assert float(np.abs(decoded - expected).mean()) < 0.02

    def test_multi_frame_gives_the_first_frame(self) -> None:
        frames = np.stack([phantom(), 4095 - phantom()])
        image = display_array(cr_with(frames))

        np.testing.assert_array_equal(image.array, display_array(cr_with(frames[0])).array)
        assert image.info.number_of_frames == 2

    def test_bits_above_bits_stored_are_ignored(self) -> None:
        clean = phantom()
        dirty = clean | np.uint16(0xF000)  # garbage above Bits Stored 12

        np.testing.assert_array_equal(
            display_array(cr_with(dirty, WindowCenter=2048, WindowWidth=4096)).array,
            display_array(cr_with(clean, WindowCenter=2048, WindowWidth=4096)).array,
        )

    def test_signed_12_bit_values_are_sign_extended(self) -> None:
        values = phantom().astype(np.int16) - 2048  # -2048..2047
        stored = (values.astype(np.uint16) & 0x0FFF).astype(np.uint16)  # 12-bit two's complement
        window = {"WindowCenter": 0, "WindowWidth": 4096, "PixelRepresentation": 1}

        image = display_array(cr_with(stored, **window))

        expected = np.clip((values - (0 - 0.5)) / 4095 + 0.5, 0, 1).astype(np.float32)
        np.testing.assert_allclose(image.array, expected, atol=1e-6)

    @pytest.mark.parametrize(
        "codestream",
        [
            b"\xff\x4f\xff\x51 this is not a codestream",
            # A SIZ marker followed by junk: GDCM aborts the process on this one, so
            # it must never be handed to GDCM.
            b"\xff\x4f\xff\x51" + bytes(range(256)) * 8,
        ],
        ids=["short", "junk-after-siz"],
    )
    def test_undecodable_pixel_data(self, codestream: bytes) -> None:
        ds = cr_with(phantom())
        ds.PixelData = encapsulate([codestream])
        ds["PixelData"].VR = "OB"
        ds.file_meta.TransferSyntaxUID = JPEG2000Lossless

        with pytest.raises(PixelDataError) as caught:
            display_array(ds)

        assert caught.value.reason.startswith(
            "the pixel data cannot be decoded (JPEG 2000 Image Compression (Lossless Only))"
        )
        assert caught.value.reason_vi.startswith("Không giải mã được dữ liệu điểm ảnh")

    @pytest.mark.parametrize(
        ("change", "reason", "reason_vi"),
        [
            (
                {"Rows": 1, "Columns": 1},
                "Rows 1 × Columns 1 is smaller than 64 × 64",
                "Ảnh 1 × 1 điểm ảnh nhỏ hơn 64 × 64",
            ),
            (
                {"Rows": 96, "Columns": 40},
                "Rows 96 × Columns 40 is smaller than 64 × 64",
                "Ảnh 96 × 40 điểm ảnh nhỏ hơn 64 × 64",
            ),
            (
                {"PhotometricInterpretation": "ARGB"},
                "Photometric Interpretation 'ARGB' is not supported (supported: MONOCHROME1, ",
                "Không hỗ trợ kiểu biểu diễn điểm ảnh (Photometric Interpretation) 'ARGB'",
            ),
            (
                {"PhotometricInterpretation": ""},
                "Photometric Interpretation (0028,0004) is missing",
                "Thiếu thẻ Photometric Interpretation (0028,0004) (kiểu biểu diễn điểm ảnh)",
            ),
        ],
    )
    def test_refuses_what_cannot_be_displayed(
        self, change: dict[str, object], reason: str, reason_vi: str
    ) -> None:
        ds = cr_with(phantom())
        for keyword, value in change.items():
            setattr(ds, keyword, value)

        with pytest.raises(PixelDataError) as caught:
            display_array(ds)

        assert caught.value.reason.startswith(reason)
        assert caught.value.reason_vi == reason_vi

    def test_refuses_a_data_set_without_pixel_data(self) -> None:
        ds = cr_with(phantom())
        del ds.PixelData

        with pytest.raises(PixelDataError) as caught:
            display_array(ds)

        assert caught.value.reason == "the data set has no Pixel Data (7FE0,0010)"
        assert caught.value.reason_vi == (
            "Tập dữ liệu không có dữ liệu điểm ảnh (Pixel Data 7FE0,0010)"
        )

    def test_smaller_minimum_side(self) -> None:
        image = display_array(read_dataset(pydicom_file("SC_rgb_small_odd.dcm")), min_side=3)

        assert image.array.shape == (3, 3, 3)
