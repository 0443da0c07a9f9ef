"""Ingest throughput of Soi against Orthanc over DICOM C-STORE.

The machine this runs on is shared and noisy, so absolute figures move from
one run to the next; what this script reports is measured in one go, on the
same files and the same disk:

1. the disk's fsync'd write rate for the same bytes by one writer through the
   page cache (each file written to a new file, the file fsync'd, then its
   folder fsync'd): what one thread that makes every instance durable before
   answering gets from this disk. It is not a ceiling for Soi, which writes
   large instances with direct I/O from several receiving processes;
2. Orthanc 1.10 receiving every instance from DCMTK ``storescu`` over 1
   association, then over 4 parallel associations (4 storescu processes,
   a quarter of the files each);
3. the same for Soi (``soi serve``), when the ``soi`` command is installed.

Each server run starts with a fresh, empty storage folder.  A run counts only
when every instance was acknowledged with DIMSE status Success; otherwise the
failures are reported instead of a rate.

Usage::

    .venv/bin/python benchmarks/ingest.py                # 200 instances
    .venv/bin/python benchmarks/ingest.py --count 40 --keep --workdir /var/tmp

MB are 10**6 bytes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid
from rich.console import Console
from rich.table import Table

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.soi_server import SoiServer, benchmark_folder  # noqa: E402
from tests.support.dcmtk import (  # noqa: E402
    StoreRun,
    start_storescu,
    store_run_from_log,
)
from tests.support.orthanc import ORTHANC_BINARY, OrthancError, OrthancServer  # noqa: E402
from tests.support.tools import MissingBinaryError, find_binary  # noqa: E402

MB = 1_000_000
ROWS = COLUMNS = 2048
DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
#: storescu options used for both servers: propose only the presentation
#: contexts the files need, and accept PDUs of up to 128 KiB from the peer.
#: storescu sends PDUs of the size each receiver proposes.
STORESCU_OPTIONS: tuple[str, ...] = ("-R", "--max-pdu", "131072")
#: Orthanc's "MaximumPduLength" in the benchmark (its default is 16384; Soi
#: proposes 131072, so both receivers get the same PDU size by default).
ORTHANC_MAX_PDU = 131072
CALLING_AET = "STORESCU"

# A wide table even when the output is a file or a pipe.
console = Console() if sys.stdout.isatty() else Console(width=140)


# -- synthetic chest radiographs ----------------------------------------------


def _soft_inside(
    x: npt.NDArray[np.float32],
    y: npt.NDArray[np.float32],
    centre: tuple[float, float],
    axes: tuple[float, float],
    edge: float,
) -> npt.NDArray[np.float32]:
    """Return ~1 inside an ellipse and ~0 outside, with a soft edge."""
    r = np.sqrt(((x - centre[0]) / axes[0]) ** 2 + ((y - centre[1]) / axes[1]) ** 2)
    z = np.clip((r - 1.0) / edge, -60.0, 60.0)
    out: npt.NDArray[np.float32] = (1.0 / (1.0 + np.exp(z))).astype(np.float32)
    return out


def chest_phantom(rng: np.random.Generator, size: int = ROWS) -> npt.NDArray[np.float32]:
    """Draw a smooth, chest-radiograph-like image (12-bit range, no noise).

    Thorax, two lung fields with ribs, mediastinum and heart, spine,
    diaphragm domes and a vertical exposure gradient, slightly varied per
    call (patient size and position).

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the per-patient variation.
    size : int, optional
        Rows and columns.

    Returns
    -------
    numpy.ndarray
        ``size x size`` float32 image with values in about [0, 4095].
    """
    axis = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    x = axis[np.newaxis, :]
    y = axis[:, np.newaxis]
    dx = float(rng.uniform(-0.04, 0.04))
    scale = float(rng.uniform(0.92, 1.05))
    x = (x - dx) / scale
    y = y / scale

    image = np.full((size, size), 350.0, dtype=np.float32)
    body = _soft_inside(x, y, (0.0, 0.15), (0.88, 1.15), 0.02)
    image += 2500.0 * body
    # Diaphragm: two domes, below which the abdomen is dense.
    dome = 0.42 + 0.9 * (np.abs(x) - 0.36) ** 2
    abdomen = 1.0 / (1.0 + np.exp(np.clip(-(y - dome) / 0.025, -60.0, 60.0)))
    lungs = np.zeros_like(image)
    for side in (-1.0, 1.0):
        lung = _soft_inside(x, y, (side * 0.38, -0.05), (0.29, 0.66), 0.03)
        # Ribs: bright arcs, falling laterally.
        phase = (y + 0.55 * (np.abs(x) - 0.05) ** 2) * 7.0
        ribs = np.clip(np.cos(2.0 * np.pi * phase) - 0.2, 0.0, None) / 0.8
        lungs += lung * (1.0 - 0.3 * ribs * (np.sign(x) == side))
    image -= 1450.0 * np.clip(lungs, 0.0, 1.0) * (1.0 - abdomen)
    heart = _soft_inside(x, y, (0.1, 0.3), (0.3, 0.25), 0.05)
    mediastinum = _soft_inside(x, y, (0.0, -0.2), (0.12, 0.55), 0.05)
    image += 800.0 * np.clip(heart + mediastinum, 0.0, 1.0) * body * (1.0 - abdomen)
    spine = np.exp(-((x / 0.07) ** 8)) * (0.85 + 0.15 * np.cos(y * 38.0)) * body
    image += 450.0 * spine
    image += 400.0 * abdomen * body
    image += 180.0 * y  # heel effect / exposure gradient
    return np.clip(image, 0.0, 4095.0)


@dataclass(frozen=True)
class SeriesPlan:
    """Identity of one synthetic series."""

    patient_id: str
    patient_name: str
    birth_date: str
    sex: str
    study_uid: str
    accession: str
    study_id: str
    series_uid: str
    series_number: int
    view: str


def _dx_dataset(plan: SeriesPlan, instance_number: int, when: datetime) -> Dataset:
    """Build the header of one DX For Presentation instance (no pixel data)."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.SOPClassUID = DX_FOR_PRESENTATION
    ds.SOPInstanceUID = generate_uid()
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = when.strftime("%Y%m%d")
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = when.strftime("%H%M%S")
    ds.AccessionNumber = plan.accession
    ds.Modality = "DX"
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Manufacturer = "Synthetic"
    ds.InstitutionName = "Soi benchmark"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Chest X-ray"
    ds.SeriesDescription = f"Chest {plan.view}"
    ds.PatientName = plan.patient_name
    ds.PatientID = plan.patient_id
    ds.PatientBirthDate = plan.birth_date
    ds.PatientSex = plan.sex
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = plan.view
    view = Dataset()
    view.CodeValue = "399348003" if plan.view == "PA" else "399182006"
    view.CodingSchemeDesignator = "SCT"
    view.CodeMeaning = "postero-anterior" if plan.view == "PA" else "antero-posterior"
    view.ViewModifierCodeSequence = DicomSequence()
    ds.ViewCodeSequence = DicomSequence([view])
    ds.PositionerType = "COLUMN"
    ds.DetectorType = "SCINTILLATOR"
    ds.ImagerPixelSpacing = [0.139, 0.139]
    ds.PixelSpacing = [0.139, 0.139]
    ds.StudyInstanceUID = plan.study_uid
    ds.SeriesInstanceUID = plan.series_uid
    ds.StudyID = plan.study_id
    ds.SeriesNumber = plan.series_number
    ds.InstanceNumber = instance_number
    ds.PatientOrientation = ["L", "F"] if plan.view == "PA" else ["R", "F"]
    ds.ImageLaterality = "U"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ROWS
    ds.Columns = COLUMNS
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelIntensityRelationship = "LOG"
    ds.PixelIntensityRelationshipSign = 1
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    ds.PresentationLUTShape = "IDENTITY"
    ds.BurnedInAnnotation = "NO"
    ds.AcquisitionContextSequence = DicomSequence()
    region = Dataset()
    region.CodeValue = "43799004"
    region.CodingSchemeDesignator = "SCT"
    region.CodeMeaning = "Chest"
    ds.AnatomicRegionSequence = DicomSequence([region])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.file_meta = meta
    return ds


