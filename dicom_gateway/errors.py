"""Errors raised by the DICOM gateway."""

from __future__ import annotations

from dicom_gateway.status import StoreStatus

__all__ = ["AssociationRefused", "GatewayError", "InvalidInstanceError", "RoutingConfigError"]


class GatewayError(Exception):
    """Base class of every error the gateway raises."""


class InvalidInstanceError(GatewayError):
    """A received data set cannot be accepted; carries the DIMSE status to answer with.

    Parameters
    ----------
    status:
        The C-STORE failure status.
    comment:
        What is wrong, for the sender's Error Comment (at most 64 characters are
        sent) and for the log, which keeps the whole text.
    """

    def __init__(self, status: StoreStatus, comment: str) -> None:
        super().__init__(comment)
        self.status = status
        self.comment = comment


class AssociationRefused(GatewayError):
    """A peer may not associate; the message says why."""


class RoutingConfigError(GatewayError):
    """The routing rules file cannot be read or is not valid."""
