"""``soi serve``: DIMSE listener, HTTP API and background workers, stopped cleanly.

The first process binds the DICOM and HTTP ports, runs the study assembler, the job
workers and the outbox, and receives like the others. It starts
``receiving_processes - 1`` more processes (one per CPU core by default) that share
its two listening sockets and only receive: the kernel hands each new connection to
one of them, so instances are parsed, written and indexed on every core instead of
in turn under one interpreter lock. They share the store (SQLite's file locking, or
PostgreSQL) and the data folder, are restarted when they die, stop with the first
process, and are killed by the kernel if it is killed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import select as io_select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any

import structlog
import uvicorn
from sqlalchemy import select

from soi.api import create_app
from soi.logs import configure_logging
from soi.runtime import Runtime
from soi.settings import Settings
from store import User

__all__ = ["keep_large_buffers_in_heap", "receive", "run_workers", "serve"]

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

    Starts the DIMSE listener, the study assembler and the HTTP API, and the other
    receiving processes, prints where they listen, and on a stop signal stops
    accepting, lets associations in progress end, stops the other processes, and
    closes the database.
    """
    keep_large_buffers_in_heap()
    runtime = Runtime.build(settings, with_workers=True)
    listener = runtime.listener
    assert listener is not None
    processes = settings.receiving_process_count
    runtime.receiving_processes = processes
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
        echo(f"Receiving on {processes} process(es)")
        echo(_models_line(runtime))
        echo(_outbox_line(runtime))
        if not _has_users(runtime):
            echo(
                "Users  none yet: the HTTP API answers 401 to everyone; add the first with "
                "`soi users add NAME --role admin`"
            )
        echo("Ready. Press Ctrl-C to stop.")
        sys.stdout.flush()

    config = _http_config(runtime)
    server = _Server(config, on_ready)
    # Uvicorn captures SIGTERM/SIGINT while it runs and re-raises them afterwards; with
    # these handlers in place the re-raised signal is absorbed and the cleanup below runs.
    previous = {sig: signal.signal(sig, _absorb) for sig in (signal.SIGTERM, signal.SIGINT)}
    receivers: _Receivers | None = None
    try:
        dimse_socket = _listening_socket(settings.dicom_host, settings.dicom_port, "DICOM")
        http_socket = _listening_socket(settings.http_host, settings.http_port, "HTTP")
        listener.start(dimse_socket)
        receivers = _Receivers(settings, processes - 1, http_socket, dimse_socket)
        receivers.start()
        receivers.wait_ready()
        for worker in workers:
            worker.start()
        server.run(sockets=[http_socket])
        if not server.started:
            raise OSError(
                f"the HTTP API could not listen on {settings.http_host}:{settings.http_port}"
            )
    finally:
        stop.set()
        if receivers is not None:
            receivers.stop()
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


def _http_config(runtime: Runtime) -> uvicorn.Config:
    settings = runtime.settings
    return uvicorn.Config(
        create_app(runtime),
        host=settings.http_host,
        port=settings.http_port,
        log_config=None,
        lifespan="off",
        access_log=False,
        ssl_certfile=settings.http_tls_certfile,
        ssl_keyfile=settings.http_tls_keyfile,
    )


