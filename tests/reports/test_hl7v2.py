"""HL7 v2.5 ORU^R01 of an AI result, and sending it over MLLP to a peer that is not ours.

The messages are read back with two independent parsers (hl7apy and python-hl7). The
MLLP peer is python-hl7's asyncio server (:func:`hl7.mllp.start_hl7_server`) running
in a thread of its own; it answers with acknowledgements python-hl7 builds
(:meth:`hl7.Message.create_ack`), or misbehaves on purpose for chosen control ids.
"""

from __future__ import annotations

import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import hl7
import hl7.mllp
import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from reports.context import ReportContext
from reports.hl7v2 import build_oru, encode_mllp, escape_text, oru_control_id
from reports.mllp import HL7Ack, MllpError, send_mllp
from tests.support.hl7_peer import Hl7Peer
from tests.support.net import LOOPBACK, free_port
from tests.support.tools import require_binary

NAME = "NGUYỄN^THỊ HƯƠNG"
NOTICE_VI = "Kết quả AI sơ bộ, không phải chẩn đoán"
NOTICE_EN = "Preliminary AI result, not a diagnosis"


def _hl7(text: str | bytes) -> hl7.Message:
    return hl7.parse(text)


def _finding_obx(message: hl7.Message) -> list[Any]:
    return [obx for obx in message.segments("OBX") if str(obx(2)) == "NM"]


# --------------------------------------------------------------------------- the message


def test_message_reads_back_with_hl7apy(complete_context: ReportContext) -> None:
    text = build_oru(complete_context)
    assert "\n" not in text
    assert text.count("\r") == len(text.split("\r")) - 1
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    message.validate()
    msh = message.msh
    assert msh.msh_9.to_er7() == "ORU^R01^ORU_R01"
    assert msh.msh_10.to_er7() == "SOI-17-P"
    assert msh.msh_11.to_er7() == "P"
    assert msh.msh_12.to_er7() == "2.5"
    assert msh.msh_18.to_er7() == "UNICODE UTF-8"
    assert msh.msh_3.to_er7() == "SOI"
    assert msh.msh_4.to_er7() == "BV-DK-HAGIANG"
    assert msh.msh_5.to_er7() == "HIS"
    assert msh.msh_7.to_er7() == "20261123083000+0000"

    result = message.oru_r01_patient_result
    pid = result.oru_r01_patient.pid
    identifiers = [(r.cx_1.to_er7(), r.cx_4.hd_1.to_er7(), r.cx_5.to_er7()) for r in pid.pid_3]
    assert identifiers == [
        ("HG-000123", "BV-DK-HAGIANG", "MR"),
        ("001180000123", "CCCD", "NI"),
        ("DN4010100000123", "BHYT", "HC"),
    ]
    assert pid.pid_3[1].cx_4.to_er7() == "CCCD&urn:vn:cccd&URI"
    assert pid.pid_5.xpn_1.to_er7() == "NGUYỄN"
    assert pid.pid_5.xpn_2.to_er7() == "THỊ HƯƠNG"
    assert pid.pid_7.to_er7() == "19800214"
    assert pid.pid_8.to_er7() == "F"
    assert result.oru_r01_patient.oru_r01_visit.pv1.pv1_2.to_er7() == "U"

    order = result.oru_r01_order_observation
    assert order.orc.orc_1.to_er7() == "RE"
    obr = order.obr
    assert obr.obr_2.to_er7() == "HG2611230001^BV-DK-HAGIANG"
    assert obr.obr_3.to_er7() == "17^SOI"
    assert obr.obr_4.to_er7() == "36554-4^XR Chest Single view^LN"
    study = complete_context.study
    assert obr.obr_7.to_er7() == study.study_date + study.study_time[:6]
    assert obr.obr_25.to_er7() == "P"

    observations = [group.obx for group in order.oru_r01_observation]
    numeric = [obx for obx in observations if obx.obx_2.to_er7() == "NM"]
    assert len(numeric) == len(complete_context.findings)
    for obx, finding in zip(numeric, complete_context.findings, strict=True):
        assert obx.obx_3.to_er7() == f"{finding.code_value}^{finding.code_meaning}^SCT"
        assert float(obx.obx_5.to_er7()) == pytest.approx(finding.probability)
        assert obx.obx_6.to_er7() == "1^probability^UCUM"
        assert obx.obx_7.to_er7() == ">=0.50"
        assert obx.obx_8.to_er7() == ("A" if finding.positive else "N")
        assert obx.obx_11.to_er7() == "P"
    set_ids = [int(obx.obx_1.to_er7()) for obx in observations]
    assert set_ids == list(range(1, len(observations) + 1))


