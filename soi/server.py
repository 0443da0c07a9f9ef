"""One process: DIMSE listener, HTTP API and background workers, stopped cleanly."""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

import structlog
import uvicorn
from sqlalchemy import select

from soi.api import create_app
from soi.runtime import Runtime
from soi.settings import Settings
from store import User

__all__ = ["keep_large_buffers_in_heap", "run_workers", "serve"]

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
    keep_large_buffers_in_heap()
    runtime = Runtime.build(settings, with_workers=True)
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
    workers += [
        threading.Thread(
            target=worker.run_forever,
            args=(stop,),
            kwargs={"interval": settings.worker_interval_seconds},
            name=f"soi-worker-{index}",
            daemon=True,
        )
        for index, worker in enumerate(runtime.workers)
    ]
    workers += [
        threading.Thread(
            target=sender.run_forever,
            args=(stop,),
            kwargs={"interval": settings.delivery_interval_seconds},
            name=f"soi-outbox-{index}",
            daemon=True,
        )
        for index, sender in enumerate(runtime.senders)
    ]

    def on_ready(http_port: int) -> None:
        echo(f"DICOM  AE {settings.ae_title} listening on {settings.dicom_host}:{listener.port}")
        scheme = "https" if settings.http_tls else "http"
        echo(
            f"HTTP   {scheme}://{settings.http_host}:{http_port}  "
            "(health: /health, studies: /studies, sign-in: /auth/login)"
        )
        echo(f"Data   {settings.data_dir.resolve()}  database: {runtime.database.dialect}")
        echo(_models_line(runtime))
        echo(_outbox_line(runtime))
        if not _has_users(runtime):
            echo(
                "Users  none yet: the HTTP API answers 401 to everyone; add the first with "
                "`soi users add NAME --role admin`"
            )
        echo("Ready. Press Ctrl-C to stop.")
        sys.stdout.flush()

    config = uvicorn.Config(
        create_app(runtime),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        lifespan="off",
        access_log=False,
        ssl_certfile=settings.http_tls_certfile,
        ssl_keyfile=settings.http_tls_keyfile,
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


def run_workers(settings: Settings, *, echo: Callable[[str], None] = print) -> None:
    """Run job workers only (no listener, no HTTP) until SIGTERM or Ctrl-C.

    For a national deployment: worker processes on inference nodes share the
    database (``SOI_DATABASE_URL``), the data folder and the model registry with the
    gateway. A job in progress finishes before the process exits.

    Raises
    ------
    ValueError
        If ``settings.workers`` is 0 or no pipeline's model is registered.
    """
    if settings.workers < 1:
        raise ValueError("SOI_WORKERS is 0: this process would have nothing to do")
    runtime = Runtime.build(settings, with_listener=False, with_workers=True)
    if not runtime.workers or not runtime.workers[0].handlers:
        runtime.close()
        raise ValueError(f"no model is registered in {settings.models_dir}: no job can run")
    stop = threading.Event()

    def request_stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    threads = [
        threading.Thread(
            target=worker.run_forever,
            args=(stop,),
            kwargs={"interval": settings.worker_interval_seconds},
            name=f"soi-worker-{index}",
        )
        for index, worker in enumerate(runtime.workers)
    ]
    try:
        for thread in threads:
            thread.start()
        echo(_models_line(runtime))
        echo(f"Data   {settings.data_dir.resolve()}  database: {runtime.database.dialect}")
        echo("Working. Press Ctrl-C to stop.")
        sys.stdout.flush()
        # Wait in short steps so the signal handlers above run promptly.
        while not stop.wait(0.5):
            continue
    finally:
        stop.set()
        for thread in threads:
            if thread.is_alive():
                thread.join()
        runtime.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        echo("Stopped.")


#: glibc's ``mallopt`` parameters, from <malloc.h>.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Buffers up to this size come from the heap and are reused (a large CT frame set is
#: still mapped on its own).
_HEAP_BUFFERS_UP_TO = 32 << 20  # glibc refuses more (half its 64 MiB arena heap)


def keep_large_buffers_in_heap() -> bool:
    """Have glibc reuse freed memory for received instances instead of mapping it anew.

    Every instance received passes through buffers of its full size (8 MB for a chest
    radiograph). By default glibc maps each such buffer from the kernel and unmaps it
    when freed, so every new buffer is zero-filled page by page by the kernel again:
    about a third of the server's CPU time when radiographs arrive. Raising the
    mapping threshold (and the heap trim threshold with it) keeps them in the heap,
    where the next instance reuses them; the process keeps the memory of its busiest
    moment. Returns whether the allocator took the setting (glibc on Linux only).
    """
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    mapped = mallopt(_M_MMAP_THRESHOLD, _HEAP_BUFFERS_UP_TO)
    trimmed = mallopt(_M_TRIM_THRESHOLD, 4 * _HEAP_BUFFERS_UP_TO)
    return bool(mapped and trimmed)


def _has_users(runtime: Runtime) -> bool:
    """Whether anyone can sign in or hold a token yet."""
    with runtime.database.read() as session:
        return session.scalar(select(User.id).limit(1)) is not None


def _outbox_line(runtime: Runtime) -> str:
    """Where results go."""
    destinations = runtime.settings.destinations
    if not destinations:
        return "Outbox no destination configured: results stay in Soi (see docs/configuration.md)"
    names = ", ".join(f"{d.name} ({d.kind})" for d in destinations)
    return f"Outbox {names}; {len(runtime.senders)} sender(s)"


def _models_line(runtime: Runtime) -> str:
    """Which pipelines run here, with which model versions and backend."""
    settings = runtime.settings
    handlers = {p: h for worker in runtime.workers for p, h in worker.handlers.items()}
    if not handlers:
        why = "no worker here (SOI_WORKERS=0)" if settings.workers == 0 else "no model registered"
        return f"Models none running: {why}; jobs wait in the queue"
    names = ", ".join(
        f"{pipeline} ({h.model_name} {h.model_version})" for pipeline, h in sorted(handlers.items())
    )
    return (
        f"Models {names} on {settings.inference_backend}, {len(runtime.workers)} worker(s); "
        "AI results are preliminary until a clinician signs"
    )


def _absorb(signum: int, frame: object) -> None:
    """Ignore a stop signal re-raised after the server has already shut down."""
