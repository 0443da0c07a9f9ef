"""Indexing received instances into patients, studies, series and instances."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from store._upsert import get_or_create
from store.enums import Applicability, StudyState
from store.files import StoredFile
from store.models import Instance, Series, Study
from store.patients import PatientRecord, match_or_create_patient
from store.types import utcnow

__all__ = ["IndexOutcome", "InstanceRecord", "index_instance", "instance_exists"]


@dataclass(frozen=True, slots=True)
class InstanceRecord:
    """What the store keeps of a received instance, read from its header by the gateway."""

    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    series_instance_uid: str
    study_instance_uid: str
    patient: PatientRecord
    facility_id: int
    applicability: Applicability
    pipelines: tuple[str, ...] = ()
    modality: str = ""
    body_part_examined: str = ""
    series_number: int | None = None
    series_description: str = ""
    accession_number: str = ""
    study_date: str = ""
    study_time: str = ""
    study_description: str = ""
    instance_number: int | None = None
    view_position: str = ""
    image_type: str = ""
    laterality: str = ""
    rows: int | None = None
    columns: int | None = None
    number_of_frames: int | None = None
    source_ae: str = ""
    source_address: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class IndexOutcome:
    """Result of indexing: whether the instance is new, and the rows it belongs to."""

    created: bool
    instance_id: int
    study_id: int
    patient_id: int


def instance_exists(session: Session, sop_instance_uid: str) -> bool:
    """Return whether an instance with ``sop_instance_uid`` is already indexed."""
    return (
        session.scalar(select(Instance.id).where(Instance.sop_instance_uid == sop_instance_uid))
        is not None
    )


def index_instance(
    session: Session, record: InstanceRecord, stored: StoredFile, *, now: datetime | None = None
) -> IndexOutcome:
    """Add a stored instance to the index, creating its patient, study and series.

    Indexing the same SOP Instance UID again changes nothing and reports
    ``created=False``. A study that was stable goes back to receiving when a new
    instance arrives, so it is routed again after the next quiet period.
    """
    now = now or utcnow()
    existing = session.scalars(
        select(Instance).where(Instance.sop_instance_uid == record.sop_instance_uid)
    ).one_or_none()
    if existing is not None:
        study = session.get(Study, existing.study_id)
        assert study is not None
        return IndexOutcome(False, existing.id, existing.study_id, study.patient_id)

    study = session.scalars(
        select(Study).where(Study.study_instance_uid == record.study_instance_uid)
    ).one_or_none()
    if study is None:
        patient = match_or_create_patient(session, record.patient)
        study, _ = get_or_create(
            session,
            Study,
            {"study_instance_uid": record.study_instance_uid},
            {
                "patient_id": patient.id,
                "facility_id": record.facility_id,
                "accession_number": record.accession_number[:64],
                "study_date": record.study_date[:8],
                "study_time": record.study_time[:16],
                "study_description": record.study_description[:200],
                "state": StudyState.RECEIVING,
                "num_instances": 0,
                "first_received_at": now,
                "last_received_at": now,
                "modalities": "",
                "state_reason": "",
            },
        )
    # Lock the study row: concurrent senders of one study update its counters in turn.
    study = session.scalars(
        select(Study)
        .where(Study.id == study.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    series, _ = get_or_create(
        session,
        Series,
        {"series_instance_uid": record.series_instance_uid},
        {
            "study_id": study.id,
            "modality": record.modality[:16],
            "body_part_examined": record.body_part_examined[:64],
            "series_number": record.series_number,
            "series_description": record.series_description[:200],
            "created_at": now,
        },
    )
    instance = Instance(
        sop_instance_uid=record.sop_instance_uid,
        sop_class_uid=record.sop_class_uid,
        series_id=series.id,
        study_id=study.id,
        instance_number=record.instance_number,
        transfer_syntax_uid=record.transfer_syntax_uid,
        view_position=record.view_position[:16],
        image_type=record.image_type[:200],
        laterality=record.laterality[:16],
        rows=record.rows,
        columns=record.columns,
        number_of_frames=record.number_of_frames,
        file_path=stored.relative_path,
        file_size=stored.size,
        sha256=stored.sha256,
        applicability=record.applicability,
        pipelines=list(record.pipelines),
        source_ae=record.source_ae[:16],
        source_address=record.source_address[:255],
        received_at=now,
    )
    session.add(instance)
    study.num_instances += 1
    study.last_received_at = now
    modalities = set(filter(None, study.modalities.split("\\")))
    if record.modality and record.modality not in modalities:
        modalities.add(record.modality)
        study.modalities = "\\".join(sorted(modalities))[:64]
    if study.state == StudyState.STABLE:
        study.state = StudyState.RECEIVING
        study.state_reason = "new instance received after the study was stable"
    session.flush()
    return IndexOutcome(True, instance.id, study.id, study.patient_id)
