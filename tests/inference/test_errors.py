"""Tests for :mod:`inference.errors`."""

from __future__ import annotations

from inference.errors import InferenceError, PixelDataError


class TestPixelDataError:
    def test_carries_both_reasons(self) -> None:
        error = PixelDataError("the pixel data is empty", "Dữ liệu điểm ảnh trống")

        assert isinstance(error, InferenceError)
        assert str(error) == "the pixel data is empty"
        assert error.reason == "the pixel data is empty"
        assert error.reason_vi == "Dữ liệu điểm ảnh trống"
