"""``soi demo``: Soi on the embedded default, end to end, on the shipped sample studies.

The demonstration starts, on loopback ports, a PACS (Orthanc when installed, otherwise
Soi's DICOM stand-in), Soi's FHIR stand-in as the EMR and Soi's MLLP stand-in as the
legacy HIS; then ``soi serve`` as a child process with a throw-away data folder and
those three destinations. It sends the samples by C-STORE, follows each study through
Soi's HTTP API (with a token of an integration account it creates in the throw-away
database) until its AI result is stored and every document has been delivered or
dead-lettered, checks what each receiver holds, and writes the PDF reports and heatmap
overlays. Every step that fails is named in :attr:`DemoReport.failures`.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import httpx
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dicom_gateway import GatewayError, Target, collect_files, send
from soi.auth import local_caller
from soi.demo.destinations import DemoDestination, PacsChoice, start_destinations
from soi.demo.errors import DemoError
from soi.demo.outputs import write_outputs
from soi.demo.server import ServeProcess, TomlValue, write_toml
from soi.runtime import open_database
from soi.schemas import DeliveryOut, StudyDetail
from soi.services import service_account_token
from soi.settings import SHIPPED_SAMPLES_DIR, load_settings
from soi.standins import LOOPBACK, free_port

__all__ = ["DemoOptions", "DemoProgress", "DemoReport", "StudyOutcome", "run_demo"]

#: Soi's AE title in the demo, and the modality's.
SOI_AE_TITLE, MODALITY_AE_TITLE = "SOI", "DEMO_MODALITY"
#: Delivery states after which nothing more happens without a person.
_SETTLED = frozenset({"sent", "dead"})


class DemoProgress(Protocol):
    """Where the demonstration reports what it is doing."""

    def step(self, text: str) -> None:
        """A new step begins."""

    def update(self, text: str, done: int, total: int) -> None:
        """Progress within the current step."""

    def note(self, text: str) -> None:
        """Something worth keeping on screen."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What to run.

    Parameters
    ----------
    out_dir:
        Where the PDFs, heatmaps and what the stand-ins received are written.
    samples:
        DICOM files or folders to send (default: the shipped synthetic chest X-rays).
    pacs:
        ``auto``: Orthanc when installed, else Soi's DICOM stand-in; or either by name.
    timeout:
        Seconds to wait for every result and delivery once the samples are sent.
    keep:
        Keep Soi's data folder (and the PACS's) instead of removing it at the end.
    """

    out_dir: Path
    samples: Sequence[Path] = (SHIPPED_SAMPLES_DIR / "cxr",)
    pacs: PacsChoice = "auto"
    timeout: float = 300.0
    keep: bool = False


@dataclass
class StudyOutcome:
    """One sample study: what the AI concluded and where its documents went."""

    sample: str
    study_instance_uid: str
    detail: StudyDetail | None = None
    outputs: list[Path] = field(default_factory=list)

    @property
    def result_state(self) -> str:
        """``complete``, ``ungradable``, ``failed``, or ``none`` while no result exists."""
        if self.detail is None or not self.detail.results:
            return "none"
        return self.detail.results[-1].state

    @property
    def documents(self) -> list[DeliveryOut]:
        """The deliveries of the current result."""
        if self.detail is None or not self.detail.results:
            return []
        current = self.detail.results[-1].id
        return [d for d in self.detail.deliveries if d.result_id == current]

    @property
    def settled(self) -> bool:
        """Whether nothing more will happen: a result and every document sent or dead,
        or a job that failed for good."""
        if self.detail is None:
            return False
        if any(job.state == "failed" for job in self.detail.jobs) and not self.detail.results:
            return True
        return self.result_state != "none" and all(d.state in _SETTLED for d in self.documents)


@dataclass
class DemoReport:
    """What the demonstration did."""

    out_dir: Path
    studies: list[StudyOutcome] = field(default_factory=list)
    destinations: list[tuple[DemoDestination, dict[str, int]]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    kept_data_dir: Path | None = None

    @property
    def ok(self) -> bool:
        """Whether every step succeeded."""
        return not self.failures


def run_demo(options: DemoOptions, progress: DemoProgress) -> DemoReport:
    """Run the demonstration.

    Raises
    ------
    DemoError
        A step without which nothing else can run failed (no sample, a receiver or
        ``soi serve`` did not start); the message says which.
    """
    files = _sample_files(options.samples)
    report = DemoReport(out_dir=options.out_dir)
    options.out_dir.mkdir(parents=True, exist_ok=True)
    received_dir = options.out_dir / "received"
    shutil.rmtree(received_dir, ignore_errors=True)
    workdir = Path(tempfile.mkdtemp(prefix="soi-demo-"))
    try:
        with ExitStack() as stack:
            progress.step("Starting the receiving systems (PACS, EMR, PHR, commune station, HIS)")
            destinations = start_destinations(
                stack,
                workdir=workdir,
                received_dir=received_dir,
                soi_ae_title=SOI_AE_TITLE,
                pacs=options.pacs,
                note=progress.note,
            )
            for destination in destinations:
                progress.note(f"{destination.name}: {destination.label} at {destination.address}")
            config = _write_config(workdir, destinations)
            token = _demo_token(config.path)
            progress.step("Starting soi serve (SQLite and files in a temporary folder, CPU)")
            server = stack.enter_context(ServeProcess(config.path, workdir / "soi.log"))
            progress.note(f"Soi: AE {SOI_AE_TITLE} at {LOOPBACK}:{config.dicom_port}, "
                          f"HTTP {config.base_url}")  # fmt: skip
            report.studies = _send(files, config.dicom_port, progress, report.failures)
            _follow(report.studies, config.base_url, token, options.timeout, progress, server)
            progress.step("Stopping soi serve")
            status = server.stop()
            if status not in (0, None):
                report.failures.append(f"soi serve stopped with status {status}")
            shutil.copyfile(workdir / "soi.log", options.out_dir / "soi.log")
            report.destinations = [(d, d.counts()) for d in destinations]
            progress.step("Writing the PDF reports and heatmaps")
            write_outputs(report.studies, config=config.path, out_dir=options.out_dir)
        report.failures += _failures(report)
    finally:
        if options.keep:
            report.kept_data_dir = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _sample_files(paths: Sequence[Path]) -> list[tuple[Path, str]]:
    """(file, Study Instance UID) of every DICOM file named; refuses an empty set."""
    found: list[tuple[Path, str]] = []
    for path in collect_files(paths):
        try:
            dataset = dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        except (InvalidDicomError, OSError):
            continue
        uid = str(dataset.get("StudyInstanceUID", ""))
        if uid:
            found.append((path, uid))
    if not found:
        names = ", ".join(str(p) for p in paths)
        raise DemoError(f"no DICOM study to send in {names}")
    return found


@dataclass(frozen=True, slots=True)
class _Config:
    path: Path
    dicom_port: int
    base_url: str


def _write_config(workdir: Path, destinations: Sequence[DemoDestination]) -> _Config:
    """Soi's settings for the demo: the embedded default, quick to react, three destinations."""
    dicom_port, http_port = free_port(), free_port()
    while http_port == dicom_port:
        http_port = free_port()
    settings: dict[str, TomlValue] = {
        "data_dir": str(workdir / "soi-data"),
        "ae_title": SOI_AE_TITLE,
        "dicom_host": LOOPBACK,
        "dicom_port": dicom_port,
        "http_port": http_port,
        "min_free_mb": 64,
        "quiet_period_seconds": 1.0,
        "assembly_interval_seconds": 0.5,
        "worker_interval_seconds": 0.5,
        "delivery_interval_seconds": 0.5,
        "delivery_retry_base_seconds": 1.0,
        "delivery_retry_cap_seconds": 10.0,
    }
    rows: list[dict[str, TomlValue]] = [
        d.settings.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
        for d in destinations
    ]
    path = workdir / "soi.toml"
    write_toml(path, settings, {"destinations": rows})
    return _Config(path, dicom_port, f"http://{LOOPBACK}:{http_port}")