def test_message_reads_back_with_python_hl7(complete_context: ReportContext) -> None:
    message = _hl7(build_oru(complete_context))
    assert [str(s[0]) for s in message] == [
        "MSH",
        "PID",
        "PV1",
        "ORC",
        "OBR",
        "OBX",
        *["OBX", "NTE"] * len(complete_context.findings),
    ]
    assert message["MSH.F9.R1.C1"] == "ORU"
    assert message["MSH.F9.R1.C2"] == "R01"
    assert message["MSH.F9.R1.C3"] == "ORU_R01"
    assert message["MSH.F18"] == "UNICODE UTF-8"
    assert message["PID.F3.R1.C1"] == "HG-000123"
    assert message["PID.F3.R1.C4.S1"] == "BV-DK-HAGIANG"
    assert message["PID.F3.R1.C5"] == "MR"
    assert message["PID.F3.R2.C1"] == "001180000123"
    assert message["PID.F3.R2.C5"] == "NI"
    assert message["PID.F3.R3.C1"] == "DN4010100000123"
    assert message["PID.F3.R3.C4.S1"] == "BHYT"
    assert message["PID.F5.R1.C1"] == "NGUYỄN"
    assert message["PID.F5.R1.C2"] == "THỊ HƯƠNG"
    assert message["OBR.F25"] == "P"

    findings = complete_context.findings
    numeric = _finding_obx(message)
    assert len(numeric) == len(findings) == 5
    flags = {str(obx(3)(1)(1)): str(obx(8)) for obx in numeric}
    assert flags == {f.code_value: "A" if f.positive else "N" for f in findings}
    assert [str(obx(5)) for obx in numeric] == ["0.91", "0.97", "0.03", "0.12", "0.08"]
    assert {str(obx(11)) for obx in message.segments("OBX")} == {"P"}

    notice = message.segments("OBX")[0]
    assert str(notice(2)) == "TX"
    assert [str(line) for line in notice(5)] == [NOTICE_VI, NOTICE_EN]
    notes = [message.unescape(str(nte(3))) for nte in message.segments("NTE")]
    assert notes[0] == "Bóng tim to: dương tính / Cardiomegaly: positive"
    assert notes[2] == "Tràn khí màng phổi: âm tính / Pneumothorax: negative"


def test_vietnamese_text_is_utf8_on_the_wire(complete_context: ReportContext) -> None:
    text = build_oru(complete_context)
    block = encode_mllp(text)
    assert block.startswith(b"\x0b")
    assert block.endswith(b"\x1c\r")
    assert b"|" + NAME.encode("utf-8") + b"|" in block
    assert "Bóng tim to".encode() in block
    assert block[1:-2].decode("utf-8") == text
    message = _hl7(block[1:-2])  # python-hl7 decodes bytes as UTF-8
    assert str(message.segment("PID")(5)) == NAME


