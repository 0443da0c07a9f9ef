"""Errors of the DICOMweb services; each names the HTTP status the edge answers with.

References
----------
DICOM PS3.18 section 8.5 (status codes) and the status tables of sections 10.4.3
(Retrieve), 10.5.3 (Store) and 10.6.3 (Search).
"""

from __future__ import annotations

from dicom_gateway.errors import GatewayError

__all__ = [
    "DicomWebError",
    "ForbiddenError",
    "InvalidRequestError",
    "NotAcceptableError",
    "PayloadTooLargeError",
    "ResourceNotFoundError",
    "StorageUnavailableError",
    "UnsupportedMediaTypeError",
]


class DicomWebError(GatewayError):
    """Base class of the errors a DICOMweb request is answered with.

    Parameters
    ----------
    detail:
        What is wrong with this request, and how to proceed, for people.

    Attributes
    ----------
    http_status:
        The HTTP status code the request is answered with.
    title:
        A short, fixed summary of the kind of problem.
    """

    http_status = 500
    title = "DICOMweb request failed"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class InvalidRequestError(DicomWebError):
    """A query parameter, path or payload does not follow PS3.18 (400)."""

    http_status = 400
    title = "Invalid DICOMweb request"


class ForbiddenError(DicomWebError):
    """The caller's role may not use this transaction (403)."""

    http_status = 403
    title = "Forbidden"


class ResourceNotFoundError(DicomWebError):
    """The study, series, instance or frame does not exist for this caller (404).

    What another facility holds is answered exactly as what does not exist.
    """

    http_status = 404
    title = "Not found"


class NotAcceptableError(DicomWebError):
    """None of the media types or transfer syntaxes in ``Accept`` can be sent (406)."""

    http_status = 406
    title = "Not acceptable"


class PayloadTooLargeError(DicomWebError):
    """The request body exceeds the configured maximum size (413)."""

    http_status = 413
    title = "Payload too large"


class UnsupportedMediaTypeError(DicomWebError):
    """The request's ``Content-Type`` is not one the service accepts (415)."""

    http_status = 415
    title = "Unsupported media type"


class StorageUnavailableError(DicomWebError):
    """The request cannot be buffered or the index cannot be read right now (503)."""

    http_status = 503
    title = "Service unavailable"
