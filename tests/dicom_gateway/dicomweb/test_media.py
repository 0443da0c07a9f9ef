"""Content-Type and Accept header fields of DICOMweb requests."""

from __future__ import annotations

import pytest

from dicom_gateway.dicomweb import InvalidRequestError, parse_accept, parse_media_type


class TestParseMediaType:
    def test_type_and_quoted_parameters(self) -> None:
        media_type, parameters = parse_media_type(
            'Multipart/Related; type="application/dicom"; boundary="a;b=c"'
        )
        assert media_type == "multipart/related"
        assert parameters == {"type": "application/dicom", "boundary": "a;b=c"}

    @pytest.mark.parametrize(
        "value", ["", "multipart", "/dicom", "text/<script>", 'a/b; type="open', "a/b; =x"]
    )
    def test_malformed_is_invalid(self, value: str) -> None:
        with pytest.raises(InvalidRequestError):
            parse_media_type(value)

    def test_overlong_is_invalid(self) -> None:
        with pytest.raises(InvalidRequestError, match="longer than"):
            parse_media_type("a/b; x=" + "y" * 5000)


class TestParseAccept:
    def test_missing_accepts_anything(self) -> None:
        [only] = parse_accept(None)
        assert only.media_type == "*/*"
        assert only.matches("image/png")

    def test_quality_orders_and_zero_drops(self) -> None:
        ranges = parse_accept("image/png;q=0.5, image/jpeg, image/gif;q=0")
        assert [r.media_type for r in ranges] == ["image/jpeg", "image/png"]

    def test_commas_inside_quotes_do_not_split(self) -> None:
        ranges = parse_accept(
            'multipart/related; type="application/dicom"; transfer-syntax=*, '
            'multipart/related; type="application/octet-stream"'
        )
        assert len(ranges) == 2
        inner = ranges[0].inner
        assert inner.media_type == "application/dicom"
        assert inner.parameters["transfer-syntax"] == "*"
        assert ranges[1].inner.media_type == "application/octet-stream"

    def test_wildcards_match(self) -> None:
        [image] = parse_accept("image/*")
        assert image.matches("image/jpeg")
        assert not image.matches("application/dicom")

    @pytest.mark.parametrize("value", ["image/png;q=x", "image/png;q=2", "<script>"])
    def test_malformed_is_invalid(self, value: str) -> None:
        with pytest.raises(InvalidRequestError):
            parse_accept(value)
