"""A small synchronous MLLP client: send one HL7 v2 message, read its acknowledgement.

:func:`send_mllp` opens a TCP connection (TLS when given an :class:`ssl.SSLContext`),
sends one MLLP block and reads one framed reply, then closes the connection. The reply
is an original- or enhanced-mode acknowledgement: its MSA-1 code, MSA-2 control id
(which must be the one sent) and text (MSA-3 and the ERR segments) come back as an
:class:`HL7Ack`.

Two kinds of outcome are kept apart so that a sender can decide what to do next:

* a negative acknowledgement (``AE``/``AR``/``CE``/``CR``) is *returned*: the peer
  received and judged the message;
* :class:`MllpError` is *raised* when no acknowledgement came back at all: the
  connection was refused, timed out or closed early, the reply was not a proper MLLP
  block, was not an acknowledgement, or acknowledged another message. Whether the
  message arrived is then unknown, so it may be sent again (with the same control id).
"""

from __future__ import annotations

import re
import socket
import ssl
import time
from dataclasses import dataclass, field

from reports.hl7v2 import MLLP_END, MLLP_START, encode_mllp

__all__ = ["ACK_CODES", "MAX_REPLY_BYTES", "HL7Ack", "MllpError", "send_mllp"]

#: HL7 table 0008 acknowledgement codes.
ACK_CODES = frozenset({"AA", "AE", "AR", "CA", "CE", "CR"})

#: The largest reply read; an acknowledgement is a few hundred bytes.
MAX_REPLY_BYTES = 1 << 20

_ACCEPTED = frozenset({"AA", "CA"})
_SEGMENT_SEPARATOR = re.compile(r"\r\n|\r|\n")
_RECEIVE_SIZE = 4096


class MllpError(Exception):
    """No acknowledgement came back for a message sent over MLLP.

    The connection failed, timed out or was closed before a reply, the reply was not
    an MLLP block, not an HL7 acknowledgement, or acknowledged another message.
    """


@dataclass(frozen=True, slots=True)
class HL7Ack:
    """The acknowledgement a peer gave one message.

    Attributes
    ----------
    code:
        MSA-1: ``AA``/``CA`` accepted, ``AE``/``CE`` error, ``AR``/``CR`` rejected.
    control_id:
        MSA-2, the control id (MSH-10) of the message acknowledged.
    text:
        MSA-3 and the ERR segments' texts (``; `` between them), unescaped; empty when
        the peer said nothing.
    raw:
        The reply as received (segments separated by ``\\r``), for the record.
    """

    code: str
    control_id: str
    text: str = ""
    raw: str = field(default="", repr=False, compare=False)

    @property
    def accepted(self) -> bool:
        """Whether the peer accepted the message (``AA`` or ``CA``)."""
        return self.code in _ACCEPTED


def _control_id(message: str) -> str:
    """MSH-10 of a message."""
    if not message.startswith("MSH") or len(message) < 8:
        raise ValueError("`message` must be an HL7 v2 message beginning with an MSH segment")
    separator = message[3]
    msh = _SEGMENT_SEPARATOR.split(message, maxsplit=1)[0].split(separator)
    # MSH-1 is the separator itself, so MSH-n is item n - 1.
    control_id = msh[9] if len(msh) > 9 else ""
    if not control_id:
        raise ValueError("`message` has no message control id (MSH-10)")
    return control_id


def _unescape(text: str, encoding_characters: str, field_separator: str) -> str:
    """Undo HL7 escape sequences (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``, ``\\.br\\``, ``\\Xhh\\``)."""
    component, repetition, escape, subcomponent = _encoding_characters(encoding_characters)
    if escape not in text:
        return text
    meaning = {
        "F": field_separator,
        "S": component,
        "T": subcomponent,
        "R": repetition,
        "E": escape,
        ".br": "\n",
        "H": "",
        "N": "",
    }

    def replace(match: re.Match[str]) -> str:
        sequence = match.group(1)
        if sequence in meaning:
            return meaning[sequence]
        if re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", sequence):
            return bytes.fromhex(sequence[1:]).decode("utf-8", errors="replace")
        return match.group(0)

    quoted = re.escape(escape)
    return re.sub(f"{quoted}([^{quoted}]*){quoted}", replace, text)


def _encoding_characters(declared: str) -> tuple[str, str, str, str]:
    """Component, repetition, escape and subcomponent characters (MSH-2, else defaults)."""
    defaults = "^~\\&"
    chars = declared[:4] + defaults[len(declared[:4]) :]
    return chars[0], chars[1], chars[2], chars[3]


def _err_texts(err: list[str], component: str, subcomponent: str) -> list[str]:
    """What one ERR segment says, most readable first.

    v2.5 has ERR-8 (user message), ERR-3 (``code^text``) and ERR-7 (diagnostics);
    earlier versions ERR-1 (``segment^sequence^field^code&text``).
    """

    def item(number: int) -> str:
        return err[number] if len(err) > number else ""

    if item(8):
        return [item(8)]
    code = item(3).split(component)
    texts = [code[1] if len(code) > 1 and code[1] else code[0], item(7)]
    if not any(texts):
        location = item(1).split(component)
        legacy = location[3].split(subcomponent) if len(location) > 3 else [item(1)]
        texts.append(legacy[1] if len(legacy) > 1 and legacy[1] else legacy[0])
    return texts


