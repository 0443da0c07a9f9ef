"""Keeping a received instance: check, write durably, index, audit; one status out.

Used by every way instances come in (DIMSE C-STORE now, DICOMweb STOW-RS later), so
the durability rule is in one place: success is answered only after the file is
fsynced and renamed into place and the index transaction has committed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog
from pydicom import Dataset
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from dicom_gateway.buffers import BytesLike
from dicom_gateway.errors import InvalidInstanceError
from dicom_gateway.identifiers import IdentifierPolicy, patient_record_from_dataset
from dicom_gateway.instance import ParsedInstance, parse_instance
from dicom_gateway.routing import InstanceAttributes, Router
from dicom_gateway.status import StoreStatus
from store import (
    Applicability,
    AuditOutcome,
    Database,
    FileStoreError,
    ForeignStudyError,
    GroupCommitter,
    IndexOutcome,
    InstanceFileStore,
    InstanceRecord,
    InsufficientStorageError,
    StoredFile,
    index_instance,
    instance_exists,
    record_event,
)

__all__ = ["Ingestor", "InstanceCheck", "Source", "StoreOutcome"]

#: A protocol's own check of a parsed instance before it is kept: ``None`` to keep
#: it, or the failure status and why. It may read the index.
InstanceCheck = Callable[[ParsedInstance], tuple[StoreStatus, str] | None]

_log = structlog.get_logger("soi.ingest")


@dataclass(frozen=True, slots=True)
class Source:
    """Who sent an instance, and for which facility.

    ``ae_title`` is the calling AE title of a DIMSE peer, or the user name of a
    DICOMweb caller (``actor_kind`` ``"user"``), as recorded in the audit log.
    """

    ae_title: str
    address: str
    facility_id: int
    facility_code: str
    protocol: str = "dimse"
    actor_kind: str = "dicom-peer"


@dataclass(frozen=True, slots=True)
class StoreOutcome:
    """The status to answer with, and what happened."""

    status: StoreStatus
    comment: str = ""
    sop_instance_uid: str = ""
    study_instance_uid: str = ""
    duplicate: bool = False

    @property
    def ok(self) -> bool:
        """Whether the instance is kept."""
        return self.status == StoreStatus.SUCCESS


def _text(dataset: Dataset, keyword: str) -> str:
    value = dataset.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


def _int(dataset: Dataset, keyword: str) -> int | None:
    value = dataset.get(keyword, None)
    try:
        return None if value in (None, "") else int(value)
    except (TypeError, ValueError):
        return None


def _audit_store(session: Session, source: Source, outcome: AuditOutcome, **fields: Any) -> None:
    """Record a store by ``source`` (kept or refused) in the audit log."""
    record_event(
        session,
        actor=source.ae_title,
        actor_kind=source.actor_kind,
        action=f"{source.protocol}.store",
        outcome=outcome,
        source_address=source.address,
        facility_id=source.facility_id,
        **fields,
    )


class Ingestor:
    """Turns received bytes into a kept, indexed instance.

    Parameters
    ----------
    database:
        The index.
    files:
        Where instance files are written (with the free-space floor).
    router:
        Routing rules deciding which pipelines apply to each instance.
    identifier_policy:
        How issuers map to national identifier kinds.
    """

    def __init__(
        self,
        *,
        database: Database,
        files: InstanceFileStore,
        router: Router,
        identifier_policy: IdentifierPolicy | None = None,
    ) -> None:
        self.database = database
        self.files = files
        self.router = router
        self.identifier_policy = identifier_policy or IdentifierPolicy()
        self.committer = GroupCommitter(database)

    def store(
        self,
        encoded_dataset: BytesLike,
        *,
        transfer_syntax_uid: str,
        sop_class_uid: str,
        sop_instance_uid: str,
        source: Source,
        check: InstanceCheck | None = None,
        own_facility_only: bool = False,
    ) -> StoreOutcome:
        """Check, keep and index one instance; never raises for bad input.

        ``check`` runs after the data set is parsed and before anything is kept,
        also for an instance that is already stored: STOW-RS refuses there an
        instance of another facility's study. ``own_facility_only`` makes the same
        refusal inside the index transaction, where no concurrent sender can add the
        study in between (the written file is then removed).
        """
        try:
            parsed = parse_instance(
                encoded_dataset,
                transfer_syntax_uid=transfer_syntax_uid,
                affected_sop_class_uid=sop_class_uid,
                affected_sop_instance_uid=sop_instance_uid,
                source_ae=source.ae_title,
            )
        except InvalidInstanceError as exc:
            return self._refuse(exc.status, exc.comment, sop_instance_uid, source)

        if check is not None:
            try:
                refusal = check(parsed)
            except SQLAlchemyError as exc:
                return self._failure(f"index unavailable: {type(exc).__name__}", parsed, source)
            if refusal is not None:
                return self._refuse(refusal[0], refusal[1], parsed.sop_instance_uid, source)

        try:
            with self.database.read() as session:
                if instance_exists(session, parsed.sop_instance_uid):
                    _log.info(
                        "duplicate instance acknowledged, kept once",
                        sop_instance_uid=parsed.sop_instance_uid,
                        calling_ae=source.ae_title,
                    )
                    return StoreOutcome(
                        StoreStatus.SUCCESS,
                        sop_instance_uid=parsed.sop_instance_uid,
                        study_instance_uid=parsed.study_instance_uid,
                        duplicate=True,
                    )
        except SQLAlchemyError as exc:
            return self._failure(f"index unavailable: {type(exc).__name__}", parsed, source)

        try:
            self.files.check_space(parsed.size)
            # The folder entry is flushed by the group commit, with the index entry.
            stored = self.files.write(
                parsed.sop_instance_uid,
                (parsed.preamble_and_meta, parsed.encoded_dataset),
                sync_dir=False,
            )
        except InsufficientStorageError as exc:
            return self._refuse(
                StoreStatus.OUT_OF_RESOURCES, f"out of disk space: {exc}", sop_instance_uid, source
            )
        except FileStoreError as exc:
            return self._failure(f"cannot write the instance: {exc}", parsed, source)

        record = self._record(parsed, source)
        try:
            outcome = self._index(record, stored, parsed, source, own_facility_only)
        except ForeignStudyError as exc:
            self._forget_file(parsed.sop_instance_uid, stored.relative_path)
            return self._refuse(
                StoreStatus.NOT_AUTHORIZED,
                f"{exc}; it cannot be added to it from this facility",
                parsed.sop_instance_uid,
                source,
            )
        except SQLAlchemyError as exc:
            self._forget_file(parsed.sop_instance_uid, stored.relative_path)
            return self._failure(f"index unavailable: {type(exc).__name__}", parsed, source)
        _log.info(
            "instance stored",
            sop_instance_uid=parsed.sop_instance_uid,
            study_instance_uid=parsed.study_instance_uid,
            calling_ae=source.ae_title,
            bytes=stored.size,
            applicability=record.applicability.value,
            pipelines=list(record.pipelines),
        )
        return StoreOutcome(
            StoreStatus.SUCCESS,
            sop_instance_uid=parsed.sop_instance_uid,
            study_instance_uid=parsed.study_instance_uid,
            duplicate=not outcome.created,
        )

    def _index(
        self,
        record: InstanceRecord,
        stored: StoredFile,
        parsed: ParsedInstance,
        source: Source,
        own_facility_only: bool,
    ) -> IndexOutcome:
        """Index and audit in one transaction (shared with concurrent senders' instances).

        A concurrent writer indexing the same instance, study or series first makes the
        transaction fail on a unique constraint; it is then run once more and finds the
        rows that are there now.
        """

        def work(session: Session) -> IndexOutcome:
            outcome = index_instance(session, record, stored, own_facility_only=own_facility_only)
            if outcome.created:
                _audit_store(
                    session,
                    source,
                    AuditOutcome.SUCCESS,
                    patient_id=outcome.patient_id,
                    study_instance_uid=parsed.study_instance_uid,
                    sop_instance_uid=parsed.sop_instance_uid,
                    detail={
                        "sop_class_uid": parsed.sop_class_uid,
                        "transfer_syntax_uid": parsed.transfer_syntax_uid,
                        "bytes": stored.size,
                        "pipelines": list(record.pipelines),
                    },
                )
            return outcome

        sync_dirs = [stored.folder] if stored.folder is not None else []
        for attempt in range(2):
            try:
                return self.committer.run(work, sync_dirs=sync_dirs)
            except IntegrityError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _record(self, parsed: ParsedInstance, source: Source) -> InstanceRecord:
        ds = parsed.dataset
        image_type = tuple(v for v in _text(ds, "ImageType").split("\\") if v)
        laterality = _text(ds, "ImageLaterality") or _text(ds, "Laterality")
        attributes = InstanceAttributes(
            sop_class_uid=parsed.sop_class_uid,
            modality=_text(ds, "Modality"),
            body_part=_text(ds, "BodyPartExamined"),
            view_position=_text(ds, "ViewPosition"),
            laterality=laterality,
            image_type=image_type,
        )
        pipelines = self.router.pipelines_for(attributes)
        return InstanceRecord(
            sop_instance_uid=parsed.sop_instance_uid,
            sop_class_uid=parsed.sop_class_uid,
            transfer_syntax_uid=parsed.transfer_syntax_uid,
            series_instance_uid=parsed.series_instance_uid,
            study_instance_uid=parsed.study_instance_uid,
            patient=patient_record_from_dataset(
                ds, facility_code=source.facility_code, policy=self.identifier_policy
            ),
            facility_id=source.facility_id,
            applicability=Applicability.APPLICABLE if pipelines else Applicability.NOT_APPLICABLE,
            pipelines=pipelines,
            modality=attributes.modality,
            body_part_examined=attributes.body_part,
            series_number=_int(ds, "SeriesNumber"),
            series_description=_text(ds, "SeriesDescription"),
            accession_number=_text(ds, "AccessionNumber"),
            study_date=_text(ds, "StudyDate"),
            study_time=_text(ds, "StudyTime"),
            study_description=_text(ds, "StudyDescription"),
            instance_number=_int(ds, "InstanceNumber"),
            view_position=attributes.view_position,
            image_type="\\".join(image_type),
            laterality=laterality,
            rows=_int(ds, "Rows"),
            columns=_int(ds, "Columns"),
            number_of_frames=_int(ds, "NumberOfFrames"),
            source_ae=source.ae_title,
            source_address=source.address,
        )

    def _forget_file(self, sop_instance_uid: str, relative_path: str) -> None:
        """Remove a file whose indexing failed, unless another writer indexed it."""
        try:
            with self.database.read() as session:
                if instance_exists(session, sop_instance_uid):
                    return
        except SQLAlchemyError:
            return  # cannot tell; keep the file: an unindexed file is harmless
        try:
            self.files.remove(relative_path)
        except FileStoreError as exc:
            _log.error("cannot remove unindexed file", path=relative_path, error=str(exc))

    def _refuse(
        self, status: StoreStatus, comment: str, sop_instance_uid: str, source: Source
    ) -> StoreOutcome:
        _log.warning(
            "instance refused",
            status=f"0x{status:04X}",
            reason=comment,
            sop_instance_uid=sop_instance_uid[:80],
            calling_ae=source.ae_title,
            address=source.address,
        )
        try:
            with self.database.write() as session:
                _audit_store(
                    session,
                    source,
                    AuditOutcome.REFUSED,
                    sop_instance_uid=sop_instance_uid[:64],
                    detail={"status": f"0x{status:04X}", "reason": comment[:1000]},
                )
        except SQLAlchemyError as exc:
            _log.error("cannot record refusal in the audit log", error=str(exc))
        return StoreOutcome(status, comment, sop_instance_uid=sop_instance_uid)

    def _failure(self, comment: str, parsed: ParsedInstance, source: Source) -> StoreOutcome:
        _log.error(
            "instance not kept",
            reason=comment,
            sop_instance_uid=parsed.sop_instance_uid,
            calling_ae=source.ae_title,
        )
        return StoreOutcome(
            StoreStatus.PROCESSING_FAILURE, comment, sop_instance_uid=parsed.sop_instance_uid
        )
