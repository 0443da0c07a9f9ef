"""The browser pages Soi serves: sign-in and the upload page (static HTML, CSS and
JavaScript, no build step; third-party scripts are vendored under ``static/vendor``
by ``scripts/vendor-js``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["PAGES_DIR", "STATIC_DIR"]

#: The HTML pages, served with their security headers by :mod:`soi.api.routes.ui`.
PAGES_DIR = Path(str(resources.files("soi.web") / "pages"))
#: Scripts, style sheets and vendored libraries, served under ``/ui/static``.
STATIC_DIR = Path(str(resources.files("soi.web") / "static"))
