"""``soi serve`` as a subprocess for the benchmarks: free ports, a fresh data folder, memory.

Shared by ``ingest.py`` and ``inference.py``; not a test helper (the tests have
``tests.support.soi_process``), because the benchmarks measure the process as well.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

import psutil

from tests.support.net import LOOPBACK, free_port
from tests.support.tools import peak_rss_bytes

__all__ = ["READY_LINE", "SoiServer", "benchmark_folder"]

#: What ``soi serve`` prints once its DIMSE listener and HTTP API accept connections.
READY_LINE = "Ready."


class SoiServer(AbstractContextManager["SoiServer"]):
    """``soi serve`` on free loopback ports, its data and log in ``workdir``.

    Parameters
    ----------
    executable : pathlib.Path
        The ``soi`` console script.
    workdir : pathlib.Path
        Folder for the data folder and the log.
    aet : str, optional
        AE title.
    args : Sequence[str], optional
        More ``soi serve`` options (e.g. ``--quiet-period 1``).
    env : Mapping[str, str], optional
        More ``SOI_…`` settings (e.g. ``SOI_WORKERS=0``, ``SOI_INFERENCE_BACKEND``).
    startup_timeout : float, optional
        Seconds to wait for :data:`READY_LINE`.
    stop_timeout : float, optional
        Seconds between SIGTERM and SIGKILL.
    """

    def __init__(
        self,
        executable: Path,
        workdir: Path,
        *,
        aet: str = "SOI",
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        startup_timeout: float = 120.0,
        stop_timeout: float = 20.0,
    ) -> None:
        self.executable = executable
        self.workdir = workdir
        self.aet = aet
        self.args = list(args)
        self.env = dict(env or {})
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.data_dir = workdir / "data"
        self.log_path = workdir / "soi.log"
        self.dicom_port = 0
        self.http_port = 0
        self.startup_s = 0.0
        self.token = ""
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> SoiServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(exist_ok=True)
        self.dicom_port = free_port()
        self.http_port = free_port()
        env = {
            **os.environ,
            "SOI_MIN_FREE_MB": "0",
            "SOI_DICOM_HOST": LOOPBACK,
            "SOI_DICOM_PORT": str(self.dicom_port),
            "SOI_HTTP_PORT": str(self.http_port),
            **self.env,
        }
        command = [
            str(self.executable),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--ae-title",
            self.aet,
            *self.args,
        ]
        self.token = self._issue_token(env)
        t0 = time.perf_counter()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self.process.poll()
            if code is not None:
                raise RuntimeError(f"soi serve exited with status {code}:\n{self.log_tail()}")
            if READY_LINE in self.log_text():
                self.startup_s = time.perf_counter() - t0
                return self
            if time.monotonic() >= deadline:
                self.__exit__(None, None, None)
                raise RuntimeError(
                    f"soi serve printed no {READY_LINE!r} within {self.startup_timeout:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def _issue_token(self, env: Mapping[str, str]) -> str:
        """Create the integration account ``soi-bench`` in the data folder; a token for it.

        The benchmark owns the data folder: it adds the account with the same ``soi``
        executable and settings before the server starts (not part of ``startup_s``).
        """
        where = ["--data-dir", str(self.data_dir)]
        if "--config" in self.args:
            where += ["--config", self.args[self.args.index("--config") + 1]]
        soi = str(self.executable)
        for command in (
            [soi, "users", "add", "soi-bench", "--role", "integration", *where],
            [soi, "users", "token", "soi-bench", "--days", "1", "--name", "benchmark", *where],
        ):
            answer = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
            if answer.returncode != 0:
                raise RuntimeError(f"{' '.join(command[1:4])} failed:\n{answer.stderr}")
        return answer.stdout.strip()

    def __exit__(self, *exc_info: object) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(self.stop_timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _pids(self) -> list[int]:
        if self.process is None or self.process.poll() is not None:
            return []
        pids = [self.process.pid]
        with suppress(psutil.Error):
            pids += [c.pid for c in psutil.Process(self.process.pid).children(recursive=True)]
        return pids

    def rss_bytes(self) -> int | None:
        """Current resident memory of ``soi serve`` and its children, None when gone."""
        total = 0
        for pid in self._pids():
            with suppress(psutil.Error):
                total += int(psutil.Process(pid).memory_info().rss)
        return total or None

    def peak_rss_bytes(self) -> int | None:
        """Sum of the peak resident memory (``VmHWM``) of ``soi serve`` and its children."""
        peaks = [p for p in (peak_rss_bytes(pid) for pid in self._pids()) if p is not None]
        return sum(peaks) if peaks else None

    def study(self, study_uid: str) -> dict[str, Any] | None:
        """``GET /studies/{uid}``; None while the study is unknown (404)."""
        url = f"http://{LOOPBACK}:{self.http_port}/studies/{study_uid}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                body: dict[str, Any] = json.loads(response.read())
                return body
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise

    def log_text(self) -> str:
        """The server's log so far."""
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        """Return the end of the server's log."""
        return "\n".join(self.log_text().splitlines()[-lines:])


@contextmanager
def benchmark_folder(
    parent: Path, keep: bool, *, prefix: str, say: Callable[[str], None] = print
) -> Iterator[Path]:
    """A fresh folder under ``parent`` for one run; removed after unless ``keep``."""
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    try:
        yield folder
    finally:
        if keep:
            say(f"kept {folder}")
        else:
            shutil.rmtree(folder, ignore_errors=True)
