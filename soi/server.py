"""One process: DIMSE listener, HTTP API and background workers, stopped cleanly."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import structlog
import uvicorn

from soi.api import create_app
from soi.runtime import Runtime
from soi.settings import Settings

__all__ = ["serve"]

_log = structlog.get_logger("soi.server")


class _Server(uvicorn.Server):
    """Uvicorn server that announces where everything listens once it is up."""

    def __init__(self, config: uvicorn.Config, on_ready: Callable[[int], None]) -> None:
        super().__init__(config)
        self._on_ready = on_ready

    async def startup(self, sockets: Any = None) -> None:
        await super().startup(sockets=sockets)
        if self.started:
            port = self.config.port
            for server in self.servers:
                for sock in server.sockets:
                    port = sock.getsockname()[1]
            self._on_ready(port)


def serve(settings: Settings, *, echo: Callable[[str], None] = print) -> None:
    """Run Soi until SIGTERM or Ctrl-C.

    Starts the DIMSE listener, the study assembler and the HTTP API, prints where
    they listen, and on a stop signal stops accepting, lets associations in progress
    end, and closes the database.
    """
    runtime = Runtime.build(settings)
    listener = runtime.listener
    assert listener is not None
    stop = threading.Event()
    workers = [
        threading.Thread(
            target=runtime.assembler.run_forever,
            args=(stop,),
            kwargs={"interval": settings.assembly_interval_seconds},
            name="soi-assembly",
            daemon=True,
        )
    ]

    def on_ready(http_port: int) -> None:
        echo(f"DICOM  AE {settings.ae_title} listening on {settings.dicom_host}:{listener.port}")
        echo(
            f"HTTP   http://{settings.http_host}:{http_port}  (health: /health, studies: /studies)"
        )
        echo(f"Data   {settings.data_dir.resolve()}  database: {runtime.database.dialect}")
        echo("Ready. Press Ctrl-C to stop.")
        sys.stdout.flush()

    config = uvicorn.Config(
        create_app(runtime),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        lifespan="off",
        access_log=False,
    )
    server = _Server(config, on_ready)
    # Uvicorn captures SIGTERM/SIGINT while it runs and re-raises them afterwards; with
    # these handlers in place the re-raised signal is absorbed and the cleanup below runs.
    previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        listener.start()
        for worker in workers:
            worker.start()
        server.run()
        if not server.started:
            raise OSError(
                f"the HTTP API could not listen on {settings.http_host}:{settings.http_port} "
                "(is the port in use?)"
            )
    finally:
        stop.set()
        listener.stop()
        for worker in workers:
            if worker.is_alive():
                worker.join(timeout=10)
        runtime.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _log.info("Soi stopped")
        if server.started:
            echo("Stopped.")


def _absorb(signum: int, frame: object) -> None:
    """Ignore a stop signal re-raised after the server has already shut down."""
