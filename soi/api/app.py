"""The FastAPI application."""

from __future__ import annotations

import math

from fastapi import FastAPI

from soi import __version__
from soi.api.problems import install_problem_handlers
from soi.api.routes import (
    admin,
    auth,
    dicomweb,
    health,
    models,
    results,
    review,
    studies,
    ui,
    uploads,
    worklist,
)
from soi.auth import LoginLimiter
from soi.runtime import Runtime
from soi.services.uploads import make_upload_store
from soi.settings import Settings

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> FastAPI:
    """Build the HTTP API around a runtime."""
    app = FastAPI(
        title="Soi",
        version=__version__,
        description="AI-assisted diagnostic imaging service: studies received, jobs, results.",
    )
    app.state.runtime = runtime
    app.state.login_limiter = login_limiter(runtime.settings, runtime.receiving_processes)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(studies.router)
    app.include_router(results.router)
    app.include_router(review.router)
    app.include_router(worklist.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(dicomweb.router)
    app.include_router(models.router)
    app.state.uploads = make_upload_store(runtime.settings)
    app.include_router(uploads.router)
    app.include_router(ui.router)
    ui.mount_static(app)
    return app


def login_limiter(settings: Settings, processes: int = 1) -> LoginLimiter:
    """The counter of failed sign-ins of one of ``processes`` API processes.

    The kernel spreads connections over the processes, each counting what it sees:
    each allows its share of the limits, so that together they allow about the limits.
    """
    return LoginLimiter(
        max_failures=math.ceil(settings.login_max_failures / processes),
        max_failures_per_address=math.ceil(settings.login_max_failures_per_address / processes),
        window_seconds=settings.login_window_seconds,
    )
