"""Drive DCMTK (``storescu``, ``echoscu``) and dicom3tools (``dciodvfy``).

``storescu`` runs with the logger configuration ``storescu-log.cfg`` (next
to this module): storescu's own logger at DEBUG level, everything else at
INFO.  The log (on stderr) then contains, per file::

    I: Sending file: /path/to/file.dcm
    I: Sending Store Request (MsgID 1, CT)
    D: Affected SOP Instance UID     : 1.2.3...          (C-STORE RQ dump)
    I: Received Store Response
    D: DIMSE Status                  : 0x0000: Success    (C-STORE RSP dump)
    D: (0000,0902) LO [comment]      #  20, 1 ErrorComment  (optional detail)

and, per association, ``I: Association Accepted (Max Send PDV: N)`` or
``F: Association Rejected:`` followed by ``F: Result: ...`` and
``F: Reason: ...``.  With plain ``-v`` output (no logger configuration)
storescu prints ``I: Received Store Response (Success)`` instead; the parser
accepts both, but only the DEBUG dump carries the numeric status of a
warning or failure.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .net import LOOPBACK
from .tools import require_binary

__all__ = [
    "STORESCU_LOG_CONFIG",
    "DciodvfyResult",
    "EchoRun",
    "FileStatus",
    "StoreRun",
    "StorescuTimeoutError",
    "dciodvfy",
    "echoscu",
    "parse_storescu_log",
    "start_storescu",
    "store_run_from_log",
    "storescu",
    "storescu_command",
]

#: Logger configuration passed to ``storescu --log-config``.
STORESCU_LOG_CONFIG = Path(__file__).with_name("storescu-log.cfg")

#: C-STORE warning statuses (PS3.4 B.2.3 and PS3.7 C.4.2).
_WARNING_STATUSES = frozenset({0x0001, 0x0107, 0x0116, 0xB000, 0xB006, 0xB007})

_LEVEL = r"^[TDIWEF]: "
_RE_SENDING_FILE = re.compile(r"^I: Sending file: (?P<path>.+?)\s*$")
_RE_STORE_REQUEST = re.compile(r"^I: Sending Store Request \(MsgID (?P<id>\d+), (?P<what>[^)]*)\)")
_RE_STORE_RESPONSE = re.compile(r"^I: Received Store Response(?: \((?P<text>.*)\))?\s*$")
_RE_DIMSE_STATUS = re.compile(
    r"^D: DIMSE Status\s*: 0x(?P<code>[0-9A-Fa-f]{1,4})(?:: (?P<text>.*?))?\s*$"
)
_RE_AFFECTED_SOP = re.compile(r"^D: Affected SOP Instance UID\s*: (?P<uid>\S+)")
_RE_ERROR_COMMENT = re.compile(r"^D: \(0000,0902\) LO \[(?P<text>.*)\]\s+#")
_RE_ASSOC_ACCEPTED = re.compile(r"^I: Association Accepted \(Max Send PDV: (?P<pdv>\d+)\)")
_RE_ASSOC_REJECTED = re.compile(r"^F: Association Rejected:?\s*$")
_RE_REJECT_RESULT = re.compile(r"^F: Result: (?P<text>.*?)\s*$")
_RE_REJECT_REASON = re.compile(r"^F: Reason: (?P<text>.*?)\s*$")
_RE_ERROR_LINE = re.compile(r"^[EF]: (?P<text>.*?)\s*$")
_RE_STORE_FAILED = re.compile(r"^E: Store Failed, file: .*:\s*$")
_RE_ASSOC_BOUNDARY = re.compile(r"^I: (?:Requesting|Releasing|Aborting) Association")
_RE_ANY_LEVEL = re.compile(_LEVEL)


@dataclass(frozen=True)
class FileStatus:
    """Outcome of one C-STORE, as reported by ``storescu``.

    Attributes
    ----------
    path : pathlib.Path
        File as named on the command line.
    status : int or None
        DIMSE status of the C-STORE response; None when no response was
        received (the association failed, the file could not be read, no
        presentation context, or the log ends before the response).
    text : str
        Status description (``"Success"``, ``"Refused: Out of resources"``)
        or the error storescu reported for this file.
    error_comment : str or None
        Error Comment (0000,0902) of the response, if any.
    sop_instance_uid : str or None
        Affected SOP Instance UID of the request, when logged.
    message_id : int or None
        DIMSE message id of the request, when sent.
    """

    path: Path
    status: int | None
    text: str
    error_comment: str | None = None
    sop_instance_uid: str | None = None
    message_id: int | None = None

    @property
    def success(self) -> bool:
        """Whether the peer answered Success (0x0000)."""
        return self.status == 0x0000

    @property
    def warning(self) -> bool:
        """Whether the peer answered with a warning status (instance stored)."""
        return self.status is not None and (
            self.status in _WARNING_STATUSES or (self.status & 0xFF00) == 0xB000
        )

    @property
    def stored(self) -> bool:
        """Whether the peer accepted the instance (success or warning)."""
        return self.success or self.warning

    @property
    def failure(self) -> bool:
        """Whether the instance was not stored (failure status or no response)."""
        return not self.stored


@dataclass
class StoreRun:
    """Result of one ``storescu`` run.

    Attributes
    ----------
    files : tuple of pathlib.Path
        Files given on the command line, in order.
    returncode : int or None
        Exit status (None while running or after a timeout kill).
    stdout, stderr : str
        Captured output; the log is on stderr.
    results : list of FileStatus
        One entry per file storescu started to send, in send order.
    association_accepted : bool
        Whether at least one association was accepted.
    association_rejected : bool
        Whether the peer rejected the association.
    rejection_result : str or None
        E.g. ``"Rejected Permanent, Source: Service User"``.
    rejection_reason : str or None
        E.g. ``"Calling AE Title Not Recognized"``.
    max_send_pdv : int or None
        Largest PDV storescu may send (derived from the peer's max PDU).
    errors : list of str
        All error/fatal log lines (``E:``/``F:`` prefixes removed).
    """

    files: tuple[Path, ...]
    returncode: int | None
    stdout: str
    stderr: str
    results: list[FileStatus] = field(default_factory=list)
    association_accepted: bool = False
    association_rejected: bool = False
    rejection_result: str | None = None
    rejection_reason: str | None = None
    max_send_pdv: int | None = None
    errors: list[str] = field(default_factory=list)

    @property
    def success_count(self) -> int:
        """Number of files acknowledged with status Success."""
        return sum(1 for r in self.results if r.success)

    @property
    def succeeded(self) -> list[Path]:
        """Files acknowledged with status Success, in send order."""
        return [r.path for r in self.results if r.success]

    @property
    def failed(self) -> list[FileStatus]:
        """Results that are not Success (warnings included)."""
        return [r for r in self.results if not r.success]

    @property
    def unsent(self) -> list[Path]:
        """Files named on the command line that storescu never started to send."""
        started = {r.path for r in self.results}
        return [f for f in self.files if f not in started]

    @property
    def all_succeeded(self) -> bool:
        """Whether every file was sent and acknowledged with Success."""
        return (
            self.returncode == 0
            and len(self.results) == len(self.files)
            and all(r.success for r in self.results)
        )

    def summary(self) -> str:
        """Return a one-paragraph human-readable description (for assertions).

        Returns
        -------
        str
            Counts, rejection and the first failures.
        """
        parts = [f"storescu exit {self.returncode}: {self.success_count}/{len(self.files)} Success"]
        if self.association_rejected:
            parts.append(f"association rejected: {self.rejection_reason} ({self.rejection_result})")
        for failure in self.failed[:5]:
            status = "no response" if failure.status is None else f"0x{failure.status:04X}"
            comment = f" [{failure.error_comment}]" if failure.error_comment else ""
            parts.append(f"{failure.path}: {status} {failure.text}{comment}")
        if self.unsent:
            parts.append(f"{len(self.unsent)} file(s) never sent")
        if self.errors and not self.failed:
            parts.append("errors: " + "; ".join(self.errors[:5]))
        return "\n".join(parts)


class StorescuTimeoutError(TimeoutError):
    """``storescu`` did not finish in time; :attr:`run` holds the partial result."""

    def __init__(self, message: str, run: StoreRun) -> None:
        super().__init__(message)
        self.run = run


@dataclass
class _Pending:
    """A file whose C-STORE is in progress while parsing."""

    path: Path
    message_id: int | None = None
    sop_instance_uid: str | None = None
    status: int | None = None
    text: str = ""
    error_comment: str | None = None
    in_response: bool = False
    store_failed: bool = False
    errors: list[str] = field(default_factory=list)

    def finish(self) -> FileStatus:
        text = self.text
        if self.status is None and not text:
            text = "; ".join(self.errors) if self.errors else "no response received"
            if self.store_failed:
                text = f"Store Failed: {text}"
        return FileStatus(
            path=self.path,
            status=self.status,
            text=text,
            error_comment=self.error_comment,
            sop_instance_uid=self.sop_instance_uid,
            message_id=self.message_id,
        )


@dataclass
class _ParseState:
    results: list[FileStatus] = field(default_factory=list)
    current: _Pending | None = None
    accepted: bool = False
    rejected: bool = False
    rejection_result: str | None = None
    rejection_reason: str | None = None
    max_send_pdv: int | None = None
    errors: list[str] = field(default_factory=list)

    def close_current(self) -> None:
        if self.current is not None:
            self.results.append(self.current.finish())
            self.current = None


def _parse(lines: Iterable[str]) -> _ParseState:
    """Run the storescu log parser over ``lines``."""
    state = _ParseState()
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not _RE_ANY_LEVEL.match(line):
            continue
        if m := _RE_SENDING_FILE.match(line):
            state.close_current()
            state.current = _Pending(path=Path(m["path"]))
            continue
        if _RE_ASSOC_BOUNDARY.match(line):
            state.close_current()
            continue
        if m := _RE_ASSOC_ACCEPTED.match(line):
            state.accepted = True
            state.max_send_pdv = int(m["pdv"])
            continue
        if _RE_ASSOC_REJECTED.match(line):
            state.rejected = True
            state.errors.append("Association Rejected")
            continue
        if state.rejected and (m := _RE_REJECT_RESULT.match(line)):
            state.rejection_result = m["text"]
            continue
        if state.rejected and (m := _RE_REJECT_REASON.match(line)):
            state.rejection_reason = m["text"]
            continue
        current = state.current
        if current is not None:
            if m := _RE_STORE_REQUEST.match(line):
                current.message_id = int(m["id"])
                continue
            if m := _RE_STORE_RESPONSE.match(line):
                current.in_response = True
                if m["text"] is not None:
                    current.text = m["text"]
                    if m["text"] == "Success":
                        current.status = 0x0000
                continue
            if (m := _RE_AFFECTED_SOP.match(line)) and not current.in_response:
                current.sop_instance_uid = m["uid"]
                continue
            if current.in_response and (m := _RE_DIMSE_STATUS.match(line)):
                current.status = int(m["code"], 16)
                current.text = m["text"] or current.text
                continue
            if current.in_response and (m := _RE_ERROR_COMMENT.match(line)):
                current.error_comment = m["text"]
                continue
        if m := _RE_ERROR_LINE.match(line):
            state.errors.append(m["text"])
            if current is not None and current.status is None:
                if _RE_STORE_FAILED.match(line):
                    current.store_failed = True
                else:
                    current.errors.append(m["text"])
    return state


def parse_storescu_log(text: str) -> list[FileStatus]:
    """Parse a (possibly partial) storescu log into per-file results.

    Works on the log of a run that is still going or that was cut short
    (e.g. the receiver was killed mid-transfer): every file whose success
    response was logged is returned with ``status == 0``; a file whose
    transfer was interrupted appears last with ``status is None``.

    Parameters
    ----------
    text : str
        storescu's stderr, produced with :data:`STORESCU_LOG_CONFIG` (or
        with ``-v``).

    Returns
    -------
    list of FileStatus
        One entry per file storescu started to send, in send order.
    """
    state = _parse(text.splitlines())
    state.close_current()
    return state.results


def _build_run(
    files: tuple[Path, ...], returncode: int | None, stdout: str, stderr: str
) -> StoreRun:
    state = _parse(stderr.splitlines())
    state.close_current()
    return StoreRun(
        files=files,
        returncode=returncode,
        stdout=stdout,
        stderr=stderr,
        results=state.results,
        association_accepted=state.accepted,
        association_rejected=state.rejected,
        rejection_result=state.rejection_result,
        rejection_reason=state.rejection_reason,
        max_send_pdv=state.max_send_pdv,
        errors=state.errors,
    )


def storescu_command(
    files: Sequence[Path],
    *,
    host: str = LOOPBACK,
    port: int,
    called_aet: str,
    calling_aet: str = "STORESCU",
    extra: Sequence[str] = (),
    halt_on_failure: bool = False,
) -> list[str]:
    """Build a ``storescu`` command line.

    Parameters
    ----------
    files : Sequence[pathlib.Path]
        DICOM files, sent in this order over one association.
    host : str, optional
        Peer host.
    port : int
        Peer DICOM port.
    called_aet : str
        Peer AE title (``-aec``).
    calling_aet : str, optional
        Our AE title (``-aet``).
    extra : Sequence[str], optional
        Additional storescu options (e.g. ``["-R", "-pdu", "131072"]``),
        placed before the host.
    halt_on_failure : bool, optional
        Keep storescu's default of stopping at the first unsuccessful store;
        by default ``--no-halt`` is passed so that every file gets a result.

    Returns
    -------
    list of str
        Arguments, starting with the storescu executable.
    """
    args = [
        str(require_binary("storescu")),
        "--log-config",
        str(STORESCU_LOG_CONFIG),
        "-aet",
        calling_aet,
        "-aec",
        called_aet,
    ]
    if not halt_on_failure:
        args.append("--no-halt")
    args.extend(extra)
    args.extend([host, str(port)])
    args.extend(str(f) for f in files)
    return args


def storescu(
    files: Sequence[Path],
    *,
    host: str = LOOPBACK,
    port: int,
    called_aet: str,
    calling_aet: str = "STORESCU",
    extra: Sequence[str] = (),
    timeout: float = 120.0,
    halt_on_failure: bool = False,
) -> StoreRun:
    """Send files with DCMTK ``storescu`` over one association and parse the outcome.

    Parameters
    ----------
    files : Sequence[pathlib.Path]
        DICOM files, sent in this order.
    host : str, optional
        Peer host.
    port : int
        Peer DICOM port.
    called_aet : str
        Peer AE title.
    calling_aet : str, optional
        Our AE title.
    extra : Sequence[str], optional
        Additional storescu options.
    timeout : float, optional
        Seconds before storescu is killed.
    halt_on_failure : bool, optional
        Stop at the first unsuccessful store (storescu's default).

    Returns
    -------
    StoreRun
        Exit status, output and one :class:`FileStatus` per file sent.

    Raises
    ------
    StorescuTimeoutError
        When storescu runs longer than ``timeout`` (it is killed; the
        exception's ``run`` holds what was parsed so far).
    """
    paths = tuple(Path(f) for f in files)
    args = storescu_command(
        paths,
        host=host,
        port=port,
        called_aet=called_aet,
        calling_aet=calling_aet,
        extra=extra,
        halt_on_failure=halt_on_failure,
    )
    with subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
            run = _build_run(paths, None, stdout, stderr)
            raise StorescuTimeoutError(
                f"storescu to {host}:{port} did not finish within {timeout:.0f} s\n"
                f"{run.summary()}\n{_tail(stderr)}",
                run,
            ) from None
    return _build_run(paths, process.returncode, stdout, stderr)


def start_storescu(
    files: Sequence[Path],
    *,
    host: str = LOOPBACK,
    port: int,
    called_aet: str,
    calling_aet: str = "STORESCU",
    extra: Sequence[str] = (),
    log_path: Path | None = None,
    halt_on_failure: bool = False,
) -> subprocess.Popen[str]:
    """Start ``storescu`` in the background.

    The log goes to ``log_path`` when given (read it at any time with
    :func:`parse_storescu_log`, e.g. after killing the receiver), otherwise
    to ``process.stderr`` (a text pipe the caller must keep reading, for
    instance line by line).  Progress output on stdout is discarded.

    Parameters
    ----------
    files : Sequence[pathlib.Path]
        DICOM files, sent in this order over one association.
    host : str, optional
        Peer host.
    port : int
        Peer DICOM port.
    called_aet : str
        Peer AE title.
    calling_aet : str, optional
        Our AE title.
    extra : Sequence[str], optional
        Additional storescu options.
    log_path : pathlib.Path, optional
        File that receives the log (created or truncated).
    halt_on_failure : bool, optional
        Stop at the first unsuccessful store.

    Returns
    -------
    subprocess.Popen
        The running storescu (text mode).
    """
    args = storescu_command(
        files,
        host=host,
        port=port,
        called_aet=called_aet,
        calling_aet=calling_aet,
        extra=extra,
        halt_on_failure=halt_on_failure,
    )
    if log_path is None:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            bufsize=1,
        )
    with Path(log_path).open("w", encoding="utf-8") as log:
        return subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log,
            text=True,
            errors="replace",
        )


def store_run_from_log(
    files: Sequence[Path], returncode: int | None, log_text: str, stdout: str = ""
) -> StoreRun:
    """Build a :class:`StoreRun` from a log written by :func:`start_storescu`.

    Parameters
    ----------
    files : Sequence[pathlib.Path]
        Files given to :func:`start_storescu`.
    returncode : int or None
        Exit status of the process.
    log_text : str
        Content of the log.
    stdout : str, optional
        Standard output, if captured.

    Returns
    -------
    StoreRun
        Parsed result.
    """
    return _build_run(tuple(Path(f) for f in files), returncode, stdout, log_text)


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.splitlines()[-lines:])


@dataclass(frozen=True)
class EchoRun:
    """Result of one ``echoscu`` run.

    Attributes
    ----------
    returncode : int
        Exit status.
    ok : bool
        Whether the peer answered the C-ECHO with Success.
    output : str
        stdout and stderr.
    """

    returncode: int
    ok: bool
    output: str


def echoscu(
    host: str,
    port: int,
    called_aet: str,
    calling_aet: str = "ECHOSCU",
    *,
    timeout: float = 30.0,
) -> EchoRun:
    """C-ECHO a peer with DCMTK ``echoscu``.

    Parameters
    ----------
    host : str
        Peer host (use ``127.0.0.1``).
    port : int
        Peer DICOM port.
    called_aet : str
        Peer AE title.
    calling_aet : str, optional
        Our AE title.
    timeout : float, optional
        Seconds before echoscu is killed (counted as a failed echo).

    Returns
    -------
    EchoRun
        Exit status, outcome and output.
    """
    args = [
        str(require_binary("echoscu")),
        "-v",
        "-to",
        str(max(1, int(timeout))),
        "-aet",
        calling_aet,
        "-aec",
        called_aet,
        host,
        str(port),
    ]
    try:
        done = subprocess.run(
            args,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        return EchoRun(returncode=-1, ok=False, output=f"echoscu timed out: {exc}")
    output = done.stdout + done.stderr
    ok = done.returncode == 0 and "Received Echo Response (Success)" in output
    return EchoRun(returncode=done.returncode, ok=ok, output=output)


@dataclass(frozen=True)
class DciodvfyResult:
    """Result of ``dciodvfy`` (dicom3tools IOD verifier).

    Attributes
    ----------
    errors : list of str
        Lines starting with ``Error``.
    warnings : list of str
        Lines starting with ``Warning``.
    output : str
        Complete output (dciodvfy reports on stderr).
    returncode : int
        Exit status.
    """

    errors: list[str]
    warnings: list[str]
    output: str
    returncode: int = 0

    @property
    def ok(self) -> bool:
        """Whether no error was reported."""
        return not self.errors


def dciodvfy(path: Path | str, *, timeout: float = 120.0) -> DciodvfyResult:
    """Check a DICOM file against its IOD with dicom3tools ``dciodvfy``.

    Parameters
    ----------
    path : pathlib.Path or str
        DICOM file.
    timeout : float, optional
        Seconds before dciodvfy is killed.

    Returns
    -------
    DciodvfyResult
        Errors, warnings and output.
    """
    done = subprocess.run(
        [str(require_binary("dciodvfy")), str(path)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        errors="replace",
        timeout=timeout,
        check=False,
    )
    output = done.stderr + done.stdout
    errors: list[str] = []
    warnings: list[str] = []
    for line in output.splitlines():
        stripped = line.strip()
        if stripped.startswith("Error"):
            errors.append(stripped)
        elif stripped.startswith("Warning"):
            warnings.append(stripped)
    return DciodvfyResult(
        errors=errors, warnings=warnings, output=output, returncode=done.returncode
    )
