"""Loopback networking helpers for tests that start real servers."""

from __future__ import annotations

import socket
import time

__all__ = ["LOOPBACK", "free_port", "wait_for_port"]

#: The only address test servers are contacted on.
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """Return a TCP port that is currently free on the loopback interface.

    The port is found by binding ``127.0.0.1:0`` and closing the socket, so
    another process may in principle take it before the caller binds it;
    callers that start servers should be ready to retry.

    Returns
    -------
    int
        A port number.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float = 30.0) -> None:
    """Block until a TCP connection to ``host:port`` succeeds.

    Parameters
    ----------
    host : str
        Host to connect to (use ``127.0.0.1``).
    port : int
        TCP port.
    timeout : float, optional
        Seconds to keep trying.

    Raises
    ------
    TimeoutError
        When nothing accepts connections on ``host:port`` within ``timeout``.
    """
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError as exc:
            last_error = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"nothing accepted TCP connections on {host}:{port} within {timeout:.1f} s "
                f"(last error: {last_error})"
            )
        time.sleep(0.05)
