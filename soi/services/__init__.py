"""Service functions behind the HTTP routes and the CLI."""

from soi.services.health import check_health
from soi.services.studies import list_study_page, study_detail

__all__ = ["check_health", "list_study_page", "study_detail"]
