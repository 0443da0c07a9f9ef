"""HL7 v2.5 ORU^R01 for one AI result, and its MLLP framing.

:func:`build_oru` turns a :class:`~reports.context.ReportContext` into one ORU^R01
message (built and validated with hl7apy, encoded in UTF-8, segments separated by
``\\r``)::

    MSH  ORU^R01^ORU_R01, control id SOI-<result>-<P|F|C>, processing id P, UNICODE UTF-8
    PID  identifiers (MRN, CCCD, BHYT, ...), name, birth date, sex
    PV1  patient class U, the facility
    ORC  RE, placer = accession number, filler = result id
    OBR  chest X-ray (LOINC), observation time = study time, result status P/F/C
    OBX  TX: "Preliminary AI result, not a diagnosis" in Vietnamese and English
    OBX  NM per finding: SNOMED CT code, probability, ">=threshold", flag A/N
    NTE  the finding's name and interpretation in Vietnamese and English
    OBX  TX (ungradable / failed result only, instead of findings): the reason

Every text taken from the context is escaped (``\\F\\ \\S\\ \\T\\ \\R\\ \\E\\``);
line breaks in free text become repetitions of a TX value (one line each), and other
control characters spaces. The message is deterministic: the same context, status and
arguments always give the same text, so a retry resends the very same message under
the same control id and a receiver can recognise the duplicate.

:func:`encode_mllp` frames a message for MLLP (``VT message FS CR``, UTF-8).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Group, Message, Segment
from hl7apy.exceptions import HL7apyException

from reports.context import FindingInfo, IdentifierInfo, Language, ReportContext

__all__ = [
    "HL7_VERSION",
    "MLLP_END",
    "MLLP_START",
    "build_oru",
    "encode_mllp",
    "escape_text",
    "oru_control_id",
]

#: The HL7 v2 version of the messages built here.
HL7_VERSION = "2.5"

#: MLLP start of block (VT).
MLLP_START = b"\x0b"

#: MLLP end of block (FS CR).
MLLP_END = b"\x1c\r"

#: Result status (OBR-25, OBX-11) for each ``ReportContext.status``.
_RESULT_STATUS = {"preliminary": "P", "final": "F", "amended": "C"}

#: HL7 table 0203 identifier type and the assigning authority for each identifier kind.
_IDENTIFIER_TYPES = {
    "mrn": ("MR", ""),
    "national_id": ("NI", "CCCD"),
    "health_insurance": ("HC", "BHYT"),
    "health_record": ("PN", "HSSK"),
}

#: Identifier kinds in the order PID-3 lists them (receivers often take the first).
_IDENTIFIER_ORDER = ("mrn", "national_id", "health_insurance", "health_record")

#: HL7 table 0001 administrative sex for DICOM Patient's Sex.
_SEX = {"M": "M", "F": "F", "O": "O"}

#: Universal service id (OBR-4) for each pipeline: LOINC code and display.
_SERVICE = {"cxr": ("36554-4", "XR Chest Single view", "LN")}

#: Coding system of Soi's own observation codes (HL7 "99zzz" local system).
_LOCAL_SYSTEM = "99SOI"

#: UCUM unit of a probability in [0, 1].
_PROBABILITY_UNIT = ("1", "probability", "UCUM")

#: The notice every message carries, by result status and language.
_NOTICE = {
    "preliminary": {
        "vi": "Kết quả AI sơ bộ, không phải chẩn đoán",
        "en": "Preliminary AI result, not a diagnosis",
    },
    "other": {
        "vi": "Kết quả do AI tạo ra, không phải chẩn đoán",
        "en": "AI result, not a diagnosis",
    },
}

#: OBX-3 of the reason a result has no findings, by result state.
_REASON_CODE = {
    "ungradable": ("AI-UNGRADABLE", "Images not gradable by the AI"),
    "failed": ("AI-FAILED", "AI analysis failed"),
}

#: Said when a result that is not complete has no reason recorded.
_NO_REASON = {"vi": "Không có lý do được ghi lại", "en": "No reason was recorded"}

#: The interpretation of a finding, by language and whether it is positive.
_INTERPRETATION = {
    "vi": {True: "dương tính", False: "âm tính"},
    "en": {True: "positive", False: "negative"},
}

#: Longest message control id (MSH-10 is ST(20) in v2.5).
_CONTROL_ID_LENGTH = 20

#: Characters an HD name (MSH-3 to MSH-6) or a control id must not contain.
_DELIMITERS = frozenset("|^~\\&")

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_DATE = re.compile(r"\d{4}(?:\d{2}(?:\d{2})?)?")


def escape_text(text: str) -> str:
    """Escape a text for one HL7 v2 component with the default encoding characters.

    ``\\`` becomes ``\\E\\``, ``|`` ``\\F\\``, ``^`` ``\\S\\``, ``&`` ``\\T\\``, ``~``
    ``\\R\\``; control characters (line breaks included) become spaces, since a carriage
    return ends a segment.

    Parameters
    ----------
    text : str
        Plain text.

    Returns
    -------
    str
        The text as it may appear between delimiters.
    """
    escaped = (
        text.replace("\\", "\\E\\")
        .replace("|", "\\F\\")
        .replace("^", "\\S\\")
        .replace("&", "\\T\\")
        .replace("~", "\\R\\")
    )
    return _CONTROL_CHARACTERS.sub(" ", escaped)


def _components(*values: str) -> str:
    """Join escaped values with the component separator, dropping empty trailing ones."""
    return "^".join(escape_text(value) for value in values).rstrip("^")


def _lines(*texts: str) -> list[str]:
    """The non-empty lines of ``texts``, escaped: the repetitions of a TX value."""
    return [
        escape_text(line.strip())
        for text in texts
        for line in _LINE_BREAK.split(text)
        if line.strip()
    ]


def _timestamp(moment: datetime) -> str:
    """An HL7 TS to the second, in UTC with its offset (naive times are taken as UTC)."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y%m%d%H%M%S+0000")


