"""Run ``soi serve`` as a real process for end-to-end tests.

The process listens on free loopback ports, keeps its data in a folder the test
chooses and writes its stdout and stderr to a log file next to that folder, so a
test can read the log at any time (also after killing the process) and a failure
shows what Soi said.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from soi.auth import local_caller
from soi.services import service_account_token
from store import Database, sqlite_url, upgrade

from .net import LOOPBACK, free_port

__all__ = ["READY_LINE", "SoiProcess", "SoiProcessError", "die_with_parent", "soi_executable"]

#: The line ``soi serve`` prints on stdout once it accepts DIMSE and HTTP connections.
READY_LINE = "Ready. Press Ctrl-C to stop."

_START_ATTEMPTS = 3
_PORT_IN_USE = ("address already in use", "errno 98")
_PR_SET_PDEATHSIG = 1


def soi_executable() -> list[str]:
    """Return how to run the ``soi`` command of the running interpreter's environment."""
    script = Path(sys.executable).parent / "soi"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "from soi.cli import main; main()"]


def die_with_parent() -> None:
    """Ask Linux to kill the child when the test process dies (run in the child)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class SoiProcessError(RuntimeError):
    """``soi serve`` failed to start or to stop as expected; the message holds its log."""


class SoiProcess:
    """``soi serve`` in a subprocess, as a context manager.

    Use as::

        with SoiProcess(tmp_path / "data", quiet_period=1.0) as soi:
            storescu(files, port=soi.dicom_port, called_aet=soi.ae_title)
            assert soi.studies()["total"] == 1

    Leaving the block stops the process with SIGTERM and checks it exits with
    status 0; when the block is left by an exception the process is stopped (and
    killed if it does not stop) without further checks, so the test's own error
    is the one reported. Should the test process itself die, Linux kills Soi too.

    Soi runs with ``SOI_MIN_FREE_MB=0``, one receiving process (``env`` may ask for
    more) and its DIMSE listener bound to ``127.0.0.1``; ``SOI_…`` variables of the
    test's own environment are not passed on.
    Before the first start the harness, which owns the data folder, creates the
    integration account ``soi-tests`` in its database and a token for it: :attr:`client`
    sends that token, so it sees every facility's studies.

    Parameters
    ----------
    data_dir : pathlib.Path
        Data folder (``--data-dir``); it may already hold a previous run's data.
    quiet_period : float, optional
        Seconds without a new instance before a study is stable (``--quiet-period``).
    ae_title : str, optional
        Soi's AE title.
    log_path : pathlib.Path, optional
        File that receives stdout and stderr; by default a new file
        ``<data_dir name>-soi-<n>.log`` in the data folder's parent, so each
        start of the same data folder gets its own log.
    env : Mapping[str, str], optional
        Extra environment variables, applied last.
    startup_timeout : float, optional
        Seconds to wait for the ready line.
    stop_timeout : float, optional
        Seconds :meth:`stop` waits for the process to exit after SIGTERM.

    Attributes
    ----------
    dicom_port : int
        DIMSE port (0 until started).
    http_port : int
        HTTP port (0 until started).
    url : str
        Base URL of the HTTP API (empty until started).
    process : subprocess.Popen or None
        The running process.
    token : str
        The API token :attr:`client` sends (empty until started).
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        quiet_period: float = 1.0,
        ae_title: str = "SOI",
        log_path: Path | None = None,
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.quiet_period = quiet_period
        self.ae_title = ae_title
        self.log_path = Path(log_path) if log_path is not None else self._next_log_path()
        self.extra_env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.dicom_port = 0
        self.http_port = 0
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None
        self.token = ""
        self._client: httpx.Client | None = None
        self._log_offset = 0

    def _next_log_path(self) -> Path:
        parent = self.data_dir.parent
        index = 1
        while (path := parent / f"{self.data_dir.name}-soi-{index}.log").exists():
            index += 1
        return path

    # -- life cycle -------------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.stop()
        else:
            self._terminate_quietly()

    def __repr__(self) -> str:
        state = "running" if self.running else "not running"
        return f"SoiProcess(data_dir={str(self.data_dir)!r}, url={self.url!r}, {state})"

    @property
    def pid(self) -> int:
        """Process id of the server."""
        if self.process is None:
            raise SoiProcessError("Soi has not been started")
        return self.process.pid

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        """Exit status once the process has ended."""
        return None if self.process is None else self.process.poll()

    def command(self) -> list[str]:
        """Return the command line of ``soi serve`` for the current ports.

        Returns
        -------
        list of str
            Arguments, starting with the ``soi`` script.
        """
        return [
            *soi_executable(),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--dicom-port",
            str(self.dicom_port),
            "--http-port",
            str(self.http_port),
            "--ae-title",
            self.ae_title,
            "--quiet-period",
            str(self.quiet_period),
        ]

    def _environment(self) -> dict[str, str]:
        env = dict(os.environ)
        for name in [key for key in env if key.startswith("SOI_")]:
            del env[name]
        env.update(
            {
                "SOI_MIN_FREE_MB": "0",
                "SOI_DICOM_HOST": LOOPBACK,
                # One process starts faster; tests of several pass their own count.
                "SOI_RECEIVING_PROCESSES": "1",
                "PYTHONUNBUFFERED": "1",
                "NO_COLOR": "1",
            }
        )
        env.update(self.extra_env)
        return env

    def start(self) -> None:
        """Start ``soi serve`` and wait for its ready line.

        Raises
        ------
        SoiProcessError
            When the process exits during start-up or is not ready in time;
            the message includes its log.
        """
        if self.running:
            return
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self._provision_token()
        for attempt in range(1, _START_ATTEMPTS + 1):
            self.dicom_port = free_port()
            self.http_port = free_port()
            while self.http_port == self.dicom_port:
                self.http_port = free_port()
            self.url = f"http://{LOOPBACK}:{self.http_port}"
            self._log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    self.command(),
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=self._environment(),
                    # Linux ties the death signal to the thread that starts the process:
                    # start Soi from the test's main thread.
                    preexec_fn=die_with_parent,
                )
            try:
                self._wait_ready()
            except SoiProcessError as exc:
                self._terminate_quietly()
                port_taken = any(text in str(exc).lower() for text in _PORT_IN_USE)
                if port_taken and attempt < _START_ATTEMPTS:
                    continue
                raise
            return

    def _provision_token(self) -> None:
        """Create the harness's integration account and token in the data folder's database."""
        if self.token:
            return
        url = self.extra_env.get("SOI_DATABASE_URL") or sqlite_url(self.data_dir / "soi.db")
        database = Database(url)
        try:
            upgrade(database)
            issued = service_account_token(
                database, actor=local_caller(), username="soi-tests", name="test harness"
            )
        finally:
            database.dispose()
        self.token = issued.token

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        while True:
            assert self.process is not None
            text = self._current_log()
            if READY_LINE in text:
                self._check_announced_ports(text)
                return
            code = self.process.poll()
            if code is not None:
                raise SoiProcessError(
                    f"soi serve exited with status {code} during start-up; "
                    f"log {self.log_path}:\n{self._current_log()}"
                )
            if time.monotonic() >= deadline:
                raise SoiProcessError(
                    f"soi serve printed no {READY_LINE!r} line within "
                    f"{self.startup_timeout:.0f} s; log {self.log_path}:\n{text}"
                )
            time.sleep(0.05)

    def _check_announced_ports(self, text: str) -> None:
        dicom = f"listening on {LOOPBACK}:{self.dicom_port}"
        http = f"http://{LOOPBACK}:{self.http_port}"
        if dicom not in text or http not in text:
            raise SoiProcessError(
                f"soi serve is ready but does not announce {dicom!r} and {http!r}:\n{text}"
            )

    def _current_log(self) -> str:
        """Return the log written by the current start of the process."""
        try:
            with self.log_path.open("rb") as log:
                log.seek(self._log_offset)
                return log.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Stop with SIGTERM and check that the process exits with status 0.

        Raises
        ------
        AssertionError
            When the process does not exit within :attr:`stop_timeout` (it is
            then killed) or exits with another status; the message includes
            the end of its log.
        """
        self._close_client()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise AssertionError(
                f"soi serve did not exit within {self.stop_timeout:.0f} s of SIGTERM "
                f"(killed):\n{self.log_tail()}"
            ) from None
        assert code == 0, f"soi serve exited with status {code} after SIGTERM:\n{self.log_tail()}"

    def kill(self) -> None:
        """Kill the process at once with SIGKILL (crash simulation) and reap it."""
        self._close_client()
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def _terminate_quietly(self) -> None:
        """Stop the process however it can be, without raising."""
        self._close_client()
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    # -- logs -------------------------------------------------------------------

    def log_text(self) -> str:
        """Return the whole log of this process (stdout and stderr).

        Returns
        -------
        str
            Log text (empty before the first line).
        """
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        """Return the last lines of the log, for assertion messages.

        Parameters
        ----------
        lines : int, optional
            Number of lines.

        Returns
        -------
        str
            Log excerpt headed by the log's path.
        """
        tail = "\n".join(self.log_text().splitlines()[-lines:])
        return f"--- {self.log_path} ---\n{tail}"

    # -- HTTP API -------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """HTTP client bound to :attr:`url`, sending :attr:`token` (ignores proxy variables)."""
        if self._client is None or str(self._client.base_url).rstrip("/") != self.url:
            self._close_client()
            self._client = httpx.Client(
                base_url=self.url,
                timeout=30.0,
                trust_env=False,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        return self._client

    def _close_client(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _get(self, path: str, **params: Any) -> Any:
        answer = self.client.get(path, params=params or None)
        if answer.status_code != 200:
            raise SoiProcessError(
                f"GET {path} answered HTTP {answer.status_code}: {answer.text}\n{self.log_tail()}"
            )
        return answer.json()

    def health(self) -> dict[str, Any]:
        """Return ``GET /health`` (whatever its HTTP status).

        Returns
        -------
        dict
            The health report.
        """
        body: dict[str, Any] = self.client.get("/health").json()
        return body

    def studies(self, *, limit: int = 500) -> dict[str, Any]:
        """Return ``GET /studies``: ``total``, ``limit``, ``offset`` and ``items``.

        Parameters
        ----------
        limit : int, optional
            Page size (at most 500).

        Returns
        -------
        dict
            The page of studies.
        """
        body: dict[str, Any] = self._get("/studies", limit=limit)
        return body

    def study(self, study_instance_uid: str) -> dict[str, Any] | None:
        """Return ``GET /studies/{uid}``, or None when Soi does not know the study.

        Parameters
        ----------
        study_instance_uid : str
            Study Instance UID.

        Returns
        -------
        dict or None
            The study with its series, instances and jobs.
        """
        answer = self.client.get(f"/studies/{study_instance_uid}")
        if answer.status_code == 404:
            return None
        if answer.status_code != 200:
            raise SoiProcessError(
                f"GET /studies/{study_instance_uid} answered HTTP {answer.status_code}: "
                f"{answer.text}\n{self.log_tail()}"
            )
        body: dict[str, Any] = answer.json()
        return body

    def wait_for_study(
        self, study_instance_uid: str, *, state: str = "stable", timeout: float = 30.0
    ) -> dict[str, Any]:
        """Poll a study until it reaches ``state``.

        Parameters
        ----------
        study_instance_uid : str
            Study Instance UID.
        state : str, optional
            Study state to wait for.
        timeout : float, optional
            Seconds to wait.

        Returns
        -------
        dict
            The study as ``GET /studies/{uid}`` returns it in that state.

        Raises
        ------
        AssertionError
            When the study does not reach ``state`` in time.
        """
        deadline = time.monotonic() + timeout
        while True:
            study = self.study(study_instance_uid)
            if study is not None and study["state"] == state:
                return study
            if time.monotonic() >= deadline:
                found = "unknown" if study is None else f"{study['state']}: {study['state_reason']}"
                raise AssertionError(
                    f"study {study_instance_uid} did not become {state!r} within "
                    f"{timeout:.0f} s (it is {found})\n{self.log_tail()}"
                )
            time.sleep(0.2)