def _listening_socket(host: str, port: int, what: str) -> socket.socket:
    """A TCP socket bound to ``host:port`` and listening, to be shared with the receivers.

    Raises
    ------
    OSError
        The address cannot be bound (port in use, address not on this machine).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise OSError(
            f"the {what} port cannot listen on {host}:{port}: {exc.strerror or exc} "
            "(is the port in use?)"
        ) from exc
    sock.set_inheritable(True)
    return sock


class _Receivers:
    """The other receiving processes: started, restarted when they die, stopped."""

    def __init__(
        self, settings: Settings, count: int, http: socket.socket, dimse: socket.socket
    ) -> None:
        self.settings = settings
        self.count = count
        self.sockets = (http, dimse)
        self._processes: list[subprocess.Popen[bytes]] = []
        self._ready: list[int] = []  # read ends of the processes' "ready" pipes
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None

    def start(self) -> None:
        """Start the processes, and a thread that restarts any that exits."""
        if self.count < 1:
            return
        self._processes = [self._spawn() for _ in range(self.count)]
        # Spawned here, in the main thread, they are killed by the kernel (parent-death
        # signal) only when the whole process ends; restarted ones belong to the
        # watching thread, which lives until stop().
        self._watch = threading.Thread(target=self._watch_loop, name="soi-receivers", daemon=True)
        self._watch.start()

    def _spawn(self) -> subprocess.Popen[bytes]:
        http, dimse = (str(sock.fileno()) for sock in self.sockets)
        ready_read, ready_write = os.pipe()
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    "import soi.server; soi.server.receive()",
                    http,
                    dimse,
                    str(ready_write),
                ],
                stdin=subprocess.PIPE,
                pass_fds=[*(sock.fileno() for sock in self.sockets), ready_write],
            )
        finally:
            os.close(ready_write)
        self._ready.append(ready_read)
        assert process.stdin is not None
        state = {
            "settings": self.settings.model_dump(mode="json"),
            "processes": self.count + 1,
            "parent": os.getpid(),
        }
        try:
            process.stdin.write(json.dumps(state).encode())
            process.stdin.close()
        except OSError as exc:
            _log.error("cannot hand the settings to a receiving process", error=str(exc))
        _log.info("receiving process started", pid=process.pid)
        return process

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every process started so far accepts connections (or has failed)."""
        deadline = time.monotonic() + timeout
        waiting = list(self._ready)
        self._ready.clear()
        while waiting:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _log.error("a receiving process is not ready; going on without waiting")
                break
            readable, _, _ = io_select.select(waiting, [], [], remaining)
            for fd in readable:
                os.read(fd, 1)  # b"" if it died before it was ready: the watch restarts it
                os.close(fd)
                waiting.remove(fd)
        for fd in waiting:
            os.close(fd)

    def _watch_loop(self) -> None:
        while not self._stopping.wait(1.0):
            for index, process in enumerate(self._processes):
                code = process.poll()
                if code is None or self._stopping.is_set():
                    continue
                _log.error("receiving process exited; starting another", pid=process.pid, code=code)
                time.sleep(1.0)
                if not self._stopping.is_set():
                    self._processes[index] = self._spawn()
                    self.wait_ready()

    def stop(self, timeout: float = 20.0) -> None:
        """Ask every process to stop (SIGTERM), wait for them, kill the ones that hang."""
        self._stopping.set()
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self._processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _log.error("receiving process did not stop; killing it", pid=process.pid)
                process.kill()
                process.wait()
        if self._watch is not None:
            self._watch.join(timeout=5)


def receive() -> None:
    """A receiving process of ``soi serve`` (started by it; not a command of its own).

    Reads its settings from standard input and accepts DICOM and HTTP connections on
    the two listening sockets whose descriptors are its first two arguments, until
    SIGTERM; writes a byte to the third once it accepts.
    """
    state = json.loads(sys.stdin.buffer.read())
    _die_with_parent(int(state["parent"]))
    settings = Settings.model_validate(state["settings"])
    configure_logging(level=settings.log_level, fmt=settings.log_format)
    http = socket.socket(fileno=int(sys.argv[1]))
    dimse = socket.socket(fileno=int(sys.argv[2]))
    keep_large_buffers_in_heap()
    runtime = Runtime.build(settings, with_workers=False, first_process=False)
    runtime.receiving_processes = int(state["processes"])
    listener = runtime.listener
    assert listener is not None
    ready = int(sys.argv[3])

    def on_ready(port: int) -> None:
        os.write(ready, b"1")
        os.close(ready)

    server = _Server(_http_config(runtime), on_ready)
    try:
        listener.start(dimse)
        server.run(sockets=[http])
    finally:
        listener.stop()
        runtime.close()


#: ``prctl`` option: the signal this process gets when its parent dies, from <linux/prctl.h>.
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Have the kernel kill this process when its parent dies (Linux), and exit now if
    it is already gone: a receiving process never outlives ``soi serve``."""
    name = ctypes.util.find_library("c")
    if sys.platform.startswith("linux") and name is not None:
        with suppress(OSError, AttributeError):
            ctypes.CDLL(name).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        sys.exit(0)


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
