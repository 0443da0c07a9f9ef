"""Odd real-world files and hostile input against a running Soi.

pydicom's own test files (pydicom and pydicom-data: compressed, big endian, no file
meta, deflated, SR, SEG, RT, broken and truncated files...) go to Soi and to an
Orthanc the same way, one DCMTK ``storescu`` per file, and Soi must keep whatever
Orthanc keeps unless it refuses with a precise, verifiable reason. Hostile data sets
crafted here go to Soi with pynetdicom and must each get their exact status, leave
nothing on disk and leave the association usable.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom import Dataset
from pydicom.data import get_testdata_files
from pydicom.dataset import FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_file_meta_info
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid
from pynetdicom import AE, _config
from sqlalchemy import select

from dicom_gateway import sop_class_name
from store import AuditEvent, AuditOutcome, Database, Instance, sqlite_url
from tests.support import LOOPBACK, OrthancServer, StoreRun, echoscu, storescu
from tests.support.data import CR_IMAGE_STORAGE, make_cr
from tests.support.soi_process import SoiProcess

pytestmark = pytest.mark.slow

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"

# -- pydicom's test files --------------------------------------------------------

#: At most this many files are sent; pydicom 3.0 with pydicom-data 1.0 has 244.
_MAX_FILES = 400
#: Kept first if the corpus ever has to be cut down to _MAX_FILES.
_MUST_KEEP = re.compile(
    r"(J2K|jpeg|JPEG|jls|JPGL|RLE|rle|big|expb|dfl|deflate|SR|report|seg|liver|rt|trunc|bad|"
    r"no_meta|NoMeta|short)"
)

#: DCMTK's storescu proposes uncompressed transfer syntaxes only unless told which
#: compressed one to propose, and then has to decompress (which the Debian build cannot
#: do for JPEG 2000 or JPEG-LS). Both peers get the option that proposes the file's own
#: transfer syntax, so compressed, deflated and big endian data travel as they are.
_PROPOSE_OPTION = {
    "1.2.840.10008.1.2.2": "-xb",  # Explicit VR Big Endian
    "1.2.840.10008.1.2.1.99": "-xd",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50": "-xy",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51": "-xx",  # JPEG Extended
    "1.2.840.10008.1.2.4.70": "-xs",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80": "-xt",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81": "-xu",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90": "-xv",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91": "-xw",  # JPEG 2000
    "1.2.840.10008.1.2.5": "-xr",  # RLE Lossless
}

#: storescu gave up on the file before an association was requested.
_LOCAL_REFUSALS = ("missing presentation contexts", "No SOP Class or Instance UID", "Bad DICOM")
#: The peer accepted no presentation context for the file's SOP class.
_NO_CONTEXT = ("No Acceptable Presentation Contexts", "No presentation context for")

# Soi deviations found by this test, reported to the owner of dicom_gateway/ (see the
# test report). The test tolerates exactly these outcomes for these files; remove an
# entry once Soi keeps the file.
_KNOWN_SOI_ISSUES: dict[str, str] = {}


@dataclass(frozen=True)
class Outcome:
    """What one peer did with one file."""

    kind: str  # "stored", "refused", "not sent" (by storescu), "no context", "error"
    status: int | None = None
    text: str = ""
    comment: str = ""
    sop_instance_uid: str | None = None

    @classmethod
    def from_run(cls, run: StoreRun) -> Outcome:
        """Classify a one-file storescu run."""
        if run.results:
            result = run.results[0]
            if result.status is None:
                return cls("error", None, result.text, "", result.sop_instance_uid)
            kind = "stored" if result.stored else "refused"
            return cls(
                kind,
                result.status,
                result.text,
                result.error_comment or "",
                result.sop_instance_uid,
            )
        errors = "; ".join(run.errors) or run.stderr.strip()[-200:]
        if any(text in errors for text in _NO_CONTEXT):
            return cls("no context", None, errors)
        if any(text in errors for text in _LOCAL_REFUSALS):
            return cls("not sent", None, errors)
        return cls("error", None, errors)

    @property
    def label(self) -> str:
        """Short text for the outcome table."""
        if self.kind == "refused" and self.status is not None:
            return f"refused 0x{self.status:04X}"
        return self.kind


def _testdata_files() -> list[Path]:
    """Return pydicom's test files (directories left out), in a fixed order."""
    files = sorted({Path(p) for p in get_testdata_files() if Path(p).is_file()}, key=str)
    if len(files) > _MAX_FILES:
        keep = [f for f in files if _MUST_KEEP.search(f.name)][:_MAX_FILES]
        rest = [f for f in files if f not in keep]
        files = sorted(keep + rest[: _MAX_FILES - len(keep)], key=str)
    return files