def _decimal(value: float) -> str:
    """A probability with two to four decimals: 0.5 -> ``0.50``, 0.9123 -> ``0.9123``."""
    text = f"{value:.4f}".rstrip("0")
    whole, _, fraction = text.partition(".")
    return f"{whole}.{fraction.ljust(2, '0')}"


def _study_time(context: ReportContext) -> str:
    """OBR-7: the study's date and time (DICOM DA + TM, local time), else the result's."""
    date = context.study.study_date.strip()
    if not re.fullmatch(r"\d{8}", date):
        return _timestamp(context.created_at)
    time = re.sub(r"\D", "", context.study.study_time.split(".")[0])[:6]
    if len(time) % 2:
        time = time[:-1]
    return date + time


def _languages(context: ReportContext) -> tuple[Language, Language]:
    """The facility's language first, then the other one."""
    return ("vi", "en") if context.facility.language == "vi" else ("en", "vi")


def _hd_name(name: str, argument: str) -> str:
    """Check an application or facility name for MSH-3 to MSH-6."""
    bad = sorted(set(name) & _DELIMITERS) + _CONTROL_CHARACTERS.findall(name)
    if bad:
        raise ValueError(
            f"`{argument}` must not contain HL7 delimiters or control characters, "
            f"{name!r} contains {''.join(bad)!r}"
        )
    return name


def oru_control_id(context: ReportContext) -> str:
    """The message control id (MSH-10) :func:`build_oru` gives a result by default.

    ``SOI-<result id>-<P|F|C>``: one per result and status, so a retry reuses it and an
    amendment gets its own. (A second amendment of the same result needs an explicit
    ``control_id``.)

    Parameters
    ----------
    context : ReportContext
        The result.

    Returns
    -------
    str
        At most 20 characters.

    Raises
    ------
    ValueError
        When the status is unknown or the result id is too long for 20 characters.
    """
    control_id = f"SOI-{context.result_id}-{_result_status(context)}"
    if len(control_id) > _CONTROL_ID_LENGTH:
        raise ValueError(
            f"result id {context.result_id} is too long for a {_CONTROL_ID_LENGTH}-character "
            f"control id; pass `control_id`"
        )
    return control_id


