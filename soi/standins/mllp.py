"""An HL7 v2 receiver stand-in over MLLP: reads messages, answers original-mode ACKs.

:class:`MllpReceiver` plays a legacy HIS for ``soi demo``: a threaded TCP server that
reads MLLP blocks (``VT`` message ``FS CR``) in UTF-8, any number on one connection,
parses each with hl7apy and answers each with an acknowledgement: ``AA`` when the
message is well formed, ``AE`` with the reason in MSA-3 and an ERR segment when it is
not. Accepted messages are kept (and written to ``store_dir``); it does nothing else
with them, as it is a stand-in, not a HIS.

References
----------
HL7 v2.5 chapter 2: 2.9.2 (original-mode acknowledgement), 2.15.5 (ERR), table 0357
(message error condition codes); HL7 v2 implementation guide, appendix C (MLLP).
"""

from __future__ import annotations

import re
import socket
import socketserver
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from itertools import count
from pathlib import Path
from typing import NamedTuple

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException, UnsupportedVersion
from hl7apy.parser import parse_message

from reports import encode_mllp

__all__ = ["MllpReceiver", "RejectedMessage"]

_START, _END = b"\x0b", b"\x1c\r"
#: The largest MLLP block read; a longer one closes the connection.
_MAX_BLOCK_BYTES = 16 << 20
_SEGMENT_ID = re.compile(r"[A-Z][A-Z0-9]{2}")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_NOT_IN_FILE_NAMES = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True, slots=True)
class RejectedMessage:
    """A message answered ``AE``: the text as received, and what was wrong with it."""

    text: str
    reason: str


class _Problem(NamedTuple):
    """Why a message is refused: an HL7 table 0357 code and its text, and the reason."""

    code: str
    name: str
    reason: str


