"""Soi's DICOM gateway: DIMSE listener and client, DICOMweb (:mod:`dicom_gateway.dicomweb`),
ingest, study assembly and routing.

Depends on :mod:`store` only.
"""

from dicom_gateway.access import PeerAccess
from dicom_gateway.archive import (
    ArchiveEntry,
    ArchiveError,
    ArchiveLimits,
    EntryOutcome,
    RefusalCode,
    is_zip,
    read_zip,
)
from dicom_gateway.assembly import AssembledStudy, StudyAssembler
from dicom_gateway.errors import (
    AssociationRefused,
    GatewayError,
    InvalidInstanceError,
    RoutingConfigError,
)
from dicom_gateway.identifiers import DEFAULT_ISSUER_KINDS, IdentifierPolicy
from dicom_gateway.ingest import Ingestor, InstanceCheck, Source, StoreOutcome
from dicom_gateway.instance import ParsedInstance, parse_instance, valid_uid
from dicom_gateway.routing import DEFAULT_RULES_PATH, InstanceAttributes, Router, RoutingRule
from dicom_gateway.scp import DicomListener, DimseConfig
from dicom_gateway.scu import FileResult, SendReport, Target, collect_files, echo, send
from dicom_gateway.sop_classes import (
    PIPELINE_SOP_CLASSES,
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAXES,
    is_image_storage,
    resolve_sop_classes,
    sop_class_name,
)
from dicom_gateway.status import StoreStatus

__all__ = [
    "DEFAULT_ISSUER_KINDS",
    "DEFAULT_RULES_PATH",
    "PIPELINE_SOP_CLASSES",
    "STORAGE_SOP_CLASSES",
    "TRANSFER_SYNTAXES",
    "ArchiveEntry",
    "ArchiveError",
    "ArchiveLimits",
    "AssembledStudy",
    "AssociationRefused",
    "DicomListener",
    "DimseConfig",
    "EntryOutcome",
    "FileResult",
    "GatewayError",
    "IdentifierPolicy",
    "Ingestor",
    "InstanceAttributes",
    "InstanceCheck",
    "InvalidInstanceError",
    "ParsedInstance",
    "PeerAccess",
    "RefusalCode",
    "Router",
    "RoutingConfigError",
    "RoutingRule",
    "SendReport",
    "Source",
    "StoreOutcome",
    "StoreStatus",
    "StudyAssembler",
    "Target",
    "collect_files",
    "echo",
    "is_image_storage",
    "is_zip",
    "parse_instance",
    "read_zip",
    "resolve_sop_classes",
    "send",
    "sop_class_name",
    "valid_uid",
]