def test_result_status(complete_context: ReportContext) -> None:
    for status, code in (("preliminary", "P"), ("final", "F"), ("amended", "C")):
        context = replace(complete_context, status=status)
        message = _hl7(build_oru(context))
        assert message["OBR.F25"] == code
        assert {str(obx(11)) for obx in message.segments("OBX")} == {code}
        assert message["MSH.F10"] == f"SOI-17-{code}" == oru_control_id(context)
        notice = [str(line) for line in message.segments("OBX")[0](5)]
        if status == "preliminary":
            assert notice == [NOTICE_VI, NOTICE_EN]
        else:
            assert notice == [
                "Kết quả do AI tạo ra, không phải chẩn đoán",
                "AI result, not a diagnosis",
            ]


def test_ungradable_result_gives_its_reason_instead_of_findings(
    ungradable_context: ReportContext,
) -> None:
    text = build_oru(ungradable_context)
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT).validate()
    message = _hl7(text)
    assert _finding_obx(message) == []
    assert "NTE" not in [str(s[0]) for s in message]
    observations = message.segments("OBX")
    assert len(observations) == 2
    reason = observations[1]
    assert str(reason(2)) == "TX"
    assert str(reason(3)) == "AI-UNGRADABLE^Images not gradable by the AI^99SOI"
    assert [str(line) for line in reason(5)] == [
        ungradable_context.reason_vi,
        ungradable_context.reason_en,
    ]
    assert str(reason(8)) == ""
    assert message["OBR.F25"] == "P"


def test_failed_result_and_english_facility(ungradable_context: ReportContext) -> None:
    context = replace(
        ungradable_context,
        state="failed",
        reason_vi="",
        reason_en="model runtime failed",
        facility=replace(ungradable_context.facility, language="en"),
    )
    message = _hl7(build_oru(context))
    reason = message.segments("OBX")[1]
    assert str(reason(3)(1)(1)) == "AI-FAILED"
    assert [str(line) for line in reason(5)] == ["model runtime failed"]
    # English facility: English first.
    assert [str(line) for line in message.segments("OBX")[0](5)] == [NOTICE_EN, NOTICE_VI]
    assert message["MSH.F19.R1.C1"] == "en"


def test_message_is_deterministic(complete_context: ReportContext) -> None:
    first = build_oru(complete_context)
    assert build_oru(replace(complete_context)) == first
    assert build_oru(complete_context, control_id="X1") != first
    other = build_oru(
        complete_context,
        sending_facility="SOI-HG",
        receiving_application="HIS-FPT",
        receiving_facility="BV-DK-HAGIANG",
        control_id="MSG-0001",
    )
    message = _hl7(other)
    assert message["MSH.F4"] == "SOI-HG"
    assert message["MSH.F5"] == "HIS-FPT"
    assert message["MSH.F6"] == "BV-DK-HAGIANG"
    assert message["MSH.F10"] == "MSG-0001"


def test_free_text_is_escaped(ungradable_context: ReportContext) -> None:
    nasty = "a|b^c&d~e\\f \\F\\ g\nsecond line\r\nthird\tline"
    context = replace(
        ungradable_context,
        reason_en=nasty,
        reason_vi="Lý do: x^y",
        patient=replace(ungradable_context.patient, name="O'NEIL&CO^ANN~MARIE^^DR^JR"),
    )
    text = build_oru(context)
    parse_message(text, validation_level=VALIDATION_LEVEL.STRICT).validate()
    message = _hl7(text)
    assert len(message) == 7  # no segment was split by the text
    reason = message.segments("OBX")[1]
    lines = [message.unescape(str(line)) for line in reason(5)]
    assert lines == ["Lý do: x^y", "a|b^c&d~e\\f \\F\\ g", "second line", "third line"]
    pid5 = message.segment("PID")(5)(1)
    # DICOM PN FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX -> XPN FAMILY^GIVEN^MIDDLE^SUFFIX^PREFIX
    assert [message.unescape(str(c)) for c in pid5] == ["O'NEIL&CO", "ANN~MARIE", "", "JR", "DR"]
    assert escape_text("\\F\\") == "\\E\\F\\E\\"