def _result_status(context: ReportContext) -> str:
    try:
        return _RESULT_STATUS[context.status]
    except KeyError:
        raise ValueError(
            f"result {context.result_id} has status {context.status!r}; expected one of "
            f"{', '.join(sorted(_RESULT_STATUS))}"
        ) from None


def _check_control_id(control_id: str) -> str:
    if not control_id:
        raise ValueError("`control_id` must not be empty")
    if len(control_id) > _CONTROL_ID_LENGTH:
        raise ValueError(
            f"`control_id` must be at most {_CONTROL_ID_LENGTH} characters, "
            f"{len(control_id)} are given"
        )
    return _hd_name(control_id, "control_id")


def _person_name(dicom_name: str) -> str:
    """XPN from a DICOM PN: ``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX`` (alphabetic group).

    XPN orders suffix (XPN-4) before prefix (XPN-5), DICOM the other way round.
    """
    alphabetic = dicom_name.split("=")[0]
    parts = [*alphabetic.split("^"), "", "", "", "", ""][:5]
    family, given, middle, prefix, suffix = (part.strip() for part in parts)
    return _components(family, given, middle, suffix, prefix)


def _identifier(identifier: IdentifierInfo, facility_code: str) -> str:
    """CX: ``value^^^namespace&system&URI^type``."""
    type_code, namespace = _IDENTIFIER_TYPES.get(identifier.kind, ("U", ""))
    namespace = namespace or (facility_code if identifier.kind == "mrn" else identifier.kind)
    authority = "&".join(
        escape_text(part)
        for part in (namespace, identifier.system, "URI" if identifier.system else "")
    ).rstrip("&")
    return f"{escape_text(identifier.value)}^^^{authority}^{type_code}"


def _identifiers(context: ReportContext) -> list[str]:
    def rank(identifier: IdentifierInfo) -> int:
        kind = identifier.kind
        return (
            _IDENTIFIER_ORDER.index(kind) if kind in _IDENTIFIER_ORDER else len(_IDENTIFIER_ORDER)
        )

    present = [identifier for identifier in context.patient.identifiers if identifier.value]
    return [_identifier(i, context.facility.code) for i in sorted(present, key=rank)]


def _set(segment: Segment, field: str, value: str | Sequence[str]) -> None:
    """Set a field from escaped ER7 text, one repetition per item of a sequence."""
    if isinstance(value, str):
        if value:
            setattr(segment, field, value)
        return
    for repetition in value:
        segment.add_field(field).value = repetition


def _msh(
    message: Message,
    context: ReportContext,
    *,
    sending_application: str,
    sending_facility: str,
    receiving_application: str,
    receiving_facility: str,
    control_id: str,
    message_time: datetime,
) -> None:
    msh = message.msh
    _set(msh, "msh_3", sending_application)
    _set(msh, "msh_4", sending_facility)
    _set(msh, "msh_5", receiving_application)
    _set(msh, "msh_6", receiving_facility)
    msh.msh_7 = _timestamp(message_time)
    msh.msh_9 = "ORU^R01^ORU_R01"
    msh.msh_10 = control_id
    msh.msh_11 = "P"
    msh.msh_12 = HL7_VERSION
    msh.msh_17 = "VNM"
    msh.msh_18 = "UNICODE UTF-8"
    language = context.facility.language
    msh.msh_19 = "vi^Vietnamese^ISO639" if language == "vi" else "en^English^ISO639"


