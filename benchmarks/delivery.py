"""Result delivery: studies in by C-STORE, documents out to a PACS, an EMR and a HIS.

``soi serve`` runs with the shipped chest X-ray model and three destinations, each a
real peer on a free loopback port:

- ``pacs`` (dicom): Orthanc 1.10, which stores the SR, the heatmap secondary
  captures and the Encapsulated PDF;
- ``emr`` (fhir): the Medplum-based FHIR R4 receiver of the tests
  (``tests/support/fhir_server``), which validates and stores each transaction Bundle;
- ``his`` (mllp): python-hl7's MLLP server (``tests/support/hl7_peer.py``), which
  acknowledges each HL7 v2 ORU^R01 with AA.

The benchmark sends ``--count`` studies, one frontal chest radiograph each, each its
own synthetic patient with a national identity number (CCCD), from pynetdicom over one
association per study, at a steady ``--rate`` (studies/s), or as fast as Soi takes
them (``--rate 0``). With the fault phase (on by default) one peer is stopped for
``--fault-seconds`` once a quarter of the studies have their SR in the PACS, and
started again on the same port.

It then waits until the outbox is empty and prints:

- the end-to-end latency of each study, from the moment Soi acknowledged its last
  instance to the moment Soi recorded its SR as stored in Orthanc (the ``dicom-sr``
  delivery's ``sent_at``), minus the configured quiet period: p50, p95, max, and the
  stages it is made of (Soi's own timestamps);
- documents/s per channel (sent documents over the time from the channel's first
  planned document to its last sent one; in a paced run this follows the input rate,
  ``--rate 0`` gives the capacity);
- what each peer holds against what Soi planned: Orthanc instances by SOP class and
  SOP Instance UID, FHIR DiagnosticReports by their ``urn:soi:result`` identifier, HL7
  messages by control id; "lost: 0" or what is missing, and exit status 1 if anything
  is.

The FHIR receiver keeps everything in memory and resolves each conditional create by
scanning what it holds, so its time per Bundle grows with the Bundles it has stored
(about 0.1 s for the first, 2 s at 50, 4 s at 100 on the 2-core machine); Soi's
senders are per destination, so that slow EMR holds up only its own Bundles.
``--no-fhir`` leaves the EMR out. ``--poll`` sets Soi's three poll intervals (study
assembly, job worker, outbox; 0.25 s each by default).

Usage::

    .venv/bin/python benchmarks/delivery.py                    # 500 studies
    .venv/bin/python benchmarks/delivery.py --count 100 --poll 0.2
    .venv/bin/python benchmarks/delivery.py --count 100 --no-fhir --poll 0.2
    .venv/bin/python benchmarks/delivery.py --count 60 --rate 0 --no-fault --no-fhir  # capacity
    .venv/bin/python benchmarks/delivery.py --fault-peer pacs --keep

Times are wall-clock seconds; the last line is a JSON summary.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import hl7
import hl7.mllp
import httpx
import numpy as np
from pydicom import Dataset
from pydicom.uid import (
    UID,
    ComputedRadiographyImageStorage,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
)
from pynetdicom import AE
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.soi_server import SoiServer, benchmark_folder  # noqa: E402
from soi.standins import FhirReceiver as StandInEmr  # noqa: E402
from store import (  # noqa: E402
    Database,
    Delivery,
    DeliveryState,
    Job,
    Result,
    Study,
    sqlite_url,
)
from tests.support.fhir_server import (  # noqa: E402
    FhirReceiver,
    FhirReceiverError,
    FhirReceiverUnavailableError,
)
from tests.support.hl7_peer import Hl7Peer  # noqa: E402
from tests.support.net import LOOPBACK, free_port  # noqa: E402
from tests.support.orthanc import ORTHANC_BINARY, OrthancError, OrthancServer  # noqa: E402
from tests.support.tools import MissingBinaryError, find_binary  # noqa: E402
from training.phantoms import PatientIdentity, generate_cxr, phantom_to_dicom  # noqa: E402
from training.phantoms import random_patient as draw_patient  # noqa: E402
from training.phantoms.samples import CXR_SAMPLES, CxrSample  # noqa: E402

MIB = 2**20
#: The requirement: p95 of "last instance acknowledged -> SR stored", quiet period excluded.
TARGET_P95_S = 2.0
#: Default input rate (studies/s), below the capacity measured on the 2-core machine.
DEFAULT_RATE = 0.5
DEFAULT_DELIVERY_WORKERS = 1
DEFAULT_SIZE = 1024
DEFAULT_QUIET_PERIOD = 1.0
#: Phantom images drawn per sample profile; studies reuse them with new patients and UIDs.
POOL_PER_PROFILE = 2
CALLING_AET = "MODALITY"
PACS_AET = "ORTHANC"
FHIR_TOKEN = "benchmark-emr-token"
#: Destination name -> channel (the ``kind`` of ``[[destinations]]``).
CHANNELS: dict[str, str] = {"pacs": "dicom", "emr": "fhir", "his": "mllp"}
SR_KIND = "dicom-sr"
RESULT_IDENTIFIER_SYSTEM = "urn:soi:result"
#: Soi's outbox retry schedule in the benchmark (Soi's defaults are 5 s and 1800 s): a
#: peer that comes back is retried within seconds, so the run ends soon after.
RETRY_BASE_S = 1.0
RETRY_CAP_S = 8.0
#: The FHIR destination's timeout (Soi's default is 30 s): the test receiver's time per
#: Bundle grows with what it holds (about 20 s at 500), and a Bundle that times out is
#: sent again, which costs the receiver as much again.
FHIR_TIMEOUT_S = 180.0
PROGRESS_EVERY_S = 10.0

# A wide table even when the output is a file or a pipe.
console = Console() if sys.stdout.isatty() else Console(width=150)


# -- figures ----------------------------------------------------------------------------


def _percentile(values: Sequence[float], q: float) -> float | None:
    """The ``q``-th percentile (linear interpolation), None if empty."""
    return float(np.percentile(np.asarray(values, dtype=float), q)) if values else None


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _ts(value: datetime | None) -> float | None:
    """A stored UTC timestamp as seconds since the epoch."""
    return None if value is None else value.timestamp()


@dataclass
class SentStudy:
    """One study as the modality sent it."""

    index: int
    study_instance_uid: str
    profile: str
    acked_wall: float | None = None
    status: int | None = None
    error: str = ""


@dataclass
class FaultRecord:
    """When a peer was stopped and started again."""

    peer: str
    port: int
    stopped_wall: float | None = None
    restarted_wall: float | None = None
    error: str = ""

    @property
    def seconds_down(self) -> float | None:
        """How long the peer was down."""
        if self.stopped_wall is None or self.restarted_wall is None:
            return None
        return self.restarted_wall - self.stopped_wall


@dataclass
class PeerCheck:
    """What one peer holds, against what Soi planned for it."""

    channel: str
    planned: int = 0
    sent_by_soi: int = 0
    found: int = 0
    received_raw: int = 0
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    by_class: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        """Copies received beyond one per document (HL7 resends after a lost ACK)."""
        return max(0, self.received_raw - self.found)


# -- synthetic studies ----------------------------------------------------------------------


class StudyFactory:
    """Frontal chest radiographs, each its own study and patient with a CCCD.

    The images are the shipped samples' profiles (``training.phantoms.samples``: a
    normal PA DX, cardiomegaly with effusion on a MONOCHROME1 CR, a pneumothorax, an AP
    CR with consolidation and a nodule), ``POOL_PER_PROFILE`` phantoms each, drawn at
    ``size`` pixels; every study gets one of them with a new patient and new UIDs,
    uncompressed (Explicit VR Little Endian).
    """

    def __init__(self, size: int, seed: int = 20261124) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.profiles: list[CxrSample] = [s for s in CXR_SAMPLES if s.view.frontal]
        self.pool = [
            (sample, generate_cxr(self.rng, findings=sample.findings, size=size, view=sample.view))
            for _ in range(POOL_PER_PROFILE)
            for sample in self.profiles
        ]
        self._national_ids: set[str] = set()

    def _patient(self, index: int) -> PatientIdentity:
        while True:
            person = draw_patient(self.rng, patient_id=f"BENCH{index:06d}")
            if person.national_id not in self._national_ids:
                self._national_ids.add(person.national_id)
                return person

    def study(self, index: int) -> tuple[Dataset, str]:
        """The instance of study ``index`` and its profile name."""
        sample, phantom = self.pool[index % len(self.pool)]
        dataset = phantom_to_dicom(
            phantom,
            self.rng,
            modality=sample.modality,
            photometric=sample.photometric,
            patient=self._patient(index),
        )
        dataset.AccessionNumber = f"B{index:07d}"
        dataset.InstitutionName = "Soi delivery benchmark"
        return dataset, _profile_name(sample)


def _profile_name(sample: CxrSample) -> str:
    """``normal-pa`` for ``01-normal-pa.dcm``."""
    return sample.file_name.removesuffix(".dcm").split("-", 1)[-1]


def _sop_class(sample: CxrSample) -> UID:
    """SOP Class UID of a sample profile's instances."""
    if sample.modality.value == "CR":
        return ComputedRadiographyImageStorage
    return DigitalXRayImageStorageForPresentation


