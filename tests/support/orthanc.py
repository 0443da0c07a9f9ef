"""A real Orthanc server, started for a test and stopped afterwards.

Orthanc 1.10 has no option to choose the listening address: it binds its
HTTP and DICOM ports on all interfaces.  ``RemoteAccessAllowed`` is false so
that the REST API answers loopback clients only, and the helpers here only
ever talk to ``127.0.0.1``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx

from .net import LOOPBACK, free_port, wait_for_port
from .tools import peak_rss_bytes, require_binary

__all__ = ["DICOMWEB_PLUGIN", "ORTHANC_BINARY", "OrthancError", "OrthancServer"]

#: Where Debian installs Orthanc.
ORTHANC_BINARY = "/usr/sbin/Orthanc"
#: Debian's DICOMweb plugin for Orthanc (package ``orthanc-dicomweb``).
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")

_START_ATTEMPTS = 3


class OrthancError(RuntimeError):
    """Orthanc refused a request or failed to start.

    Parameters
    ----------
    message : str
        Description, including Orthanc's answer when there is one.
    status_code : int or None, optional
        HTTP status of the refused request.
    answer : Any, optional
        Orthanc's decoded JSON answer (``Message``, ``Details``,
        ``OrthancError``...), or its text when it is not JSON.
    """

    def __init__(self, message: str, status_code: int | None = None, answer: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.answer = answer


class OrthancServer:
    """Run ``/usr/sbin/Orthanc`` with a throw-away configuration.

    Use as a context manager::

        with OrthancServer(tmp_path, modalities={"soi": ("SOI", "127.0.0.1", 11112)}) as orthanc:
            orthanc.upload(path)
            orthanc.store_to("soi", orthanc.instances())

    Parameters
    ----------
    workdir : pathlib.Path
        Folder (created if needed) that receives the configuration, the
        storage and index folders and the logs.
    aet : str, optional
        Orthanc's own AE title.
    modalities : Mapping[str, tuple[str, str, int]], optional
        ``DicomModalities``: name -> (AE title, host, port).
    dicom_port : int, optional
        A DICOM port to listen on (e.g. one a sender was configured with before
        Orthanc starts); by default a free port.
    plugins : Sequence[pathlib.Path or str], optional
        Shared libraries to load (``Plugins``), e.g. :data:`DICOMWEB_PLUGIN`.
    config : Mapping[str, Any], optional
        Extra configuration keys, applied last (they override the defaults
        chosen here, e.g. ``{"SyncStorageArea": False}``).
    verbose : bool, optional
        Start Orthanc with ``--verbose``.
    startup_timeout : float, optional
        Seconds to wait for ``/system`` to answer.
    stop_timeout : float, optional
        Seconds to wait after SIGTERM before sending SIGKILL.
    http_timeout : float, optional
        Timeout of REST calls, in seconds.
    binary : str, optional
        Orthanc executable.

    Attributes
    ----------
    aet : str
        AE title.
    dicom_port : int
        DICOM port (0 until started).
    http_port : int
        HTTP port (0 until started).
    url : str
        Base URL of the REST API (empty until started).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        aet: str = "ORTHANC",
        modalities: Mapping[str, tuple[str, str, int]] | None = None,
        plugins: Sequence[Path | str] = (),
        config: Mapping[str, Any] | None = None,
        verbose: bool = False,
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        http_timeout: float = 120.0,
        binary: str = ORTHANC_BINARY,
        dicom_port: int | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.fixed_dicom_port = dicom_port
        self.aet = aet
        self.modalities: dict[str, tuple[str, str, int]] = dict(modalities or {})
        self.plugins = [str(p) for p in plugins]
        self.extra_config: dict[str, Any] = dict(config or {})
        self.verbose = verbose
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.http_timeout = http_timeout
        self.binary = binary
        self.dicom_port = 0
        self.http_port = 0
        self.url = ""
        self.storage_dir = self.workdir / "storage"
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.console_log_path = self.workdir / "orthanc.console.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._client: httpx.Client | None = None

    # -- life cycle -----------------------------------------------------

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return (
            f"OrthancServer(aet={self.aet!r}, dicom_port={self.dicom_port}, "
            f"url={self.url!r}, {state})"
        )

    @property
    def pid(self) -> int | None:
        """Process id of the running server, or None."""
        return self.process.pid if self.process is not None else None

    @property
    def running(self) -> bool:
        """Whether the Orthanc process is alive."""
        return self.process is not None and self.process.poll() is None

    def build_config(self) -> dict[str, Any]:
        """Return the configuration written to :attr:`config_path`.

        Returns
        -------
        dict
            Orthanc configuration (JSON-serialisable).
        """
        config: dict[str, Any] = {
            "Name": f"soi-test-{self.aet}",
            "StorageDirectory": str(self.storage_dir),
            "IndexDirectory": str(self.storage_dir),
            "TemporaryDirectory": str(self.workdir / "tmp"),
            "HttpServerEnabled": True,
            "HttpPort": self.http_port,
            "HttpDescribeErrors": True,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomServerEnabled": True,
            "DicomAet": self.aet,
            "DicomPort": self.dicom_port,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomAlwaysAllowEcho": True,
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
            "StableAge": 1,
            "SaveJobs": False,
            "Plugins": list(self.plugins),
        }
        config.update(self.extra_config)
        return config

    def start(self) -> None:
        """Start Orthanc and wait until its REST API answers.

        Raises
        ------
        OrthancError
            When Orthanc exits during start-up or does not answer in time;
            the message includes the end of its log.
        """
        if self.running:
            return
        binary = require_binary(self.binary)
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tmp").mkdir(exist_ok=True)
        last_error: OrthancError | None = None
        for _attempt in range(_START_ATTEMPTS):
            self.http_port = free_port()
            if self.fixed_dicom_port is None:
                self.dicom_port = free_port()
                while self.dicom_port == self.http_port:
                    self.dicom_port = free_port()
            else:
                self.dicom_port = self.fixed_dicom_port
                while self.http_port == self.dicom_port:
                    self.http_port = free_port()
            self.url = f"http://{LOOPBACK}:{self.http_port}"
            self.config_path.write_text(json.dumps(self.build_config(), indent=2), "utf-8")
            args = [str(binary), f"--logfile={self.log_path}"]
            if self.verbose:
                args.append("--verbose")
            args.append(str(self.config_path))
            with self.console_log_path.open("ab") as console:
                self.process = subprocess.Popen(
                    args,
                    stdin=subprocess.DEVNULL,
                    stdout=console,
                    stderr=subprocess.STDOUT,
                    cwd=self.workdir,
                )
            try:
                self._wait_ready()
            except OrthancError as exc:
                last_error = exc
                self._terminate()
                if "already in use" not in str(exc):
                    raise
                continue
            return
        assert last_error is not None
        raise last_error

    def _wait_ready(self) -> None:
        """Poll ``/system`` until Orthanc answers, or fail with its log."""
        deadline = time.monotonic() + self.startup_timeout
        client = self.client
        while True:
            assert self.process is not None
            code = self.process.poll()
            if code is not None:
                raise OrthancError(
                    f"Orthanc exited with status {code} during start-up:\n{self.log_tail()}"
                )
            try:
                answer = client.get("/system", timeout=2.0)
                if answer.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() >= deadline:
                raise OrthancError(
                    f"Orthanc did not answer on {self.url}/system within "
                    f"{self.startup_timeout:.0f} s:\n{self.log_tail()}"
                )
            time.sleep(0.1)
        remaining = max(1.0, deadline - time.monotonic())
        try:
            wait_for_port(LOOPBACK, self.dicom_port, remaining)
        except TimeoutError as exc:
            raise OrthancError(f"{exc}\n{self.log_tail()}") from exc

    def stop(self) -> None:
        """Stop Orthanc: SIGTERM, then SIGKILL after :attr:`stop_timeout`."""
        if self._client is not None:
            self._client.close()
            self._client = None
        self._terminate()

    def _terminate(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def kill(self) -> None:
        """Kill Orthanc at once with SIGKILL (crash simulation)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def peak_rss_bytes(self) -> int | None:
        """Return the server's peak resident memory so far (``VmHWM``).

        Returns
        -------
        int or None
            Bytes, or None when the process is not running.
        """
        pid = self.pid
        return peak_rss_bytes(pid) if pid is not None and self.running else None

    def log_tail(self, lines: int = 40) -> str:
        """Return the last lines of Orthanc's log files.

        Parameters
        ----------
        lines : int, optional
            Number of lines per file.

        Returns
        -------
        str
            Log excerpt (empty when nothing was logged).
        """
        parts: list[str] = []
        for path in (self.log_path, self.console_log_path):
            try:
                text = path.read_text("utf-8", errors="replace")
            except FileNotFoundError:
                continue
            tail = "\n".join(text.splitlines()[-lines:])
            if tail:
                parts.append(f"--- {path.name} ---\n{tail}")
        return "\n".join(parts)

    # -- REST API -----------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """HTTP client bound to :attr:`url` (ignores proxy environment variables)."""
        if self._client is None or str(self._client.base_url).rstrip("/") != self.url:
            if self._client is not None:
                self._client.close()
            self._client = httpx.Client(
                base_url=self.url, timeout=self.http_timeout, trust_env=False
            )
        return self._client

    def _check(self, answer: httpx.Response, what: str) -> Any:
        """Return the JSON body of a successful answer, or raise OrthancError."""
        if answer.status_code != 200:
            raise OrthancError(
                f"Orthanc refused {what}: {_describe_error(answer)}",
                status_code=answer.status_code,
                answer=_decode(answer),
            )
        if not answer.content:
            return None
        return answer.json()

    def upload(self, path: Path | str) -> str:
        """Upload one DICOM file through ``POST /instances``.

        Parameters
        ----------
        path : pathlib.Path or str
            DICOM Part 10 file.

        Returns
        -------
        str
            Orthanc's identifier of the instance (also when it was already
            stored).

        Raises
        ------
        OrthancError
            When Orthanc refuses the file; the message includes Orthanc's
            answer (e.g. ``"Bad file format"``).
        """
        data = Path(path).read_bytes()
        answer = self.client.post(
            "/instances", content=data, headers={"Content-Type": "application/dicom"}
        )
        body = self._check(answer, f"the upload of {path}")
        if not isinstance(body, dict) or "ID" not in body:
            raise OrthancError(f"unexpected answer to the upload of {path}: {body!r}")
        if body.get("Status") not in {"Success", "AlreadyStored"}:
            raise OrthancError(f"Orthanc did not store {path}: {body!r}")
        return str(body["ID"])

    def instances(self) -> list[str]:
        """Return the Orthanc identifiers of all stored instances.

        Returns
        -------
        list of str
            Identifiers.
        """
        body = self._check(self.client.get("/instances"), "GET /instances")
        return [str(i) for i in body]

    def instance_tags(self, instance_id: str) -> dict[str, Any]:
        """Return the simplified tags (keyword -> value) of one instance.

        Parameters
        ----------
        instance_id : str
            Orthanc identifier.

        Returns
        -------
        dict
            ``/instances/{id}/simplified-tags``.
        """
        body = self._check(
            self.client.get(f"/instances/{instance_id}/simplified-tags"),
            f"GET /instances/{instance_id}/simplified-tags",
        )
        return dict(body)

    def sop_instance_uids(self) -> set[str]:
        """Return the SOP Instance UIDs of all stored instances.

        Returns
        -------
        set of str
            UIDs.
        """
        body = self._check(
            self.client.get("/instances", params={"expand": ""}), "GET /instances?expand"
        )
        return {str(item["MainDicomTags"]["SOPInstanceUID"]) for item in body}

    def store_to(
        self, modality: str, resources: list[str], *, synchronous: bool = True
    ) -> dict[str, Any]:
        """Send resources to a configured modality with C-STORE.

        Parameters
        ----------
        modality : str
            Name of an entry of ``DicomModalities``.
        resources : list of str
            Orthanc identifiers (patients, studies, series or instances).
        synchronous : bool, optional
            Wait for the transfer to finish (otherwise a job is created).

        Returns
        -------
        dict
            Orthanc's answer (for a synchronous job: counters such as
            ``InstancesCount`` and ``FailedInstancesCount``).

        Raises
        ------
        OrthancError
            When Orthanc reports a failure (e.g. the peer refused the
            association or an instance).
        """
        answer = self.client.post(
            f"/modalities/{modality}/store",
            json={"Resources": resources, "Synchronous": synchronous},
        )
        body = self._check(answer, f"C-STORE to modality {modality!r}")
        return dict(body) if isinstance(body, dict) else {"Answer": body}

    def echo(self, modality: str) -> bool:
        """C-ECHO a configured modality.

        Parameters
        ----------
        modality : str
            Name of an entry of ``DicomModalities``.

        Returns
        -------
        bool
            True when the modality answered the echo.

        Raises
        ------
        OrthancError
            When the modality is not configured.
        """
        answer = self.client.post(f"/modalities/{modality}/echo", content=b"{}")
        if answer.status_code == 404:
            raise OrthancError(
                f"unknown modality {modality!r}: {_describe_error(answer)}",
                status_code=404,
                answer=_decode(answer),
            )
        return answer.status_code == 200

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Declare (or replace) a modality at run time.

        Parameters
        ----------
        name : str
            Modality name used in the REST API.
        aet : str
            Its AE title.
        host : str
            Its host (use ``127.0.0.1``).
        port : int
            Its DICOM port.
        """
        answer = self.client.put(
            f"/modalities/{name}", json={"AET": aet, "Host": host, "Port": port}
        )
        self._check(answer, f"PUT /modalities/{name}")
        self.modalities[name] = (aet, host, port)

    def delete_all(self) -> None:
        """Delete every stored resource.

        Raises
        ------
        OrthancError
            When a deletion fails or instances remain afterwards.
        """
        patients = self._check(self.client.get("/patients"), "GET /patients")
        for patient in patients:
            self._check(self.client.delete(f"/patients/{patient}"), f"DELETE /patients/{patient}")
        remaining = self.instances()
        if remaining:
            raise OrthancError(f"{len(remaining)} instance(s) left after delete_all()")

    def statistics(self) -> dict[str, Any]:
        """Return ``/statistics`` (counts and disk usage).

        Returns
        -------
        dict
            Orthanc's statistics.
        """
        return dict(self._check(self.client.get("/statistics"), "GET /statistics"))


def _decode(answer: httpx.Response) -> Any:
    """Return the JSON body of an answer, or its text when it is not JSON."""
    try:
        return answer.json()
    except ValueError:
        return answer.text


def _describe_error(answer: httpx.Response) -> str:
    """Summarise an Orthanc error answer on one line.

    Orthanc answers errors with JSON such as ``{"HttpStatus": 400,
    "Message": "Bad file format", "Details": "Cannot parse an invalid DICOM
    file (size: 25 bytes)", "OrthancStatus": 15, ...}``.
    """
    body = _decode(answer)
    head = f"HTTP {answer.status_code} {answer.reason_phrase}".rstrip()
    if isinstance(body, dict):
        parts = [str(body[k]) for k in ("Message", "Details") if body.get(k)]
        if "OrthancStatus" in body:
            parts.append(f"OrthancStatus {body['OrthancStatus']}")
        if parts:
            return f"{head}: " + "; ".join(parts)
    text = str(body).strip()
    return f"{head}: {text}" if text else head
