"""The DIMSE listener: C-ECHO and C-STORE service class provider (pynetdicom)."""

from __future__ import annotations

import socket
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydicom import Dataset
from pynetdicom import AE, evt
from pynetdicom.transport import ThreadedAssociationServer
from sqlalchemy.exc import SQLAlchemyError

from dicom_gateway.access import PeerAccess
from dicom_gateway.errors import AssociationRefused
from dicom_gateway.ingest import Ingestor, Source
from dicom_gateway.sop_classes import (
    STORAGE_SOP_CLASSES,
    TRANSFER_SYNTAXES,
    VERIFICATION_SOP_CLASS,
    register_storage_classes,
)
from dicom_gateway.status import StoreStatus
from dicom_gateway.transport import BulkReadRequestHandler
from store import AuditOutcome, record_event

__all__ = ["DicomListener", "DimseConfig"]

_log = structlog.get_logger("soi.dimse")

# A-ASSOCIATE-RJ: rejected-permanent, by the service user, calling AE not recognised.
_REJECT_PERMANENT = 0x01
_SOURCE_SERVICE_USER = 0x01
_DIAG_CALLING_AE_NOT_RECOGNISED = 0x03
_DIAG_CALLED_AE_NOT_RECOGNISED = 0x07


@dataclass(frozen=True, slots=True)
class DimseConfig:
    """Settings of the DIMSE listener."""

    ae_title: str = "SOI"
    host: str = "0.0.0.0"  # noqa: S104 - a hospital PACS must reach the listener
    port: int = 11112
    maximum_pdu_size: int = 4 * 1024 * 1024
    maximum_associations: int = 16
    accepted_sop_classes: Sequence[str] = field(default_factory=lambda: STORAGE_SOP_CLASSES)
    transfer_syntaxes: Sequence[str] = field(default_factory=lambda: TRANSFER_SYNTAXES)
    acse_timeout: float = 30.0
    dimse_timeout: float = 60.0
    network_timeout: float = 60.0

    def __post_init__(self) -> None:
        ae = self.ae_title.strip()
        if not ae or len(ae) > 16 or "\\" in ae:
            raise ValueError(f"`ae_title` must be 1 to 16 characters, {self.ae_title!r} is given")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"`port` must be 0 to 65535, {self.port} is given")


def _server_class(sock: socket.socket | None) -> type[ThreadedAssociationServer]:
    """pynetdicom's server class, or one that accepts on the listening socket ``sock``."""
    if sock is None:
        return ThreadedAssociationServer
    listening = sock

    class _SharedSocketServer(ThreadedAssociationServer):
        def server_bind(self) -> None:
            if self.socket is not None:
                self.socket.close()  # the one TCPServer made: unused
            # Every process is woken by a new connection and one takes it: accept()
            # must not block in the others (it fails at once, and they wait again).
            listening.setblocking(False)
            self.socket = listening
            self.server_address = listening.getsockname()

        def server_activate(self) -> None:
            """Already listening."""

    return _SharedSocketServer