# -- the modality -------------------------------------------------------------------------


class Modality(threading.Thread):
    """Sends the studies to Soi at a steady rate, one association per study.

    Parameters
    ----------
    factory:
        Makes each study's instance.
    count:
        Studies to send.
    rate:
        Studies per second; 0 sends each study as soon as the previous one is
        acknowledged.
    port, called_aet:
        Soi's DIMSE listener.
    """

    def __init__(
        self, factory: StudyFactory, *, count: int, rate: float, port: int, called_aet: str
    ) -> None:
        super().__init__(name="modality", daemon=True)
        self.factory = factory
        self.count = count
        self.rate = rate
        self.port = port
        self.called_aet = called_aet
        self.sent: list[SentStudy] = []
        self.max_lag_s = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        ae = AE(ae_title=CALLING_AET)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
        for sample in self.factory.profiles:
            ae.add_requested_context(_sop_class(sample), [ExplicitVRLittleEndian])
        t0 = time.monotonic()
        for index in range(self.count):
            if self.stop_event.is_set():
                break
            dataset, profile = self.factory.study(index)
            due = t0 + index / self.rate if self.rate > 0 else time.monotonic()
            wait = due - time.monotonic()
            if wait > 0:
                self.stop_event.wait(wait)
            self.max_lag_s = max(self.max_lag_s, time.monotonic() - due)
            record = SentStudy(index, str(dataset.StudyInstanceUID), profile)
            self._store(ae, dataset, record)
            self.sent.append(record)

    def _store(self, ae: AE, dataset: Dataset, record: SentStudy) -> None:
        assoc = ae.associate(LOOPBACK, self.port, ae_title=self.called_aet)
        if not assoc.is_established:
            record.error = "association not established"
            return
        try:
            status = assoc.send_c_store(dataset)
            acked = time.time()
        finally:
            if assoc.is_established:
                assoc.release()
        if not status:
            record.error = "no C-STORE response"
            return
        record.status = int(status.Status)
        if record.status == 0x0000:
            record.acked_wall = acked
        else:
            record.error = f"C-STORE status 0x{record.status:04X}"


# -- the peers ------------------------------------------------------------------------------


