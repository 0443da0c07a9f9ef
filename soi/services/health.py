"""Health of a running process: database, disk, DIMSE listener."""

from __future__ import annotations

import socket

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from soi.schemas import HealthCheck, HealthReport
from store import Database, InstanceFileStore

__all__ = ["check_health"]


def _database(database: Database) -> HealthCheck:
    try:
        with database.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return HealthCheck(ok=False, detail=f"database unreachable: {type(exc).__name__}")
    return HealthCheck(ok=True, detail="database answers", data={"dialect": database.dialect})


def _disk(files: InstanceFileStore) -> HealthCheck:
    free = files.free_bytes()
    ok = free >= files.min_free_bytes
    detail = "free space above the floor" if ok else "free space below the floor: refusing"
    return HealthCheck(
        ok=ok, detail=detail, data={"free_bytes": free, "floor_bytes": files.min_free_bytes}
    )


def _dimse(*, running: bool, ae_title: str, host: str, port: int) -> HealthCheck:
    if not running:
        return HealthCheck(ok=False, detail="DIMSE listener not running")
    probe = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host  # noqa: S104
    try:
        with socket.create_connection((probe, port), timeout=2):
            pass
    except OSError as exc:
        return HealthCheck(ok=False, detail=f"DIMSE port {port} does not accept: {exc}")
    return HealthCheck(
        ok=True, detail="DIMSE listener accepts", data={"ae_title": ae_title, "port": port}
    )


def check_health(
    *,
    database: Database,
    files: InstanceFileStore,
    dimse_running: bool,
    ae_title: str,
    dimse_host: str,
    dimse_port: int,
) -> HealthReport:
    """Check every component; the status is ``ok`` only if all are."""
    checks = {
        "database": _database(database),
        "disk": _disk(files),
        "dimse": _dimse(running=dimse_running, ae_title=ae_title, host=dimse_host, port=dimse_port),
    }
    return HealthReport(
        status="ok" if all(c.ok for c in checks.values()) else "degraded", checks=checks
    )
