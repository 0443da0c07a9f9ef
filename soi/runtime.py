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
from inference import JobWorker, available_pipelines, build_handlers
from inference.worker import default_worker_name
from models import ModelRegistry
from reports.outbox import DeliveryWorker
from soi.services.documents import DeliveryPlanner, DocumentFactory, make_channels
from soi.settings import Settings
from store import (
    Backoff,
    Database,
    IdentifierKind,
    InstanceFileStore,
    ResultFileStore,
    current_revision,
    head_revision,
)
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
    registry: ModelRegistry
    result_files: ResultFileStore
    listener: DicomListener | None = field(default=None)
    workers: list[JobWorker] = field(default_factory=list)
    senders: list[DeliveryWorker] = field(default_factory=list)
    #: How many processes of one ``soi serve`` receive on the same ports (this one too).
    receiving_processes: int = 1

    @classmethod
    def build(
        cls,
        settings: Settings,
        *,
        with_listener: bool = True,
        with_workers: bool = False,
        first_process: bool = True,
    ) -> Runtime:
        """Open the store (migrating it on first start) and build the services.

        The first process of ``soi serve`` removes what an interrupted write left in
        the data folder; another receiving process (``first_process=False``) leaves the
        data folder alone, where the first one is writing.

        With ``with_workers``, load the models of the available pipelines and make
        ``settings.workers`` job workers that share them.

        Raises
        ------
        models.ModelError, inference.RunnerError
            A model cannot be loaded (with ``with_workers``).
        """
        database = open_database(settings)
        registry = ModelRegistry(settings.models_dir)
        result_files = ResultFileStore(settings.results_dir)
        files = InstanceFileStore(
            settings.instances_dir,
            min_free_bytes=settings.min_free_bytes,
            direct_io=settings.direct_io,
        )
        removed = files.clean_temporary() if first_process else 0
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
            available_pipelines=available_pipelines(registry),
        )
        workers: list[JobWorker] = []
        planner = DeliveryPlanner(settings.destinations)
        if with_workers and settings.workers > 0:
            handlers = build_handlers(
                registry,
                backend=settings.inference_backend,
                threads=settings.inference_threads,
                device=settings.inference_device,
                max_batch=settings.inference_max_batch,
                batch_wait_ms=settings.inference_batch_wait_ms if settings.workers > 1 else None,
            )
            workers = [
                JobWorker(
                    database=database,
                    instance_files=files,
                    result_files=result_files,
                    handlers=handlers,
                    name=default_worker_name(f"w{index}"),
                    lease=timedelta(seconds=settings.job_lease_seconds),
                    max_attempts=settings.job_max_attempts,
                    after_result=planner,
                    critical_labels=settings.critical_findings,
                )
                for index in range(settings.workers)
            ]
        senders: list[DeliveryWorker] = []
        if with_workers and settings.destinations and settings.delivery_workers > 0:
            factory = DocumentFactory(
                settings=settings,
                database=database,
                registry=registry,
                instance_files=files,
                result_files=result_files,
            )
            channels = make_channels(settings)
            backoff = Backoff(
                base=timedelta(seconds=settings.delivery_retry_base_seconds),
                cap=timedelta(seconds=settings.delivery_retry_cap_seconds),
                max_attempts=settings.delivery_max_attempts,
            )
            # Each destination has senders of its own: a slow or hanging EMR holds up
            # its own documents, never the PACS's or the HIS's.
            senders = [
                DeliveryWorker(
                    database=database,
                    channels={name: channel},
                    build=factory,
                    lease=timedelta(seconds=settings.delivery_lease_seconds),
                    backoff=backoff,
                    name=default_worker_name(f"outbox-{name}-{index}"),
                )
                for name, channel in channels.items()
                for index in range(settings.delivery_workers)
            ]
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
            registry=registry,
            result_files=result_files,
            listener=listener,
            workers=workers,
            senders=senders,
        )

    @property
    def data_dir(self) -> Path:
        """The data folder."""
        return self.settings.data_dir

    def close(self) -> None:
        """Stop the listener, release the models and the database."""
        if self.listener is not None:
            self.listener.stop()
        closed: set[int] = set()
        for worker in self.workers:
            for handler in worker.handlers.values():
                if id(handler) not in closed:
                    closed.add(id(handler))
                    handler.close()
        self.database.dispose()