def test_finding_without_threshold(complete_context: ReportContext) -> None:
    findings = (replace(complete_context.findings[0], threshold=None, probability=0.9123),)
    message = _hl7(build_oru(replace(complete_context, findings=findings)))
    (obx,) = _finding_obx(message)
    assert str(obx(5)) == "0.9123"
    assert str(obx(7)) == ""
    assert str(obx(8)) == "A"


#: Contexts or arguments build_oru refuses: (context changes, arguments, error).
BAD_INPUT: list[tuple[dict[str, Any], dict[str, Any], str]] = [
    ({"status": "draft"}, {}, "has status 'draft'"),
    ({"state": "pending"}, {}, "has state 'pending'"),
    ({}, {"control_id": "A" * 21}, "at most 20 characters"),
    ({}, {"control_id": ""}, "must not be empty"),
    ({}, {"control_id": "A|B"}, "`control_id` must not contain HL7 delimiters"),
    ({}, {"sending_application": "SOI^X"}, "`sending_application` must not contain"),
    ({"result_id": 10**20}, {}, "pass `control_id`"),
    (
        {"patient": "birth_date=14/02/1980"},
        {},
        "birth date '14/02/1980' of result 17 is not a DICOM date",
    ),
    ({"patient": "name="}, {}, "not valid HL7 v2.5: Missing required child PID.PID_5"),
]


def test_bad_input_is_refused(complete_context: ReportContext) -> None:
    for change, arguments, error in BAD_INPUT:
        changes = dict(change)
        if "patient" in changes:  # "field=value" of the patient
            field, _, value = changes["patient"].partition("=")
            changes["patient"] = replace(complete_context.patient, **{field: value})
        with pytest.raises(ValueError) as caught:
            build_oru(replace(complete_context, **changes), **arguments)
        assert error in str(caught.value)


def test_encode_mllp_refuses_framing_characters() -> None:
    with pytest.raises(ValueError, match="0x0B"):
        encode_mllp("MSH|^~\\&|\x0b")
    with pytest.raises(ValueError, match="must not be empty"):
        encode_mllp("")


# --------------------------------------------------------------------------- the MLLP peer


@pytest.fixture(scope="module")
def peer() -> Iterator[Hl7Peer]:
    """One python-hl7 MLLP server for the module's tests."""
    server = Hl7Peer().start()
    yield server
    server.stop()


def _message(control_id: str) -> str:
    """A short ORU^R01, for the tests about the exchange rather than the content."""
    return (
        f"MSH|^~\\&|SOI|BV-DK-HAGIANG|HIS||20261123083000+0000||ORU^R01^ORU_R01|{control_id}"
        f"|P|2.5|||||VNM|UNICODE UTF-8\rPID|1||HG-000123^^^BV-DK-HAGIANG^MR||{NAME}"
    )


def _send(peer: Hl7Peer, control_id: str, behaviour: str, timeout: float = 5.0) -> HL7Ack:
    peer.behaviour[control_id] = behaviour
    return send_mllp(LOOPBACK, peer.port, _message(control_id), timeout=timeout)


def test_peer_accepts_the_message(peer: Hl7Peer, complete_context: ReportContext) -> None:
    text = build_oru(complete_context)
    ack = send_mllp(LOOPBACK, peer.port, text, timeout=5.0)
    assert ack == HL7Ack("AA", "SOI-17-P", "")
    assert ack.accepted
    assert ack.raw.startswith("MSH|^~\\&|HIS||SOI|BV-DK-HAGIANG|")
    assert "\rMSA|AA|SOI-17-P" in ack.raw
    # What the peer decoded (as UTF-8) is exactly what was built.
    received = next(m for m in peer.received if "|SOI-17-P|" in m)
    assert received.rstrip("\r") == text
    assert _hl7(received)["PID.F5.R1.C1"] == "NGUYỄN"


def test_commit_accept_is_accepted(peer: Hl7Peer) -> None:
    ack = _send(peer, "T-CA", "CA")
    assert (ack.code, ack.control_id, ack.accepted) == ("CA", "T-CA", True)