def _transfer_syntax(path: Path) -> str:
    try:
        return str(read_file_meta_info(path).get("TransferSyntaxUID", ""))
    except (InvalidDicomError, OSError, ValueError, EOFError):
        return ""


def _sop_class(path: Path) -> str:
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        return str(ds.get("SOPClassUID", ""))
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError):
        return ""


def _storescu_options(path: Path) -> list[str]:
    option = _PROPOSE_OPTION.get(_transfer_syntax(path))
    return ["-R", *([option] if option else [])]


def _label(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _corpus_kinds(files: list[Path]) -> set[str]:
    """Name the kinds of odd input present, to show the corpus covers them."""
    kinds: set[str] = set()
    for path in files:
        syntax = _transfer_syntax(path)
        if syntax and UID(syntax).is_compressed:
            kinds.add("compressed")
        if syntax == "1.2.840.10008.1.2.2":
            kinds.add("big endian")
        if syntax == "1.2.840.10008.1.2.1.99":
            kinds.add("deflated")
        name = sop_class_name(_sop_class(path))
        for word, kind in (("SR", "SR"), ("Segmentation", "SEG"), ("RT ", "RT")):
            if word in name:
                kinds.add(kind)
        if "trunc" in path.name or "too_short" in path.name:
            kinds.add("truncated")
        if "NoMeta" in path.name or "no_meta" in path.name:
            kinds.add("no file meta")
    return kinds


def _soi_log_refusals(log_text: str) -> list[dict[str, Any]]:
    """Return the ``instance refused`` events of Soi's JSON log."""
    events = []
    for line in log_text.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        if event.get("event") == "instance refused":
            events.append(event)
    return events


def _indexed_uids(data_dir: Path) -> set[str]:
    database = Database(sqlite_url(data_dir / "soi.db"))
    try:
        with database.read() as session:
            return set(session.scalars(select(Instance.sop_instance_uid)).all())
    finally:
        database.dispose()


def _confirmed_refusal(path: Path, outcome: Outcome) -> str | None:
    """Check Soi's stated reason against the file itself; return it when it holds.

    Soi refuses some files Orthanc keeps, on purpose: image instances without pixel
    data, invalid UIDs, missing identifying attributes. Each such reason is verified
    here by reading the file with pydicom, so a wrong refusal still fails the test.
    """
    if outcome.kind != "refused" or outcome.status is None:
        return None
    ds = pydicom.dcmread(path, force=True)
    missing = re.match(r"(\w+) is missing or empty", outcome.comment)
    if outcome.status == 0xA900 and outcome.comment.startswith("Pixel Data (7FE0,0010) is missing"):
        name = sop_class_name(str(ds.get("SOPClassUID", "")))
        pixel_tags = {0x7FE00010, 0x7FE00008, 0x7FE00009} & set(ds.keys())
        if not pixel_tags and "Image Storage" in name:
            return f"{name} without Pixel Data"
    elif outcome.status == 0xA900 and missing is not None:
        if not str(ds.get(missing[1], "") or "").strip():
            return f"{missing[1]} absent"
    elif outcome.status == 0xC212 and not UID(outcome.sop_instance_uid or "").is_valid:
        return f"SOP Instance UID {(outcome.sop_instance_uid or '')[:24]}... is not a valid UID"
    return None


def _in_refusal_range(status: int) -> bool:
    return (status & 0xFF00) in {0xA700, 0xA900} or (status & 0xF000) == 0xC000


def _send_each(files: list[Path], *, port: int, called_aet: str) -> dict[Path, Outcome]:
    outcomes = {}
    for path in files:
        run = storescu(
            [path], port=port, called_aet=called_aet, extra=_storescu_options(path), timeout=60
        )
        outcomes[path] = Outcome.from_run(run)
    return outcomes


def _print_table(
    files: list[Path],
    soi: dict[Path, Outcome],
    orthanc: dict[Path, Outcome],
    notes: dict[Path, str],
) -> None:
    print(f"\n{'file':<52} {'transfer syntax':<26} {'Soi':<16} {'Orthanc':<16} note")
    for path in files:
        syntax = _transfer_syntax(path)
        name = UID(syntax).keyword or syntax if syntax else "-"
        print(
            f"{_label(path)[:52]:<52} {name[:26]:<26} {soi[path].label:<16} "
            f"{orthanc[path].label:<16} {notes.get(path, '')}"
        )
    for peer, outcomes in (("Soi", soi), ("Orthanc", orthanc)):
        counts: dict[str, int] = {}
        for outcome in outcomes.values():
            counts[outcome.kind] = counts.get(outcome.kind, 0) + 1
        print(f"{peer}: " + ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())))


