"""HTTP routes, one module per resource."""

from soi.api.routes import admin, auth, dicomweb, health, studies

__all__ = ["admin", "auth", "dicomweb", "health", "studies"]