@pytest.mark.parametrize("code", ["AE", "AR", "CE", "CR"])
def test_negative_ack_is_returned(peer: Hl7Peer, code: str) -> None:
    ack = _send(peer, f"T-{code}", code)
    assert ack.code == code
    assert ack.control_id == f"T-{code}"
    assert not ack.accepted
    if code in {"AE", "AR"}:
        assert ack.text == "Thiếu mã bệnh nhân (PID-3 | MR); Required field missing"


def test_legacy_error_segment(peer: Hl7Peer) -> None:
    ack = _send(peer, "T-LEGACY", "legacy-AE")
    assert ack == HL7Ack("AE", "T-LEGACY", "PID-3 | missing; Required field missing")


def test_ack_of_another_message_is_an_error(peer: Hl7Peer) -> None:
    with pytest.raises(MllpError, match=r"acknowledged control id 'SOMEONE-ELSE' \(MSA-2\)"):
        _send(peer, "T-WRONG", "wrong-id")


def test_closed_without_reply(peer: Hl7Peer) -> None:
    with pytest.raises(MllpError, match="closed the connection without replying"):
        _send(peer, "T-CLOSE", "close")


def test_reply_without_framing(peer: Hl7Peer) -> None:
    with pytest.raises(MllpError, match=r"does not begin with the MLLP start block \(0x0B\)"):
        _send(peer, "T-GARBAGE", "garbage")


def test_reply_cut_short(peer: Hl7Peer) -> None:
    with pytest.raises(MllpError, match=r"before the end of the MLLP block \(0x1C 0x0D\)"):
        _send(peer, "T-PARTIAL", "partial")


def test_peer_that_never_answers(peer: Hl7Peer) -> None:
    started = time.monotonic()
    with pytest.raises(MllpError, match=r"did not reply within 0.5 s"):
        _send(peer, "T-SILENT", "silent", timeout=0.5)
    assert time.monotonic() - started < 2.0


def test_nothing_listening() -> None:
    port = free_port()
    with pytest.raises(MllpError, match=rf"cannot connect to MLLP peer {LOOPBACK}:{port}"):
        send_mllp(LOOPBACK, port, _message("T-NOBODY"), timeout=2.0)


def test_send_refuses_what_is_not_a_message() -> None:
    with pytest.raises(ValueError, match="beginning with an MSH segment"):
        send_mllp(LOOPBACK, 1, "PID|1")
    with pytest.raises(ValueError, match=r"no message control id \(MSH-10\)"):
        send_mllp(LOOPBACK, 1, "MSH|^~\\&|SOI")
    with pytest.raises(ValueError, match="`timeout` must be positive"):
        send_mllp(LOOPBACK, 1, "MSH|^~\\&|SOI", timeout=0)


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, made with openssl."""
    openssl = require_binary("openssl")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            str(openssl),
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=soi-test-his",
            "-addext",
            f"subjectAltName=IP:{LOOPBACK}",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


@pytest.fixture
def tls_peer(certificate: tuple[Path, Path]) -> Iterator[Hl7Peer]:
    cert, key = certificate
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Hl7Peer(ssl_context=context).start()
    yield server
    server.stop()


def test_tls(
    tls_peer: Hl7Peer, certificate: tuple[Path, Path], complete_context: ReportContext
) -> None:
    message = build_oru(complete_context)
    trusting = ssl.create_default_context(cafile=str(certificate[0]))
    ack = send_mllp(LOOPBACK, tls_peer.port, message, timeout=5.0, ssl_context=trusting)
    assert ack.accepted
    assert tls_peer.received[-1].rstrip("\r") == message
    with pytest.raises(MllpError, match=r"TLS handshake with MLLP peer .* failed"):
        send_mllp(
            LOOPBACK, tls_peer.port, message, timeout=5.0, ssl_context=ssl.create_default_context()
        )