class TestPydicomTestFiles:
    """Every pydicom test file, to Soi and to Orthanc, one storescu per file."""

    def test_soi_keeps_what_orthanc_keeps_or_refuses_precisely(self, tmp_path: Path) -> None:
        files = _testdata_files()
        kinds = _corpus_kinds(files)
        expected = {"compressed", "big endian", "deflated", "SR", "SEG", "RT", "truncated"}
        assert expected <= kinds, f"the corpus lacks {expected - kinds}: is pydicom-data installed?"

        with (
            SoiProcess(tmp_path / "soi-data", env={"SOI_LOG_FORMAT": "json"}) as soi,
            OrthancServer(tmp_path / "orthanc") as orthanc,
        ):
            peers = {
                "soi": (soi.dicom_port, soi.ae_title),
                "orthanc": (orthanc.dicom_port, "ORTHANC"),
            }
            # Each peer gets the files one after the other; the two peers run side by side.
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = {
                    name: pool.submit(_send_each, files, port=port, called_aet=aet)
                    for name, (port, aet) in peers.items()
                }
                soi_out = futures["soi"].result()
                orthanc_out = futures["orthanc"].result()

            orthanc_uids = orthanc.sop_instance_uids()
            soi_uids = _indexed_uids(soi.data_dir)
            refusals = _soi_log_refusals(soi.log_text())
            echo = echoscu(LOOPBACK, soi.dicom_port, soi.ae_title)
            health = soi.health()
            leftovers = list((soi.data_dir / "instances" / "tmp").iterdir())

            notes: dict[Path, str] = {}
            problems: list[str] = []
            excused_uids: set[str] = set()
            for path in files:
                mine, theirs = soi_out[path], orthanc_out[path]
                if mine.kind == "not sent" or theirs.kind == "not sent":
                    # storescu refused the file itself: the peer plays no part.
                    if mine.kind != theirs.kind:
                        problems.append(f"{_label(path)}: storescu sent it to one peer only")
                    continue
                known = _KNOWN_SOI_ISSUES.get(path.name)
                if known is not None and mine.label in (known, f"refused {known}"):
                    notes[path] = f"known Soi issue ({known})"
                if mine.kind == "refused":
                    problems.extend(self._check_refusal(path, mine, refusals))
                elif mine.kind != "stored" and path not in notes:
                    problems.append(f"{_label(path)}: Soi {mine.label}: {mine.text}")
                if theirs.kind != "stored" or mine.kind == "stored":
                    continue
                # Orthanc kept the file and Soi did not: only for a reason that holds.
                reason = _confirmed_refusal(path, mine)
                if reason is not None:
                    notes[path] = f"Soi refuses on purpose: {reason}"
                if path in notes:
                    excused_uids.add(theirs.sop_instance_uid or "")
                else:
                    problems.append(
                        f"{_label(path)}: Orthanc keeps it, Soi does not "
                        f"({mine.label}: {mine.comment or mine.text})"
                    )

            # Every SOP instance Orthanc kept, Soi kept too, but for the excused files.
            for uid in sorted(orthanc_uids - soi_uids - excused_uids):
                problems.append(f"Orthanc keeps {uid}, Soi does not")

            _print_table(files, soi_out, orthanc_out, notes)
            print(
                f"{len(files)} files; Orthanc keeps {len(orthanc_uids)} instances, Soi "
                f"{len(soi_uids)}; {len(orthanc_uids - soi_uids)} kept by Orthanc only"
            )

        assert not problems, "\n".join(problems)
        assert soi_uids, "Soi kept nothing"
        assert echo.ok, echo.output
        assert health["status"] == "ok", health
        assert leftovers == []

    @staticmethod
    def _check_refusal(path: Path, outcome: Outcome, refusals: list[dict[str, Any]]) -> list[str]:
        assert outcome.status is not None
        problems = []
        if not _in_refusal_range(outcome.status):
            problems.append(f"{_label(path)}: Soi answered 0x{outcome.status:04X} ({outcome.text})")
        if not outcome.comment.strip():
            problems.append(f"{_label(path)}: Soi's 0x{outcome.status:04X} has no Error Comment")
        logged = [
            event
            for event in refusals
            if event.get("status") == f"0x{outcome.status:04X}"
            and event.get("sop_instance_uid") == (outcome.sop_instance_uid or "")[:80]
            and str(event.get("reason", "")).strip()
        ]
        if not logged:
            problems.append(
                f"{_label(path)}: no 'instance refused' log line with status "
                f"0x{outcome.status:04X} and a reason for {outcome.sop_instance_uid}"
            )
        return problems


