"""Synthetic studies for the QIDO-RS benchmark, and filling Soi's index and Orthanc with them.

Every study is one patient's examination: CR, DX, CT or MR, dated over ten years, with
an accession number and a Patient ID shared by about two studies; one series of one
instance, and every tenth study two series of two instances. Instances are tiny
(8 x 8 pixels, 16-bit, about 1.1 kB) so that 100,000 studies fill in minutes; a QIDO-RS
search does not read pixel data. Files are written by pydicom once per kind of
instance, with placeholders of fixed width, then copied with each instance's values.

Soi is filled in-process, one of two ways:

- ``index``: :func:`store.index_instance`, the function every C-STORE and STOW-RS
  instance goes through, ``batch`` instances per transaction (about 5 ms an instance
  on the 2-core machine: 10 minutes or more for 100,000 studies);
- ``bulk`` (the default): the same rows written by multi-row ``INSERT``s.
  :func:`check_bulk_fill` first fills a sample both ways, the ``index`` way from each
  file's header as the gateway reads it (:func:`dicom_gateway.parse_instance`), and
  refuses to go on unless the two databases hold the same rows.

Either way each file is written where ``soi serve`` looks for it, without fsync (this
is set-up, not the measurement). Orthanc is filled through its REST API
(``POST /instances``) from several threads.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian
from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from dicom_gateway import IdentifierPolicy, parse_instance
from dicom_gateway.identifiers import patient_record_from_dataset
from store import (
    Applicability,
    Database,
    Instance,
    InstanceFileStore,
    InstanceRecord,
    Patient,
    PatientIdentifier,
    PatientRecord,
    Series,
    StoredFile,
    Study,
    StudyState,
    add_facility,
    index_instance,
    upgrade,
    utcnow,
)

__all__ = [
    "FACILITIES",
    "FillReport",
    "StudyPlan",
    "check_bulk_fill",
    "encode_instances",
    "fill_orthanc",
    "fill_soi",
    "plan_studies",
]

#: pydicom's UID root, followed by the benchmark's own numbering.
_UID_ROOT = "1.2.826.0.1.3680043.8.498.77"
#: Added to a study's number in its UIDs, so that every UID of a kind has one length.
_UID_OFFSET = 10_000_000
#: Modality, SOP Class UID and study description of each kind of examination.
_KINDS: tuple[tuple[str, str, str], ...] = (
    ("CR", "1.2.840.10008.5.1.4.1.1.1", "Chest X-ray"),
    ("DX", "1.2.840.10008.5.1.4.1.1.1.1", "Chest X-ray"),
    ("CT", "1.2.840.10008.5.1.4.1.1.2", "Low-dose chest CT"),
    ("MR", "1.2.840.10008.5.1.4.1.1.4", "Brain MRI"),
)
#: Facilities of Soi the studies are spread over (by patient).
FACILITIES: tuple[tuple[str, str], ...] = (
    ("BENCH-A", "Bệnh viện A"),
    ("BENCH-B", "Bệnh viện B"),
    ("BENCH-C", "Bệnh viện C"),
)
_FIRST_DAY = date(2015, 1, 1)
_DAYS = 3652
_PIXELS = np.arange(64, dtype="<u2").reshape(8, 8).tobytes()
_SOURCE_AE = "BENCH"
_SOURCE_ADDRESS = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    """One series of a planned study and its instances' SOP Instance UIDs."""

    series_instance_uid: str
    series_number: int
    sop_instance_uids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class StudyPlan:
    """One synthetic study: who, when, what, and where (the facility, for Soi)."""

    number: int
    patient: int
    study_instance_uid: str
    accession_number: str
    study_date: str
    study_time: str
    kind: int
    series: tuple[SeriesPlan, ...]

    @property
    def patient_id(self) -> str:
        """Patient ID (a facility's record number)."""
        return f"P{self.patient:07d}"

    @property
    def patient_name(self) -> str:
        """Patient's Name."""
        return f"Bench^P{self.patient:07d}"

    @property
    def birth_date(self) -> str:
        """Patient's Birth Date."""
        return f"{1940 + self.patient % 60}{1 + self.patient % 12:02d}{1 + self.patient % 28:02d}"

    @property
    def sex(self) -> str:
        """Patient's Sex."""
        return "F" if self.patient % 2 else "M"

    @property
    def facility(self) -> int:
        """Index of the study's facility in :data:`FACILITIES`."""
        return self.patient % len(FACILITIES)

    @property
    def modality(self) -> str:
        """Modality of every series."""
        return _KINDS[self.kind][0]

    @property
    def sop_class_uid(self) -> str:
        """SOP Class UID of every instance."""
        return _KINDS[self.kind][1]

    @property
    def description(self) -> str:
        """Study Description."""
        return _KINDS[self.kind][2]

    @property
    def study_id(self) -> str:
        """Study ID."""
        return f"S{self.number:07d}"

    @property
    def number_of_instances(self) -> int:
        """Instances in the study."""
        return sum(len(s.sop_instance_uids) for s in self.series)


