"""The FastAPI application."""

from __future__ import annotations

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
    studies,
    ui,
    uploads,
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
    app.state.login_limiter = login_limiter(runtime.settings)
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(studies.router)
    app.include_router(results.router)
    app.include_router(auth.router)
    app.include_router(admin.router)
    app.include_router(dicomweb.router)
    app.include_router(models.router)
    app.state.uploads = make_upload_store(runtime.settings)
    app.include_router(uploads.router)
    app.include_router(ui.router)
    ui.mount_static(app)
    return app


def login_limiter(settings: Settings) -> LoginLimiter:
    """The counter of failed sign-ins of one API process."""
    return LoginLimiter(
        max_failures=settings.login_max_failures,
        max_failures_per_address=settings.login_max_failures_per_address,
        window_seconds=settings.login_window_seconds,
    )
