"""The receivers are fed real report documents, built from the reports tests' contexts."""

from tests.reports.conftest import complete_context, ungradable_context

__all__ = ["complete_context", "ungradable_context"]