def _parse_ack(reply: str, *, peer: str) -> HL7Ack:
    """The MSA and ERR of an acknowledgement."""
    if not reply.startswith("MSH") or len(reply) < 8:
        raise MllpError(f"{peer} replied with something that is not an HL7 message: {reply[:40]!r}")
    field_separator = reply[3]
    encoding_characters = reply[4:].split(field_separator, 1)[0]
    component, _, _, subcomponent = _encoding_characters(encoding_characters)
    segments = [s.split(field_separator) for s in _SEGMENT_SEPARATOR.split(reply) if s]
    msa = next((s for s in segments if s[0] == "MSA"), None)
    if msa is None:
        raise MllpError(f"{peer} replied without an MSA segment, so not with an acknowledgement")
    msa += [""] * (4 - len(msa))
    code = msa[1].strip().upper()
    if code not in ACK_CODES:
        raise MllpError(
            f"{peer} replied with acknowledgement code {code!r} (MSA-1); expected one of "
            f"{', '.join(sorted(ACK_CODES))}"
        )
    texts = [msa[3]]
    for err in (s for s in segments if s[0] == "ERR"):
        texts += _err_texts(err, component, subcomponent)
    unique: list[str] = []
    for text in texts:
        clean = _unescape(text, encoding_characters, field_separator).strip()
        if clean and clean not in unique:
            unique.append(clean)
    return HL7Ack(
        code=code,
        control_id=_unescape(msa[2], encoding_characters, field_separator),
        text="; ".join(unique),
        raw=reply,
    )


def _remaining(deadline: float, peer: str, timeout: float, doing: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise MllpError(f"{peer} did not {doing} within {timeout:g} s")
    return left


def _read_block(sock: socket.socket, *, deadline: float, peer: str, timeout: float) -> bytes:
    """Read one MLLP block; return its content."""
    buffer = bytearray()
    while True:
        end = buffer.find(MLLP_END)
        if buffer and not buffer.startswith(MLLP_START):
            raise MllpError(
                f"{peer} replied with a reply that does not begin with the MLLP start "
                f"block (0x0B) but with {bytes(buffer[:16])!r}"
            )
        if end >= 0:
            return bytes(buffer[len(MLLP_START) : end])
        if len(buffer) > MAX_REPLY_BYTES:
            raise MllpError(
                f"{peer} sent more than {MAX_REPLY_BYTES} bytes without ending the MLLP block"
            )
        sock.settimeout(_remaining(deadline, peer, timeout, "reply"))
        try:
            chunk = sock.recv(_RECEIVE_SIZE)
        except TimeoutError:
            raise MllpError(f"{peer} did not reply within {timeout:g} s") from None
        if not chunk:
            if not buffer:
                raise MllpError(f"{peer} closed the connection without replying")
            raise MllpError(
                f"{peer} closed the connection after {len(buffer)} bytes, before the end "
                f"of the MLLP block (0x1C 0x0D)"
            )
        buffer += chunk


def send_mllp(
    host: str,
    port: int,
    message: str,
    *,
    timeout: float = 30.0,
    ssl_context: ssl.SSLContext | None = None,
) -> HL7Ack:
    """Send one HL7 v2 message over MLLP and return the peer's acknowledgement.

    Parameters
    ----------
    host, port : str, int
        The peer.
    message : str
        The message (segments separated by ``\\r``); sent in UTF-8.
    timeout : float, optional
        Seconds allowed for the whole exchange: connecting, sending and the reply.
    ssl_context : ssl.SSLContext, optional
        Speak TLS with this context (the peer's certificate is checked against
        ``host`` as the context says).

    Returns
    -------
    HL7Ack
        The acknowledgement, positive or negative: a negative one is not an error here.

    Raises
    ------
    ValueError
        When ``message`` is not an HL7 message with a control id, or ``timeout`` is not
        positive.
    MllpError
        When no acknowledgement of this message came back (see :class:`MllpError`).
    """
    if timeout <= 0:
        raise ValueError(f"`timeout` must be positive, {timeout} is given")
    control_id = _control_id(message)
    block = encode_mllp(message)
    peer = f"MLLP peer {host}:{port}"
    deadline = time.monotonic() + timeout
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except ConnectionRefusedError:
        raise MllpError(f"cannot connect to {peer}: connection refused") from None
    except TimeoutError:
        raise MllpError(f"cannot connect to {peer}: no answer within {timeout:g} s") from None
    except OSError as exc:
        raise MllpError(f"cannot connect to {peer}: {exc}") from exc
    try:
        with raw:
            sock = raw
            if ssl_context is not None:
                sock.settimeout(_remaining(deadline, peer, timeout, "complete the TLS handshake"))
                try:
                    sock = ssl_context.wrap_socket(raw, server_hostname=host)
                except TimeoutError:
                    raise MllpError(
                        f"{peer} did not complete the TLS handshake within {timeout:g} s"
                    ) from None
                except (ssl.SSLError, ssl.CertificateError) as exc:
                    raise MllpError(f"TLS handshake with {peer} failed: {exc}") from exc
            with sock:
                sock.settimeout(_remaining(deadline, peer, timeout, "accept the message"))
                try:
                    sock.sendall(block)
                except TimeoutError:
                    raise MllpError(
                        f"{peer} did not accept the message within {timeout:g} s"
                    ) from None
                content = _read_block(sock, deadline=deadline, peer=peer, timeout=timeout)
    except MllpError:
        raise
    except OSError as exc:
        raise MllpError(f"connection to {peer} failed: {exc}") from exc
    ack = _parse_ack(content.decode("utf-8", errors="replace"), peer=peer)
    if ack.control_id != control_id:
        raise MllpError(
            f"{peer} acknowledged control id {ack.control_id!r} (MSA-2), not the message "
            f"sent ({control_id!r})"
        )
    return ack
