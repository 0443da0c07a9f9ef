"""Dependencies shared by the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from soi.runtime import Runtime

__all__ = ["RuntimeDep", "get_runtime"]


def get_runtime(request: Request) -> Runtime:
    """Return the process's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
