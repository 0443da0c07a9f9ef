"""Facilities: their codes and the language of their reports."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from store import (
    DEFAULT_FACILITY_CODE,
    REPORT_LANGUAGES,
    Database,
    DuplicateError,
    Facility,
    NotFoundError,
    add_facility,
    get_facility,
    list_facilities,
    set_facility_language,
)


class TestAddFacility:
    @pytest.mark.parametrize("language", [None, *REPORT_LANGUAGES])
    def test_language_is_stored(self, database: Database, language: str | None) -> None:
        with database.write() as session:
            add_facility(session, code="BV-X", name="Bệnh viện X", report_language=language)
        with database.read() as session:
            facility = get_facility(session, "BV-X")
            assert (facility.name, facility.kind, facility.report_language) == (
                "Bệnh viện X",
                "hospital",
                language,
            )

    @pytest.mark.parametrize("language", ["fr", "VI", "", "vi-VN"])
    def test_unknown_language_is_refused(self, database: Database, language: str) -> None:
        with (
            pytest.raises(
                ValueError,
                match=rf"`report_language` must be .*{re.escape(repr(language))} is given",
            ),
            database.write() as session,
        ):
            add_facility(session, code="BV-X", name="X", report_language=language)
        with database.read() as session:
            assert [f.code for f in list_facilities(session)] == [DEFAULT_FACILITY_CODE]

    def test_duplicate_code_is_refused_and_keeps_the_first(self, database: Database) -> None:
        with database.write() as session:
            add_facility(session, code="BV-X", name="X", report_language="en")
        with (
            pytest.raises(DuplicateError, match="'BV-X' already exists"),
            database.write() as session,
        ):
            add_facility(session, code="BV-X", name="Other", report_language="vi")
        with database.read() as session:
            facility = get_facility(session, "BV-X")
            assert (facility.name, facility.report_language) == ("X", "en")


class TestSetFacilityLanguage:
    def test_set_and_clear(self, database: Database) -> None:
        with database.write() as session:
            changed = set_facility_language(session, DEFAULT_FACILITY_CODE, report_language="en")
            assert changed.report_language == "en"
        with database.read() as session:
            assert get_facility(session, DEFAULT_FACILITY_CODE).report_language == "en"

        with database.write() as session:
            set_facility_language(session, DEFAULT_FACILITY_CODE, report_language=None)
        with database.read() as session:
            assert session.scalar(select(Facility.report_language)) is None

    def test_unknown_facility(self, database: Database) -> None:
        with (
            pytest.raises(NotFoundError, match="no facility with code 'NOPE'"),
            database.write() as session,
        ):
            set_facility_language(session, "NOPE", report_language="en")

    def test_unknown_language_changes_nothing(self, database: Database) -> None:
        with database.write() as session:
            set_facility_language(session, DEFAULT_FACILITY_CODE, report_language="vi")
        with (
            pytest.raises(ValueError, match=r"`report_language` must be .*'de' is given"),
            database.write() as session,
        ):
            set_facility_language(session, DEFAULT_FACILITY_CODE, report_language="de")
        with database.read() as session:
            assert get_facility(session, DEFAULT_FACILITY_CODE).report_language == "vi"
