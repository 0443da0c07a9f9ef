"""Whose patient data each role may see."""

from __future__ import annotations

import pytest

from soi.auth import Caller, local_caller, visible_facilities
from store import UserRole


class TestVisibleFacilities:
    @pytest.mark.parametrize(
        ("role", "facility_id", "expected"),
        [
            (UserRole.ADMIN, None, None),
            (UserRole.ADMIN, 3, None),
            (UserRole.RADIOLOGIST, 3, frozenset({3})),
            (UserRole.TECHNICIAN, 3, frozenset({3})),
            (UserRole.SCREENING_COORDINATOR, 3, frozenset({3})),
            (UserRole.INTEGRATION, 3, frozenset({3})),
            (UserRole.INTEGRATION, None, None),
            (UserRole.RESEARCHER, None, frozenset()),
            (UserRole.RESEARCHER, 3, frozenset()),
            (UserRole.TECHNICIAN, None, frozenset()),
        ],
    )
    def test_scope_of_each_role(
        self, role: UserRole, facility_id: int | None, expected: frozenset[int] | None
    ) -> None:
        assert visible_facilities(role, facility_id) == expected

    def test_may_see(self) -> None:
        technician = Caller("lan", "technician", 3, frozenset({3}))
        assert technician.may_see(3)
        assert not technician.may_see(4)
        assert not technician.is_admin
        assert Caller("root", "admin", None, None).may_see(4)

    def test_the_command_line_is_a_local_administrator(self) -> None:
        caller = local_caller()
        assert caller.is_admin
        assert caller.facility_ids is None
        assert (caller.actor_kind, caller.address) == ("cli", "local")
        assert caller.username