class DicomListener:
    """Runs the C-ECHO / C-STORE SCP in background threads.

    Parameters
    ----------
    config:
        Listener settings.
    ingestor:
        Keeps received instances.
    access:
        Decides which peers may associate.
    """

    def __init__(self, *, config: DimseConfig, ingestor: Ingestor, access: PeerAccess) -> None:
        self.config = config
        self.ingestor = ingestor
        self.access = access
        self._sources: weakref.WeakKeyDictionary[Any, Source] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._server: Any = None
        self.ae = self._build_ae()

    def _build_ae(self) -> AE:
        ae = AE(ae_title=self.config.ae_title)
        ae.maximum_pdu_size = self.config.maximum_pdu_size
        ae.maximum_associations = self.config.maximum_associations
        ae.acse_timeout = self.config.acse_timeout
        ae.dimse_timeout = self.config.dimse_timeout
        ae.network_timeout = self.config.network_timeout
        ae.require_called_aet = True
        ae.add_supported_context(VERIFICATION_SOP_CLASS)
        transfer_syntaxes = list(self.config.transfer_syntaxes)
        register_storage_classes(self.config.accepted_sop_classes)
        for uid in self.config.accepted_sop_classes:
            ae.add_supported_context(uid, transfer_syntaxes)
        return ae

    @property
    def port(self) -> int:
        """The port listened on (useful when configured as 0)."""
        if self._server is None:
            return self.config.port
        return int(self._server.server_address[1])

    @property
    def running(self) -> bool:
        """Whether the listener accepts connections."""
        return self._server is not None

    def start(self, sock: socket.socket | None = None) -> None:
        """Start listening; returns once the port is bound.

        With ``sock``, accept on that listening socket instead of binding one: several
        processes given the same socket share its connections (``soi serve``).
        """
        handlers: list[Any] = [
            (evt.EVT_REQUESTED, self._on_requested),
            (evt.EVT_C_ECHO, self._on_echo),
            (evt.EVT_C_STORE, self._on_store),
        ]
        server = self.ae.make_server(
            (self.config.host, self.config.port),
            evt_handlers=handlers,
            server_class=_server_class(sock),
            request_handler=BulkReadRequestHandler,
        )
        thread = threading.Thread(
            target=server.serve_forever, name="soi-dimse-listener", daemon=True
        )
        thread.start()
        # As AE.start_server does: the server's shutdown() takes itself off this list.
        self.ae._servers.append(server)
        self._server = server
        _log.info(
            "DIMSE listener started",
            ae_title=self.config.ae_title,
            host=self.config.host,
            port=self.port,
        )

    def stop(self) -> None:
        """Stop listening and wait for associations in progress to end."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None
            _log.info("DIMSE listener stopped")

    def _on_requested(self, event: Any) -> None:
        requestor = event.assoc.requestor
        # The requestor's AE title is filled in only after negotiation: read the request.
        calling_ae = str(requestor.primitive.calling_ae_title).strip()
        address = str(requestor.address)
        called_ae = str(requestor.primitive.called_ae_title).strip()
        diagnostic = _DIAG_CALLING_AE_NOT_RECOGNISED
        try:
            if called_ae != self.config.ae_title:
                diagnostic = _DIAG_CALLED_AE_NOT_RECOGNISED
                raise AssociationRefused(
                    f"calling AE {calling_ae!r} from {address} called AE {called_ae!r}; "
                    f"this listener is {self.config.ae_title!r}"
                )
            source = self.access.check(calling_ae=calling_ae, address=address)
        except AssociationRefused as exc:
            _log.warning(
                "association rejected", calling_ae=calling_ae, address=address, reason=str(exc)
            )
            self._audit_rejection(calling_ae, address, str(exc))
            event.assoc.acse.send_reject(_REJECT_PERMANENT, _SOURCE_SERVICE_USER, diagnostic)
            # As pynetdicom does for its own rejections: let the DUL send the A-ASSOCIATE-RJ
            # before the connection is closed.
            event.assoc.kill()
            return
        with self._lock:
            self._sources[event.assoc] = source
        _log.info(
            "association accepted",
            calling_ae=calling_ae,
            address=address,
            facility=source.facility_code,
        )

    def _audit_rejection(self, calling_ae: str, address: str, reason: str) -> None:
        try:
            with self.ingestor.database.write() as session:
                record_event(
                    session,
                    actor=calling_ae,
                    actor_kind="dicom-peer",
                    action="dimse.associate",
                    outcome=AuditOutcome.REFUSED,
                    source_address=address,
                    detail={"reason": reason},
                )
        except SQLAlchemyError as exc:
            _log.error("cannot record rejection in the audit log", error=str(exc))

    def _on_echo(self, event: Any) -> int:
        return 0x0000

    def _on_store(self, event: Any) -> int | Dataset:
        with self._lock:
            source = self._sources.get(event.assoc)
        if source is None:  # pragma: no cover - EVT_REQUESTED always runs first
            return _failure(StoreStatus.PROCESSING_FAILURE, "association has no checked source")
        request = event.request
        outcome = self.ingestor.store(
            event.encoded_dataset(include_meta=False),
            transfer_syntax_uid=str(event.context.transfer_syntax),
            sop_class_uid=str(request.AffectedSOPClassUID),
            sop_instance_uid=str(request.AffectedSOPInstanceUID),
            source=source,
        )
        if outcome.ok:
            return 0x0000
        return _failure(outcome.status, outcome.comment)


def _failure(status: StoreStatus, comment: str) -> Dataset:
    dataset = Dataset()
    dataset.Status = int(status)
    # Error Comment is LO: at most 64 characters, no backslash.
    dataset.ErrorComment = comment.replace("\\", "/")[:64]
    return dataset
