"""DICOMweb (PS3.18): STOW-RS, QIDO-RS and WADO-RS, behind thin HTTP routes.

Each module follows one part of the standard: :mod:`.multipart` the message bodies,
:mod:`.stow` the Store transaction, :mod:`.qido_params` and :mod:`.qido` the Search
transaction, :mod:`.wado`, :mod:`.pixeldata` and :mod:`.rendered` the Retrieve
transaction. Errors are :class:`DicomWebError` subclasses that name their HTTP status.
"""

from dicom_gateway.dicomweb.attributes import Level
from dicom_gateway.dicomweb.errors import (
    DicomWebError,
    ForbiddenError,
    InvalidRequestError,
    NotAcceptableError,
    PayloadTooLargeError,
    ResourceNotFoundError,
    StorageUnavailableError,
    UnsupportedMediaTypeError,
)
from dicom_gateway.dicomweb.media import DICOM_JSON, MediaRange, parse_accept, parse_media_type
from dicom_gateway.dicomweb.multipart import (
    PartSpan,
    build_multipart,
    multipart_content_type,
    new_boundary,
    read_part,
    scan_parts,
    spool_body,
)
from dicom_gateway.dicomweb.qido import DEFAULT_MAX_RESULTS, QidoService, SearchResult
from dicom_gateway.dicomweb.qido_params import MATCHING_KEYS, SearchRequest, parse_search
from dicom_gateway.dicomweb.rendered import (
    Renderer,
    RenderRequest,
    Window,
    WindowFunction,
    encode_rendered,
    parse_rendered,
)
from dicom_gateway.dicomweb.stow import (
    InstanceResult,
    StowReport,
    StowService,
    check_stow_content_type,
)
from dicom_gateway.dicomweb.wado import PIXEL_DATA_TAGS, Payload, StoredInstance, WadoService

__all__ = [
    "DEFAULT_MAX_RESULTS",
    "DICOM_JSON",
    "MATCHING_KEYS",
    "PIXEL_DATA_TAGS",
    "DicomWebError",
    "ForbiddenError",
    "InstanceResult",
    "InvalidRequestError",
    "Level",
    "MediaRange",
    "NotAcceptableError",
    "PartSpan",
    "Payload",
    "PayloadTooLargeError",
    "QidoService",
    "RenderRequest",
    "Renderer",
    "ResourceNotFoundError",
    "SearchRequest",
    "SearchResult",
    "StorageUnavailableError",
    "StoredInstance",
    "StowReport",
    "StowService",
    "UnsupportedMediaTypeError",
    "WadoService",
    "Window",
    "WindowFunction",
    "build_multipart",
    "check_stow_content_type",
    "encode_rendered",
    "multipart_content_type",
    "new_boundary",
    "parse_accept",
    "parse_media_type",
    "parse_rendered",
    "parse_search",
    "read_part",
    "scan_parts",
    "spool_body",
]
