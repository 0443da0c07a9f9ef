"""The HL7 v2 MLLP stand-in receiver, fed Soi's own ORU^R01 messages.

Peers: python-hl7's :class:`hl7.client.MLLPClient` (not Soi's code), raw sockets for
what a client library would not send, and Soi's :func:`~reports.mllp.send_mllp` and
:class:`~reports.channels.MllpChannel`. The messages are the ones Soi builds for a
hand-made chest X-ray result (``tests/reports/conftest.py``).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import hl7
import hl7.client
import pytest

from reports.channels import Document, MllpChannel, Outcome
from reports.context import ReportContext
from reports.hl7v2 import build_oru, encode_mllp, oru_control_id
from reports.mllp import MllpError, send_mllp
from soi.standins import MllpReceiver

FINDING_VI = "Tràn dịch màng phổi"
#: A small, well-formed ORU^R01 that python-hl7 users would send, in Vietnamese.
SMALL_ORU = (
    "MSH|^~\\&|RIS|BV-A|HIS|BV-B|20261123083000||ORU^R01^ORU_R01|RIS-0001|P|2.5"
    "|||||VNM|UNICODE UTF-8\r"
    "PID|1||HG-000123^^^BV-A^MR||NGUYỄN^THỊ HƯƠNG||19800214|F\r"
    "OBR|1||F-1|36554-4^XR Chest Single view^LN\r"
    f"OBX|1|ST|42752001^{FINDING_VI}^SCT||Có, cần bác sĩ xem lại||||||P\r"
)


@pytest.fixture
def his(tmp_path: Path) -> Iterator[MllpReceiver]:
    with MllpReceiver(store_dir=tmp_path / "his") as receiver:
        yield receiver


def _ack(reply: bytes) -> hl7.Message:
    """python-hl7's reading of one framed acknowledgement."""
    assert reply.startswith(b"\x0b")
    assert reply.endswith(b"\x1c\r")
    return hl7.parse(reply[1:-2].decode("utf-8"))


def _read_replies(sock: socket.socket, count: int) -> list[bytes]:
    buffer = b""
    while buffer.count(b"\x1c\r") < count:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {buffer!r}"
        buffer += chunk
    return [block + b"\x1c\r" for block in buffer.split(b"\x1c\r")[:count]]


def _msh(message: str | hl7.Message, number: int) -> str:
    parsed = hl7.parse(message) if isinstance(message, str) else message
    return str(parsed.segment("MSH")(number))


