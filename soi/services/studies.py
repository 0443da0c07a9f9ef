"""Studies as the API and the CLI show them, scoped to what the caller may see.

Every read is written to the audit log before the data is handed out: a read that
cannot be recorded is not answered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from dicom_gateway import sop_class_name
from soi.auth import Caller
from soi.schemas import (
    DeliveryOut,
    FindingOut,
    InstanceOut,
    JobOut,
    Page,
    ResultOut,
    SeriesOut,
    StudyDetail,
    StudySummary,
)
from soi.services.audit import record_caller_event
from soi.services.results import issued_for
from store import (
    AuditOutcome,
    Database,
    Delivery,
    Job,
    PatientIdentifier,
    Result,
    Study,
    count_studies,
    get_study,
    list_deliveries,
    list_results,
    list_studies,
    locate_study,
    result_reason,
)

__all__ = ["list_study_page", "study_detail"]


def _job(job: Job) -> JobOut:
    return JobOut(
        pipeline=job.pipeline,
        state=job.state.value,
        state_reason=job.state_reason,
        attempts=job.attempts,
        instances=len(job.instance_uids or []),
        created_at=job.created_at,
        updated_at=job.updated_at,
    )


def _result(result: Result, pipeline: str) -> ResultOut:
    reason = result_reason(result)
    return ResultOut(
        id=result.id,
        pipeline=pipeline,
        model_name=result.model_name,
        model_version=result.model_version,
        state=result.state.value,
        status=result.status.value,
        reason={"en": reason.en, "vi": reason.vi},
        created_at=result.created_at,
        findings=[
            FindingOut(
                label=f.label,
                code={"scheme": f.code_scheme, "value": f.code_value, "meaning": f.code_meaning},
                probability=f.probability,
                threshold=f.threshold,
                positive=f.positive,
                sop_instance_uid=f.sop_instance_uid,
                heatmap=f.heatmap_path,
                overlay=f.overlay_path,
            )
            for f in result.findings
        ],
        details=dict(result.details or {}),
    )


def _delivery(delivery: Delivery) -> DeliveryOut:
    return DeliveryOut(
        id=delivery.id,
        result_id=delivery.result_id,
        destination=delivery.destination,
        kind=delivery.kind,
        state=delivery.state.value,
        attempts=delivery.attempts,
        document_id=delivery.document_id,
        remote_reply=delivery.remote_reply,
        last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at,
        sent_at=delivery.sent_at,
    )


def _summary_fields(study: Study) -> dict[str, object]:
    return {
        "study_instance_uid": study.study_instance_uid,
        "patient_id": study.patient_id,
        "patient_name": study.patient.name,
        "facility": study.facility.code,
        "accession_number": study.accession_number,
        "study_date": study.study_date,
        "study_description": study.study_description,
        "modalities": study.modalities,
        "state": study.state.value,
        "state_reason": study.state_reason,
        "num_instances": study.num_instances,
        "first_received_at": study.first_received_at,
        "last_received_at": study.last_received_at,
        "stable_at": study.stable_at,
        "jobs": [_job(job) for job in study.jobs],
    }


def list_study_page(database: Database, *, caller: Caller, limit: int, offset: int) -> Page:
    """Return a page of the studies ``caller`` may see, most recent first.

    The read is audited (``study.list``: how many studies, which).
    """
    with database.read() as session:
        studies = list_studies(
            session, limit=limit, offset=offset, facility_ids=caller.facility_ids
        )
        items = [StudySummary.model_validate(_summary_fields(study)) for study in studies]
        total = count_studies(session, facility_ids=caller.facility_ids)
    with database.write() as session:
        _audit(
            session,
            caller,
            action="study.list",
            outcome=AuditOutcome.SUCCESS,
            detail={
                "count": len(items),
                "total": total,
                "limit": limit,
                "offset": offset,
                "studies": [item.study_instance_uid for item in items],
            },
        )
    return Page(total=total, limit=limit, offset=offset, items=items)


def study_detail(
    database: Database, study_instance_uid: str, *, caller: Caller
) -> StudyDetail | None:
    """Return a study with its series, instances and jobs, or ``None``.

    A study of a facility ``caller`` may not see is ``None``, as a missing one. The read
    is audited (``study.read``): a success with its patient and facility, a refusal
    (another facility's study) with them too, or a failure (no such study).
    """
    detail = _read_detail(database, study_instance_uid, caller)
    with database.write() as session:
        if detail is not None:
            _audit(
                session,
                caller,
                action="study.read",
                outcome=AuditOutcome.SUCCESS,
                facility_id=detail[1],
                patient_id=detail[2],
                study_instance_uid=study_instance_uid,
            )
            return detail[0]
        located = locate_study(session, study_instance_uid)
        _audit(
            session,
            caller,
            action="study.read",
            outcome=AuditOutcome.FAILURE if located is None else AuditOutcome.REFUSED,
            facility_id=None if located is None else located[0],
            patient_id=None if located is None else located[1],
            study_instance_uid=study_instance_uid,
            detail={"reason": "no such study" if located is None else "another facility's"},
        )
    return None


def _audit(
    session: Session,
    caller: Caller,
    *,
    action: str,
    outcome: AuditOutcome,
    **fields: Any,
) -> None:
    record_caller_event(
        session,
        caller,
        action=action,
        outcome=outcome,
        **fields,
    )


def _read_detail(
    database: Database, study_instance_uid: str, caller: Caller
) -> tuple[StudyDetail, int, int] | None:
    """The study as ``caller`` may see it, with its facility and patient ids."""
    with database.read() as session:
        study = get_study(session, study_instance_uid, facility_ids=caller.facility_ids)
        if study is None:
            return None
        identifiers = session.scalars(
            select(PatientIdentifier).where(PatientIdentifier.patient_id == study.patient_id)
        ).all()
        pipelines = {job.id: job.pipeline for job in study.jobs}
        series = [
            SeriesOut(
                series_instance_uid=s.series_instance_uid,
                modality=s.modality,
                body_part_examined=s.body_part_examined,
                series_number=s.series_number,
                series_description=s.series_description,
                instances=[
                    InstanceOut(
                        sop_instance_uid=i.sop_instance_uid,
                        sop_class_uid=i.sop_class_uid,
                        sop_class_name=sop_class_name(i.sop_class_uid),
                        transfer_syntax_uid=i.transfer_syntax_uid,
                        instance_number=i.instance_number,
                        rows=i.rows,
                        columns=i.columns,
                        view_position=i.view_position,
                        applicability=i.applicability.value,
                        pipelines=list(i.pipelines or []),
                        file_size=i.file_size,
                        received_at=i.received_at,
                        source_ae=i.source_ae,
                    )
                    for i in sorted(s.instances, key=lambda i: (i.instance_number or 0, i.id))
                ],
            )
            for s in sorted(study.series, key=lambda s: (s.series_number or 0, s.id))
        ]
        detail = StudyDetail.model_validate(
            {
                **_summary_fields(study),
                "patient_identifiers": [
                    {"kind": ident.kind.value, "system": ident.system, "value": ident.value}
                    for ident in identifiers
                    if issued_for(ident, study.facility.code)
                ],
                "series": series,
                "results": [
                    _result(result, pipelines.get(result.job_id, ""))
                    for result in list_results(session, study.id)
                ],
                "deliveries": [
                    _delivery(delivery)
                    for delivery in reversed(
                        list_deliveries(session, study_id=study.id, limit=1000)
                    )
                ],
            }
        )
        return detail, study.facility_id, study.patient_id