class MllpPeer(Hl7Peer):
    """python-hl7's MLLP server (the tests' :class:`Hl7Peer`), whose listening socket can
    be closed and opened again on the same port while everything it received is kept."""

    def close_listener(self) -> None:
        """Stop accepting connections: senders get "connection refused"."""
        server = self._server
        if server is None:
            return

        async def close() -> None:
            server.close()
            await server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._server = None

    def reopen_listener(self, *, timeout: float = 10.0) -> None:
        """Listen again on :attr:`port`.

        Raises
        ------
        OSError
            When the port cannot be bound again within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            start = hl7.mllp.start_hl7_server(
                self._handle, LOOPBACK, self.port, encoding="utf-8", ssl=self._ssl
            )
            try:
                self._server = asyncio.run_coroutine_threadsafe(start, self._loop).result(5)
                return
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)

    def control_ids(self) -> list[str]:
        """MSH-10 of every message received, in order, resends included."""
        return [_control_id(message) for message in list(self.received)]


def _control_id(message: str) -> str:
    """MSH-10 (message control id) of an HL7 v2 message."""
    fields = message.replace("\n", "\r").split("\r", 1)[0].split("|")
    return fields[9] if len(fields) > 9 else ""


class Fault:
    """Stops one peer for a while and starts it again on the same port.

    Parameters
    ----------
    peer:
        ``"mllp"`` (the HIS) or ``"pacs"`` (Orthanc).
    seconds:
        How long the peer stays down.
    stop, start:
        Stop and start the peer.
    port:
        The port it listens on, before and after.
    """

    def __init__(
        self,
        peer: str,
        seconds: float,
        *,
        stop: Callable[[], None],
        start: Callable[[], None],
        port: int,
    ) -> None:
        self.seconds = seconds
        self.record = FaultRecord(peer=peer, port=port)
        self._stop = stop
        self._start = start
        self._down_since = 0.0

    @property
    def started(self) -> bool:
        """Whether the peer was stopped."""
        return self.record.stopped_wall is not None

    @property
    def over(self) -> bool:
        """Whether the peer was started again (or failed to)."""
        return self.record.restarted_wall is not None or bool(self.record.error)

    def begin(self) -> None:
        """Stop the peer."""
        console.print(f"  fault: stopping the {self.record.peer} peer (port {self.record.port})")
        self._stop()
        self.record.stopped_wall = time.time()
        self._down_since = time.monotonic()

    def poll(self) -> None:
        """Start the peer again once it has been down long enough."""
        if not self.started or self.over:
            return
        if time.monotonic() - self._down_since < self.seconds:
            return
        try:
            self._start()
        except (OSError, OrthancError, RuntimeError) as exc:
            self.record.error = f"{type(exc).__name__}: {exc}"
            console.print(f"  [red]fault: the {self.record.peer} peer did not start: {exc}[/red]")
            return
        self.record.restarted_wall = time.time()
        console.print(
            f"  fault: the {self.record.peer} peer is back on port {self.record.port} after "
            f"{self.record.seconds_down:.1f} s"
        )


# -- soi serve ------------------------------------------------------------------------------


def _toml(value: str | float) -> str:
    """A TOML scalar (JSON strings are TOML basic strings)."""
    return json.dumps(value)


def write_config(
    path: Path,
    *,
    pacs_port: int,
    fhir_url: str | None,
    mllp_port: int,
    poll_s: float | None,
) -> str:
    """Write Soi's TOML configuration with the destinations; return its text."""
    lines = [
        f"delivery_retry_base_seconds = {_toml(RETRY_BASE_S)}",
        f"delivery_retry_cap_seconds = {_toml(RETRY_CAP_S)}",
    ]
    if poll_s is not None:
        for key in ("assembly", "worker", "delivery"):
            lines.append(f"{key}_interval_seconds = {_toml(poll_s)}")
    destinations: list[Mapping[str, str | float]] = [
        {
            "name": "pacs",
            "kind": "dicom",
            "ae_title": PACS_AET,
            "host": LOOPBACK,
            "port": pacs_port,
        },
        {"name": "his", "kind": "mllp", "host": LOOPBACK, "port": mllp_port},
    ]
    if fhir_url is not None:
        emr = {"name": "emr", "kind": "fhir", "url": fhir_url, "token": FHIR_TOKEN}
        destinations.insert(1, {**emr, "timeout_seconds": FHIR_TIMEOUT_S})
    for destination in destinations:
        lines += ["", "[[destinations]]"]
        lines += [f"{key} = {_toml(value)}" for key, value in destination.items()]
    text = "\n".join(lines) + "\n"
    path.write_text(text, "utf-8")
    return text


# -- Soi's records --------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Counts read from Soi's database while the run goes on."""

    studies: int
    results: int
    sr_sent: int
    deliveries: dict[str, int]

    @property
    def waiting(self) -> int:
        """Deliveries not settled yet (pending or retrying)."""
        return self.deliveries.get("pending", 0) + self.deliveries.get("retrying", 0)


@dataclass(frozen=True)
class DeliveryRow:
    """One outbox row, as read at the end."""

    id: int
    study_id: int
    result_id: int | None
    destination: str
    kind: str
    state: str
    attempts: int
    document_id: str
    created_at: float
    sent_at: float | None
    last_error: str


@dataclass
class Records:
    """Soi's rows for the run's studies, read once the outbox is empty."""

    study_ids: dict[str, int] = field(default_factory=dict)
    last_received: dict[int, float] = field(default_factory=dict)
    stable: dict[int, float | None] = field(default_factory=dict)
    claimed: dict[int, float | None] = field(default_factory=dict)
    job_states: dict[int, str] = field(default_factory=dict)
    results: dict[int, tuple[int, float, str]] = field(default_factory=dict)
    deliveries: list[DeliveryRow] = field(default_factory=list)