def _patient(group: Group, context: ReportContext) -> None:
    patient = context.patient
    pid = group.add_segment("PID")
    pid.pid_1 = "1"
    _set(pid, "pid_3", _identifiers(context))
    _set(pid, "pid_5", _person_name(patient.name))
    birth_date = patient.birth_date.strip()
    if birth_date:
        if not _DATE.fullmatch(birth_date):
            raise ValueError(
                f"patient birth date {patient.birth_date!r} of result {context.result_id} "
                f"is not a DICOM date (YYYYMMDD)"
            )
        pid.pid_7 = birth_date
    pid.pid_8 = _SEX.get(patient.sex.strip().upper(), "U")
    visit = group.add_group("ORU_R01_VISIT")
    pv1 = visit.add_segment("PV1")
    pv1.pv1_1 = "1"
    pv1.pv1_2 = "U"
    _set(pv1, "pv1_3", f"^^^{escape_text(context.facility.code)}")


def _order(group: Group, context: ReportContext, *, filler_namespace: str) -> str:
    """ORC and OBR; returns the result status code."""
    status = _result_status(context)
    placer = _components(context.study.accession_number, context.facility.code)
    if not context.study.accession_number:
        placer = ""
    filler = _components(str(context.result_id), filler_namespace)
    reported = _timestamp(context.created_at)
    orc = group.add_segment("ORC")
    orc.orc_1 = "RE"
    _set(orc, "orc_2", placer)
    _set(orc, "orc_3", filler)
    orc.orc_9 = reported
    obr = group.add_segment("OBR")
    obr.obr_1 = "1"
    _set(obr, "obr_2", placer)
    _set(obr, "obr_3", filler)
    service = _SERVICE.get(context.pipeline)
    if service is not None:
        obr.obr_4 = _components(*service)
    else:
        description = context.study.study_description or context.pipeline
        obr.obr_4 = _components(context.pipeline, description, _LOCAL_SYSTEM)
    obr.obr_7 = _study_time(context)
    obr.obr_22 = reported
    obr.obr_24 = "RAD"
    obr.obr_25 = status
    return status


def _obx(
    group: Group,
    set_id: int,
    value_type: str,
    code: str,
    values: Sequence[str],
    *,
    status: str,
    observed: str,
    equipment: str,
    unit: str = "",
    reference_range: str = "",
    flag: str = "",
) -> Group:
    observation = group.add_group("ORU_R01_OBSERVATION")
    obx = observation.add_segment("OBX")
    obx.obx_1 = str(set_id)
    obx.obx_2 = value_type
    obx.obx_3 = code
    _set(obx, "obx_5", values)
    _set(obx, "obx_6", unit)
    _set(obx, "obx_7", reference_range)
    _set(obx, "obx_8", flag)
    obx.obx_11 = status
    obx.obx_14 = observed
    obx.obx_18 = equipment
    return observation


def _finding_note(finding: FindingInfo, languages: tuple[Language, Language]) -> str:
    return " / ".join(
        f"{finding.display(language)}: {_INTERPRETATION[language][finding.positive]}"
        for language in languages
    )


