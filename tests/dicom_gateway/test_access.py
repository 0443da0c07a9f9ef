"""Who may associate: loopback only on a fresh install, then registered AE + address pairs."""

from __future__ import annotations

import pytest

from dicom_gateway import AssociationRefused, PeerAccess
from store import Database, add_facility, add_peer


class TestPeerAccess:
    def test_fresh_install_accepts_loopback_only(self, database: Database) -> None:
        access = PeerAccess(database)
        source = access.check(calling_ae="ANY", address="127.0.0.1")
        assert source.facility_code == "LOCAL"
        assert access.check(calling_ae="ANY", address="::1").facility_code == "LOCAL"
        with pytest.raises(AssociationRefused, match="no peer is registered yet"):
            access.check(calling_ae="ANY", address="192.0.2.10")

    def test_registered_peers_only_once_one_exists(self, database: Database) -> None:
        with database.write() as session:
            add_facility(session, code="BV-A", name="Hospital A")
            add_peer(
                session, name="pacs", ae_title="PACS_A", host="192.0.2.10", facility_code="BV-A"
            )
        access = PeerAccess(database)
        source = access.check(calling_ae="PACS_A", address="192.0.2.10")
        assert (source.facility_code, source.ae_title) == ("BV-A", "PACS_A")
        with pytest.raises(AssociationRefused, match="registered for another address"):
            access.check(calling_ae="PACS_A", address="192.0.2.11")
        with pytest.raises(AssociationRefused, match="is not a registered peer"):
            access.check(calling_ae="OTHER", address="192.0.2.10")
        with pytest.raises(AssociationRefused, match="soi peers add"):
            access.check(calling_ae="ANY", address="127.0.0.1")

    def test_peer_host_may_be_a_name(self, database: Database) -> None:
        with database.write() as session:
            add_peer(session, name="local", ae_title="MOD", host="localhost", facility_code="LOCAL")
        assert PeerAccess(database).check(calling_ae="MOD", address="127.0.0.1").ae_title == "MOD"
