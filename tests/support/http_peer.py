"""An HTTP peer that is not Soi's code: the standard library's HTTP server in a thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.net import LOOPBACK

__all__ = ["HttpPeer", "ReceivedRequest"]


@dataclass
class ReceivedRequest:
    """One POST request as the peer received it.

    Parameters
    ----------
    path : str
        The request target, e.g. ``/fhir/R4``.
    headers : dict[str, str]
        The request headers, as sent.
    body : bytes
        The request body, undecoded.
    """

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpPeer:
    """An HTTP server in a thread that answers every POST with a programmed reply.

    Every request is recorded in ``received`` before it is answered. Change ``status``,
    ``body``, ``content_type`` or ``delay`` between requests to program the next reply.

    Parameters
    ----------
    port : int, optional
        The loopback port to listen on; ``0`` picks a free one when started.
    status : int, optional
        The HTTP status of every reply.
    body : str, optional
        The reply body, sent as UTF-8.
    content_type : str, optional
        The reply's ``Content-Type``.
    delay : float, optional
        Seconds to wait before replying; :meth:`stop` ends the wait without a reply.
    """

    port: int = 0
    status: int = 201
    body: str = ""
    content_type: str = "application/fhir+json"
    delay: float = 0.0
    received: list[ReceivedRequest] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The peer's FHIR base URL on the loopback interface."""
        return f"http://{LOOPBACK}:{self.port}/fhir/R4"

    def start(self) -> HttpPeer:
        """Listen on ``port`` and serve in a daemon thread.

        Returns
        -------
        HttpPeer
            This peer, with ``port`` set to the port it listens on.
        """
        peer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                peer.received.append(
                    ReceivedRequest(self.path, dict(self.headers.items()), self.rfile.read(length))
                )
                if peer.delay and peer._stop.wait(peer.delay):
                    return
                payload = peer.body.encode("utf-8")
                self.send_response(peer.status)
                self.send_header("Content-Type", peer.content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self._server = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self.port = int(self._server.server_address[1])
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """End any delayed reply, stop serving and close the socket."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
