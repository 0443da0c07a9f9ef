"""Soi's HTTP API."""

from soi.api.app import create_app

__all__ = ["create_app"]
