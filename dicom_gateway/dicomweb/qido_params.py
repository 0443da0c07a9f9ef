"""QIDO-RS query parameters: checked, and turned into store queries.

Query parameters are checked against the value representation of their attribute
before anything is searched: a value that cannot be one (a date that is no date, a
UID with letters, a code string with quotes) is a 400; a value that can be one
(a Patient ID ``' OR 1=1--``) is matched, through bound parameters, and matches
nothing. Matching runs in SQL on indexed columns within the caller's facilities;
the other result attributes are read from the header of a stored instance.

References
----------
DICOM PS3.18 sections 8.3.4 (search query parameters), 10.6 (Search Transaction),
Annex F.2 (DICOM JSON model); PS3.4 section C.2.2.2 (attribute matching).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from typing import Any

from dicom_gateway.dicomweb.attributes import ALL_ATTRIBUTES, Level, resolve_attribute
from dicom_gateway.dicomweb.errors import InvalidRequestError
from dicom_gateway.instance import valid_uid
from store import InstanceQuery, SeriesQuery, StudyQuery

__all__ = ["MATCHING_KEYS", "SearchRequest", "parse_search"]

_CS = re.compile(r"^[A-Z0-9_ ]{1,16}$")
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^(\d{2})(\d{2})?(\d{2})?(\.\d{1,6})?$")
_INT = re.compile(r"^[+-]?\d{1,10}$")
_UINT = re.compile(r"^\d{1,10}$")
_MAX_INT = 2**31 - 1
_TEXT_LIMITS = {"LO": 64, "SH": 16, "PN": 64 * 3 + 2}
_FLAGS = ("fuzzymatching", "emptyvaluematching", "multiplevaluematching")


@dataclass(frozen=True, slots=True)
class _Key:
    level: Level
    vr: str
    field: str


#: Attributes that can be matched, the level they belong to and how they are checked.
MATCHING_KEYS: dict[str, _Key] = {
    "StudyInstanceUID": _Key(Level.STUDY, "UI", "study_instance_uids"),
    "PatientID": _Key(Level.STUDY, "LO", "patient_id"),
    "PatientName": _Key(Level.STUDY, "PN", "patient_name"),
    "AccessionNumber": _Key(Level.STUDY, "SH", "accession_number"),
    "StudyDescription": _Key(Level.STUDY, "LO", "study_description"),
    "StudyDate": _Key(Level.STUDY, "DA", "study_date"),
    "StudyTime": _Key(Level.STUDY, "TM", "study_time"),
    "ModalitiesInStudy": _Key(Level.STUDY, "CS", "modalities_in_study"),
    "SeriesInstanceUID": _Key(Level.SERIES, "UI", "series_instance_uids"),
    "Modality": _Key(Level.SERIES, "CS", "modality"),
    "SeriesNumber": _Key(Level.SERIES, "IS", "series_number"),
    "SeriesDescription": _Key(Level.SERIES, "LO", "series_description"),
    "SOPInstanceUID": _Key(Level.INSTANCE, "UI", "sop_instance_uids"),
    "SOPClassUID": _Key(Level.INSTANCE, "UI", "sop_class_uids"),
    "InstanceNumber": _Key(Level.INSTANCE, "IS", "instance_number"),
}

_LEVELS_SEARCHED: dict[Level, tuple[Level, ...]] = {
    Level.STUDY: (Level.STUDY,),
    Level.SERIES: (Level.STUDY, Level.SERIES),
    Level.INSTANCE: (Level.STUDY, Level.SERIES, Level.INSTANCE),
}


@dataclass(frozen=True, slots=True)
class SearchRequest:
    """A checked QIDO-RS request.

    ``requested`` holds the keywords of the matching keys and ``includefield``
    attributes, returned in every result (without value when the instance has
    none); ``limit`` is ``None`` when the client gave none.
    """

    level: Level
    studies: StudyQuery = field(default_factory=StudyQuery)
    series: SeriesQuery = field(default_factory=SeriesQuery)
    instances: InstanceQuery = field(default_factory=InstanceQuery)
    limit: int | None = None
    offset: int = 0
    requested: tuple[str, ...] = ()
    include_all: bool = False
    warnings: tuple[str, ...] = ()
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None


def _bad(keyword: str, value: str, why: str) -> InvalidRequestError:
    return InvalidRequestError(f"{keyword}={value[:80]!r}: {why}")


def _uids(keyword: str, value: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in re.split(r"[,\\]", value))
    for item in items:
        if not valid_uid(item):
            raise _bad(keyword, value, "not a UID, or a comma-separated list of UIDs")
    return items


def _date(keyword: str, value: str, text: str) -> str:
    if not _DA.match(text):
        raise _bad(keyword, value, "a date is YYYYMMDD, a range YYYYMMDD-YYYYMMDD")
    try:
        date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        raise _bad(keyword, value, f"{text} is not a calendar date") from None
    return text


def _time(keyword: str, value: str, text: str) -> str:
    found = _TM.match(text)
    if found is None:
        raise _bad(keyword, value, "a time is HH, HHMM, HHMMSS or HHMMSS.FFFFFF, or a range")
    hours, minutes, seconds = (int(part) if part else 0 for part in found.groups()[:3])
    if hours > 23 or minutes > 59 or seconds > 60:
        raise _bad(keyword, value, f"{text} is not a time of day")
    return text


def _range(keyword: str, value: str, vr: str) -> tuple[str, str]:
    check = _date if vr == "DA" else _time
    if value.count("-") > 1:
        raise _bad(keyword, value, "a range has one '-'")
    low, dash, high = value.partition("-")
    low = check(keyword, value, low) if low else ""
    high = check(keyword, value, high) if high else ""
    if dash and not (low or high):
        raise _bad(keyword, value, "a range needs at least one end")
    if not dash:
        return low, low
    if low and high and low > high:
        raise _bad(keyword, value, "the range ends before it starts")
    return low, high


def _codes(keyword: str, value: str) -> tuple[str, ...]:
    items = tuple(item.strip() for item in re.split(r"[,\\]", value))
    for item in items:
        if not _CS.match(item):
            raise _bad(keyword, value, "a code string is 1 to 16 of A-Z, 0-9, space and _")
    return items


def _integer(keyword: str, value: str) -> int:
    if not _INT.match(value) or abs(int(value)) > _MAX_INT:
        raise _bad(keyword, value, "not an integer")
    return int(value)


def _text(keyword: str, value: str, vr: str) -> str:
    limit = _TEXT_LIMITS[vr]
    if len(value) > limit:
        raise _bad(keyword, value, f"longer than the {limit} characters of its {vr} value")
    if "\\" in value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise _bad(keyword, value, "holds a backslash or a control character")
    return value


def _match_value(keyword: str, key: _Key, value: str) -> object:
    """The checked condition of one matching key (``None``: universal matching)."""
    text = value.strip()
    if not text or (text == "*" and key.vr not in ("UI", "DA", "TM", "IS")):
        return None
    if key.vr == "UI":
        return _uids(keyword, text)
    if key.vr in ("DA", "TM"):
        return _range(keyword, text, key.vr)
    if key.vr == "CS":
        return _codes(keyword, text)
    if key.vr == "IS":
        return _integer(keyword, text)
    return _text(keyword, text, key.vr)


def _uint(name: str, value: str) -> int:
    if not _UINT.match(value.strip()) or int(value) > _MAX_INT:
        raise InvalidRequestError(f"{name}={value[:40]!r}: not an unsigned integer")
    return int(value)


def _flag(name: str, value: str) -> bool:
    if value.strip().lower() not in ("true", "false"):
        raise InvalidRequestError(f"{name}={value[:40]!r}: must be true or false")
    return value.strip().lower() == "true"


def parse_search(
    params: Sequence[tuple[str, str]],
    *,
    level: Level,
    study_instance_uid: str | None = None,
    series_instance_uid: str | None = None,
) -> SearchRequest:
    """Check the query parameters of a search at ``level``.

    Parameters
    ----------
    params:
        The query's name and value pairs, in order, repeated names included.
    level:
        What is searched for.
    study_instance_uid, series_instance_uid:
        The study (and series) the resource path names, if any.

    Raises
    ------
    InvalidRequestError
        A parameter is not a search parameter nor an attribute, an attribute
        cannot be matched at this level, a value is not valid for its value
        representation, or a key is given twice.

    References
    ----------
    DICOM PS3.18 section 8.3.4 and Table 10.6.1-5 (required matching attributes).
    """
    for name, uid in (("study", study_instance_uid), ("series", series_instance_uid)):
        if uid is not None and not valid_uid(uid):
            raise InvalidRequestError(f"the {name} UID {uid[:80]!r} in the path is not a UID")
    conditions: dict[Level, dict[str, Any]] = {lvl: {} for lvl in Level}
    requested: list[str] = []
    seen: set[str] = set()
    limit: int | None = None
    offset = 0
    include_all = False
    warnings: list[str] = []
    allowed = _LEVELS_SEARCHED[level]
    for name, value in params:
        if name in ("limit", "offset"):
            if name in seen:
                raise InvalidRequestError(f"{name} is given more than once")
            seen.add(name)
            if name == "limit":
                limit = _uint(name, value)
            else:
                offset = _uint(name, value)
            continue
        if name == "includefield":
            for item in value.split(","):
                if item.strip() == ALL_ATTRIBUTES:
                    include_all = True
                elif item.strip():
                    requested.append(resolve_attribute(item)[1])
            continue
        if name in _FLAGS:
            if _flag(name, value):
                warnings.append(
                    f"The {name} parameter is not supported. Only literal matching has "
                    "been performed."
                    if name == "fuzzymatching"
                    else f"The {name} parameter is not supported."
                )
            continue
        _, keyword = resolve_attribute(name)
        key = MATCHING_KEYS.get(keyword)
        if key is None or key.level not in allowed:
            supported = ", ".join(k for k, v in MATCHING_KEYS.items() if v.level in allowed)
            raise InvalidRequestError(
                f"matching on {keyword} is not supported in a {level.value} search "
                f"(supported: {supported}); ask for it with includefield instead"
            )
        if keyword in seen:
            raise InvalidRequestError(f"{keyword} is given more than once")
        seen.add(keyword)
        requested.append(keyword)
        condition = _match_value(keyword, key, value)
        if condition is not None:
            conditions[key.level][key.field] = condition
    return SearchRequest(
        level=level,
        studies=replace(StudyQuery(), **conditions[Level.STUDY]),
        series=replace(SeriesQuery(), **conditions[Level.SERIES]),
        instances=replace(InstanceQuery(), **conditions[Level.INSTANCE]),
        limit=limit,
        offset=offset,
        requested=tuple(dict.fromkeys(requested)),
        include_all=include_all,
        warnings=tuple(warnings),
        study_instance_uid=study_instance_uid,
        series_instance_uid=series_instance_uid,
    )
