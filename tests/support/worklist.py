"""Studies with AI results and review states, for the worklist's tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from store import (
    Applicability,
    Database,
    FindingRecord,
    IdentifierKind,
    IdentifierRecord,
    InstanceRecord,
    PatientRecord,
    ResultReason,
    ResultState,
    ReviewState,
    StoredFile,
    Study,
    ensure_job,
    get_facility,
    index_instance,
    record_result,
)

__all__ = ["T0", "add_result", "add_study", "set_review"]

#: When the first test study arrived; later ones arrive a minute apart.
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def add_study(
    database: Database,
    uid: str,
    *,
    facility_code: str = "LOCAL",
    modality: str = "CR",
    study_date: str = "20261201",
    received_minute: int = 0,
    patient_name: str = "",
) -> int:
    """Index one instance of a new study received ``received_minute`` after :data:`T0`;
    return the study's id. The patient holds a national ID derived from the UID."""
    with database.write() as session:
        facility = get_facility(session, facility_code)
        outcome = index_instance(
            session,
            InstanceRecord(
                sop_instance_uid=f"{uid}.1",
                sop_class_uid="1.2.840.10008.5.1.4.1.1.1",
                transfer_syntax_uid="1.2.840.10008.1.2.1",
                series_instance_uid=f"{uid}.0",
                study_instance_uid=uid,
                patient=PatientRecord(
                    (IdentifierRecord(IdentifierKind.NATIONAL_ID, "urn:vn:cccd", f"0{uid[-8:]}"),),
                    name=patient_name,
                ),
                facility_id=facility.id,
                applicability=Applicability.APPLICABLE,
                pipelines=("cxr",),
                modality=modality,
                study_date=study_date,
            ),
            StoredFile(relative_path=f"x/{uid}.dcm", size=1, sha256="0" * 64),
        )
        study = session.get(Study, outcome.study_id)
        assert study is not None
        study.first_received_at = T0 + timedelta(minutes=received_minute)
    return outcome.study_id


def add_result(
    database: Database,
    study_id: int,
    findings: Sequence[tuple[str, float, bool]] = (),
    *,
    state: ResultState = ResultState.COMPLETE,
    critical_labels: Sequence[str] = ("pneumothorax",),
    details: dict[str, object] | None = None,
) -> int:
    """Store a ``cxr`` result of ``findings`` (label, probability, positive); its id."""
    with database.write() as session:
        study = session.get(Study, study_id)
        assert study is not None
        job = ensure_job(
            session,
            study_id=study_id,
            pipeline="cxr",
            instance_uids=[f"{study.study_instance_uid}.1"],
            available=True,
        )
        reason = (
            None
            if state is ResultState.COMPLETE
            else ResultReason(en="not a frontal chest radiograph", vi="không phải phim thẳng")
        )
        result = record_result(
            session,
            job_id=job.id,
            study_id=study_id,
            model_name="cxr-densenet",
            model_version="1.0.0",
            state=state,
            reason=reason,
            findings=[
                FindingRecord(label=label, probability=p, positive=positive, threshold=0.5)
                for label, p, positive in findings
            ],
            details=details,
            critical_labels=critical_labels,
        )
        return int(result.id)


def set_review(
    database: Database,
    study_id: int,
    state: ReviewState,
    *,
    assigned_to_user_id: int | None = None,
) -> None:
    """Put a study in a review state, assigned to a reader."""
    with database.write() as session:
        study = session.get(Study, study_id)
        assert study is not None
        study.review_state = state
        study.assigned_to_user_id = assigned_to_user_id
