"""The listener's TCP transport: pynetdicom's, reading PDUs in one piece.

pynetdicom reads a PDU from its socket 4 KiB at a time: about two thousand system
calls and Python-level appends for every 8 MB radiograph. Here a PDU is read straight
into one buffer of its full size. Everything else (the upper-layer state machine,
timeouts, TLS) is pynetdicom's own.
"""

from __future__ import annotations

from typing import Any

from pynetdicom.transport import AssociationSocket, RequestHandler

__all__ = ["BulkReadRequestHandler"]


class _BulkReadSocket(AssociationSocket):
    """An association socket whose ``recv`` fills the whole PDU buffer at once."""

    def recv(self, nr_bytes: int) -> bytearray:
        """Read ``nr_bytes`` bytes, or fewer if the peer closed the connection."""
        assert self.socket is not None
        buffer = bytearray(nr_bytes)
        view = memoryview(buffer)
        nr_read = 0
        while nr_read < nr_bytes:
            count = self.socket.recv_into(view[nr_read:], nr_bytes - nr_read)
            if count == 0:  # connection closed: hand back what came, as pynetdicom does
                del view
                return buffer[:nr_read]
            nr_read += count
        return buffer


class BulkReadRequestHandler(RequestHandler):
    """pynetdicom's request handler, with sockets that read whole PDUs."""

    def _create_association(self) -> Any:
        assoc = super()._create_association()
        # Same object, same state: only its ``recv`` method changes.
        assoc.dul.socket.__class__ = _BulkReadSocket
        return assoc