class SoiRecords:
    """Reads Soi's SQLite database (WAL: reading never blocks Soi's writers)."""

    def __init__(self, data_dir: Path) -> None:
        self.database = Database(sqlite_url(data_dir / "soi.db"))

    def progress(self) -> Progress:
        """Counts of studies, results and deliveries by state."""
        with self.database.read() as session:
            studies = session.scalar(select(func.count(Study.id))) or 0
            results = session.scalar(select(func.count(Result.id))) or 0
            by_state = session.execute(
                select(Delivery.state, func.count(Delivery.id)).group_by(Delivery.state)
            ).all()
            sr_sent = (
                session.scalar(
                    select(func.count(Delivery.id)).where(
                        Delivery.kind == SR_KIND, Delivery.state == DeliveryState.SENT
                    )
                )
                or 0
            )
        return Progress(
            studies=studies,
            results=results,
            sr_sent=sr_sent,
            deliveries={str(DeliveryState(state).value): n for state, n in by_state},
        )

    def read(self) -> Records:
        """Every study, job, result and delivery."""
        records = Records()
        with self.database.read() as session:
            for study in session.scalars(select(Study)):
                records.study_ids[study.study_instance_uid] = study.id
                records.last_received[study.id] = study.last_received_at.timestamp()
                records.stable[study.id] = _ts(study.stable_at)
            for job in session.scalars(select(Job).order_by(Job.id)):
                records.claimed[job.study_id] = _ts(job.claimed_at)
                records.job_states[job.study_id] = str(job.state.value)
            for result in session.scalars(select(Result).order_by(Result.id)):
                records.results[result.study_id] = (
                    result.id,
                    result.created_at.timestamp(),
                    str(result.state.value),
                )
            for row in session.scalars(select(Delivery).order_by(Delivery.id)):
                records.deliveries.append(
                    DeliveryRow(
                        id=row.id,
                        study_id=row.study_id,
                        result_id=row.result_id,
                        destination=row.destination,
                        kind=row.kind,
                        state=str(row.state.value),
                        attempts=row.attempts,
                        document_id=row.document_id,
                        created_at=row.created_at.timestamp(),
                        sent_at=_ts(row.sent_at),
                        last_error=row.last_error,
                    )
                )
        return records

    def close(self) -> None:
        """Close the connections."""
        self.database.dispose()


# -- what the peers hold ----------------------------------------------------------------------


def _uid_name(uid: str) -> str:
    name = UID(uid).name
    return name if name and name != uid else uid


def _planned(records: Records, destination: str) -> list[DeliveryRow]:
    return [row for row in records.deliveries if row.destination == destination]


def _not_sent(row: DeliveryRow) -> str:
    error = f": {row.last_error[:160]}" if row.last_error else ""
    where = f"{row.kind} of result {row.result_id}"
    return f"{where} is {row.state} after {row.attempts} attempt(s){error}"


def check_pacs(orthanc: OrthancServer, records: Records) -> PeerCheck:
    """Orthanc's instances (by SOP Instance UID and SOP class) against the DICOM deliveries."""
    check = PeerCheck(channel="dicom")
    client = orthanc.client
    stored: dict[str, str] = {}
    for item in client.get("/instances", params={"expand": ""}).json():
        sop_instance_uid = str(item["MainDicomTags"]["SOPInstanceUID"])
        sop_class = client.get(f"/instances/{item['ID']}/metadata/SopClassUid").text.strip()
        stored[sop_instance_uid] = sop_class
    check.received_raw = len(stored)
    check.by_class = dict(Counter(_uid_name(c) for c in stored.values()))
    planned = _planned(records, "pacs")
    check.planned = len(planned)
    sent_uids: set[str] = set()
    for row in planned:
        if row.state != "sent":
            check.missing.append(_not_sent(row))
            continue
        check.sent_by_soi += 1
        sent_uids.add(row.document_id)
        if row.document_id in stored:
            check.found += 1
        else:
            check.missing.append(
                f"{row.kind} {row.document_id} of result {row.result_id}: sent, not in Orthanc"
            )
    check.unexpected = [
        f"{_uid_name(stored[uid])} {uid}: in Orthanc, not planned by Soi"
        for uid in sorted(set(stored) - sent_uids)
    ]
    return check


def _diagnostic_reports(emr: FhirReceiver | StandInEmr, page: int = 200) -> list[dict[str, Any]]:
    """Every DiagnosticReport the receiver holds."""
    if isinstance(emr, StandInEmr):
        return emr.resources("DiagnosticReport")
    found: list[dict[str, Any]] = []
    while True:
        bundle = emr.search("DiagnosticReport", _count=str(page), _offset=str(len(found)))
        entries = bundle.get("entry") or []
        found += [entry["resource"] for entry in entries]
        if len(entries) < page:
            return found


def check_emr(emr: FhirReceiver | StandInEmr, records: Records) -> PeerCheck:
    """The receiver's DiagnosticReports (by ``urn:soi:result`` identifier) against the
    FHIR deliveries; a second report for one result would be a duplicate."""
    check = PeerCheck(channel="fhir")
    reports = _diagnostic_reports(emr)
    check.received_raw = len(reports)
    by_result: Counter[str] = Counter()
    for report in reports:
        for identifier in report.get("identifier") or []:
            if identifier.get("system") == RESULT_IDENTIFIER_SYSTEM:
                by_result[str(identifier.get("value"))] += 1
    check.by_class = {"DiagnosticReport": len(reports)}
    planned = _planned(records, "emr")
    check.planned = len(planned)
    expected: set[str] = set()
    for row in planned:
        key = str(row.result_id)
        expected.add(key)
        if row.state != "sent":
            check.missing.append(_not_sent(row))
            continue
        check.sent_by_soi += 1
        if by_result[key] >= 1:
            check.found += 1
        else:
            check.missing.append(f"DiagnosticReport of result {key}: sent, not at the EMR")
    check.unexpected = [
        f"DiagnosticReport of result {key}: {n} copies" for key, n in by_result.items() if n > 1
    ] + [f"DiagnosticReport of result {key}: not planned" for key in set(by_result) - expected]
    return check