class TestAcceptedMessages:
    def test_soi_oru_is_acknowledged_aa_with_its_control_id(
        self, his: MllpReceiver, complete_context: ReportContext
    ) -> None:
        message = build_oru(complete_context, receiving_facility="BV-TINH")
        with hl7.client.MLLPClient(his.host, his.port) as client:
            ack = _ack(client.send_message(message))
        assert str(ack.segment("MSA")(1)) == "AA"
        assert str(ack.segment("MSA")(2)) == oru_control_id(complete_context) == "SOI-17-P"
        assert _msh(ack, 9) == "ACK^R01^ACK"
        assert [_msh(ack, n) for n in (3, 4, 5, 6)] == [_msh(message, n) for n in (5, 6, 3, 4)]
        assert _msh(ack, 12) == "2.5"
        assert _msh(ack, 10) != _msh(message, 10)
        assert his.messages == [message]
        assert his.counts() == {"ORU^R01": 1}
        assert his.rejected == []

    def test_vietnamese_text_arrives_exactly_and_is_written(
        self, his: MllpReceiver, tmp_path: Path
    ) -> None:
        with hl7.client.MLLPClient(his.host, his.port) as client:
            assert str(_ack(client.send_message(SMALL_ORU)).segment("MSA")(1)) == "AA"
        [received] = his.messages
        assert received == SMALL_ORU
        assert hl7.parse(received)["OBX.F3.R1.C2"] == FINDING_VI
        [kept] = (tmp_path / "his").iterdir()
        assert kept.name == "0001-RIS-0001.hl7"
        assert kept.read_bytes() == SMALL_ORU.encode("utf-8")

    def test_several_messages_on_one_connection_each_get_their_ack(
        self, his: MllpReceiver, complete_context: ReportContext
    ) -> None:
        ids = ["SOI-17-P-1", "SOI-17-P-2", "SOI-17-P-3"]
        messages = [build_oru(complete_context, control_id=i) for i in ids]
        with hl7.client.MLLPClient(his.host, his.port) as client:
            acks = [_ack(client.send_message(message)) for message in messages]
        assert [str(ack.segment("MSA")(2)) for ack in acks] == ids
        assert {str(ack.segment("MSA")(1)) for ack in acks} == {"AA"}
        assert len({_msh(ack, 10) for ack in acks}) == 3
        assert his.messages == messages
        assert his.counts() == {"ORU^R01": 3}

    def test_blocks_split_and_run_together_with_noise_between(
        self, his: MllpReceiver, complete_context: ReportContext
    ) -> None:
        first = build_oru(complete_context, control_id="SPLIT-1")
        second = SMALL_ORU
        stream = b"\r\n" + encode_mllp(first) + b"noise" + encode_mllp(second)
        with socket.create_connection((his.host, his.port), timeout=10) as sock:
            for start in range(0, len(stream), 700):
                sock.sendall(stream[start : start + 700])
            replies = [_ack(reply) for reply in _read_replies(sock, 2)]
        assert [str(r.segment("MSA")(2)) for r in replies] == ["SPLIT-1", "RIS-0001"]
        assert his.messages == [first, second]

    def test_soi_send_mllp_and_mllp_channel_are_answered(
        self, his: MllpReceiver, complete_context: ReportContext
    ) -> None:
        message = build_oru(complete_context)
        ack = send_mllp(his.host, his.port, message, timeout=10)
        assert (ack.code, ack.control_id, ack.text) == ("AA", "SOI-17-P", "")
        sent = MllpChannel(his.host, his.port, timeout=10).send(
            Document("hl7v2", "SOI-17-P", text=message)
        )
        assert sent.outcome is Outcome.SENT, sent.message
        assert sent.document_id == "SOI-17-P"
        assert his.counts() == {"ORU^R01": 2}


