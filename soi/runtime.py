"""Wiring: builds the store, gateway and workers from settings (the composition root)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import structlog

from dicom_gateway import (
    DicomListener,
    DimseConfig,
    IdentifierPolicy,
    Ingestor,
    PeerAccess,
    Router,
    StudyAssembler,
    resolve_sop_classes,
)
from dicom_gateway.sop_classes import STORAGE_SOP_CLASSES
from inference import available_pipelines
from soi.settings import Settings
from store import Database, IdentifierKind, InstanceFileStore, current_revision, head_revision
from store import upgrade as upgrade_schema

__all__ = ["Runtime", "open_database"]

_log = structlog.get_logger("soi.runtime")


def open_database(settings: Settings, *, migrate: bool = True) -> Database:
    """Open the database of ``settings``, bringing its schema up to date if asked."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    database = Database(settings.resolved_database_url)
    if migrate and current_revision(database) != head_revision():
        revision = upgrade_schema(database)
        _log.info("database schema upgraded", revision=revision, database=repr(database))
    return database


@dataclass
class Runtime:
    """Everything one Soi process runs, built from :class:`Settings`."""

    settings: Settings
    database: Database
    files: InstanceFileStore
    router: Router
    ingestor: Ingestor
    access: PeerAccess
    assembler: StudyAssembler
    listener: DicomListener | None = field(default=None)

    @classmethod
    def build(cls, settings: Settings, *, with_listener: bool = True) -> Runtime:
        """Open the store (migrating it on first start) and build the services."""
        database = open_database(settings)
        files = InstanceFileStore(settings.instances_dir, min_free_bytes=settings.min_free_bytes)
        removed = files.clean_temporary()
        if removed:
            _log.warning("removed partial files left by an interrupted write", count=removed)
        router = Router.from_file(settings.routing_rules)
        policy = IdentifierPolicy(
            issuer_kinds={k.upper(): IdentifierKind(v) for k, v in settings.issuer_kinds.items()}
        )
        ingestor = Ingestor(database=database, files=files, router=router, identifier_policy=policy)
        access = PeerAccess(database)
        assembler = StudyAssembler(
            database=database,
            quiet_period=timedelta(seconds=settings.quiet_period_seconds),
            available_pipelines=available_pipelines(),
        )
        listener = None
        if with_listener:
            accepted = (
                resolve_sop_classes(settings.accepted_sop_classes)
                if settings.accepted_sop_classes is not None
                else STORAGE_SOP_CLASSES
            )
            listener = DicomListener(
                config=DimseConfig(
                    ae_title=settings.ae_title,
                    host=settings.dicom_host,
                    port=settings.dicom_port,
                    maximum_pdu_size=settings.max_pdu_kb * 1024,
                    maximum_associations=settings.max_associations,
                    accepted_sop_classes=accepted,
                ),
                ingestor=ingestor,
                access=access,
            )
        return cls(
            settings=settings,
            database=database,
            files=files,
            router=router,
            ingestor=ingestor,
            access=access,
            assembler=assembler,
            listener=listener,
        )

    @property
    def data_dir(self) -> Path:
        """The data folder."""
        return self.settings.data_dir

    def close(self) -> None:
        """Stop the listener and release the database."""
        if self.listener is not None:
            self.listener.stop()
        self.database.dispose()