def check_his(his: MllpPeer, records: Records) -> PeerCheck:
    """The HL7 messages the peer received (by control id) against the MLLP deliveries;
    a message resent after a lost ACK arrives twice with the same control id."""
    check = PeerCheck(channel="mllp")
    received = Counter(his.control_ids())
    check.received_raw = sum(received.values())
    check.by_class = {"ORU^R01": check.received_raw}
    planned = _planned(records, "his")
    check.planned = len(planned)
    expected: set[str] = set()
    for row in planned:
        if row.state != "sent":
            check.missing.append(_not_sent(row))
            continue
        check.sent_by_soi += 1
        expected.add(row.document_id)
        if received[row.document_id] >= 1:
            check.found += 1
        else:
            check.missing.append(f"ORU {row.document_id}: acknowledged, not at the HIS peer")
    check.unexpected = [
        f"ORU {control_id}: not planned" for control_id in sorted(set(received) - expected)
    ]
    return check


# -- figures from the records -------------------------------------------------------------------


@dataclass
class Latencies:
    """End-to-end latency per study and its stages, in seconds."""

    end_to_end: list[float] = field(default_factory=list)
    unaffected: list[float] = field(default_factory=list)
    by_profile: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    by_quarter: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))
    stages: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    incomplete: list[str] = field(default_factory=list)


STAGES = (
    ("ack -> stable", "quiet period excluded: the assembler's poll"),
    ("stable -> job claimed", "the job worker's poll and queue"),
    ("claimed -> result", "inference, heatmaps, result stored"),
    ("result -> SR sent", "outbox: poll, heatmap SCs first, SR built and C-STOREd"),
)