def plan_studies(count: int, seed: int = 20261201) -> list[StudyPlan]:
    """Plan ``count`` studies, about two per patient, dated over 2015 to 2024.

    Parameters
    ----------
    count : int
        Number of studies (at most 80,000,000).
    seed : int, optional
        Seed of the random generator (dates, times, kinds, owners).

    Returns
    -------
    list of StudyPlan
        In the order they are indexed.
    """
    if not 0 < count <= 80_000_000:
        raise ValueError(f"`count` must be in 1..80000000, {count} is given")
    rng = np.random.default_rng(seed)
    days = rng.integers(0, _DAYS, count)
    seconds = rng.integers(7 * 3600, 19 * 3600, count)
    kinds = rng.choice(len(_KINDS), count, p=[0.35, 0.35, 0.2, 0.1])
    owners = rng.permutation(np.arange(count) % max(1, count // 2))
    plans: list[StudyPlan] = []
    for i in range(count):
        n_series = 2 if i % 10 == 9 else 1
        key = _UID_OFFSET + i
        series = tuple(
            SeriesPlan(
                series_instance_uid=f"{_UID_ROOT}.2.{key}.{s}",
                series_number=s,
                sop_instance_uids=tuple(
                    f"{_UID_ROOT}.3.{key}.{s}.{k}" for k in range(1, n_series + 1)
                ),
            )
            for s in range(1, n_series + 1)
        )
        when = _FIRST_DAY + timedelta(days=int(days[i]))
        second = int(seconds[i])
        plans.append(
            StudyPlan(
                number=i,
                patient=int(owners[i]),
                study_instance_uid=f"{_UID_ROOT}.1.{key}",
                accession_number=f"A{i:08d}",
                study_date=when.strftime("%Y%m%d"),
                study_time=f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}",
                kind=int(kinds[i]),
                series=series,
            )
        )
    return plans


# -- files ----------------------------------------------------------------------------

#: Placeholders written into the templates, each as long as the values that replace it.
_HOLES: dict[str, str] = {
    "study_uid": f"{_UID_ROOT}.1.98765431",
    "series_uid": f"{_UID_ROOT}.2.98765432.9",
    "sop_uid": f"{_UID_ROOT}.3.98765433.9.9",
    "patient_id": "P9876543",
    "patient_name": "Bench^P9876544",
    "birth_date": "18760101",
    "study_date": "18770202",
    "study_time": "235857",
    "accession": "A98765455",
    "study_id": "S9876546",
}


def _dataset(plan: StudyPlan, series: SeriesPlan, number: int, values: dict[str, str]) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if plan.modality == "CT" else ""]
    ds.SOPClassUID = plan.sop_class_uid
    ds.SOPInstanceUID = values["sop_uid"]
    ds.StudyDate = ds.SeriesDate = values["study_date"]
    ds.StudyTime = ds.SeriesTime = values["study_time"]
    ds.AccessionNumber = values["accession"]
    ds.Modality = plan.modality
    ds.Manufacturer = "Synthetic"
    ds.InstitutionName = FACILITIES[plan.facility][1]
    ds.ReferringPhysicianName = "Referring^Doctor"
    ds.StudyDescription = plan.description
    ds.SeriesDescription = f"{plan.description} {series.series_number}"
    ds.PatientName = values["patient_name"]
    ds.PatientID = values["patient_id"]
    ds.PatientBirthDate = values["birth_date"]
    ds.PatientSex = plan.sex
    ds.BodyPartExamined = "HEAD" if plan.modality == "MR" else "CHEST"
    ds.StudyInstanceUID = values["study_uid"]
    ds.SeriesInstanceUID = values["series_uid"]
    ds.StudyID = values["study_id"]
    ds.SeriesNumber = series.series_number
    ds.InstanceNumber = number
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = _PIXELS
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(plan.sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(values["sop_uid"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _values(plan: StudyPlan, series: SeriesPlan, sop_instance_uid: str) -> dict[str, str]:
    return {
        "study_uid": plan.study_instance_uid,
        "series_uid": series.series_instance_uid,
        "sop_uid": sop_instance_uid,
        "patient_id": plan.patient_id,
        "patient_name": plan.patient_name,
        "birth_date": plan.birth_date,
        "study_date": plan.study_date,
        "study_time": plan.study_time,
        "accession": plan.accession_number,
        "study_id": plan.study_id,
    }


class _Templates:
    """One PS3.10 file per kind of instance, with :data:`_HOLES` where values go."""

    def __init__(self) -> None:
        self._files: dict[tuple[int, int, int, int, int], bytes] = {}

    def file(self, plan: StudyPlan, series: SeriesPlan, number: int, uid: str) -> bytes:
        key = (plan.kind, plan.facility, plan.patient % 2, series.series_number, number)
        template = self._files.get(key)
        if template is None:
            template = self._build(plan, series, number)
            self._files[key] = template
        data = template
        for name, value in _values(plan, series, uid).items():
            data = data.replace(_HOLES[name].encode("ascii"), value.encode("ascii"))
        return data

    @staticmethod
    def _build(plan: StudyPlan, series: SeriesPlan, number: int) -> bytes:
        buffer = io.BytesIO()
        _dataset(plan, series, number, _HOLES).save_as(buffer, enforce_file_format=True)
        data = buffer.getvalue()
        expected = {"sop_uid": 2, "study_date": 2, "study_time": 2}
        for name, hole in _HOLES.items():
            found = data.count(hole.encode("ascii"))
            if found != expected.get(name, 1):
                raise AssertionError(f"placeholder {name} found {found} times in a template")
        return data


def encode_instances(plans: Sequence[StudyPlan]) -> Iterator[tuple[StudyPlan, str, bytes]]:
    """Yield each planned instance as a DICOM file (PS3.10): study, SOP Instance UID, bytes."""
    templates = _Templates()
    for plan in plans:
        for series in plan.series:
            for number, uid in enumerate(series.sop_instance_uids, start=1):
                yield plan, uid, templates.file(plan, series, number, uid)


def _file_meta_end(data: bytes) -> int:
    """Offset of the data set in a PS3.10 file written by :func:`encode_instances`."""
    # After the preamble and "DICM": (0002,0000) UL, its value at bytes 140-143.
    return 144 + int.from_bytes(data[140:144], "little")


# -- Soi ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FillReport:
    """How long filling a server took."""

    studies: int
    instances: int
    seconds: float

    @property
    def instances_per_s(self) -> float:
        """Instances indexed per second."""
        return self.instances / self.seconds if self.seconds > 0 else float("inf")


def _patient_dataset(plan: StudyPlan) -> Dataset:
    ds = Dataset()
    ds.PatientID = plan.patient_id
    ds.PatientName = plan.patient_name
    ds.PatientBirthDate = plan.birth_date
    ds.PatientSex = plan.sex
    ds.StudyInstanceUID = plan.study_instance_uid
    return ds


def _record(
    ds: Dataset, plan: StudyPlan, uid: str, facility_ids: Sequence[int], policy: IdentifierPolicy
) -> InstanceRecord:
    """The record the gateway's ingest makes of an instance's header ``ds``."""
    image_type = tuple(v for v in ds.ImageType if v)
    return InstanceRecord(
        sop_instance_uid=uid,
        sop_class_uid=str(ds.SOPClassUID),
        transfer_syntax_uid=ExplicitVRLittleEndian,
        series_instance_uid=str(ds.SeriesInstanceUID),
        study_instance_uid=str(ds.StudyInstanceUID),
        patient=patient_record_from_dataset(
            ds, facility_code=FACILITIES[plan.facility][0], policy=policy
        ),
        facility_id=facility_ids[plan.facility],
        applicability=Applicability.NOT_APPLICABLE,
        modality=str(ds.Modality),
        body_part_examined=str(ds.BodyPartExamined),
        series_number=int(ds.SeriesNumber),
        series_description=str(ds.SeriesDescription),
        accession_number=str(ds.AccessionNumber),
        study_date=str(ds.StudyDate),
        study_time=str(ds.StudyTime),
        study_description=str(ds.StudyDescription),
        instance_number=int(ds.InstanceNumber),
        image_type="\\".join(image_type),
        rows=int(ds.Rows),
        columns=int(ds.Columns),
        source_ae=_SOURCE_AE,
        source_address=_SOURCE_ADDRESS,
    )


def _write_unsynced(store: InstanceFileStore, sop_instance_uid: str, data: bytes) -> StoredFile:
    """Write a file where the store keeps it, without the fsyncs of a real ingest."""
    relative = store.relative_path_for(sop_instance_uid)
    (store.root / relative).write_bytes(data)
    return StoredFile(
        relative_path=relative, size=len(data), sha256=hashlib.sha256(data).hexdigest()
    )


def _prepare(database: Database) -> list[int]:
    upgrade(database)
    with database.write() as session:
        return [add_facility(session, code=c, name=n).id for c, n in FACILITIES]


def _fill_index(
    database: Database,
    store: InstanceFileStore,
    files: Iterator[tuple[StudyPlan, str, bytes]],
    facility_ids: Sequence[int],
    batch: int,
    progress: Callable[[int], None] | None,
) -> int:
    policy = IdentifierPolicy()
    pending: list[tuple[InstanceRecord, StoredFile]] = []
    done = 0
    for plan, uid, data in files:
        parsed = parse_instance(
            data[_file_meta_end(data) :],
            transfer_syntax_uid=ExplicitVRLittleEndian,
            affected_sop_class_uid=plan.sop_class_uid,
            affected_sop_instance_uid=uid,
            source_ae=_SOURCE_AE,
        )
        stored = _write_unsynced(store, uid, data)
        pending.append((_record(parsed.dataset, plan, uid, facility_ids, policy), stored))
        done += 1
        if len(pending) >= batch:
            with database.write() as session:
                for record, kept in pending:
                    index_instance(session, record, kept)
            pending.clear()
            if progress is not None:
                progress(done)
    if pending:
        with database.write() as session:
            for record, kept in pending:
                index_instance(session, record, kept)
    return done


class _BulkRows:
    """The rows :func:`store.index_instance` writes, made without the database."""

    def __init__(self, facility_ids: Sequence[int], now: datetime) -> None:
        self.facility_ids = facility_ids
        self.now = now
        self.policy = IdentifierPolicy()
        self.patients: dict[tuple[Any, ...], int] = {}
        self.study_ids: dict[str, int] = {}
        self.series_ids = 0
        self.instance_ids = 0
        self.rows: dict[str, list[dict[str, Any]]] = {}

    def clear(self) -> None:
        self.rows = {
            "patients": [],
            "identifiers": [],
            "studies": [],
            "series": [],
            "instances": [],
        }

    def add_study(self, plan: StudyPlan) -> None:
        record: PatientRecord = patient_record_from_dataset(
            _patient_dataset(plan), facility_code=FACILITIES[plan.facility][0], policy=self.policy
        )
        key = tuple((i.kind, i.system, i.value) for i in record.identifiers)
        patient_id = self.patients.get(key)
        if patient_id is None:
            patient_id = self.patients[key] = len(self.patients) + 1
            self.rows["patients"].append(
                {
                    "id": patient_id,
                    "name": record.name,
                    "birth_date": record.birth_date,
                    "sex": record.sex,
                    "created_at": self.now,
                    "updated_at": self.now,
                }
            )
            for kind, system, value in key:
                self.rows["identifiers"].append(
                    {"patient_id": patient_id, "kind": kind, "system": system, "value": value}
                )
        study_id = self.study_ids[plan.study_instance_uid] = len(self.study_ids) + 1
        self.rows["studies"].append(
            {
                "id": study_id,
                "study_instance_uid": plan.study_instance_uid,
                "patient_id": patient_id,
                "facility_id": self.facility_ids[plan.facility],
                "accession_number": plan.accession_number,
                "study_date": plan.study_date,
                "study_time": plan.study_time,
                "study_description": plan.description,
                "state": StudyState.RECEIVING,
                "state_reason": "",
                "num_instances": plan.number_of_instances,
                "modalities": plan.modality,
                "first_received_at": self.now,
                "last_received_at": self.now,
            }
        )
        for series in plan.series:
            self.series_ids += 1
            self.rows["series"].append(
                {
                    "id": self.series_ids,
                    "series_instance_uid": series.series_instance_uid,
                    "study_id": study_id,
                    "modality": plan.modality,
                    "body_part_examined": "HEAD" if plan.modality == "MR" else "CHEST",
                    "series_number": series.series_number,
                    "series_description": f"{plan.description} {series.series_number}",
                    "created_at": self.now,
                }
            )

    def add_instance(self, plan: StudyPlan, uid: str, number: int, stored: StoredFile) -> None:
        self.instance_ids += 1
        self.rows["instances"].append(
            {
                "id": self.instance_ids,
                "sop_instance_uid": uid,
                "sop_class_uid": plan.sop_class_uid,
                "series_id": self.series_ids - len(plan.series) + int(uid.split(".")[-2]),
                "study_id": self.study_ids[plan.study_instance_uid],
                "instance_number": number,
                "transfer_syntax_uid": ExplicitVRLittleEndian,
                "view_position": "",
                "image_type": "ORIGINAL\\PRIMARY\\AXIAL"
                if plan.modality == "CT"
                else "ORIGINAL\\PRIMARY",
                "laterality": "",
                "rows": 8,
                "columns": 8,
                "number_of_frames": None,
                "file_path": stored.relative_path,
                "file_size": stored.size,
                "sha256": stored.sha256,
                "applicability": Applicability.NOT_APPLICABLE,
                "pipelines": [],
                "source_ae": _SOURCE_AE,
                "source_address": _SOURCE_ADDRESS,
                "received_at": self.now,
            }
        )

    def write(self, session: Session) -> None:
        tables = {
            "patients": Patient,
            "identifiers": PatientIdentifier,
            "studies": Study,
            "series": Series,
            "instances": Instance,
        }
        for name, model in tables.items():
            if self.rows[name]:
                session.execute(insert(model.__table__), self.rows[name])  # type: ignore[arg-type]
        self.clear()


def _fill_bulk(
    database: Database,
    store: InstanceFileStore,
    files: Iterator[tuple[StudyPlan, str, bytes]],
    facility_ids: Sequence[int],
    batch: int,
    progress: Callable[[int], None] | None,
) -> int:
    rows = _BulkRows(facility_ids, utcnow())
    rows.clear()
    done = 0
    last_study = ""
    for plan, uid, data in files:
        if plan.study_instance_uid != last_study:
            if len(rows.rows["instances"]) >= batch:
                with database.write() as session:
                    rows.write(session)
                if progress is not None:
                    progress(done)
            rows.add_study(plan)
            last_study = plan.study_instance_uid
        number = int(uid.rsplit(".", 1)[1])
        rows.add_instance(plan, uid, number, _write_unsynced(store, uid, data))
        done += 1
    with database.write() as session:
        rows.write(session)
        if not database.is_sqlite:
            # Explicit ids leave the sequences behind; later inserts must not collide.
            for table in ("patients", "patient_identifiers", "studies", "series", "instances"):
                session.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"(SELECT COALESCE(MAX(id), 1) FROM {table}))"
                    )
                )
    return done


def fill_soi(
    *,
    database_url: str,
    instances_dir: Path,
    files: Iterator[tuple[StudyPlan, str, bytes]],
    method: str = "bulk",
    batch: int = 2000,
    progress: Callable[[int], None] | None = None,
) -> FillReport:
    """Fill a new Soi database and instance folder with ``files``.

    Parameters
    ----------
    database_url : str
        An empty database (a new SQLite file, or a fresh PostgreSQL schema); the
        schema is created and the :data:`FACILITIES` added first (not timed).
    instances_dir : pathlib.Path
        The data folder's instance folder (``Settings.instances_dir``).
    files : Iterator
        What :func:`encode_instances` yields.
    method : {"bulk", "index"}
        Multi-row inserts, or :func:`store.index_instance` per instance (see the module).
    batch : int, optional
        Instances per transaction.
    progress : Callable, optional
        Called with the number of instances done so far, after each transaction.

    Returns
    -------
    FillReport
        Studies, instances and the time it took.
    """
    if method not in ("bulk", "index"):
        raise ValueError(f"`method` must be 'bulk' or 'index', {method!r} is given")
    database = Database(database_url)
    try:
        facility_ids = _prepare(database)
        store = InstanceFileStore(instances_dir)
        fill = _fill_bulk if method == "bulk" else _fill_index
        t0 = time.perf_counter()
        done = fill(database, store, files, facility_ids, batch, progress)
        seconds = time.perf_counter() - t0
        if not database.is_sqlite:
            # Statistics, as autovacuum keeps them on a server that filled over time.
            with database.engine.connect() as connection:
                connection.execute(text("ANALYZE"))
                connection.commit()
        with database.read() as session:
            studies = len(session.scalars(select(Study.id)).all())
        return FillReport(studies=studies, instances=done, seconds=seconds)
    finally:
        database.dispose()


_TIMESTAMPS = frozenset(
    {"created_at", "updated_at", "first_received_at", "last_received_at", "received_at"}
)


def _dump(database_url: str) -> dict[str, list[tuple[Any, ...]]]:
    database = Database(database_url)
    try:
        dump: dict[str, list[tuple[Any, ...]]] = {}
        with database.read() as session:
            for model in (Patient, PatientIdentifier, Study, Series, Instance):
                table = model.__table__
                columns = [c for c in table.columns if c.name not in _TIMESTAMPS]
                rows = session.execute(select(*columns).order_by(columns[0])).all()
                dump[table.name] = [tuple(row) for row in rows]  # type: ignore[attr-defined]
        return dump
    finally:
        database.dispose()


def check_bulk_fill(plans: Sequence[StudyPlan], folder: Path) -> None:
    """Fill two SQLite databases with ``plans``, each way, and compare their rows.

    Raises
    ------
    AssertionError
        The bulk rows differ from what :func:`store.index_instance` writes (timestamps
        aside); the message names the first difference.
    """
    dumps = {}
    for method in ("index", "bulk"):
        url = f"sqlite+pysqlite:///{(folder / method / 'soi.db').resolve()}"
        fill_soi(
            database_url=url,
            instances_dir=folder / method / "instances",
            files=encode_instances(plans),
            method=method,
        )
        dumps[method] = _dump(url)
    for table, rows in dumps["index"].items():
        other = dumps["bulk"][table]
        if rows != other:
            diff = next(
                ((a, b) for a, b in zip(rows, other, strict=False) if a != b),
                (len(rows), len(other)),
            )
            raise AssertionError(f"bulk fill differs from index_instance in {table}: {diff}")


# -- Orthanc ----------------------------------------------------------------------------


def fill_orthanc(
    url: str,
    files: Iterator[tuple[StudyPlan, str, bytes]],
    *,
    threads: int = 4,
    progress: Callable[[int], None] | None = None,
    progress_every: int = 10_000,
) -> FillReport:
    """Upload instances to Orthanc's REST API (``POST /instances``) from ``threads`` threads.

    Raises
    ------
    RuntimeError
        Orthanc refused an instance.
    """
    lock = threading.Lock()
    studies: set[str] = set()
    counter = [0]
    errors: list[str] = []

    def work() -> None:
        with httpx.Client(base_url=url, timeout=120.0, trust_env=False) as client:
            while not errors:
                with lock:
                    item = next(files, None)
                if item is None:
                    return
                plan, uid, data = item
                answer = client.post(
                    "/instances", content=data, headers={"Content-Type": "application/dicom"}
                )
                if answer.status_code != 200:
                    errors.append(f"{uid}: HTTP {answer.status_code} {answer.text[:200]}")
                    return
                with lock:
                    studies.add(plan.study_instance_uid)
                    counter[0] += 1
                    if progress is not None and counter[0] % progress_every == 0:
                        progress(counter[0])

    t0 = time.perf_counter()
    workers = [threading.Thread(target=work, name=f"orthanc-fill-{i}") for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise RuntimeError(f"Orthanc refused an instance: {errors[0]}")
    return FillReport(studies=len(studies), instances=counter[0], seconds=time.perf_counter() - t0)
