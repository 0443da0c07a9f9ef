"""HTTP routes, one module per resource."""

from soi.api.routes import health, studies

__all__ = ["health", "studies"]