def _escape(text: str) -> str:
    """Escape a text for one HL7 v2 component (default encoding characters)."""
    for char, sequence in (("\\", "\\E\\"), ("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\")):
        text = text.replace(char, sequence)
    return _CONTROL_CHARACTERS.sub(" ", text.replace("~", "\\R\\"))


def _header(text: str) -> list[str]:
    """MSH's fields, item n being MSH-n, padded; none unless MSH-1 and 2 are 5 separators."""
    if not text.startswith("MSH") or len(text) < 8:
        return []
    separator = text[3]
    fields = ["MSH", separator, *_LINE_BREAK.split(text, 1)[0][4:].split(separator)]
    delimiters = separator + fields[2][:4]
    if len(set(delimiters)) < 5 or any(c.isalnum() or c.isspace() for c in delimiters):
        return []
    return fields + [""] * (20 - len(fields))


def _problem(text: str, *, strict: bool) -> _Problem | None:
    """What is wrong with a message, or None when it is well formed."""
    fields = _header(text)
    if not text.startswith("MSH"):
        return _Problem("100", "Segment sequence error", "the message does not begin with MSH")
    if not fields:
        return _Problem("102", "Data type error", "MSH-1 and MSH-2 are not 5 distinct separators")
    for number, name in ((9, "message type"), (10, "message control id"), (12, "version id")):
        if not fields[number]:
            return _Problem("101", "Required field missing", f"MSH-{number} ({name}) is empty")
    segments = [segment for segment in _LINE_BREAK.split(text) if segment]
    for number, segment in enumerate(segments, start=1):
        if not _SEGMENT_ID.fullmatch(segment[:3]) or segment[3:4] not in ("", fields[1]):
            reason = f"segment {number} does not begin with a segment id: {segment[:12]!r}"
            return _Problem("100", "Segment sequence error", reason)
    try:
        message = parse_message(
            "\r".join(segments), validation_level=VALIDATION_LEVEL.TOLERANT, find_groups=True
        )
        if strict and message.name is None:
            reason = f"MSH-9 {fields[9]!r} names no message structure of HL7 v{fields[12]}"
            return _Problem("200", "Unsupported message type", reason)
        if strict:
            message.validate()
    except UnsupportedVersion as exc:
        return _Problem("203", "Unsupported version id", str(exc))
    except (HL7apyException, IndexError) as exc:  # hl7apy raises IndexError on some MSHs
        return _Problem("100", "Segment sequence error", f"{type(exc).__name__}: {exc}")
    return None


def _message_type(fields: list[str]) -> str:
    """MSH-9's message code and trigger event (``ORU^R01``), from MSH's fields."""
    if not fields:
        return ""
    return "^".join(fields[9].split(fields[2][:1] or "^")[:2])


def _ack(fields: list[str], problem: _Problem | None, control_id: str) -> str:
    """The original-mode acknowledgement of a message with these MSH fields.

    The ACK uses the default separators; the message's application, facility,
    processing and version ids are copied (escaped when its separators differ).
    """
    default = fields[1:3] == ["|", "^~\\&"]
    fields = fields or [""] * 20
    copied = [_CONTROL_CHARACTERS.sub(" ", f) if default else _escape(f) for f in fields]
    trigger = _message_type(fields).partition("^")[2]
    now = datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z")
    msh = ["MSH", "^~\\&", *copied[5:7], *copied[3:5], now, ""]  # receiver, sender swapped
    msh += [f"ACK^{trigger}^ACK" if trigger else "ACK", control_id]
    msh += [copied[11] or "P", copied[12] or "2.5", "", "", "", "", "", copied[18]]
    segments = ["|".join(msh).rstrip("|")]
    if problem is None:
        segments.append(f"MSA|AA|{copied[10]}")
    else:
        reason = _escape(problem.reason)
        segments.append(f"MSA|AE|{copied[10]}|{reason}")
        segments.append(f"ERR|||{problem.code}^{_escape(problem.name)}^HL70357|E||||{reason}")
    return "\r".join(segments) + "\r"


class _Server(socketserver.ThreadingTCPServer):
    """A thread per connection; each knows the receiver it answers for."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], receiver: MllpReceiver) -> None:
        super().__init__(address, _Connection)
        self.receiver = receiver


class _Connection(socketserver.BaseRequestHandler):
    """One connection: MLLP blocks in, one acknowledgement out for each."""

    server: _Server
    request: socket.socket

    def handle(self) -> None:
        """Answer blocks until the peer closes, goes quiet or the receiver stops."""
        receiver = self.server.receiver
        self.request.settimeout(receiver.idle_timeout)
        buffer = bytearray()
        with receiver._tracking(self.request):
            while True:
                start = buffer.find(_START)
                del buffer[: start if start >= 0 else len(buffer)]  # bytes outside blocks
                end = buffer.find(_END)
                if end >= 0:
                    block = bytes(buffer[1:end])
                    del buffer[: end + len(_END)]
                    try:
                        self.request.sendall(encode_mllp(receiver._answer(block)))
                    except OSError:
                        return
                    continue
                if len(buffer) > _MAX_BLOCK_BYTES:
                    return
                try:
                    chunk = self.request.recv(65536)
                except OSError:  # timed out, reset, or closed by stop()
                    return
                if not chunk:
                    return
                buffer += chunk


class MllpReceiver:
    """An HL7 v2 MLLP server stand-in on ``host:port``, for demonstrations.

    Parameters
    ----------
    host:
        The IPv4 address to listen on (loopback by default).
    port:
        The TCP port; 0 takes a free one, in :attr:`port` after :meth:`start`.
    store_dir:
        Where each accepted message is also written, as ``NNNN-<control id>.hl7``
        (UTF-8, segments ended by ``\\r``), so that a person can open what arrived.
    strict:
        Also validate each message against its HL7 v2 message structure (required
        segments, fields and data types, with hl7apy) and answer ``AE`` when it fails.
    idle_timeout:
        Seconds a connection may stay silent before it is closed.
    """

    label = "Soi HL7 v2 MLLP stand-in receiver (not a HIS)"

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        store_dir: Path | None = None,
        strict: bool = False,
        idle_timeout: float = 60.0,
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"`port` must be between 0 and 65535, {port} is given")
        if idle_timeout <= 0:
            raise ValueError(f"`idle_timeout` must be positive, {idle_timeout} is given")
        self.host, self.port = host, port
        self.store_dir, self.strict, self.idle_timeout = store_dir, strict, idle_timeout
        self._lock = threading.Lock()
        self._accepted: list[str] = []
        self._rejected: list[RejectedMessage] = []
        self._open: set[socket.socket] = set()
        self._ack_ids = count(1)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def messages(self) -> list[str]:
        """The messages acknowledged ``AA``, as received, in order."""
        with self._lock:
            return list(self._accepted)

    @property
    def rejected(self) -> list[RejectedMessage]:
        """The messages acknowledged ``AE``, with the reason given."""
        with self._lock:
            return list(self._rejected)

    def counts(self) -> dict[str, int]:
        """How many messages were accepted, by message type (``{"ORU^R01": 3}``)."""
        with self._lock:
            types = [_message_type(_header(message)) for message in self._accepted]
        return {kind: types.count(kind) for kind in dict.fromkeys(types)}

    def start(self) -> MllpReceiver:
        """Listen and serve in a background thread.

        Raises
        ------
        OSError
            When the address cannot be bound.
        """
        if self._server is not None:
            raise RuntimeError(f"{self.label} is already started")
        self._server = _Server((self.host, self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="soi-mllp-standin",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening, close open connections and free the port."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for sock in self._open:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:  # the peer has already gone
                    continue
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> MllpReceiver:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @contextmanager
    def _tracking(self, sock: socket.socket) -> Iterator[None]:
        """Keep an open connection known, so that :meth:`stop` can close it."""
        with self._lock:
            self._open.add(sock)
        try:
            yield
        finally:
            with self._lock:
                self._open.discard(sock)

    def _answer(self, block: bytes) -> str:
        """Judge one message, keep it, and return its acknowledgement."""
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as exc:
            text = block.decode("utf-8", errors="replace")
            problem: _Problem | None = _Problem("102", "Data type error", f"not UTF-8: {exc}")
        else:
            problem = _problem(text, strict=self.strict)
        fields = _header(text)
        with self._lock:
            if problem is None:
                problem = self._write(len(self._accepted) + 1, fields[10], text)
            if problem is None:
                self._accepted.append(text)
            else:
                self._rejected.append(RejectedMessage(text, problem.reason))
            ack_id = f"ACK{next(self._ack_ids):06d}"
        return _ack(fields, problem, ack_id)

    def _write(self, number: int, control_id: str, text: str) -> _Problem | None:
        """Write an accepted message to ``store_dir``; a failure is the sender's AE."""
        if self.store_dir is None:
            return None
        path = self.store_dir / f"{number:04d}-{_NOT_IN_FILE_NAMES.sub('_', control_id)[:64]}.hl7"
        try:
            self.store_dir.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
        except OSError as exc:
            return _Problem("207", "Application internal error", f"cannot keep it: {exc}")
        return None