def latencies(sent: Sequence[SentStudy], records: Records, quiet_period: float) -> Latencies:
    """Each acknowledged study's latency from its ack to its SR's ``sent_at``."""
    figures = Latencies()
    count = max(1, len(sent))
    sr_rows = {row.result_id: row for row in records.deliveries if row.kind == SR_KIND}
    for study in sent:
        if study.acked_wall is None:
            continue
        study_id = records.study_ids.get(study.study_instance_uid)
        if study_id is None:
            figures.incomplete.append(f"study {study.index}: not in Soi's database")
            continue
        result = records.results.get(study_id)
        if result is None:
            state = records.job_states.get(study_id, "no job")
            figures.incomplete.append(f"study {study.index}: no result (job {state})")
            continue
        result_id, result_at, _ = result
        sr = sr_rows.get(result_id)
        if sr is None:
            figures.incomplete.append(f"study {study.index}: no SR planned")
            continue
        if sr.sent_at is None:  # listed with the PACS's missing documents
            continue
        total = sr.sent_at - study.acked_wall - quiet_period
        figures.end_to_end.append(total)
        figures.by_profile[study.profile].append(total)
        figures.by_quarter[1 + 4 * study.index // count].append(total)
        if sr.attempts == 1:
            figures.unaffected.append(total)
        stable = records.stable.get(study_id)
        claimed = records.claimed.get(study_id)
        if stable is not None:
            figures.stages["ack -> stable"].append(stable - study.acked_wall - quiet_period)
            if claimed is not None:
                figures.stages["stable -> job claimed"].append(claimed - stable)
        if claimed is not None:
            figures.stages["claimed -> result"].append(result_at - claimed)
        figures.stages["result -> SR sent"].append(sr.sent_at - result_at)
    return figures


@dataclass(frozen=True)
class ChannelRate:
    """Documents one destination got over the run."""

    destination: str
    channel: str
    planned: int
    sent: int
    dead: int
    retries: int
    seconds: float | None

    @property
    def per_second(self) -> float | None:
        """Sent documents per second over the channel's window."""
        return self.sent / self.seconds if self.seconds else None


def channel_rates(records: Records) -> list[ChannelRate]:
    """Per destination: documents sent over the time from its first planned document
    to its last sent one."""
    rates: list[ChannelRate] = []
    for destination, channel in CHANNELS.items():
        rows = _planned(records, destination)
        if not rows:
            continue
        sent = [row for row in rows if row.state == "sent" and row.sent_at is not None]
        seconds = (
            max(row.sent_at for row in sent if row.sent_at is not None)
            - min(row.created_at for row in rows)
            if sent
            else None
        )
        rates.append(
            ChannelRate(
                destination=destination,
                channel=channel,
                planned=len(rows),
                sent=len(sent),
                dead=sum(1 for row in rows if row.state == "dead"),
                retries=sum(max(0, row.attempts - 1) for row in rows),
                seconds=seconds,
            )
        )
    return rates


# -- the run -------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """Everything measured in one run."""

    modality: Modality
    records: Records
    checks: list[PeerCheck]
    fault: FaultRecord | None
    drained: bool
    elapsed_s: float
    soi_peak_rss: int | None


def _wait_for_outbox(
    modality: Modality,
    soi_records: SoiRecords,
    fault: Fault | None,
    *,
    count: int,
    drain_timeout: float,
    soi: SoiServer,
) -> bool:
    """Poll Soi's database until every acknowledged study has its result and no delivery
    waits; run the fault on the way. Return whether the outbox drained in time."""
    t0 = time.monotonic()
    last_print = 0.0
    idle_since: float | None = None
    trigger = max(1, count // 4)
    while True:
        time.sleep(0.5)
        if soi.process is not None and soi.process.poll() is not None:
            console.print(f"[red]soi serve exited:[/red]\n{soi.log_tail()}")
            return False
        progress = soi_records.progress()
        if fault is not None:
            if not fault.started and progress.sr_sent >= trigger:
                fault.begin()
            fault.poll()
        acked = sum(1 for s in list(modality.sent) if s.acked_wall is not None)
        now = time.monotonic()
        if now - last_print >= PROGRESS_EVERY_S:
            last_print = now
            states = ", ".join(f"{k} {v}" for k, v in sorted(progress.deliveries.items()))
            console.print(
                f"  {now - t0:6.1f} s: sent {len(modality.sent)}/{count} ({acked} acked), "
                f"results {progress.results}, SR in PACS {progress.sr_sent}, "
                f"documents: {states or 'none yet'}"
            )
        fault_done = fault is None or not fault.started or fault.over
        if modality.is_alive() or not fault_done:
            continue
        if progress.results >= acked and progress.waiting == 0:
            return True
        idle_since = idle_since or now
        if now - idle_since > drain_timeout:
            console.print(
                f"[red]the outbox did not drain within {drain_timeout:.0f} s after the last "
                f"study: {progress}[/red]"
            )
            return False


def run_benchmark(args: argparse.Namespace, folder: Path) -> RunOutcome:
    """Start the peers and ``soi serve``, send the studies, wait, read what arrived."""
    t0 = time.perf_counter()
    factory = StudyFactory(args.size)
    console.print(
        f"  {len(factory.pool)} phantoms of {args.size} x {args.size} px drawn in "
        f"{time.perf_counter() - t0:.1f} s (profiles: "
        f"{', '.join(_profile_name(s) for s in factory.profiles)})"
    )
    pacs = OrthancServer(folder / "orthanc", aet=PACS_AET, dicom_port=free_port())
    emr: FhirReceiver | StandInEmr | None = None
    if args.fhir:
        emr = (
            FhirReceiver(folder / "emr", token=FHIR_TOKEN)
            if args.emr == "medplum"
            else StandInEmr(token=FHIR_TOKEN)
        )
    his = MllpPeer()
    with ExitStack() as peers:
        pacs.start()
        peers.callback(pacs.stop)
        if emr is not None:
            emr.start()
            peers.callback(emr.stop)
        his.start()
        peers.callback(his.stop)
        console.print(
            f"  peers: Orthanc DICOM {pacs.dicom_port}, "
            f"FHIR receiver {emr.base_url if emr is not None else '(none)'}, MLLP {his.port}"
        )
        config = folder / "soi.toml"
        write_config(
            config,
            pacs_port=pacs.dicom_port,
            fhir_url=emr.base_url if emr is not None else None,
            mllp_port=his.port,
            poll_s=args.poll,
        )
        fault: Fault | None = None
        if args.fault:
            if args.fault_peer == "mllp":
                fault = Fault(
                    "mllp",
                    args.fault_seconds,
                    stop=his.close_listener,
                    start=his.reopen_listener,
                    port=his.port,
                )
            else:
                fault = Fault(
                    "pacs",
                    args.fault_seconds,
                    stop=pacs.stop,
                    start=pacs.start,
                    port=pacs.dicom_port,
                )
        server = SoiServer(
            args.soi,
            folder / "soi",
            args=("--config", str(config), "--quiet-period", f"{args.quiet_period:g}"),
            env={
                "SOI_DELIVERY_WORKERS": str(args.workers),
                "SOI_WORKERS": str(args.job_workers),
            },
        )
        with server as soi:
            console.print(f"  soi serve ready in {soi.startup_s:.1f} s")
            soi_records = SoiRecords(soi.data_dir)
            peers.callback(soi_records.close)
            modality = Modality(
                factory, count=args.count, rate=args.rate, port=soi.dicom_port, called_aet=soi.aet
            )
            started = time.perf_counter()
            modality.start()
            try:
                drained = _wait_for_outbox(
                    modality,
                    soi_records,
                    fault,
                    count=args.count,
                    drain_timeout=args.drain_timeout or 600.0 + 20.0 * args.count,
                    soi=soi,
                )
            finally:
                modality.stop_event.set()
                modality.join(120)
                if fault is not None and fault.started and not fault.over:
                    fault.seconds = 0.0
                    fault.poll()
            elapsed = time.perf_counter() - started
            peak = soi.peak_rss_bytes()
            records = soi_records.read()
        console.print("  checking what the peers hold ...")
        checks = [_checked("dicom", lambda: check_pacs(pacs, records))]
        if emr is not None:
            checks.append(_checked("fhir", lambda: check_emr(emr, records)))
        checks.append(_checked("mllp", lambda: check_his(his, records)))
        return RunOutcome(
            modality=modality,
            records=records,
            checks=checks,
            fault=fault.record if fault is not None and fault.started else None,
            drained=drained,
            elapsed_s=elapsed,
            soi_peak_rss=peak,
        )


def _checked(channel: str, check: Callable[[], PeerCheck]) -> PeerCheck:
    """Run one peer's check; a peer that cannot be asked counts as holding nothing."""
    try:
        return check()
    except (httpx.HTTPError, OrthancError, FhirReceiverError, ValueError) as exc:
        return PeerCheck(channel=channel, missing=[f"cannot ask the peer: {exc}"])


# -- the report ----------------------------------------------------------------------------------


def report(args: argparse.Namespace, outcome: RunOutcome) -> int:
    """Print the tables and the JSON summary line; return the exit status."""
    records = outcome.records
    modality = outcome.modality
    acked = [s for s in modality.sent if s.acked_wall is not None]
    refused = [s for s in modality.sent if s.acked_wall is None]
    figures = latencies(modality.sent, records, args.quiet_period)
    rates = channel_rates(records)
    ack_times = sorted(s.acked_wall for s in acked if s.acked_wall is not None)
    send_s = ack_times[-1] - ack_times[0] if len(ack_times) > 1 else 0.0
    summary: dict[str, Any] = {
        "count": args.count,
        "acked": len(acked),
        "size_px": args.size,
        "rate_per_s": args.rate,
        "achieved_rate_per_s": _round((len(ack_times) - 1) / send_s if send_s > 0 else None),
        "send_max_lag_s": _round(modality.max_lag_s),
        "delivery_workers": args.workers,
        "job_workers": args.job_workers,
        "quiet_period_s": args.quiet_period,
        "poll_s": args.poll,
        "fhir": args.fhir,
        "elapsed_s": _round(outcome.elapsed_s, 1),
        "soi_peak_rss_mib": _round(outcome.soi_peak_rss / MIB, 1) if outcome.soi_peak_rss else None,
        "drained": outcome.drained,
    }

    table = Table(
        title=f"End to end, last instance acknowledged -> SR stored in Orthanc, "
        f"{args.quiet_period:g} s quiet period excluded ({len(figures.end_to_end)} studies)"
    )
    for column in ("", "p50 s", "p95 s", "max s", "what"):
        table.add_column(column, justify="left" if column in ("", "what") else "right")
    e2e = figures.end_to_end
    table.add_row(
        "end to end",
        _fmt(_percentile(e2e, 50)),
        _fmt(_percentile(e2e, 95)),
        _fmt(max(e2e) if e2e else None),
        f"target p95 <= {TARGET_P95_S:g} s",
    )
    for stage, what in STAGES:
        values = figures.stages.get(stage, [])
        table.add_row(
            f"  {stage}",
            _fmt(_percentile(values, 50)),
            _fmt(_percentile(values, 95)),
            _fmt(max(values) if values else None),
            what,
        )
        key = stage.replace(" -> ", "_to_").replace(" ", "_")
        summary[f"stage_{key}_p50_s"] = _round(_percentile(values, 50))
        summary[f"stage_{key}_p95_s"] = _round(_percentile(values, 95))
    if outcome.fault is not None and outcome.fault.peer == "pacs":
        unaffected = figures.unaffected
        table.add_row(
            "SR not retried",
            _fmt(_percentile(unaffected, 50)),
            _fmt(_percentile(unaffected, 95)),
            _fmt(max(unaffected) if unaffected else None),
            f"{len(unaffected)} studies whose SR went at its first attempt",
        )
        summary["e2e_first_attempt_p95_s"] = _round(_percentile(unaffected, 95))
    console.print(table)
    console.print(
        "  end to end by image, p50/p95 s (studies): "
        + ", ".join(
            f"{profile} {_fmt(_percentile(values, 50))}/{_fmt(_percentile(values, 95))} "
            f"({len(values)})"
            for profile, values in sorted(figures.by_profile.items())
        )
    )
    console.print(
        "  end to end by quarter of the run, p50/p95 s: "
        + ", ".join(
            f"{quarter}: {_fmt(_percentile(values, 50))}/{_fmt(_percentile(values, 95))}"
            for quarter, values in sorted(figures.by_quarter.items())
        )
    )
    p95 = _percentile(e2e, 95)
    summary["e2e_p95_by_quarter_s"] = [
        _round(_percentile(values, 95)) for _, values in sorted(figures.by_quarter.items())
    ]
    summary["e2e_p50_s"] = _round(_percentile(e2e, 50))
    summary["e2e_p95_s"] = _round(p95)
    summary["e2e_max_s"] = _round(max(e2e) if e2e else None)
    summary["target_p95_met"] = p95 is not None and p95 <= TARGET_P95_S

    table = Table(title="Documents per channel")
    for column in ("destination", "channel", "planned", "sent", "dead", "retries", "window s"):
        table.add_column(column, justify="left" if column == "destination" else "right")
    table.add_column("documents/s", justify="right")
    for rate in rates:
        table.add_row(
            rate.destination,
            rate.channel,
            str(rate.planned),
            str(rate.sent),
            str(rate.dead),
            str(rate.retries),
            _fmt(rate.seconds, 1),
            _fmt(rate.per_second),
        )
        summary[f"{rate.channel}_documents_per_s"] = _round(rate.per_second)
        summary[f"{rate.channel}_planned"] = rate.planned
        summary[f"{rate.channel}_retries"] = rate.retries
    console.print(table)
    kinds = Counter(
        row.kind.split(":", 1)[0] if row.kind.startswith("dicom-heatmap") else row.kind
        for row in records.deliveries
    )
    console.print(
        "  documents planned by kind: " + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
    )

    table = Table(title="What each peer holds, against what Soi planned")
    for column in ("peer", "planned", "acked to Soi", "found", "missing", "unexpected"):
        table.add_column(column, justify="left" if column == "peer" else "right")
    table.add_column("received (raw)", justify="right")
    table.add_column("by class", justify="left")
    peers = {"dicom": "Orthanc", "fhir": "FHIR receiver", "mllp": "HL7 peer"}
    lost: list[str] = []
    for check in outcome.checks:
        table.add_row(
            peers[check.channel],
            str(check.planned),
            str(check.sent_by_soi),
            str(check.found),
            str(len(check.missing)),
            str(len(check.unexpected)),
            str(check.received_raw),
            ", ".join(f"{name} {n}" for name, n in sorted(check.by_class.items())),
        )
        summary[f"{check.channel}_found"] = check.found
        summary[f"{check.channel}_duplicates_received"] = check.duplicates
        lost += [f"{check.channel}: {item}" for item in check.missing]
    console.print(table)
    unexpected = [f"{c.channel}: {item}" for c in outcome.checks for item in c.unexpected]
    lost += [f"study {s.index} not accepted by Soi: {s.error}" for s in refused]
    lost += figures.incomplete
    if len(modality.sent) < args.count:
        lost.append(f"only {len(modality.sent)} of {args.count} studies were sent")

    if outcome.fault is not None:
        fault = outcome.fault
        down = fault.seconds_down
        console.print(
            f"Fault: the {fault.peer} peer was stopped for {_fmt(down, 1)} s and started again "
            f"on port {fault.port}" + (f" [red]({fault.error})[/red]" if fault.error else "")
        )
        summary["fault_peer"] = fault.peer
        summary["fault_seconds_down"] = _round(down, 1)
        if fault.error:
            lost.append(f"fault: {fault.error}")
    elif args.fault:
        console.print("[yellow]Fault: not started (the run ended before a quarter of the SRs)[/]")
        summary["fault_peer"] = None
    duplicates = {c.channel: c.duplicates for c in outcome.checks if c.duplicates}
    if duplicates:
        console.print(
            "Received more than once (same document id, counted once above): "
            + ", ".join(f"{k} {n}" for k, n in duplicates.items())
        )
    if unexpected:
        console.print(f"[red]unexpected at the peers: {len(unexpected)}[/red]")
        for item in unexpected[:20]:
            console.print(f"  {item}")
    if lost:
        console.print(f"[red]lost: {len(lost)}[/red]")
        for item in lost[:40]:
            console.print(f"  {item}")
        if len(lost) > 40:
            console.print(f"  ... and {len(lost) - 40} more")
    else:
        console.print("lost: 0")
    if not outcome.drained:
        console.print("[red]the outbox had not drained when the run stopped[/red]")
    met = "met" if summary["target_p95_met"] else "[red]missed[/red]"
    console.print(
        f"p95 {_fmt(p95)} s against the target of {TARGET_P95_S:g} s: {met}. Input: "
        f"{len(acked)} studies at {summary['achieved_rate_per_s']} studies/s "
        f"(asked {'as fast as possible' if args.rate == 0 else f'{args.rate:g}'}); "
        f"soi serve peak RSS {summary['soi_peak_rss_mib']} MiB."
    )
    summary["lost"] = len(lost)
    summary["unexpected"] = len(unexpected)
    print(json.dumps(summary, sort_keys=True))
    return 0 if not lost and not unexpected and outcome.drained else 1


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number, {text} is given")
        return value

    return parse


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, {text} is given")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=_positive(int), default=500, help="studies (default 500)")
    parser.add_argument(
        "--rate",
        type=_non_negative,
        default=DEFAULT_RATE,
        help=f"studies sent per second (default {DEFAULT_RATE:g}); 0: as fast as possible",
    )
    parser.add_argument(
        "--size",
        type=_positive(int),
        default=DEFAULT_SIZE,
        help=f"rows and columns of the radiographs (default {DEFAULT_SIZE}), 16-bit",
    )
    parser.add_argument(
        "--workers",
        type=_positive(int),
        default=DEFAULT_DELIVERY_WORKERS,
        help=f"outbox senders, SOI_DELIVERY_WORKERS (default {DEFAULT_DELIVERY_WORKERS})",
    )
    parser.add_argument(
        "--job-workers", type=_positive(int), default=1, help="SOI_WORKERS (default 1)"
    )
    parser.add_argument(
        "--quiet-period",
        type=_non_negative,
        default=DEFAULT_QUIET_PERIOD,
        help=f"soi serve --quiet-period (default {DEFAULT_QUIET_PERIOD:g} s)",
    )
    parser.add_argument(
        "--poll",
        type=_positive(float),
        default=None,
        help="assembly, job worker and outbox poll intervals in seconds "
        "(default: Soi's defaults, 0.25 s each)",
    )
    parser.add_argument(
        "--no-fhir",
        dest="fhir",
        action="store_false",
        help="no FHIR destination (the Medplum receiver's time per Bundle grows with what "
        "it holds; this measures the other channels without it)",
    )
    parser.add_argument(
        "--emr",
        choices=("medplum", "standin"),
        default="medplum",
        help="the FHIR receiver: the Medplum-based one of the tests (default; slow past "
        "100 Bundles), or Soi's own FHIR stand-in (soi.standins.FhirReceiver)",
    )
    parser.add_argument("--no-fault", dest="fault", action="store_false", help="no peer outage")
    parser.add_argument(
        "--fault-peer",
        choices=("mllp", "pacs"),
        default="mllp",
        help="the peer stopped during the run (default mllp)",
    )
    parser.add_argument(
        "--fault-seconds",
        type=_positive(float),
        default=10.0,
        help="how long it stays down (default 10 s)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=_positive(float),
        default=None,
        help="seconds to wait for the outbox after the last study (default 600 + 20 per study)",
    )
    parser.add_argument(
        "--soi",
        type=Path,
        default=Path(sys.executable).parent / "soi",
        help="the soi console script (default: next to this interpreter)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent folder of the benchmark's temporary folder (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)

    if find_binary(ORTHANC_BINARY) is None:
        console.print(f"[red]missing program: {ORTHANC_BINARY}[/red]")
        return 2
    if not args.soi.exists():
        console.print(f"[red]{args.soi} does not exist[/red]")
        return 2
    rate = "as fast as possible" if args.rate == 0 else f"{args.rate:g} studies/s"
    fault = f"{args.fault_peer} down {args.fault_seconds:g} s" if args.fault else "none"
    peers = "Orthanc, FHIR receiver, HL7 peer" if args.fhir else "Orthanc, HL7 peer (no FHIR)"
    console.print(
        f"Delivery benchmark: {args.count} studies ({args.size} x {args.size} px, 16-bit, "
        f"uncompressed), {rate}, to {peers}; {args.workers} outbox sender(s), "
        f"{args.job_workers} job worker(s), quiet period {args.quiet_period:g} s, polls "
        f"{'1 s (defaults)' if args.poll is None else f'{args.poll:g} s'}; fault: {fault}; "
        f"CPU: {os.cpu_count()} logical cores"
    )
    with benchmark_folder(
        args.workdir, args.keep, prefix="soi-delivery-bench-", say=console.print
    ) as folder:
        try:
            outcome = run_benchmark(args, folder)
        except (
            OrthancError,
            FhirReceiverError,
            FhirReceiverUnavailableError,
            MissingBinaryError,
            RuntimeError,
            OSError,
        ) as exc:
            console.print(f"[red]{type(exc).__name__}: {exc}[/red]")
            return 2
    return report(args, outcome)


if __name__ == "__main__":
    sys.exit(main())