def build_oru(
    context: ReportContext,
    *,
    sending_application: str = "SOI",
    sending_facility: str | None = None,
    receiving_application: str = "HIS",
    receiving_facility: str = "",
    control_id: str | None = None,
    message_time: datetime | None = None,
) -> str:
    """Build the HL7 v2.5 ORU^R01 message of one AI result.

    Parameters
    ----------
    context : ReportContext
        The result and everything it is about.
    sending_application, sending_facility : str
        MSH-3 and MSH-4; the sending facility defaults to the facility's code.
    receiving_application, receiving_facility : str
        MSH-5 and MSH-6.
    control_id : str, optional
        MSH-10, at most 20 characters; defaults to :func:`oru_control_id`.
    message_time : datetime, optional
        MSH-7; defaults to the result's ``created_at`` so that the message is the same
        every time it is built.

    Returns
    -------
    str
        The message, segments separated by ``\\r`` (no trailing separator).

    Raises
    ------
    ValueError
        When the state or status is unknown, a name or the control id contains HL7
        delimiters or is too long, the birth date is not a date, or hl7apy finds the
        message invalid.
    """
    if context.state not in {"complete", *_REASON_CODE}:
        raise ValueError(
            f"result {context.result_id} has state {context.state!r}; expected complete, "
            f"ungradable or failed"
        )
    control_id = _check_control_id(oru_control_id(context) if control_id is None else control_id)
    names = {
        "sending_application": sending_application,
        "sending_facility": context.facility.code if sending_facility is None else sending_facility,
        "receiving_application": receiving_application,
        "receiving_facility": receiving_facility,
    }
    for argument, name in names.items():
        _hd_name(name, argument)
    try:
        message = Message("ORU_R01", version=HL7_VERSION, validation_level=VALIDATION_LEVEL.STRICT)
        _msh(
            message,
            context,
            control_id=control_id,
            message_time=context.created_at if message_time is None else message_time,
            **names,
        )
        result = message.add_group("ORU_R01_PATIENT_RESULT")
        _patient(result.add_group("ORU_R01_PATIENT"), context)
        order = result.add_group("ORU_R01_ORDER_OBSERVATION")
        status = _order(order, context, filler_namespace=sending_application)
        _observations(order, context, status)
        message.validate()
        text: str = message.to_er7()
    except HL7apyException as exc:
        raise ValueError(
            f"the ORU^R01 of result {context.result_id} is not valid HL7 v{HL7_VERSION}: {exc}"
        ) from exc
    return text


def _observations(order: Group, context: ReportContext, status: str) -> None:
    """The OBX segments: the notice, then the findings or the reason there are none."""
    languages = _languages(context)
    observed = _timestamp(context.created_at)
    equipment = _components(context.model.device_name, "SOI")
    notice = _NOTICE["preliminary" if context.preliminary else "other"]
    set_id = 1
    _obx(
        order,
        set_id,
        "TX",
        _components("AI-NOTICE", "AI result notice", _LOCAL_SYSTEM),
        _lines(*(notice[language] for language in languages)),
        status=status,
        observed=observed,
        equipment=equipment,
    )
    if context.state != "complete":
        set_id += 1
        reason = {"vi": context.reason_vi, "en": context.reason_en}
        if not any(text.strip() for text in reason.values()):
            reason = dict(_NO_REASON)
        _obx(
            order,
            set_id,
            "TX",
            _components(*_REASON_CODE[context.state], _LOCAL_SYSTEM),
            _lines(*(reason[language] for language in languages)),
            status=status,
            observed=observed,
            equipment=equipment,
        )
        return
    for finding in context.findings:
        set_id += 1
        observation = _obx(
            order,
            set_id,
            "NM",
            _components(finding.code_value, finding.code_meaning, finding.code_scheme),
            [_decimal(finding.probability)],
            status=status,
            observed=observed,
            equipment=equipment,
            unit=_components(*_PROBABILITY_UNIT),
            reference_range="" if finding.threshold is None else f">={_decimal(finding.threshold)}",
            flag="A" if finding.positive else "N",
        )
        nte = observation.add_segment("NTE")
        nte.nte_1 = "1"
        nte.nte_2 = "L"
        nte.nte_3 = escape_text(_finding_note(finding, languages))


def encode_mllp(message: str) -> bytes:
    """Frame one message for MLLP: ``VT``, the message in UTF-8, ``FS CR``.

    Parameters
    ----------
    message : str
        An HL7 v2 message (segments separated by ``\\r``).

    Returns
    -------
    bytes
        The MLLP block.

    Raises
    ------
    ValueError
        When the message is empty or contains a VT or FS character.
    """
    if not message:
        raise ValueError("`message` must not be empty")
    framing = sorted({c for c in message if c in "\x0b\x1c"})
    if framing:
        raise ValueError(
            f"`message` must not contain MLLP framing characters, it contains "
            f"{', '.join(f'0x{ord(c):02X}' for c in framing)}"
        )
    return MLLP_START + message.encode("utf-8") + MLLP_END
