"""DICOMweb behind the HTTP routes: the gateway's STOW-RS, QIDO-RS and WADO-RS services
for one caller, within the facilities they may see, with every read audited.

Rendered images come from the pixel pipeline of :mod:`inference.pixels` (Modality
LUT, VOI window or LUT, MONOCHROME1 inversion), with a requested window taking the
place of the data set's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import IO, Any

import numpy as np
from numpy.typing import NDArray
from pydicom import Dataset

from dicom_gateway import Source, resolve_sop_classes
from dicom_gateway.dicomweb import (
    ForbiddenError,
    Level,
    NotAcceptableError,
    Payload,
    QidoService,
    ResourceNotFoundError,
    SearchResult,
    StoredInstance,
    StowReport,
    StowService,
    WadoService,
    Window,
    parse_rendered,
    parse_search,
)
from dicom_gateway.sop_classes import STORAGE_SOP_CLASSES
from inference import PixelDataError
from inference.pixels import display_array
from soi.auth import Caller
from soi.runtime import Runtime
from soi.services.audit import record_caller_event
from store import (
    DEFAULT_FACILITY_CODE,
    AuditOutcome,
    Facility,
    UserRole,
    get_facility,
    locate_study,
)

__all__ = [
    "render_display",
    "retrieve_bulk_data",
    "retrieve_frames",
    "retrieve_instances",
    "retrieve_metadata",
    "retrieve_rendered",
    "search",
    "store_instances",
]

_MAX_AUDITED_STUDIES = 200


def render_display(dataset: Dataset, window: Window | None) -> NDArray[np.floating]:
    """Display values of the first frame in [0, 1], through Soi's pixel pipeline.

    Raises
    ------
    NotAcceptableError
        The instance has no pixel data that can be displayed.
    """
    if window is not None:
        dataset = dataset.copy()
        for keyword in ("VOILUTSequence", "WindowCenterWidthExplanation"):
            if keyword in dataset:
                delattr(dataset, keyword)
        dataset.WindowCenter = f"{window.center:g}"
        dataset.WindowWidth = f"{window.width:g}"
        dataset.VOILUTFunction = window.function.dicom
    try:
        return display_array(dataset, min_side=1).array
    except PixelDataError as exc:
        raise NotAcceptableError(f"the instance cannot be rendered: {exc}") from None


def _audit(
    runtime: Runtime, caller: Caller, action: str, outcome: AuditOutcome, **fields: Any
) -> None:
    with runtime.database.write() as session:
        record_caller_event(
            session,
            caller,
            action=action,
            outcome=outcome,
            **fields,
        )


def _source(runtime: Runtime, caller: Caller) -> Source:
    if caller.role == UserRole.RESEARCHER:
        raise ForbiddenError(
            f"{caller.username} is a researcher: researchers work on de-identified exports "
            "and do not store instances"
        )
    with runtime.database.read() as session:
        facility = (
            get_facility(session, DEFAULT_FACILITY_CODE)
            if caller.facility_id is None
            else session.get_one(Facility, caller.facility_id)
        )
        return Source(
            ae_title=caller.username,
            address=caller.address,
            facility_id=facility.id,
            facility_code=facility.code,
            protocol="dicomweb",
            actor_kind=caller.actor_kind,
        )


def store_instances(
    runtime: Runtime,
    caller: Caller,
    *,
    body: IO[bytes],
    boundary: str,
    base_url: str,
    study_instance_uid: str | None = None,
) -> StowReport:
    """Store a STOW-RS request's instances for the caller's facility (the default
    facility for a caller bound to none); each store is audited by the ingest.

    Raises
    ------
    dicom_gateway.dicomweb.ForbiddenError
        The caller's role may not store instances.
    dicom_gateway.dicomweb.InvalidRequestError
        The body is not a well-formed multipart body.
    """
    settings = runtime.settings
    accepted = (
        resolve_sop_classes(settings.accepted_sop_classes)
        if settings.accepted_sop_classes is not None
        else STORAGE_SOP_CLASSES
    )
    service = StowService(ingestor=runtime.ingestor, accepted_sop_classes=accepted)
    return service.store(
        body,
        boundary=boundary,
        source=_source(runtime, caller),
        base_url=base_url,
        study_instance_uid=study_instance_uid,
    )


def search(
    runtime: Runtime,
    caller: Caller,
    *,
    params: Sequence[tuple[str, str]],
    level: Level,
    base_url: str,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> SearchResult:
    """Run a QIDO-RS search within the caller's facilities; audited as
    ``dicomweb.search`` with the studies shown."""
    request = parse_search(
        params,
        level=level,
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid,
    )
    service = QidoService(
        database=runtime.database,
        files=runtime.files,
        max_results=runtime.settings.dicomweb_max_results,
    )
    result = service.search(request, facility_ids=caller.facility_ids, base_url=base_url)
    patients = result.patient_ids
    _audit(
        runtime,
        caller,
        "dicomweb.search",
        AuditOutcome.SUCCESS,
        patient_id=patients[0] if len(patients) == 1 else None,
        study_instance_uid=study_instance_uid or "",
        detail={
            "level": level.value,
            "query": [[name, value[:200]] for name, value in params][:50],
            "count": len(result.items),
            "studies": list(result.study_instance_uids[:_MAX_AUDITED_STUDIES]),
        },
    )
    return result


def _locate(
    runtime: Runtime,
    caller: Caller,
    what: str,
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[StoredInstance]:
    """The instances asked for, with the read audited (``dicomweb.retrieve``): a
    success with patient and facility, a refusal (another facility's study) or a
    failure (nothing there)."""
    service = WadoService(database=runtime.database, files=runtime.files)
    fields: dict[str, Any] = {"study_instance_uid": study_instance_uid[:64]}
    if sop_instance_uid:
        fields["sop_instance_uid"] = sop_instance_uid[:64]
    try:
        instances = service.locate(
            facility_ids=caller.facility_ids,
            study_instance_uid=study_instance_uid,
            series_instance_uid=series_instance_uid,
            sop_instance_uid=sop_instance_uid,
        )
    except ResourceNotFoundError:
        with runtime.database.read() as session:
            located = locate_study(session, study_instance_uid[:64])
        _audit(
            runtime,
            caller,
            "dicomweb.retrieve",
            AuditOutcome.FAILURE if located is None else AuditOutcome.REFUSED,
            facility_id=None if located is None else located[0],
            patient_id=None if located is None else located[1],
            detail={
                "resource": what,
                "reason": "not found" if located is None else "another facility's",
            },
            **fields,
        )
        raise
    _audit(
        runtime,
        caller,
        "dicomweb.retrieve",
        AuditOutcome.SUCCESS,
        facility_id=instances[0].facility_id,
        patient_id=instances[0].patient_id,
        detail={"resource": what, "instances": len(instances)},
        **fields,
    )
    return instances


def _wado(runtime: Runtime) -> WadoService:
    return WadoService(database=runtime.database, files=runtime.files, renderer=render_display)


def retrieve_instances(
    runtime: Runtime,
    caller: Caller,
    *,
    accept: str | None,
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> Payload:
    """A study, series or instance as ``multipart/related; type="application/dicom"``."""
    instances = _locate(
        runtime, caller, "instances", study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return _wado(runtime).retrieve(instances, accept)


def retrieve_metadata(
    runtime: Runtime,
    caller: Caller,
    *,
    base_url: str,
    study_instance_uid: str,
    series_instance_uid: str | None = None,
    sop_instance_uid: str | None = None,
) -> list[dict[str, Any]]:
    """The metadata of a study, series or instance in the DICOM JSON model."""
    instances = _locate(
        runtime, caller, "metadata", study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return _wado(runtime).metadata(instances, base_url)


def retrieve_frames(
    runtime: Runtime,
    caller: Caller,
    *,
    accept: str | None,
    frame_list: str,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> Payload:
    """Frames of an instance, one part each."""
    [instance] = _locate(
        runtime, caller, "frames", study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return _wado(runtime).frames(instance, frame_list=frame_list, accept=accept)


def retrieve_bulk_data(
    runtime: Runtime,
    caller: Caller,
    *,
    accept: str | None,
    tag: str,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> Payload:
    """The pixel data an instance's metadata names by BulkDataURI."""
    [instance] = _locate(
        runtime, caller, "bulkdata", study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return _wado(runtime).bulk_data(instance, tag=tag, accept=accept)


def retrieve_rendered(
    runtime: Runtime,
    caller: Caller,
    *,
    params: Sequence[tuple[str, str]],
    accept: str | None,
    study_instance_uid: str,
    series_instance_uid: str,
    sop_instance_uid: str,
) -> Payload:
    """An instance's first frame as PNG or JPEG, with the requested window."""
    request = parse_rendered(params, accept)
    [instance] = _locate(
        runtime, caller, "rendered", study_instance_uid, series_instance_uid, sop_instance_uid
    )
    return _wado(runtime).rendered(instance, request)
