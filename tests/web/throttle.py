"""A slow link for browser tests: a TCP proxy on a fixed loopback port.

The browser talks to the proxy, which forwards to Soi's HTTP port and sends the
client's bytes on at a limited rate (a district hospital's uplink). Soi can be
stopped and started again on another port behind it (:meth:`ThrottledLink.retarget`)
while the page keeps its origin. Bytes forwarded to Soi are counted, so a test can
tell how much was sent again after a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from types import TracebackType
from typing import Self

from tests.support.net import LOOPBACK

__all__ = ["ThrottledLink"]

_PIECE = 8 * 1024
_BUFFER = 64 * 1024


class ThrottledLink:
    """A TCP proxy ``127.0.0.1:port`` → ``127.0.0.1:target`` with a client-to-server
    rate limit, run in a thread of its own.

    Parameters
    ----------
    target_port:
        The port connections are forwarded to.
    upload_bytes_per_second:
        How fast the client's bytes go on to the target (all connections together).
    """

    def __init__(self, target_port: int, *, upload_bytes_per_second: int) -> None:
        self.target_port = target_port
        self.rate = upload_bytes_per_second
        self.forwarded = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._next_send = 0.0
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> Self:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # A small receive buffer, inherited by accepted sockets: the browser's progress
        # then follows what actually went through.
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _BUFFER)
        listener.bind((LOOPBACK, 0))
        self.port = listener.getsockname()[1]
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._handle, sock=listener), self._loop
        )
        self._server = future.result(10)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def retarget(self, target_port: int) -> None:
        """Forward new connections to ``target_port`` from now on; restart the count."""
        with self._lock:
            self.target_port = target_port
            self.forwarded = 0

    async def _throttle(self, size: int) -> None:
        now = time.monotonic()
        start = max(now, self._next_send)
        self._next_send = start + size / self.rate
        if self._next_send > now:
            await asyncio.sleep(self._next_send - now)

    async def _pump(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, upstream: bool
    ) -> None:
        try:
            while data := await reader.read(_PIECE):
                if upstream:
                    await self._throttle(len(data))
                writer.write(data)
                await writer.drain()
                if upstream:
                    with self._lock:
                        self.forwarded += len(data)
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(ConnectionError, OSError):
                writer.close()

    async def _handle(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            server_reader, server_writer = await asyncio.open_connection(LOOPBACK, self.target_port)
        except OSError:
            client_writer.close()  # the server is down: the browser sees the link drop
            return
        await asyncio.gather(
            self._pump(client_reader, server_writer, upstream=True),
            self._pump(server_reader, client_writer, upstream=False),
        )
