"""``/ui``: the browser pages (sign-in, upload, audit log) and their static files.

The pages are static; everything they show comes from the JSON API with the
browser's session cookie. They are served with a Content Security Policy that
allows this origin's scripts and styles only.
"""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from soi.web import PAGES_DIR, STATIC_DIR

__all__ = ["mount_static", "router"]

router = APIRouter(include_in_schema=False)

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def _page(name: str) -> FileResponse:
    return FileResponse(
        PAGES_DIR / name, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS
    )


@router.get("/")
def home() -> RedirectResponse:
    """The upload page."""
    return RedirectResponse("/ui/upload", status_code=303)


@router.get("/ui")
def ui_home() -> RedirectResponse:
    """The upload page."""
    return RedirectResponse("/ui/upload", status_code=303)


@router.get("/ui/login")
def login_page() -> FileResponse:
    """The sign-in page."""
    return _page("login.html")


@router.get("/ui/upload")
def upload_page() -> FileResponse:
    """The upload page: pick files, a folder or a ZIP; progress, receipt, AI result."""
    return _page("upload.html")


@router.get("/ui/admin/audit")
def audit_page() -> FileResponse:
    """The audit log page (administrators): filters, newest events first, CSV export."""
    return _page("audit.html")


def mount_static(app: FastAPI) -> None:
    """Serve the pages' scripts and styles under ``/ui/static``."""
    app.mount("/ui/static", StaticFiles(directory=STATIC_DIR), name="ui-static")
