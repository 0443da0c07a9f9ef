"""Media types of DICOMweb requests: ``Content-Type`` and ``Accept`` header fields.

References
----------
DICOM PS3.18 section 8.7 (media types and transfer syntaxes, acceptable media
types); RFC 9110 sections 8.3.1 (media type syntax) and 12.5.1 (``Accept``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from dicom_gateway.dicomweb.errors import InvalidRequestError

__all__ = [
    "DICOM",
    "DICOM_JSON",
    "MULTIPART_RELATED",
    "OCTET_STREAM",
    "MediaRange",
    "parse_accept",
    "parse_media_type",
]

#: The media type of a DICOM file (PS3.10 format).
DICOM = "application/dicom"
#: The DICOM JSON model (PS3.18 Annex F).
DICOM_JSON = "application/dicom+json"
#: The message body of several parts (RFC 2387).
MULTIPART_RELATED = "multipart/related"
#: Uncompressed pixel data or other bulk data.
OCTET_STREAM = "application/octet-stream"

_TOKEN_CHARS = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_MAX_FIELD = 4096


@dataclass(frozen=True, slots=True)
class MediaRange:
    """One media type or range of an ``Accept`` field (or a ``Content-Type``).

    ``media_type`` is lower case, e.g. ``multipart/related`` or ``*/*``;
    ``parameters`` has lower-case names and unquoted values (``type``,
    ``transfer-syntax``, ``boundary``...).
    """

    media_type: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    quality: float = 1.0

    def matches(self, media_type: str) -> bool:
        """Whether this range accepts the concrete ``media_type`` (``image/*`` accepts
        ``image/png``)."""
        if self.media_type in ("*/*", media_type):
            return True
        major, _, minor = self.media_type.partition("/")
        return minor == "*" and media_type.startswith(f"{major}/")

    @property
    def inner(self) -> MediaRange:
        """For ``multipart/related``, the media type of its parts (the ``type``
        parameter, with ``transfer-syntax``); otherwise this range itself."""
        if self.media_type != MULTIPART_RELATED:
            return self
        inner_type, inner_parameters = parse_media_type(self.parameters.get("type", "*/*"))
        parameters = dict(inner_parameters)
        if "transfer-syntax" in self.parameters:
            parameters["transfer-syntax"] = self.parameters["transfer-syntax"]
        return MediaRange(inner_type, parameters, self.quality)


def _split(text: str, separator: str) -> Iterator[str]:
    """Split ``text`` on ``separator`` outside double quotes."""
    start = 0
    quoted = False
    escaped = False
    for index, char in enumerate(text):
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            yield text[start:index]
            start = index + 1
    if quoted:
        raise InvalidRequestError(f"unbalanced quotes in media type {text[:200]!r}")
    yield text[start:]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out: list[str] = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_media_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a media type into its lower-case type and its parameters.

    Raises
    ------
    InvalidRequestError
        The value is not ``type/subtype *(; name=value)``.
    """
    if len(value) > _MAX_FIELD:
        raise InvalidRequestError(f"media type is longer than {_MAX_FIELD} characters")
    pieces = list(_split(value, ";"))
    media_type = pieces[0].strip().lower()
    major, slash, minor = media_type.partition("/")
    if not slash or not major or not minor or not set(major + minor) <= _TOKEN_CHARS:
        raise InvalidRequestError(f"{value[:200]!r} is not a media type (type/subtype)")
    parameters: dict[str, str] = {}
    for piece in pieces[1:]:
        if not piece.strip():
            continue
        name, equals, raw = piece.partition("=")
        name = name.strip().lower()
        if not equals or not name or not set(name) <= _TOKEN_CHARS:
            raise InvalidRequestError(
                f"parameter {piece.strip()[:100]!r} of {media_type} is malformed"
            )
        parameters[name] = _unquote(raw)
    return media_type, parameters


def parse_accept(value: str | None) -> list[MediaRange]:
    """Return the media ranges of an ``Accept`` field, most preferred first.

    A missing or empty field accepts anything (``*/*``). Ranges with ``q=0`` are
    dropped; ranges of equal quality keep the client's order.

    Raises
    ------
    InvalidRequestError
        A range or its quality value is malformed.
    """
    if value is None or not value.strip():
        return [MediaRange("*/*")]
    ranges: list[MediaRange] = []
    for item in _split(value, ","):
        if not item.strip():
            continue
        media_type, parameters = parse_media_type(item)
        quality = 1.0
        if "q" in parameters:
            raw = parameters.pop("q")
            try:
                quality = float(raw)
            except ValueError:
                raise InvalidRequestError(f"quality value {raw[:20]!r} is not a number") from None
            if not 0.0 <= quality <= 1.0:
                raise InvalidRequestError(f"quality value {raw[:20]!r} is not between 0 and 1")
        if quality > 0:
            ranges.append(MediaRange(media_type, parameters, quality))
    ranges.sort(key=lambda item: -item.quality)
    return ranges