class TestRejectedMessages:
    @pytest.mark.parametrize(
        ("message", "error", "words"),
        [
            ("this is not HL7 at all", "100", "does not begin with MSH"),
            ("MSH|^~\\&|RIS|A|HIS|B|20261123||ORU^R01||P|2.5\r", "101", "MSH-10"),
            ("MSH|^~\\&|RIS|A|HIS|B|20261123|||RIS-2|P|2.5\r", "101", "MSH-9"),
            ("MSH|^~\\&|RIS|A|HIS|B|20261123||ORU^R01|RIS-3|P\r", "101", "MSH-12"),
            ("MSHX^~\\&X|RIS|A\r", "102", "separators"),
            ("MSH|^~\\&|RIS|A|HIS|B|1||ORU^R01|RIS-4|P|9.9\rPID|1\r", "203", "9.9"),
            ("MSH|^~\\&|RIS|A|HIS|B|1||ORU^R01|RIS-5|P|2.5\rpid|1\r", "100", "segment 2"),
        ],
    )
    def test_what_does_not_parse_is_ae_with_the_reason(
        self, his: MllpReceiver, message: str, error: str, words: str
    ) -> None:
        with hl7.client.MLLPClient(his.host, his.port) as client:
            ack = _ack(client.send_message(message))
        assert ack["MSA.F1"] == "AE"
        reason = ack.unescape(ack["MSA.F3"])
        assert words in reason
        assert (ack["ERR.F3.R1.C1"], ack["ERR.F3.R1.C3"], ack["ERR.F4"]) == (error, "HL70357", "E")
        assert ack.unescape(ack["ERR.F8"]) == reason
        assert his.messages == []
        assert his.counts() == {}
        [rejected] = his.rejected
        assert rejected.text == message
        assert words in rejected.reason

    def test_soi_sees_the_ae_and_refuses_for_good(self, his: MllpReceiver) -> None:
        message = "MSH|^~\\&|SOI|A|HIS|B|1||ORU^R01|SOI-9-P|P|9.9\rPID|1\r"
        ack = send_mllp(his.host, his.port, message, timeout=10)
        assert (ack.code, ack.control_id) == ("AE", "SOI-9-P")
        assert "9.9" in ack.text
        refused = MllpChannel(his.host, his.port, timeout=10).send(
            Document("hl7v2", "SOI-9-P", text=message)
        )
        assert refused.outcome is Outcome.REFUSED
        assert "AE" in refused.message

    def test_bytes_that_are_not_utf8_are_ae_with_the_control_id(self, his: MllpReceiver) -> None:
        block = b"\x0bMSH|^~\\&|RIS|A|HIS|B|1||ORU^R01|LATIN-1|P|2.5\rPID|1||||Nguy\xe9n\r\x1c\r"
        with socket.create_connection((his.host, his.port), timeout=10) as sock:
            sock.sendall(block)
            [reply] = _read_replies(sock, 1)
        msa = _ack(reply).segment("MSA")
        assert (str(msa(1)), str(msa(2))) == ("AE", "LATIN-1")
        assert "not UTF-8" in str(msa(3))

    def test_strict_mode_checks_the_message_structure(
        self, tmp_path: Path, complete_context: ReportContext
    ) -> None:
        no_name = SMALL_ORU.replace("||NGUYỄN^THỊ HƯƠNG||", "||||")
        with MllpReceiver(strict=True) as strict:
            assert send_mllp(strict.host, strict.port, SMALL_ORU, timeout=10).code == "AA"
            soi = send_mllp(strict.host, strict.port, build_oru(complete_context), timeout=10)
            assert soi.code == "AA"
            refused = send_mllp(strict.host, strict.port, no_name, timeout=10)
            assert refused.code == "AE"
            assert "PID_5" in refused.text
            assert strict.counts() == {"ORU^R01": 2}
        with MllpReceiver() as tolerant:
            assert send_mllp(tolerant.host, tolerant.port, no_name, timeout=10).code == "AA"


class TestServer:
    def test_label_and_address(self, his: MllpReceiver) -> None:
        assert "stand-in" in his.label
        assert his.host == "127.0.0.1"
        assert his.port > 0

    def test_stop_closes_open_connections_and_frees_the_port(self) -> None:
        receiver = MllpReceiver().start()
        port = receiver.port
        client = hl7.client.MLLPClient(receiver.host, port)
        try:
            assert str(_ack(client.send_message(SMALL_ORU)).segment("MSA")(1)) == "AA"
            receiver.stop()
            client.socket.settimeout(5)
            assert client.socket.recv(16) == b""  # the open connection was closed
        finally:
            client.close()
        with pytest.raises(MllpError, match="refused"):
            send_mllp("127.0.0.1", port, SMALL_ORU, timeout=5)
        assert receiver.messages == [SMALL_ORU]
        with MllpReceiver(port=port) as again:
            assert send_mllp(again.host, again.port, SMALL_ORU, timeout=5).code == "AA"

    def test_a_taken_port_is_an_oserror(self, his: MllpReceiver) -> None:
        with pytest.raises(OSError, match="in use"):
            MllpReceiver(port=his.port).start()

    @pytest.mark.parametrize(("argument", "value"), [("port", 70000), ("idle_timeout", 0)])
    def test_bad_arguments_are_refused(self, argument: str, value: float) -> None:
        with pytest.raises(ValueError, match=f"`{argument}`"):
            MllpReceiver(**{argument: value})  # type: ignore[arg-type]