# -- hostile input ------------------------------------------------------------------


def _part10(*, sop_class_uid: str, sop_instance_uid: str, dataset: bytes) -> bytes:
    """Return a DICOM file: preamble, file meta (Explicit VR Little Endian) and ``dataset``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    buffer = DicomBytesIO()
    buffer.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(buffer, meta, enforce_standard=True)
    return buffer.getvalue() + dataset


def _encode(ds: Dataset, *, implicit_vr: bool = False) -> bytes:
    """Encode a data set (without file meta) in Explicit (or Implicit) VR Little Endian."""
    buffer = DicomBytesIO()
    buffer.is_little_endian = True
    buffer.is_implicit_VR = implicit_vr
    write_dataset(buffer, ds)
    return buffer.getvalue()


def _cr_file(ds: Dataset, *, dataset: bytes | None = None, sop_class_uid: str = "") -> bytes:
    return _part10(
        sop_class_uid=sop_class_uid or CR_IMAGE_STORAGE,
        sop_instance_uid=str(ds.SOPInstanceUID),
        dataset=_encode(ds) if dataset is None else dataset,
    )


def _pixel_data_header(encoded: bytes) -> int:
    """Return the offset of the Pixel Data element (OW, explicit VR) in ``encoded``."""
    offset = encoded.rfind(b"\xe0\x7f\x10\x00OW\x00\x00")
    assert offset > 0, "no Pixel Data element"
    return offset


def _short_pixel_data() -> bytes:
    ds = make_cr()
    ds.PixelData = ds.PixelData[:1000]  # the element is whole, the image is not
    return _cr_file(ds)


def _cut_in_pixel_data() -> bytes:
    ds = make_cr()
    return _cr_file(ds, dataset=_encode(ds)[:-3000])  # a transfer cut short


def _huge_value_length() -> bytes:
    ds = make_cr()
    encoded = _encode(ds)
    start = _pixel_data_header(encoded)
    length = (0x7FFFFFF0).to_bytes(4, "little")
    return _cr_file(ds, dataset=encoded[: start + 8] + length + encoded[start + 12 : start + 1012])


def _no_pixel_data() -> bytes:
    ds = make_cr()
    del ds.PixelData
    return _cr_file(ds)


def _sop_class_mismatch() -> bytes:
    ds = make_cr()
    ds.SOPClassUID = CT_IMAGE_STORAGE  # the request says CR (from the file meta)
    return _cr_file(ds, sop_class_uid=CR_IMAGE_STORAGE)


def _instance_uid_mismatch() -> bytes:
    ds = make_cr()
    return _part10(
        sop_class_uid=CR_IMAGE_STORAGE, sop_instance_uid=generate_uid(), dataset=_encode(ds)
    )


def _path_traversal_uid() -> bytes:
    ds = make_cr(sop_instance_uid="../../etc/passwd")
    return _cr_file(ds)


def _implicit_on_explicit_context() -> bytes:
    ds = make_cr()
    return _cr_file(ds, dataset=_encode(ds, implicit_vr=True))  # the context is explicit VR


def _not_dicom() -> bytes:
    page = b"<html><body><h1>502 Bad Gateway</h1>upstream timed out</body></html>\n"
    return _part10(
        sop_class_uid=CR_IMAGE_STORAGE, sop_instance_uid=generate_uid(), dataset=page * 40
    )


@dataclass(frozen=True)
class HostileCase:
    """A crafted file and the status Soi must answer."""

    build: Callable[[], bytes]
    status: int


HOSTILE_CASES = {
    "short pixel data": HostileCase(_short_pixel_data, 0xC213),
    "cut in pixel data": HostileCase(_cut_in_pixel_data, 0xC213),
    "huge value length": HostileCase(_huge_value_length, 0xC213),
    "no pixel data": HostileCase(_no_pixel_data, 0xA900),
    "SOP class mismatch": HostileCase(_sop_class_mismatch, 0xA900),
    "SOP instance UID mismatch": HostileCase(_instance_uid_mismatch, 0xC211),
    "path traversal UID": HostileCase(_path_traversal_uid, 0xC212),
    # Text after valid file meta: not encoded in the negotiated transfer syntax at all.
    "not DICOM": HostileCase(_not_dicom, 0xC210),
    # A lenient reader would fall back to Implicit VR and keep a file whose meta says
    # Explicit VR Little Endian over an Implicit VR data set.
    "implicit VR on an explicit VR context": HostileCase(_implicit_on_explicit_context, 0xC210),
}


@pytest.fixture(scope="module")
def hostile_soi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SoiProcess]:
    with SoiProcess(tmp_path_factory.mktemp("hostile") / "soi-data") as soi:
        yield soi


@pytest.fixture
def send_files_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make pynetdicom send a file's data set bytes as they are, without decoding them."""
    monkeypatch.setattr(_config, "STORE_SEND_CHUNKED_DATASET", True)


