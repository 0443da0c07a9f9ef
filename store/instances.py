"""Indexing received instances into patients, studies, series and instances."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Row, insert, select, update
from sqlalchemy.orm import Session

from store._upsert import insert_ignore
from store.enums import Applicability, StudyState
from store.errors import ForeignStudyError
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
    session: Session,
    record: InstanceRecord,
    stored: StoredFile,
    *,
    now: datetime | None = None,
    own_facility_only: bool = False,
) -> IndexOutcome:
    """Add a stored instance to the index, creating its patient, study and series.

    Indexing the same SOP Instance UID again changes nothing and reports
    ``created=False``. A study that was stable goes back to receiving when a new
    instance arrives, so it is routed again after the next quiet period.

    With ``own_facility_only``, an instance of a study (or series) that another
    facility's study holds raises :class:`ForeignStudyError`; the check is made on the
    locked study row, so a concurrent sender cannot slip a study in between.

    Written with Core statements rather than ORM objects: this runs once per received
    instance, under the ingest's write lock.
    """
    now = now or utcnow()
    existing = session.execute(
        select(Instance.id, Instance.study_id, Study.patient_id)
        .join(Study, Study.id == Instance.study_id)
        .where(Instance.sop_instance_uid == record.sop_instance_uid)
    ).one_or_none()
    if existing is not None:
        return IndexOutcome(False, existing.id, existing.study_id, existing.patient_id)

    study = _locked_study(session, record.study_instance_uid)
    if study is None:
        patient = match_or_create_patient(session, record.patient)
        insert_ignore(
            session,
            Study,
            {
                "study_instance_uid": record.study_instance_uid,
                "patient_id": patient.id,
                "facility_id": record.facility_id,
                "accession_number": record.accession_number[:64],
                "study_date": record.study_date[:8],
                "study_time": record.study_time[:16],
                "study_description": record.study_description[:200],
                "state": StudyState.RECEIVING,
                "state_reason": "",
                "num_instances": 0,
                "modalities": "",
                "first_received_at": now,
                "last_received_at": now,
            },
        )
        study = _locked_study(session, record.study_instance_uid)
        assert study is not None
    if own_facility_only and study.facility_id != record.facility_id:
        raise ForeignStudyError(f"study {record.study_instance_uid} belongs to another facility")
    series_key = {"series_instance_uid": record.series_instance_uid}
    series = session.execute(select(Series.id, Series.study_id).filter_by(**series_key)).first()
    if own_facility_only and series is not None and series.study_id != study.id:
        raise ForeignStudyError(
            f"series {record.series_instance_uid} belongs to another study than "
            f"{record.study_instance_uid}"
        )
    series_id = None if series is None else series.id
    if series_id is None:
        insert_ignore(
            session,
            Series,
            {
                **series_key,
                "study_id": study.id,
                "modality": record.modality[:16],
                "body_part_examined": record.body_part_examined[:64],
                "series_number": record.series_number,
                "series_description": record.series_description[:200],
                "created_at": now,
            },
        )
        series_id = session.scalar(select(Series.id).filter_by(**series_key))
    instance_id = session.execute(
        insert(Instance)
        .values(
            sop_instance_uid=record.sop_instance_uid,
            sop_class_uid=record.sop_class_uid,
            series_id=series_id,
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
        .returning(Instance.id)
    ).scalar_one()
    changes: dict[str, object] = {
        "num_instances": Study.num_instances + 1,
        "last_received_at": now,
    }
    modalities = set(filter(None, study.modalities.split("\\")))
    if record.modality and record.modality not in modalities:
        modalities.add(record.modality)
        changes["modalities"] = "\\".join(sorted(modalities))[:64]
    if study.state == StudyState.STABLE:
        changes["state"] = StudyState.RECEIVING
        changes["state_reason"] = "new instance received after the study was stable"
    session.execute(update(Study).where(Study.id == study.id).values(**changes))
    return IndexOutcome(True, instance_id, study.id, study.patient_id)


def _locked_study(
    session: Session, study_instance_uid: str
) -> Row[int, int, int, StudyState, str] | None:
    """Read a study's row, locked: concurrent senders of one study update it in turn."""
    return session.execute(
        select(Study.id, Study.patient_id, Study.facility_id, Study.state, Study.modalities)
        .where(Study.study_instance_uid == study_instance_uid)
        .with_for_update()
    ).one_or_none()
