"""``/health``."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from soi.api.deps import RuntimeDep
from soi.schemas import HealthReport
from soi.services import check_health

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthReport, responses={503: {"model": HealthReport}})
def health(runtime: RuntimeDep) -> JSONResponse:
    """Health of the database, the disk and the DIMSE listener."""
    listener = runtime.listener
    report = check_health(
        database=runtime.database,
        files=runtime.files,
        dimse_running=listener is not None and listener.running,
        ae_title=runtime.settings.ae_title,
        dimse_host=runtime.settings.dicom_host,
        dimse_port=listener.port if listener is not None else runtime.settings.dicom_port,
    )
    return JSONResponse(
        report.model_dump(mode="json"), status_code=200 if report.status == "ok" else 503
    )