def _files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


def _refusal_audit(data_dir: Path, sop_instance_uid: str) -> list[AuditEvent]:
    database = Database(sqlite_url(data_dir / "soi.db"))
    try:
        with database.read() as session:
            return list(
                session.scalars(
                    select(AuditEvent).where(
                        AuditEvent.outcome == AuditOutcome.REFUSED,
                        AuditEvent.sop_instance_uid == sop_instance_uid[:64],
                    )
                ).all()
            )
    finally:
        database.dispose()


@pytest.mark.usefixtures("send_files_as_is")
class TestHostileInput:
    """Crafted data sets sent with pynetdicom, then a good instance on the same association."""

    @pytest.mark.parametrize("name", list(HOSTILE_CASES))
    def test_refused_precisely_and_association_stays_usable(
        self, name: str, hostile_soi: SoiProcess, tmp_path: Path
    ) -> None:
        case = HOSTILE_CASES[name]
        hostile = tmp_path / "hostile.dcm"
        hostile.write_bytes(case.build())
        request_uid = str(read_file_meta_info(hostile).MediaStorageSOPInstanceUID)
        good_ds = make_cr(seed=7)
        good = tmp_path / "good.dcm"
        good.write_bytes(_cr_file(good_ds))
        instances = hostile_soi.data_dir / "instances"
        before = _files_under(instances)

        ae = AE(ae_title="HOSTILE")
        ae.add_requested_context(CR_IMAGE_STORAGE, ExplicitVRLittleEndian)
        ae.add_requested_context(CT_IMAGE_STORAGE, ExplicitVRLittleEndian)
        assoc = ae.associate(LOOPBACK, hostile_soi.dicom_port, ae_title=hostile_soi.ae_title)
        try:
            assert assoc.is_established
            answer = assoc.send_c_store(hostile)
            after_hostile = _files_under(instances)
            good_answer = assoc.send_c_store(good)
            assert assoc.is_established
        finally:
            if assoc.is_established:
                assoc.release()
            ae.shutdown()

        assert "Status" in answer, f"no C-STORE response: {answer}"
        status = int(answer.Status)
        comment = str(answer.get("ErrorComment", "") or "")
        refused = status != 0x0000
        if refused:
            assert comment.strip(), f"0x{status:04X} without an Error Comment"
            assert after_hostile == before, "a refused instance left a file behind"
            audit = _refusal_audit(hostile_soi.data_dir, request_uid)
            assert [event.detail["status"] for event in audit] == [f"0x{status:04X}"]
            assert audit[0].actor == "HOSTILE"
            assert audit[0].action == "dimse.store"
            assert audit[0].detail["reason"].startswith(comment[:40])

        assert int(good_answer.Status) == 0x0000, good_answer
        added = _files_under(instances) - after_hostile
        assert len(added) == 1
        (kept,) = added
        assert instances / "tmp" not in kept.parents
        assert pydicom.dcmread(kept).SOPInstanceUID == good_ds.SOPInstanceUID
        assert not list((instances / "tmp").iterdir())
        assert hostile_soi.running
        for folder in (hostile_soi.data_dir, hostile_soi.data_dir.parent):
            assert not (folder / "etc").exists()

        assert status == case.status, f"0x{status:04X}: {comment}"
