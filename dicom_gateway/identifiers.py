"""Patient identifiers read from DICOM headers.

The Patient ID (0010,0020) is the sending facility's record number unless its Issuer
of Patient ID names a national system. Other Patient IDs Sequence (0010,1002) items
carry further identifiers (national citizen ID, health-insurance number, health-record
ID), recognised by their issuer or type. Names are kept for display only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from pydicom import Dataset

from store import IdentifierKind, IdentifierRecord, PatientRecord

__all__ = ["DEFAULT_ISSUER_KINDS", "IdentifierPolicy", "patient_record_from_dataset"]

#: Issuers (Issuer of Patient ID, or Type of Patient ID) recognised as national systems.
DEFAULT_ISSUER_KINDS: Mapping[str, IdentifierKind] = {
    "CCCD": IdentifierKind.NATIONAL_ID,
    "VN-CCCD": IdentifierKind.NATIONAL_ID,
    "BHYT": IdentifierKind.HEALTH_INSURANCE,
    "VN-BHYT": IdentifierKind.HEALTH_INSURANCE,
    "HSSK": IdentifierKind.HEALTH_RECORD,
    "VN-HSSK": IdentifierKind.HEALTH_RECORD,
}

#: Systems under which national identifiers are kept, whoever sent them.
NATIONAL_SYSTEMS: Mapping[IdentifierKind, str] = {
    IdentifierKind.NATIONAL_ID: "urn:vn:cccd",
    IdentifierKind.HEALTH_INSURANCE: "urn:vn:bhyt",
    IdentifierKind.HEALTH_RECORD: "urn:vn:hssk",
}


@dataclass(frozen=True, slots=True)
class IdentifierPolicy:
    """How issuers map to identifier kinds (configurable per deployment)."""

    issuer_kinds: Mapping[str, IdentifierKind] = field(
        default_factory=lambda: dict(DEFAULT_ISSUER_KINDS)
    )

    def kind_of(self, issuer: str) -> IdentifierKind | None:
        """Return the national kind an issuer stands for, if any."""
        return self.issuer_kinds.get(issuer.strip().upper())


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    return "" if value is None else str(value).strip()


def _identifier(
    value: str, issuer: str, *, facility_code: str, policy: IdentifierPolicy
) -> IdentifierRecord | None:
    value = value.strip()[:64]
    if not value:
        return None
    kind = policy.kind_of(issuer) if issuer else None
    if kind is not None:
        return IdentifierRecord(kind=kind, system=NATIONAL_SYSTEMS[kind], value=value)
    # A local record number means something only within the facility that issued it, so
    # the sender's facility scopes it, with the issuer the sender named, if any.
    system = f"urn:soi:mrn:{facility_code}"
    if issuer.strip():
        system = f"{system}:{issuer.strip()}"
    return IdentifierRecord(kind=IdentifierKind.MRN, system=system[:255], value=value)


def patient_record_from_dataset(
    dataset: Dataset, *, facility_code: str, policy: IdentifierPolicy | None = None
) -> PatientRecord:
    """Read a patient's identifiers and demographics from an instance header.

    An instance without any Patient ID still gets one identifier, scoped to its study,
    so that it is never merged with anybody else's images.
    """
    policy = policy or IdentifierPolicy()
    found: list[IdentifierRecord] = []
    primary = _identifier(
        _text(dataset, "PatientID"),
        _text(dataset, "IssuerOfPatientID"),
        facility_code=facility_code,
        policy=policy,
    )
    if primary is not None:
        found.append(primary)
    for item in dataset.get("OtherPatientIDsSequence", None) or []:
        # Type of Patient ID (TEXT, RFID, BARCODE) says how the ID is encoded, not who
        # issued it: only the issuer decides the identifier's system.
        issuer = _text(item, "IssuerOfPatientID")
        other = _identifier(
            _text(item, "PatientID"), issuer, facility_code=facility_code, policy=policy
        )
        if other is not None and other not in found:
            found.append(other)
    if not found:
        study_uid = _text(dataset, "StudyInstanceUID")
        digest = hashlib.sha256(study_uid.encode()).hexdigest()[:40]
        found.append(
            IdentifierRecord(
                kind=IdentifierKind.MRN,
                system=f"urn:soi:no-patient-id:{facility_code}",
                value=f"study-{digest}",
            )
        )
    return PatientRecord(
        identifiers=tuple(found),
        name=_text(dataset, "PatientName")[:200],
        birth_date=_text(dataset, "PatientBirthDate")[:8],
        sex=_text(dataset, "PatientSex")[:16],
    )
