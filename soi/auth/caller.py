"""Who is calling, and whose patient data they may see."""

from __future__ import annotations

import getpass
from dataclasses import dataclass

from store import User, UserRole

__all__ = ["Caller", "caller_for_user", "local_caller", "visible_facilities"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, and whose patient data they may see.

    Every query for patient data is scoped with :meth:`may_see` /
    :attr:`facility_ids` on the server; what a caller may not see is answered as if it
    did not exist (404).

    Attributes
    ----------
    username:
        The user or service account (recorded in the audit log).
    role:
        A :class:`store.UserRole` value: ``admin``, ``radiologist``, ``technician``,
        ``screening_coordinator``, ``researcher`` or ``integration``.
    facility_id:
        The caller's own facility: where what they upload belongs. ``None`` for a
        caller bound to no facility (an admin), whose uploads go to the default one.
    facility_ids:
        The facilities whose patient data the caller may see; ``None``: all of them;
        empty: none.
    address:
        The client's address, for the audit log.
    actor_kind:
        How the caller proved who they are, for the audit log: ``user`` (a browser
        session), ``token`` (an API token) or ``cli`` (a person at the box's command
        line, who can read the database anyway).
    user_id:
        The user's row id (``None`` for the command line).
    """

    username: str
    role: str
    facility_id: int | None
    facility_ids: frozenset[int] | None
    address: str = ""
    actor_kind: str = "user"
    user_id: int | None = None

    def may_see(self, facility_id: int) -> bool:
        """Whether the caller may see the patient data of ``facility_id``."""
        return self.facility_ids is None or facility_id in self.facility_ids

    @property
    def is_admin(self) -> bool:
        """Whether the caller administers Soi."""
        return self.role == UserRole.ADMIN


def visible_facilities(role: UserRole | str, facility_id: int | None) -> frozenset[int] | None:
    """The facilities whose identified patient data a role may see (``None``: all).

    - ``admin``: every facility.
    - ``radiologist``, ``technician``, ``screening_coordinator``: their own facility
      (teleconsultation across facilities and program-wide scopes come later).
    - ``integration``: its facility when it has one, else every facility.
    - ``researcher``: none; researchers work on de-identified exports.
    """
    checked = UserRole(role)
    if checked is UserRole.ADMIN:
        return None
    if checked is UserRole.RESEARCHER:
        return frozenset()
    if checked is UserRole.INTEGRATION and facility_id is None:
        return None
    return frozenset() if facility_id is None else frozenset({facility_id})


def caller_for_user(user: User, *, address: str, actor_kind: str) -> Caller:
    """The caller a signed-in ``user`` is."""
    return Caller(
        username=user.username,
        role=user.role.value,
        facility_id=user.facility_id,
        facility_ids=visible_facilities(user.role, user.facility_id),
        address=address,
        actor_kind=actor_kind,
        user_id=user.id,
    )


def local_caller() -> Caller:
    """A person at this box's command line: an administrator, named by their login."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        name = "unknown"
    return Caller(
        username=name,
        role=UserRole.ADMIN.value,
        facility_id=None,
        facility_ids=None,
        address="local",
        actor_kind="cli",
    )