def _demo_token(config: Path) -> str:
    """A token of the integration account ``soi-demo`` in the demo's own database.

    The demonstration owns its data folder: it creates the account there before
    ``soi serve`` starts, and follows the studies over HTTP with the token.
    """
    database = open_database(load_settings(config))
    try:
        issued = service_account_token(
            database, actor=local_caller(), username="soi-demo", name="soi demo", days=1
        )
    finally:
        database.dispose()
    return issued.token


def _send(
    files: list[tuple[Path, str]], port: int, progress: DemoProgress, failures: list[str]
) -> list[StudyOutcome]:
    """C-STORE the samples to Soi; the studies whose files were all kept."""
    progress.step(f"Sending {len(files)} sample file(s) with C-STORE")
    done = 0

    def on_file(result: object) -> None:
        nonlocal done
        done += 1
        progress.update(f"sent {done} of {len(files)}", done, len(files))

    target = Target(SOI_AE_TITLE, LOOPBACK, port)
    try:
        sent = send([path for path, _ in files], target, calling_ae=MODALITY_AE_TITLE,
                    on_file=on_file)  # fmt: skip
    except GatewayError as exc:
        raise DemoError(f"cannot send the samples to {target}: {exc}") from exc
    refused = {result.path for result in sent.failed}
    for result in sent.failed:
        if result.status is None:
            failures.append(f"{result.path.name} could not be sent: {result.comment}")
        else:
            failures.append(
                f"Soi refused {result.path.name}: status 0x{result.status:04X} {result.comment}"
            )
    studies: dict[str, StudyOutcome] = {}
    for path, uid in files:
        if path not in refused:
            studies.setdefault(uid, StudyOutcome(sample=path.stem, study_instance_uid=uid))
    return list(studies.values())


