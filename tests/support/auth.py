"""Credentials for tests of the HTTP API."""

from __future__ import annotations

__all__ = ["PASSWORD", "bearer"]

#: The password of the people tests make.
PASSWORD = "mật khẩu đủ dài 2026"


def bearer(token: str) -> dict[str, str]:
    """The header that sends an API token."""
    return {"Authorization": f"Bearer {token}"}
