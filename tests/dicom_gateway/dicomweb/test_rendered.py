"""Rendered resources: window, quality, viewport, media type; 8-bit PNG and JPEG."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from dicom_gateway.dicomweb import (
    InvalidRequestError,
    NotAcceptableError,
    RenderRequest,
    Window,
    WindowFunction,
    encode_rendered,
    parse_rendered,
)


class TestParseRendered:
    def test_defaults_to_jpeg(self) -> None:
        assert parse_rendered([], None) == RenderRequest()
        assert parse_rendered([], "*/*").media_type == "image/jpeg"
        assert parse_rendered([], "image/gif, image/*").media_type == "image/jpeg"

    def test_png_window_quality_viewport(self) -> None:
        request = parse_rendered(
            [("window", "40,400,sigmoid"), ("quality", "70"), ("viewport", "256,128")],
            "image/png",
        )
        assert request.media_type == "image/png"
        assert request.window == Window(40.0, 400.0, WindowFunction.SIGMOID)
        assert request.window.function.dicom == "SIGMOID"
        assert (request.quality, request.viewport) == (70, (256, 128))

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("window", "40"),
            ("window", "a,b"),
            ("window", "40,0"),
            ("window", "40,0.5,linear"),
            ("window", "40,nan"),
            ("window", "40,400,gamma"),
            ("window", "<script>"),
            ("quality", "0"),
            ("quality", "101"),
            ("quality", "' OR 1=1"),
            ("viewport", "0,10"),
            ("viewport", "10,10,0,0,5,5"),
            ("viewport", "10.5,10"),
        ],
    )
    def test_invalid(self, name: str, value: str) -> None:
        with pytest.raises(InvalidRequestError):
            parse_rendered([(name, value)], None)

    def test_repeated(self) -> None:
        with pytest.raises(InvalidRequestError, match="more than once"):
            parse_rendered([("quality", "1"), ("quality", "2")], None)

    def test_other_media_types_are_not_acceptable(self) -> None:
        with pytest.raises(NotAcceptableError):
            parse_rendered([], "image/gif")

    def test_annotation_is_warned_about(self) -> None:
        assert parse_rendered([("annotation", "patient")], None).warnings


class TestEncodeRendered:
    def test_png_keeps_8_bit_values(self) -> None:
        display = np.linspace(0.0, 1.0, 64 * 32, dtype=np.float32).reshape(32, 64)
        image = Image.open(
            io.BytesIO(encode_rendered(display, RenderRequest(media_type="image/png")))
        )
        assert (image.format, image.mode, image.size) == ("PNG", "L", (64, 32))
        assert np.array_equal(np.asarray(image), np.rint(display * 255).astype(np.uint8))

    def test_jpeg_colour_in_a_viewport(self) -> None:
        display = np.zeros((100, 200, 3), dtype=np.float32)
        data = encode_rendered(display, RenderRequest(viewport=(50, 50)))
        image = Image.open(io.BytesIO(data))
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (50, 25))
