"""Patient matching on identifiers (national ID, insurance, health record, MRN), never on name."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from store._upsert import insert_ignore
from store.enums import IdentifierKind
from store.models import Patient, PatientIdentifier

__all__ = [
    "IDENTIFIER_PRIORITY",
    "IdentifierRecord",
    "PatientRecord",
    "match_or_create_patient",
    "patients_with_identifier",
]

#: Order in which identifiers decide who a patient is when several are present.
IDENTIFIER_PRIORITY: tuple[IdentifierKind, ...] = (
    IdentifierKind.NATIONAL_ID,
    IdentifierKind.HEALTH_INSURANCE,
    IdentifierKind.HEALTH_RECORD,
    IdentifierKind.MRN,
)


@dataclass(frozen=True, slots=True)
class IdentifierRecord:
    """An identifier as received: its kind, the system that issued it and its value."""

    kind: IdentifierKind
    system: str
    value: str


@dataclass(frozen=True, slots=True)
class PatientRecord:
    """Demographics and identifiers read from an instance."""

    identifiers: tuple[IdentifierRecord, ...]
    name: str = ""
    birth_date: str = ""
    sex: str = ""
    extra: dict[str, str] = field(default_factory=dict)


def match_or_create_patient(session: Session, record: PatientRecord) -> Patient:
    """Return the patient who holds one of ``record``'s identifiers, or a new one.

    Identifiers are tried in :data:`IDENTIFIER_PRIORITY` order; the name is never
    compared. Identifiers the matched patient did not have yet are added to it.

    Raises
    ------
    ValueError
        ``record`` carries no identifier: such a patient cannot be matched safely.
    """
    if not record.identifiers:
        raise ValueError("`record` has no identifier; a patient is never matched by name")
    ranked = sorted(record.identifiers, key=lambda ident: IDENTIFIER_PRIORITY.index(ident.kind))
    _lock_identifiers(session, ranked)
    patient: Patient | None = None
    for ident in ranked:
        patient = session.scalars(
            select(Patient)
            .join(PatientIdentifier)
            .where(
                PatientIdentifier.kind == ident.kind,
                PatientIdentifier.system == ident.system,
                PatientIdentifier.value == ident.value,
            )
        ).first()
        if patient is not None:
            break
    if patient is None:
        patient = Patient(name=record.name, birth_date=record.birth_date, sex=record.sex)
        session.add(patient)
        session.flush()
    else:
        if record.name and not patient.name:
            patient.name = record.name
        if record.birth_date and not patient.birth_date:
            patient.birth_date = record.birth_date
        if record.sex and not patient.sex:
            patient.sex = record.sex
    for ident in ranked:
        insert_ignore(
            session,
            PatientIdentifier,
            {
                "patient_id": patient.id,
                "kind": ident.kind,
                "system": ident.system,
                "value": ident.value,
            },
        )
    return patient


def patients_with_identifier(session: Session, value: str) -> list[int]:
    """Return the ids of the patients holding an identifier ``value``, of any kind or system.

    A person asks by the number they know (a CCCD, a BHYT card number, a facility's
    Patient ID); the same value issued by two systems may name two patients, so all
    are returned, in id order.
    """
    return list(
        session.scalars(
            select(PatientIdentifier.patient_id)
            .where(PatientIdentifier.value == value.strip())
            .distinct()
            .order_by(PatientIdentifier.patient_id)
        ).all()
    )


def _lock_identifiers(session: Session, identifiers: list[IdentifierRecord]) -> None:
    """Serialise concurrent matching of the same identifiers (PostgreSQL).

    Two gateways receiving the first images of the same person at once would otherwise
    both find nobody and create two patients. The transaction-scoped advisory locks are
    taken in a fixed order, so two transactions never wait on each other in a cycle.
    SQLite needs none: its write transactions are exclusive.
    """
    if session.get_bind().dialect.name != "postgresql":
        return
    keys = sorted({f"{i.kind.value}|{i.system}|{i.value}" for i in identifiers})
    for key in keys:
        session.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": key}
        )