def _follow(
    studies: list[StudyOutcome],
    base_url: str,
    token: str,
    timeout: float,
    progress: DemoProgress,
    server: ServeProcess,
) -> None:
    """Poll ``GET /studies/UID`` until every study is settled or ``timeout`` passes."""
    progress.step("Waiting for the AI results and the deliveries")
    deadline = time.monotonic() + timeout
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base_url, timeout=10.0, headers=headers) as client:
        while True:
            for study in studies:
                if study.settled:
                    continue
                try:
                    answer = client.get(f"/studies/{study.study_instance_uid}")
                except httpx.TransportError as exc:
                    if not server.running:
                        raise DemoError(
                            f"soi serve stopped unexpectedly:\n{server.log_tail()}"
                        ) from exc
                    continue
                if answer.status_code == 200:
                    study.detail = StudyDetail.model_validate(answer.json())
            results = sum(1 for s in studies if s.result_state != "none")
            documents = [d for s in studies for d in s.documents]
            delivered = sum(1 for d in documents if d.state in _SETTLED)
            progress.update(
                f"AI results {results}/{len(studies)} · documents delivered "
                f"{delivered}/{len(documents)}",
                results + delivered,
                len(studies) + len(documents),
            )
            if all(study.settled for study in studies) or time.monotonic() > deadline:
                return
            time.sleep(0.5)


def _failures(report: DemoReport) -> list[str]:
    """Every study, document and receiver that did not end as it should."""
    failures: list[str] = []
    sent_to: dict[str, int] = {}
    for study in report.studies:
        state = study.result_state
        if state == "none":
            jobs = study.detail.jobs if study.detail is not None else []
            why = "; ".join(f"{j.pipeline}: {j.state} {j.state_reason}".strip() for j in jobs)
            failures.append(f"{study.sample}: no AI result ({why or 'study not stable yet'})")
        elif state == "failed" and study.detail is not None:
            failures.append(f"{study.sample}: AI result failed: {study.detail.results[-1].reason}")
        for document in study.documents:
            if document.state == "sent":
                sent_to[document.destination] = sent_to.get(document.destination, 0) + 1
            else:
                reply = document.last_error or document.remote_reply
                failures.append(
                    f"{study.sample}: {document.kind} to {document.destination} is "
                    f"{document.state} after {document.attempts} attempt(s): {reply}"
                )
    for destination, held in report.destinations:
        failures += _missing(destination, held, sent_to.get(destination.name, 0))
    return failures


def _missing(destination: DemoDestination, held: dict[str, int], sent: int) -> list[str]:
    """Whether the receiver holds what Soi says it delivered there."""
    kind = destination.settings.kind
    if kind == "dicom":
        count, what = sum(held.values()), "DICOM instances"
    elif kind == "fhir":
        count, what = held.get("DiagnosticReport", 0), "DiagnosticReports"
    else:
        count, what = sum(held.values()), "HL7 messages"
    # A PACS keeps one instance per SOP Instance UID and the EMR one report per identifier;
    # an HL7 message sent again after a lost ACK arrives twice (at least once).
    if count == sent or (kind == "mllp" and count > sent):
        return []
    return [f"{destination.name} holds {count} {what}, Soi delivered {sent}"]
