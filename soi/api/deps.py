"""Dependencies shared by the routes: the runtime, and who is calling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from soi.runtime import Runtime

__all__ = ["Caller", "CallerDep", "RuntimeDep", "get_caller", "get_runtime"]


def get_runtime(request: Request) -> Runtime:
    """Return the process's runtime."""
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


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
        ``admin``, ``radiologist``, ``technician``, ``coordinator``, ``researcher`` or
        ``integration`` (``store.UserRole`` values).
    facility_id:
        The caller's own facility: where what they upload belongs. ``None`` for a
        caller bound to no facility (an admin), whose uploads go to the default one.
    facility_ids:
        The facilities whose patient data the caller may see; ``None``: all of them.
    address:
        The client's address, for the audit log.
    """

    username: str
    role: str
    facility_id: int | None
    facility_ids: frozenset[int] | None
    address: str = ""

    def may_see(self, facility_id: int) -> bool:
        """Whether the caller may see the patient data of ``facility_id``."""
        return self.facility_ids is None or facility_id in self.facility_ids


def get_caller(request: Request) -> Caller:
    """The caller of this request.

    The HTTP API listens on the loopback address only (see the ``http_host`` setting),
    so until users sign in, the caller is the local administrator.
    """
    address = request.client.host if request.client is not None else ""
    return Caller(
        username="local", role="admin", facility_id=None, facility_ids=None, address=address
    )


CallerDep = Annotated[Caller, Depends(get_caller)]
