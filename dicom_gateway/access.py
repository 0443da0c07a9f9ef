"""Who may associate: calling AE titles with their source address, per facility."""

from __future__ import annotations

import ipaddress
import socket

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from dicom_gateway.errors import AssociationRefused
from dicom_gateway.ingest import Source
from store import DEFAULT_FACILITY_CODE, Database, DicomPeer, count_peers, get_facility

__all__ = ["PeerAccess"]


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def _resolves_to(host: str, address: str) -> bool:
    if host == address:
        return True
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return any(info[4][0] == address for info in infos)


class PeerAccess:
    """Decides whether a calling AE may associate, and for which facility.

    A fresh install (no peer registered) accepts associations from the loopback
    address only, for the default facility, so the first run works and nothing from
    outside the box gets in. Once a peer is registered, only registered peers
    (AE title and source address together) are accepted.
    """

    def __init__(self, database: Database, *, default_facility_code: str = DEFAULT_FACILITY_CODE):
        self.database = database
        self.default_facility_code = default_facility_code

    def check(self, *, calling_ae: str, address: str, protocol: str = "dimse") -> Source:
        """Return the source a peer sends as, or raise :class:`AssociationRefused`."""
        ae = calling_ae.strip()
        with self.database.read() as session:
            candidates = session.scalars(
                select(DicomPeer)
                .options(joinedload(DicomPeer.facility))
                .where(DicomPeer.ae_title == ae)
            ).all()
            for peer in candidates:
                if _resolves_to(peer.host, address):
                    return Source(
                        ae_title=ae,
                        address=address,
                        facility_id=peer.facility_id,
                        facility_code=peer.facility.code,
                        protocol=protocol,
                    )
            if count_peers(session) == 0:
                if _is_loopback(address):
                    facility = get_facility(session, self.default_facility_code)
                    return Source(
                        ae_title=ae,
                        address=address,
                        facility_id=facility.id,
                        facility_code=facility.code,
                        protocol=protocol,
                    )
                raise AssociationRefused(
                    f"calling AE {ae!r} from {address} refused: no peer is registered yet, "
                    "so only the loopback address may associate; register it with "
                    f"`soi peers add NAME --ae {ae} --host {address} --facility CODE`"
                )
        known_elsewhere = f" (AE {ae!r} is registered for another address)" if candidates else ""
        raise AssociationRefused(
            f"calling AE {ae!r} from {address} is not a registered peer{known_elsewhere}; "
            f"register it with `soi peers add NAME --ae {ae} --host {address} --facility CODE`"
        )
