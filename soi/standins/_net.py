"""Loopback ports for the stand-in servers."""

from __future__ import annotations

import socket
import time

__all__ = ["LOOPBACK", "free_port", "wait_for_port"]

#: Stand-ins listen on the loopback address only.
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A TCP port free on the loopback address now (another process may take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """Wait until ``host:port`` accepts TCP connections; ``False`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
