"""Facilities and the DICOM peers allowed to send on their behalf."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from store.errors import DuplicateError, NotFoundError
from store.models import DicomPeer, Facility

__all__ = [
    "DEFAULT_FACILITY_CODE",
    "REPORT_LANGUAGES",
    "add_facility",
    "add_peer",
    "count_peers",
    "find_peer",
    "get_facility",
    "list_facilities",
    "list_peers",
    "remove_peer",
    "set_facility_language",
]

#: Facility created by the first migration: the hospital the box stands in.
DEFAULT_FACILITY_CODE = "LOCAL"

#: Languages a facility's reports may be written in (``Facility.report_language``).
REPORT_LANGUAGES = ("vi", "en")


def _checked_language(report_language: str | None) -> str | None:
    if report_language is not None and report_language not in REPORT_LANGUAGES:
        raise ValueError(
            f"`report_language` must be 'vi', 'en' or None, {report_language!r} is given"
        )
    return report_language


def add_facility(
    session: Session,
    *,
    code: str,
    name: str,
    kind: str = "hospital",
    report_language: str | None = None,
) -> Facility:
    """Create a facility.

    Parameters
    ----------
    session:
        The transaction to add it in.
    code:
        Its short code, 1 to 32 characters, unique.
    name:
        Its full name.
    kind:
        ``hospital``, ``station`` or ``program``.
    report_language:
        ``"vi"`` or ``"en"``: the language of its reports; ``None`` leaves it to the
        ``report_language`` setting.

    Returns
    -------
    Facility
        The new facility, flushed (its ``id`` is set).

    Raises
    ------
    ValueError
        The code is empty or too long, or the language is not one of
        :data:`REPORT_LANGUAGES`.
    DuplicateError
        The code is taken.
    """
    if not code or len(code) > 32:
        raise ValueError(f"`code` must be 1 to 32 characters, {code!r} is given")
    facility = Facility(
        code=code, name=name, kind=kind, report_language=_checked_language(report_language)
    )
    session.add(facility)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateError(f"facility {code!r} already exists") from None
    return facility


def get_facility(session: Session, code: str) -> Facility:
    """Return the facility with ``code``; raise :class:`NotFoundError` if none."""
    facility = session.scalars(select(Facility).where(Facility.code == code)).one_or_none()
    if facility is None:
        raise NotFoundError(f"no facility with code {code!r}")
    return facility


def set_facility_language(session: Session, code: str, *, report_language: str | None) -> Facility:
    """Set the language of a facility's reports.

    Parameters
    ----------
    session:
        The transaction to change it in.
    code:
        The facility's code.
    report_language:
        ``"vi"`` or ``"en"``; ``None`` leaves it to the ``report_language`` setting.

    Returns
    -------
    Facility
        The facility, changed.

    Raises
    ------
    ValueError
        The language is not one of :data:`REPORT_LANGUAGES`.
    NotFoundError
        No facility has that code.
    """
    checked = _checked_language(report_language)
    facility = get_facility(session, code)
    facility.report_language = checked
    session.flush()
    return facility


def list_facilities(session: Session) -> Sequence[Facility]:
    """Return all facilities ordered by code."""
    return session.scalars(select(Facility).order_by(Facility.code)).all()


def add_peer(
    session: Session,
    *,
    name: str,
    ae_title: str,
    host: str,
    facility_code: str,
    port: int | None = None,
) -> DicomPeer:
    """Allow the AE ``ae_title`` calling from ``host`` to send for a facility.

    Raises
    ------
    NotFoundError
        The facility does not exist.
    DuplicateError
        The name, or the AE title and host pair, is already registered.
    """
    ae = ae_title.strip()
    if not ae or len(ae) > 16 or "\\" in ae or not ae.isprintable():
        raise ValueError(f"`ae_title` must be 1 to 16 printable characters, {ae_title!r} is given")
    facility = get_facility(session, facility_code)
    peer = DicomPeer(name=name, ae_title=ae, host=host, port=port, facility_id=facility.id)
    session.add(peer)
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateError(
            f"a peer named {name!r} or AE {ae!r} at {host} is already registered"
        ) from None
    peer.facility = facility
    return peer


def list_peers(session: Session) -> Sequence[DicomPeer]:
    """Return all registered peers with their facility."""
    return (
        session.scalars(
            select(DicomPeer).options(joinedload(DicomPeer.facility)).order_by(DicomPeer.name)
        )
        .unique()
        .all()
    )


def remove_peer(session: Session, name: str) -> None:
    """Remove the peer called ``name``; raise :class:`NotFoundError` if none."""
    peer = session.scalars(select(DicomPeer).where(DicomPeer.name == name)).one_or_none()
    if peer is None:
        raise NotFoundError(f"no peer named {name!r}")
    session.delete(peer)


def count_peers(session: Session) -> int:
    """Return how many peers are registered."""
    return int(session.scalar(select(func.count()).select_from(DicomPeer)) or 0)


def find_peer(session: Session, *, ae_title: str, host: str) -> DicomPeer | None:
    """Return the peer registered for ``ae_title`` calling from ``host``, if any."""
    return session.scalars(
        select(DicomPeer)
        .options(joinedload(DicomPeer.facility))
        .where(DicomPeer.ae_title == ae_title.strip(), DicomPeer.host == host)
    ).one_or_none()
