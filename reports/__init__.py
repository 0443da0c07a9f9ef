"""Soi's reports: DICOM SR, secondary captures, PDF, FHIR R4, HL7 v2, and the outbox.

Depends on :mod:`store`.
"""

from reports.encapsulated_pdf import build_encapsulated_pdf
from reports.fhir import (
    IdentifierSystems,
    InvalidBundleError,
    NoPatientIdentifierError,
    OrganizationRef,
    build_bundle,
    bundle_json,
)
from reports.heatmap_sc import build_heatmap_sc
from reports.hl7v2 import build_oru, encode_mllp, oru_control_id
from reports.mllp import HL7Ack, MllpError, send_mllp
from reports.pdf import build_pdf
from reports.signing import (
    SIGNATURE_FIELD,
    SignatureCheck,
    SigningError,
    SigningIdentity,
    sign_pdf,
    verify_pdf,
)
from reports.sr import build_sr

__all__ = [
    "SIGNATURE_FIELD",
    "HL7Ack",
    "IdentifierSystems",
    "InvalidBundleError",
    "MllpError",
    "NoPatientIdentifierError",
    "OrganizationRef",
    "SignatureCheck",
    "SigningError",
    "SigningIdentity",
    "build_bundle",
    "build_encapsulated_pdf",
    "build_heatmap_sc",
    "build_oru",
    "build_pdf",
    "build_sr",
    "bundle_json",
    "encode_mllp",
    "oru_control_id",
    "send_mllp",
    "sign_pdf",
    "verify_pdf",
]
