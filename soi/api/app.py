"""The FastAPI application."""

from __future__ import annotations

from fastapi import FastAPI

from soi import __version__
from soi.api.problems import install_problem_handlers
from soi.api.routes import health, studies
from soi.runtime import Runtime

__all__ = ["create_app"]


def create_app(runtime: Runtime) -> FastAPI:
    """Build the HTTP API around a runtime."""
    app = FastAPI(
        title="Soi",
        version=__version__,
        description="AI-assisted diagnostic imaging service: studies received, jobs, results.",
    )
    app.state.runtime = runtime
    install_problem_handlers(app)
    app.include_router(health.router)
    app.include_router(studies.router)
    return app
