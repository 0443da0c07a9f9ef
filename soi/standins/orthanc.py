"""Orthanc, the open-source PACS, started empty for ``soi demo`` when it is installed.

Debian's ``orthanc`` package installs ``/usr/sbin/Orthanc``. The configuration written
here keeps its REST API to loopback clients, stores only from Soi's AE title on the
loopback address, and keeps its files in a folder of the caller's.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from soi.standins._net import LOOPBACK, free_port, wait_for_port

__all__ = ["OrthancError", "OrthancPacs", "find_orthanc"]

_CANDIDATES = ("/usr/sbin/Orthanc", "Orthanc")


class OrthancError(RuntimeError):
    """Orthanc could not be started or did not answer."""


def find_orthanc() -> Path | None:
    """The Orthanc executable, or ``None`` when Orthanc is not installed."""
    for candidate in _CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return Path(found)
    return None


class OrthancPacs:
    """An Orthanc process with a throw-away configuration and storage in ``workdir``.

    Parameters
    ----------
    workdir:
        Folder for the configuration, storage and log (created).
    allowed_ae_title:
        The only AE title allowed to store (from the loopback address).
    ae_title:
        Orthanc's own AE title.
    startup_timeout:
        Seconds to wait for Orthanc to answer.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        allowed_ae_title: str,
        ae_title: str = "ORTHANC",
        startup_timeout: float = 60.0,
    ) -> None:
        binary = find_orthanc()
        if binary is None:
            raise OrthancError("Orthanc is not installed (Debian package `orthanc`)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.allowed_ae_title = allowed_ae_title
        self.ae_title = ae_title
        self.host = LOOPBACK
        self.startup_timeout = startup_timeout
        self.dicom_port = 0
        self.http_port = 0
        self.version = ""
        self.log_path = self.workdir / "orthanc.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Base URL of the REST API."""
        return f"http://{LOOPBACK}:{self.http_port}"

    @property
    def label(self) -> str:
        """What this PACS is, for people."""
        return f"Orthanc {self.version or '?'} (a real PACS, started empty for the demo)"

    def _config(self) -> dict[str, Any]:
        storage = self.workdir / "storage"
        return {
            "Name": "soi-demo-pacs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "TemporaryDirectory": str(self.workdir / "tmp"),
            "HttpPort": self.http_port,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAet": self.ae_title,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": False,
            "DicomAlwaysAllowEcho": True,
            "DicomCheckModalityHost": True,
            "DicomModalities": {"soi": [self.allowed_ae_title, LOOPBACK, 104]},
            "SaveJobs": False,
        }

    def start(self) -> Self:
        """Start Orthanc and wait until both its REST API and DICOM port answer.

        Raises
        ------
        OrthancError
            Orthanc exited or did not answer in time; the message ends with its log.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        self.http_port = free_port()
        self.dicom_port = free_port()
        while self.dicom_port == self.http_port:
            self.dicom_port = free_port()
        config = self.workdir / "orthanc.json"
        config.write_text(json.dumps(self._config(), indent=2), encoding="utf-8")
        with (self.workdir / "orthanc.console.log").open("ab") as console:
            self._process = subprocess.Popen(
                [str(self.binary), f"--logfile={self.log_path}", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self._process.poll() is not None:
                raise OrthancError(f"Orthanc exited during start-up: {self._log_tail()}")
            try:
                answer: httpx.Response | None = httpx.get(f"{self.url}/system", timeout=2.0)
            except httpx.TransportError:
                answer = None  # not listening yet
            if answer is not None and answer.status_code == 200:
                self.version = str(answer.json().get("Version", ""))
                break
            if time.monotonic() >= deadline:
                self.stop()
                raise OrthancError(f"Orthanc did not answer on {self.url}: {self._log_tail()}")
            time.sleep(0.1)
        if not wait_for_port(LOOPBACK, self.dicom_port, max(1.0, deadline - time.monotonic())):
            self.stop()
            raise OrthancError(f"Orthanc's DICOM port {self.dicom_port} did not open")
        return self

    def stop(self) -> None:
        """Stop Orthanc (SIGTERM, then SIGKILL after 15 s)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def counts(self) -> dict[str, int]:
        """Instances Orthanc holds, by modality (``SR``, ``OT``, ``DOC``...).

        Raises
        ------
        OrthancError
            The REST API did not answer.
        """
        try:
            answer = httpx.get(f"{self.url}/series", params={"expand": ""}, timeout=30.0)
            answer.raise_for_status()
        except httpx.HTTPError as exc:
            raise OrthancError(f"Orthanc at {self.url} did not answer: {exc}") from exc
        held: Counter[str] = Counter()
        for series in answer.json():
            modality = str(series.get("MainDicomTags", {}).get("Modality", "") or "?")
            held[modality] += len(series.get("Instances", []))
        return dict(held)

    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])