def _plan_series(count: int, rng: np.random.Generator) -> list[SeriesPlan]:
    """Spread ``count`` instances over a few patients, studies and series."""
    n_studies = max(1, min(count, 8, max(2, count // 25)))
    plans: list[SeriesPlan] = []
    for s in range(n_studies):
        study_uid = generate_uid()
        sex = "F" if s % 2 else "M"
        birth = f"19{int(rng.integers(40, 99)):02d}0{int(rng.integers(1, 9))}15"
        for n, view in enumerate(("PA", "AP"), start=1):
            plans.append(
                SeriesPlan(
                    patient_id=f"BENCH{s + 1:04d}",
                    patient_name=f"Bench^Patient{s + 1}",
                    birth_date=birth,
                    sex=sex,
                    study_uid=study_uid,
                    accession=f"ACC{s + 1:06d}",
                    study_id=str(s + 1),
                    series_uid=generate_uid(),
                    series_number=n,
                    view=view,
                )
            )
    return plans


def generate_instances(folder: Path, count: int, seed: int = 20240601) -> list[Path]:
    """Write ``count`` distinct synthetic chest radiographs into ``folder``.

    DX For Presentation, 2048 x 2048, 16 bits allocated (12 stored),
    MONOCHROME2, Explicit VR Little Endian, about 8.4 MB each.  Every
    instance has its own SOP Instance UID and its own noise.

    Parameters
    ----------
    folder : pathlib.Path
        Destination (created if needed).
    count : int
        Number of instances.
    seed : int, optional
        Seed of the random generator.

    Returns
    -------
    list of pathlib.Path
        The files, in the order they should be sent.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    plans = _plan_series(count, rng)
    margin = 128
    noise_bank = rng.normal(0.0, 28.0, (ROWS + margin, COLUMNS + margin)).astype(np.float32)
    phantoms: dict[str, npt.NDArray[np.float32]] = {}
    numbers: dict[str, int] = {}
    start = datetime(2024, 6, 1, 8, 0, 0)
    paths: list[Path] = []
    for i in range(count):
        plan = plans[i % len(plans)]
        if plan.study_uid not in phantoms:
            phantoms[plan.study_uid] = chest_phantom(rng)
        numbers[plan.series_uid] = numbers.get(plan.series_uid, 0) + 1
        oy, ox = (int(v) for v in rng.integers(0, margin, 2))
        gain = float(rng.uniform(0.97, 1.03))
        image = phantoms[plan.study_uid] * gain + noise_bank[oy : oy + ROWS, ox : ox + COLUMNS]
        pixels = np.clip(image, 0.0, 4095.0).astype("<u2")
        ds = _dx_dataset(plan, numbers[plan.series_uid], start)
        ds.PixelData = pixels.tobytes()
        path = folder / f"dx-{i + 1:05d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


# -- measurements -----------------------------------------------------------


@dataclass
class Rate:
    """A timed transfer of ``files`` files / ``nbytes`` bytes."""

    files: int
    nbytes: int
    seconds: float

    @property
    def files_per_s(self) -> float:
        """Files (instances) per second."""
        return self.files / self.seconds if self.seconds > 0 else float("inf")

    @property
    def mb_per_s(self) -> float:
        """Megabytes (10**6) per second."""
        return self.nbytes / MB / self.seconds if self.seconds > 0 else float("inf")


def measure_fsync_writes(files: Sequence[Path], target: Path) -> Rate:
    """Time durable writes of the files' bytes into ``target``.

    For each file: read its bytes (not timed), then create a new file in
    ``target``, write, fsync the file, close it and fsync ``target``.

    Parameters
    ----------
    files : Sequence[pathlib.Path]
        Source files.
    target : pathlib.Path
        Folder on the filesystem under test (created; emptied afterwards).

    Returns
    -------
    Rate
        Files and bytes per second over the timed parts.
    """
    target.mkdir(parents=True, exist_ok=True)
    dir_fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
    elapsed = 0.0
    total = 0
    try:
        for i, source in enumerate(files):
            data = source.read_bytes()
            t0 = time.perf_counter()
            fd = os.open(target / f"copy-{i:05d}.dcm", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.fsync(dir_fd)
            elapsed += time.perf_counter() - t0
            total += len(data)
    finally:
        os.close(dir_fd)
        shutil.rmtree(target, ignore_errors=True)
    return Rate(files=len(files), nbytes=total, seconds=elapsed)


class Server(Protocol):
    """What the benchmark needs from a running server."""

    aet: str
    dicom_port: int

    def peak_rss_bytes(self) -> int | None:
        """Peak resident memory of the server so far."""
        ...


@dataclass
class RunResult:
    """One server receiving all instances over ``associations`` associations."""

    server: str
    associations: int
    files: int
    nbytes: int
    seconds: float
    success: int
    failures: list[str] = field(default_factory=list)
    peak_rss: int | None = None
    max_send_pdv: int | None = None
    server_count: int | None = None

    @property
    def ok(self) -> bool:
        """Whether every instance was acknowledged with Success."""
        return self.success == self.files and not self.failures

    @property
    def rate(self) -> Rate:
        """Throughput of the run."""
        return Rate(files=self.files, nbytes=self.nbytes, seconds=self.seconds)


def _chunks(files: Sequence[Path], n: int) -> list[list[Path]]:
    """Split ``files`` into ``n`` contiguous parts of (almost) equal size."""
    size, extra = divmod(len(files), n)
    parts: list[list[Path]] = []
    start = 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        parts.append(list(files[start:end]))
        start = end
    return [p for p in parts if p]


def send_all(
    server: Server,
    name: str,
    files: Sequence[Path],
    associations: int,
    logdir: Path,
    timeout: float,
) -> RunResult:
    """Send ``files`` to ``server`` with ``associations`` parallel storescu processes.

    Parameters
    ----------
    server : Server
        Running server.
    name : str
        Label for the report.
    files : Sequence[pathlib.Path]
        Instances to send.
    associations : int
        Number of parallel storescu processes (one association each).
    logdir : pathlib.Path
        Folder for the storescu logs.
    timeout : float
        Seconds before the storescu processes are killed.

    Returns
    -------
    RunResult
        Timing, success count, failures and peak memory.
    """
    logdir.mkdir(parents=True, exist_ok=True)
    parts = _chunks(files, associations)
    logs = [logdir / f"storescu-{i + 1}.log" for i in range(len(parts))]
    t0 = time.perf_counter()
    processes = [
        start_storescu(
            part,
            port=server.dicom_port,
            called_aet=server.aet,
            calling_aet=CALLING_AET,
            extra=STORESCU_OPTIONS,
            log_path=log,
        )
        for part, log in zip(parts, logs, strict=True)
    ]
    failures: list[str] = []
    deadline = time.monotonic() + timeout
    codes: list[int | None] = []
    for process in processes:
        try:
            codes.append(process.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            codes.append(None)
            failures.append(f"storescu pid {process.pid} killed after {timeout:.0f} s")
    seconds = time.perf_counter() - t0
    peak = server.peak_rss_bytes()
    runs: list[StoreRun] = [
        store_run_from_log(part, code, log.read_text("utf-8", errors="replace"))
        for part, code, log in zip(parts, codes, logs, strict=True)
    ]
    success = sum(r.success_count for r in runs)
    for run, log in zip(runs, logs, strict=True):
        if not run.all_succeeded:
            failures.append(f"{log.name}: {run.summary()}")
    pdvs = [r.max_send_pdv for r in runs if r.max_send_pdv is not None]
    return RunResult(
        server=name,
        associations=associations,
        files=len(files),
        nbytes=sum(f.stat().st_size for f in files),
        seconds=seconds,
        success=success,
        failures=failures,
        peak_rss=peak,
        max_send_pdv=min(pdvs) if pdvs else None,
    )


# -- servers ----------------------------------------------------------------


def orthanc_sync_default() -> str:
    """Read the documented default of ``SyncStorageArea`` from the Orthanc binary.

    Returns
    -------
    str
        ``"true"``/``"false"`` as printed by ``Orthanc --config=-``, or
        ``"unknown"``.
    """
    try:
        done = subprocess.run(
            [ORTHANC_BINARY, "--config=-"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    match = re.search(r'"SyncStorageArea"\s*:\s*(true|false)', done.stdout)
    return match.group(1) if match else "unknown"


def soi_available(executable: Path) -> tuple[bool, str]:
    """Tell whether ``soi serve`` can be run.

    Parameters
    ----------
    executable : pathlib.Path
        The ``soi`` console script.

    Returns
    -------
    tuple of (bool, str)
        Availability and, if unavailable, why.
    """
    if not executable.exists():
        return False, f"{executable} does not exist"
    try:
        done = subprocess.run(
            [str(executable), "serve", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{executable} serve --help failed: {exc}"
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return False, f"{executable} serve --help exited {done.returncode}: {' | '.join(tail)}"
    return True, ""


# -- driver -------------------------------------------------------------------


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run_server(
    name: str,
    factory: Callable[[Path], AbstractContextManager[Any]],
    files: Sequence[Path],
    associations: int,
    folder: Path,
    timeout: float,
    count_instances: Callable[[Any], int | None] | None = None,
) -> RunResult:
    """Start a server on an empty folder, send everything, stop it, clean up."""
    workdir = _fresh(folder)
    try:
        with factory(workdir / "server") as server:
            result = send_all(server, name, files, associations, workdir / "logs", timeout)
            if count_instances is not None:
                result.server_count = count_instances(server)
                if result.server_count != len(files):
                    result.failures.append(
                        f"{name} reports {result.server_count} stored instances, "
                        f"expected {len(files)}"
                    )
        return result
    finally:
        shutil.rmtree(workdir / "server", ignore_errors=True)
        os.sync()


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; return the process exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200, help="instances (default 200)")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(tempfile.gettempdir()),
        help="parent folder of the benchmark's temporary folder (default: the temp dir)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--associations",
        default="1,4",
        help="comma-separated numbers of parallel associations (default 1,4)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat each run (median reported)")
    parser.add_argument(
        "--soi",
        type=Path,
        default=Path(sys.executable).parent / "soi",
        help="the soi console script (default: next to this interpreter)",
    )
    parser.add_argument(
        "--orthanc-max-pdu",
        type=int,
        default=ORTHANC_MAX_PDU,
        help=f"Orthanc's MaximumPduLength (default {ORTHANC_MAX_PDU}; 0: Orthanc's own default)",
    )
    parser.add_argument("--skip-soi", action="store_true")
    parser.add_argument("--skip-orthanc", action="store_true")
    args = parser.parse_args(argv)
    assoc_counts = [int(a) for a in args.associations.split(",") if a.strip()]

    for tool in ("storescu", "echoscu", ORTHANC_BINARY):
        if find_binary(tool) is None:
            console.print(f"[red]missing program: {tool}[/red]")
            return 2
    use_soi = not args.skip_soi
    soi_note = ""
    if use_soi:
        use_soi, soi_note = soi_available(args.soi)
    sync_default = orthanc_sync_default()
    orthanc_config: dict[str, Any] = {"SyncStorageArea": True}
    if args.orthanc_max_pdu:
        orthanc_config["MaximumPduLength"] = args.orthanc_max_pdu

    with benchmark_folder(
        args.workdir, args.keep, prefix="soi-ingest-bench-", say=console.print
    ) as folder:
        console.print(f"Generating {args.count} DX instances in {folder / 'instances'} ...")
        t0 = time.perf_counter()
        files = generate_instances(folder / "instances", args.count)
        total_bytes = sum(f.stat().st_size for f in files)
        console.print(
            f"  {args.count} files, {total_bytes / MB:.1f} MB "
            f"({total_bytes / args.count / MB:.2f} MB each) in {time.perf_counter() - t0:.1f} s"
        )
        timeout = 120.0 + 3.0 * args.count

        console.print("Measuring fsync'd writes of the same bytes ...")
        disk = measure_fsync_writes(files, folder / "disk")
        os.sync()

        results: dict[tuple[str, int], list[RunResult]] = {}
        for round_no in range(args.rounds):
            for n in assoc_counts:
                order = ["orthanc", "soi"] if round_no % 2 == 0 else ["soi", "orthanc"]
                for name in order:
                    if name == "orthanc" and args.skip_orthanc:
                        continue
                    if name == "soi" and not use_soi:
                        continue
                    console.print(f"Round {round_no + 1}: {name}, {n} association(s) ...")
                    try:
                        if name == "orthanc":
                            result = run_server(
                                "orthanc",
                                lambda d: OrthancServer(d, config=orthanc_config),
                                files,
                                n,
                                folder / f"orthanc-{n}",
                                timeout,
                                lambda s: int(s.statistics()["CountInstances"]),
                            )
                        else:
                            result = run_server(
                                "soi",
                                lambda d: SoiServer(args.soi, d, env={"SOI_WORKERS": "0"}),
                                files,
                                n,
                                folder / f"soi-{n}",
                                timeout,
                            )
                    except (OrthancError, RuntimeError, MissingBinaryError, OSError) as exc:
                        result = RunResult(
                            server=name,
                            associations=n,
                            files=len(files),
                            nbytes=total_bytes,
                            seconds=0.0,
                            success=0,
                            failures=[f"{type(exc).__name__}: {exc}"],
                        )
                    results.setdefault((name, n), []).append(result)
                    status = (
                        f"{result.rate.files_per_s:.2f} inst/s"
                        if result.ok
                        else f"[red]FAILED[/red] ({result.success}/{result.files} Success)"
                    )
                    console.print(f"  {result.seconds:.1f} s, {status}")
                    for failure in result.failures:
                        console.print(f"  [red]{failure}[/red]")

    report(
        args.count,
        total_bytes,
        disk,
        results,
        assoc_counts,
        use_soi,
        soi_note,
        sync_default,
        orthanc_config,
    )
    return 0 if all(r.ok for runs in results.values() for r in runs) else 1


def report(
    count: int,
    total_bytes: int,
    disk: Rate,
    results: dict[tuple[str, int], list[RunResult]],
    assoc_counts: list[int],
    use_soi: bool,
    soi_note: str,
    sync_default: str,
    orthanc_config: dict[str, Any],
) -> None:
    """Print the table and the one-line JSON summary."""
    table = Table(title=f"DICOM C-STORE ingest: {count} DX instances, {total_bytes / MB:.0f} MB")
    for column in ("run", "assoc.", "instances/s", "MB/s", "wall s", "Success", "peak RSS MB"):
        table.add_column(column, justify="right" if column != "run" else "left")
    table.add_column("max PDV", justify="right")
    table.add_row(
        "disk, 1 writer: write + fsync file + dir",
        "-",
        _fmt(disk.files_per_s),
        _fmt(disk.mb_per_s),
        _fmt(disk.seconds),
        "-",
        "-",
        "-",
    )
    summary: dict[str, Any] = {
        "count": count,
        "bytes": total_bytes,
        "disk_fsync_files_per_s": round(disk.files_per_s, 2),
        "disk_fsync_mb_per_s": round(disk.mb_per_s, 1),
        "orthanc_sync_storage_area_default": sync_default,
        "storescu_options": list(STORESCU_OPTIONS),
        "orthanc_config": orthanc_config,
    }
    medians: dict[tuple[str, int], float | None] = {}
    for (name, n), runs in sorted(results.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        good = [r for r in runs if r.ok]
        rate = _median([r.rate.files_per_s for r in good]) if len(good) == len(runs) else None
        mbps = _median([r.rate.mb_per_s for r in good]) if len(good) == len(runs) else None
        wall = _median([r.seconds for r in good])
        peaks = [r.peak_rss for r in runs if r.peak_rss is not None]
        peak = max(peaks) / MB if peaks else None
        pdvs = [r.max_send_pdv for r in runs if r.max_send_pdv is not None]
        success = "/".join(f"{r.success}" for r in runs) + f" of {count}"
        medians[(name, n)] = rate
        table.add_row(
            name,
            str(n),
            _fmt(rate, 2) if rate is not None else "[red]FAILED[/red]",
            _fmt(mbps),
            _fmt(wall),
            success,
            _fmt(peak, 0),
            str(min(pdvs)) if pdvs else "-",
        )
        key = f"{name}_{n}"
        summary[f"{key}_instances_per_s"] = round(rate, 3) if rate is not None else None
        summary[f"{key}_mb_per_s"] = round(mbps, 1) if mbps is not None else None
        summary[f"{key}_peak_rss_mb"] = round(peak, 1) if peak is not None else None
        summary[f"{key}_success"] = [r.success for r in runs]
        if any(not r.ok for r in runs):
            summary[f"{key}_failures"] = [f for r in runs for f in r.failures][:5]
    console.print(table)
    for n in assoc_counts:
        soi_rate = medians.get(("soi", n))
        orthanc_rate = medians.get(("orthanc", n))
        if soi_rate is not None and orthanc_rate:
            ratio = soi_rate / orthanc_rate
            console.print(f"Soi/Orthanc, {n} association(s): {ratio:.2f}")
            summary[f"soi_orthanc_ratio_{n}"] = round(ratio, 3)
        else:
            summary[f"soi_orthanc_ratio_{n}"] = None
    console.print(
        f"Orthanc 1.10: SyncStorageArea default printed by `Orthanc --config=-`: {sync_default} "
        "(fdatasync() of each storage file; the benchmark sets it to true explicitly). "
        "Soi fsyncs every instance."
    )
    console.print(
        f"storescu options (both servers): {' '.join(STORESCU_OPTIONS)}; "
        f"Orthanc settings: {json.dumps(orthanc_config)}; "
        "max PDV = largest PDV storescu was allowed to send (from the receiver's max PDU)."
    )
    if not use_soi:
        console.print(f"[yellow]Soi not measured: {soi_note or 'skipped'}[/yellow]")
        summary["soi_skipped"] = soi_note or "skipped"
    print(json.dumps(summary, sort_keys=True))


if __name__ == "__main__":
    sys.exit(main())
