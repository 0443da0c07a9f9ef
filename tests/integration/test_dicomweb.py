"""DICOMweb end to end: the same requests, through dicomweb-client, to Soi and to Orthanc
with its DICOMweb plugin, and the answers compared; then bad input, each answered with
the status PS3.18 gives, problem details, and nothing stored.

Soi runs as ``soi serve`` does (:func:`tests.support.dicomweb.serve_soi`: the FastAPI
app over a real runtime, served by uvicorn on a free loopback port) on SQLite and on
PostgreSQL; its callers send API tokens (:meth:`Soi.headers`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
import numpy as np
import pytest
from dicomweb_client import DICOMwebClient
from PIL import Image
from pydicom import Dataset, dcmread
from pydicom.encaps import get_frame
from sqlalchemy import select

from soi.settings import SHIPPED_SAMPLES_DIR, Settings
from store import Instance
from tests.support import DICOMWEB_PLUGIN, OrthancServer, require_path
from tests.support.data import make_cr, pydicom_file
from tests.support.dicomweb import Soi, serve_soi

pytestmark = pytest.mark.slow

STUDY_A = "1.2.826.0.1.3680043.8.498.7001"
ANY_SYNTAX = (("application/dicom", "*"),)
PROBLEM = "application/problem+json"
DICOM_PART = 'multipart/related; type="application/dicom"'
#: Attributes whose values depend on the server, not on the data.
SERVER_SPECIFIC = {"00081190", "00080005", "00080056"}


def _datasets() -> list[Dataset]:
    """CR, DX (one in JPEG 2000), CT and a multi-frame MR, in five studies."""
    first = make_cr(study_instance_uid=STUDY_A, patient_id="MRN-0001", seed=1)
    second = make_cr(study_instance_uid=STUDY_A, patient_id="MRN-0001", seed=2)
    second.SeriesNumber = 2
    second.InstanceNumber = 1
    other = make_cr(patient_id="MRN-0002", modality="DX", seed=3)
    other.StudyDate = "20250105"
    other.AccessionNumber = "ACC2"
    sample = dcmread(SHIPPED_SAMPLES_DIR / "cxr" / "01-normal-pa.dcm")
    return [
        first,
        second,
        other,
        sample,
        dcmread(pydicom_file("CT_small.dcm")),
        dcmread(pydicom_file("emri_small.dcm")),
    ]


def _part10(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _multipart(*parts: tuple[str, bytes], boundary: str = "soi-test") -> bytes:
    out = b""
    for content_type, data in parts:
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n"
    return out + f"--{boundary}--\r\n".encode()


STOW_TYPE = 'multipart/related; type="application/dicom"; boundary=soi-test'


@pytest.fixture
def soi(settings: Settings) -> Iterator[Soi]:
    """Soi with two hospitals and their callers; STOW-RS bodies up to 4 MiB."""
    with serve_soi(settings.model_copy(update={"dicomweb_max_request_mb": 4})) as running:
        yield running


@dataclass
class Peer:
    """Orthanc with its DICOMweb plugin, holding the test data."""

    server: OrthancServer
    datasets: list[Dataset]
    stow_response: Dataset

    @property
    def client(self) -> DICOMwebClient:
        return DICOMwebClient(f"{self.server.url}/dicom-web")

    def search(self, resource: str, filters: dict[str, str]) -> list[dict[str, Any]]:
        """Orthanc's QIDO-RS answer to ``filters``.

        Orthanc 1.10 matches no wildcard sent percent-encoded (``MRN%2A``, as
        dicomweb-client sends ``MRN*``): wildcard values go in the URL as they are.
        """
        if not any("*" in value or "?" in value for value in filters.values()):
            found: list[dict[str, Any]] = getattr(self.client, f"search_for_{resource}")(
                search_filters=filters
            )
            return found
        query = "&".join(f"{name}={quote(value, safe='*?-')}" for name, value in filters.items())
        answer = self.server.client.get(f"/dicom-web/{resource}?{query}")
        assert answer.status_code == 200, answer.text
        result: list[dict[str, Any]] = answer.json()
        return result

    def instance(self, ds: Dataset) -> Dataset:
        """Orthanc's WADO-RS instance, as stored.

        Orthanc 1.10 with DICOMweb 1.7 sends the part without the 128-byte preamble and
        ``DICM``, which dicomweb-client refuses; it is read here with ``force``.
        """
        url = (
            f"{self.server.url}/dicom-web/studies/{ds.StudyInstanceUID}/series/"
            f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        )
        answer = self.server.client.get(
            url,
            headers={"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'},
        )
        assert answer.status_code == 200, answer.text
        body = answer.content
        start = body.index(b"\r\n\r\n") + 4
        end = body.rindex(b"\r\n--")
        return dcmread(io.BytesIO(body[start:end]), force=True)


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peer]:
    require_path(DICOMWEB_PLUGIN, "Orthanc DICOMweb plugin (Debian orthanc-dicomweb)")
    datasets = _datasets()
    with OrthancServer(tmp_path_factory.mktemp("orthanc"), plugins=[DICOMWEB_PLUGIN]) as server:
        response = DICOMwebClient(f"{server.url}/dicom-web").store_instances(datasets)
        yield Peer(server=server, datasets=datasets, stow_response=response)


def _by_uid(items: list[dict[str, Any]], tag: str) -> dict[str, dict[str, Any]]:
    return {item[tag]["Value"][0]: item for item in items}


def _assert_same(soi: dict[str, Any], orthanc: dict[str, Any], required: set[str]) -> None:
    """Attributes present in both are equal; ``required`` ones are in Soi's answer."""
    assert required <= set(soi), f"missing {required - set(soi)}"
    for tag in (set(soi) & set(orthanc)) - SERVER_SPECIFIC:
        assert soi[tag].get("Value") == orthanc[tag].get("Value"), tag


def _assert_problem(answer: httpx.Response, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body: dict[str, Any] = answer.json()
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    return body


def _store_all(soi: Soi, datasets: list[Dataset]) -> Dataset:
    response: Dataset = soi.client().store_instances(datasets)
    return response


class TestLikeOrthanc:
    def test_store(self, soi: Soi, orthanc: Peer) -> None:
        response = _store_all(soi, orthanc.datasets)
        ours = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
        theirs = {
            item.ReferencedSOPInstanceUID for item in orthanc.stow_response.ReferencedSOPSequence
        }
        assert ours == theirs == {str(ds.SOPInstanceUID) for ds in orthanc.datasets}
        # PS3.18 Table I.1-1: Failed SOP Sequence only when something failed (Orthanc
        # sends it empty).
        assert "FailedSOPSequence" not in response
        assert soi.stored() == len(orthanc.datasets)
        # Durable before the answer: every indexed file is on disk, whole.
        with soi.runtime.database.read() as session:
            for instance in session.scalars(select(Instance)):
                path = soi.runtime.files.absolute(instance.file_path)
                assert path.stat().st_size == instance.file_size

    @pytest.mark.parametrize(
        "filters",
        [
            {},
            {"PatientID": "MRN-0001"},
            {"PatientID": "MRN*"},
            {"StudyDate": "20260101-20261231"},
            {"StudyDate": "-20251231"},
            {"ModalitiesInStudy": "CT"},
            {"AccessionNumber": "ACC1"},
            {"StudyInstanceUID": STUDY_A},
        ],
    )
    def test_search_for_studies(self, soi: Soi, orthanc: Peer, filters: dict[str, str]) -> None:
        _store_all(soi, orthanc.datasets)
        ours = _by_uid(soi.client().search_for_studies(search_filters=filters), "0020000D")
        theirs = _by_uid(orthanc.search("studies", filters), "0020000D")
        assert set(ours) == set(theirs)
        assert ours, filters
        required = {"0020000D", "00100020", "00080020", "00201206", "00201208", "00081190"}
        for uid, item in ours.items():
            _assert_same(item, theirs[uid], required)

    def test_search_paging_and_includefield(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        client = soi.client()
        pages = [client.search_for_studies(limit=2, offset=offset) for offset in (0, 2, 4, 6)]
        assert [len(page) for page in pages] == [2, 2, 1, 0]
        every = {item["0020000D"]["Value"][0] for page in pages for item in page}
        assert len(every) == 5
        [ours] = client.search_for_studies(
            search_filters={"StudyInstanceUID": STUDY_A}, fields=["PatientBirthDate", "00081030"]
        )
        [theirs] = orthanc.client.search_for_studies(
            search_filters={"StudyInstanceUID": STUDY_A}, fields=["PatientBirthDate", "00081030"]
        )
        assert ours["00100030"]["Value"] == ["19700101"]
        assert "00081030" in ours  # asked for, and without value in the instance
        _assert_same(ours, theirs, {"00100030"})

    @pytest.mark.parametrize(
        ("level", "filters"),
        [
            ("series", {}),
            ("series", {"Modality": "MR"}),
            ("instances", {}),
            ("instances", {"SOPClassUID": "1.2.840.10008.5.1.4.1.1.1"}),
        ],
    )
    def test_search_for_series_and_instances(
        self, soi: Soi, orthanc: Peer, level: str, filters: dict[str, str]
    ) -> None:
        _store_all(soi, orthanc.datasets)
        tag = "0020000E" if level == "series" else "00080018"
        search = f"search_for_{level}"
        ours = _by_uid(getattr(soi.client(), search)(search_filters=filters), tag)
        theirs = _by_uid(getattr(orthanc.client, search)(search_filters=filters), tag)
        assert set(ours) == set(theirs)
        assert ours
        for uid, item in ours.items():
            _assert_same(item, theirs[uid], {tag, "0020000D", "00081190"})

    def test_search_within_a_study(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        ours = soi.client().search_for_series(study_instance_uid=STUDY_A)
        theirs = orthanc.client.search_for_series(study_instance_uid=STUDY_A)
        assert _by_uid(ours, "0020000E").keys() == _by_uid(theirs, "0020000E").keys()
        [series] = [item for item in ours if item["00200011"]["Value"] == [2]]
        uid = series["0020000E"]["Value"][0]
        instances = soi.client().search_for_instances(
            study_instance_uid=STUDY_A, series_instance_uid=uid
        )
        assert len(instances) == 1

    def test_retrieve_instance(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        client = soi.client()
        for ds in orthanc.datasets:
            uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            as_stored = client.retrieve_instance(*uids, media_types=ANY_SYNTAX)
            theirs = orthanc.instance(ds)
            assert as_stored.SOPInstanceUID == theirs.SOPInstanceUID == ds.SOPInstanceUID
            assert as_stored.PixelData == theirs.PixelData == ds.PixelData
            # Without transfer-syntax: Explicit VR Little Endian (PS3.18 default).
            default = client.retrieve_instance(
                *uids, media_types=(("application/dicom", "1.2.840.10008.1.2.1"),)
            )
            assert default.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
            assert np.array_equal(default.pixel_array, ds.pixel_array)

    def test_retrieve_study_and_series(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        client = soi.client()
        study = client.retrieve_study(STUDY_A, media_types=ANY_SYNTAX)
        assert len(study) == 2
        first = orthanc.datasets[0]
        [series] = client.retrieve_series(STUDY_A, first.SeriesInstanceUID, media_types=ANY_SYNTAX)
        assert series.SOPInstanceUID == first.SOPInstanceUID

    def test_retrieve_metadata(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        for ds in orthanc.datasets:
            uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            ours = soi.client().retrieve_instance_metadata(*uids)
            theirs = orthanc.client.retrieve_instance_metadata(*uids)
            assert "BulkDataURI" in ours["7FE00010"]
            # Orthanc leaves compressed pixel data out of the metadata altogether.
            if "7FE00010" in theirs:
                assert ours["7FE00010"]["vr"] == theirs["7FE00010"]["vr"]
            for tag in (set(ours) & set(theirs)) - {"7FE00010"}:
                if "Value" in theirs[tag] and theirs[tag]["vr"] != "SQ":
                    assert ours[tag]["Value"] == theirs[tag]["Value"], tag
            assert set(theirs) - set(ours) <= {"7FE00010"}
            # The BulkDataURI gives the pixel data (the path of the URI: dicomweb-client
            # sends a Host header without the port, so the URI has none).
            path = ours["7FE00010"]["BulkDataURI"].split("/dicomweb", 1)[1]
            with soi.http() as http:
                answer = http.get(
                    path, headers={"Accept": 'multipart/related; type="application/octet-stream"'}
                )
            assert answer.status_code == 200
        study = soi.client().retrieve_study_metadata(STUDY_A)
        assert len(study) == 2

    def test_retrieve_frames(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        octets = ("application/octet-stream",)
        as_stored = (("application/octet-stream", "*"),)
        for ds in orthanc.datasets:
            uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
            numbers = [1, 3] if int(ds.get("NumberOfFrames", 1) or 1) > 1 else [1]
            ours = soi.client().retrieve_instance_frames(*uids, numbers, media_types=octets)
            pixels = ds.pixel_array if len(numbers) > 1 else ds.pixel_array[np.newaxis]
            little = pixels.astype(pixels.dtype.newbyteorder("<"))
            assert ours == [little[n - 1].tobytes() for n in numbers]
            stored = soi.client().retrieve_instance_frames(*uids, numbers, media_types=as_stored)
            if ds.file_meta.TransferSyntaxUID.is_compressed:
                # Orthanc cannot decode JPEG 2000 (500); compare the frames as stored.
                theirs = orthanc.client.retrieve_instance_frames(
                    *uids, numbers, media_types=as_stored
                )
                assert stored == theirs
                assert stored[0] == get_frame(ds.PixelData, 0, number_of_frames=1)
            else:
                theirs = orthanc.client.retrieve_instance_frames(*uids, numbers, media_types=octets)
                assert ours == stored == theirs

    def test_rendered(self, soi: Soi, orthanc: Peer) -> None:
        _store_all(soi, orthanc.datasets)
        cr, sample = orthanc.datasets[0], orthanc.datasets[3]  # 12-bit CR, 16-bit JPEG 2000

        def path(ds: Dataset) -> str:
            return (
                f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}/rendered"
            )

        png_only = {"Accept": "image/png"}
        with soi.http() as http:
            png = http.get(path(sample), headers=png_only)
            windowed = http.get(
                path(sample), params={"window": "1000,500,linear"}, headers=png_only
            )
            jpeg = http.get(path(sample), params={"viewport": "256,256", "quality": "80"})
            small = http.get(path(cr), headers=png_only)
        # Orthanc renders what it can decode (not JPEG 2000 without a plugin).
        theirs = orthanc.server.client.get(f"/dicom-web{path(cr)}", headers=png_only)
        for answer, media_type in (
            (png, "image/png"),
            (windowed, "image/png"),
            (jpeg, "image/jpeg"),
            (small, "image/png"),
            (theirs, "image/png"),
        ):
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == media_type
        image = Image.open(io.BytesIO(png.content))
        assert (image.format, image.mode, image.size) == ("PNG", "L", (sample.Columns, sample.Rows))
        assert float(np.asarray(image).std()) > 40  # a picture, not a flat field
        other = np.asarray(Image.open(io.BytesIO(windowed.content)))
        assert not np.array_equal(np.asarray(image), other)
        assert Image.open(io.BytesIO(jpeg.content)).size == (256, 256)
        ours_small = Image.open(io.BytesIO(small.content))
        assert ours_small.size == Image.open(io.BytesIO(theirs.content)).size == (64, 64)


class TestBadInput:
    def test_oversized_upload_is_413(self, soi: Soi) -> None:
        body = _multipart(("application/dicom", b"\0" * (5 << 20)))
        with soi.http() as http:
            _assert_problem(
                http.post("/studies", content=body, headers={"Content-Type": STOW_TYPE}), 413
            )

            def chunks() -> Iterator[bytes]:
                for start in range(0, len(body), 1 << 16):
                    yield body[start : start + (1 << 16)]

            streamed = http.post("/studies", content=chunks(), headers={"Content-Type": STOW_TYPE})
            _assert_problem(streamed, 413)
        assert soi.stored() == 0

    def test_non_dicom_parts(self, soi: Soi) -> None:
        body = _multipart(
            ("text/plain", b"hello"), ("application/dicom", b"<script>alert(1)</script>")
        )
        with soi.http() as http:
            answer = http.post("/studies", content=body, headers={"Content-Type": STOW_TYPE})
            truncated = http.post(
                "/studies", content=body[:-12], headers={"Content-Type": STOW_TYPE}
            )
        assert answer.status_code == 409
        assert answer.headers["content-type"] == "application/dicom+json"
        response = Dataset.from_json(answer.json())
        assert [int(item.FailureReason) for item in response.FailedSOPSequence] == [0xC210, 0xC210]
        assert "ReferencedSOPSequence" not in response
        assert "not a DICOM file" in answer.headers["warning"]
        assert "close delimiter" in _assert_problem(truncated, 400)["detail"]
        assert soi.stored() == 0

    @pytest.mark.parametrize(
        "content_type",
        [
            "application/dicom",
            "application/json",
            'multipart/related; type="application/dicom+json"; boundary=soi-test',
            "text/html; charset=utf-8",
        ],
    )
    def test_wrong_content_type_is_415(self, soi: Soi, content_type: str) -> None:
        body = _multipart(("application/dicom", _part10(make_cr())))
        with soi.http() as http:
            _assert_problem(
                http.post("/studies", content=body, headers={"Content-Type": content_type}), 415
            )
        assert soi.stored() == 0

    def test_another_facility_s_study(self, soi: Soi) -> None:
        theirs = make_cr(study_instance_uid=STUDY_A, seed=1)
        soi.client("tech-a").store_instances([theirs])
        joining = _part10(make_cr(study_instance_uid=STUDY_A, seed=2))
        own = make_cr(patient_id="B-77", seed=3)
        with soi.http("tech-b") as http:
            refused = http.post(
                "/studies",
                content=_multipart(("application/dicom", joining)),
                headers={"Content-Type": STOW_TYPE},
            )
            mixed = http.post(
                "/studies",
                content=_multipart(
                    ("application/dicom", joining), ("application/dicom", _part10(own))
                ),
                headers={"Content-Type": STOW_TYPE},
            )
            hidden = http.get(f"/studies/{STUDY_A}/metadata")
            missing = http.get("/studies/1.2.3.4.5/metadata")
            series = http.get(f"/studies/{STUDY_A}/series")
            found = http.get("/studies")
        assert refused.status_code == 409
        [failure] = Dataset.from_json(refused.json()).FailedSOPSequence
        assert failure.FailureReason == 0x0124
        assert "another facility" in refused.headers["warning"]
        assert mixed.status_code == 202
        mixed_response = Dataset.from_json(mixed.json())
        assert [int(i.FailureReason) for i in mixed_response.FailedSOPSequence] == [0x0124]
        assert (
            mixed_response.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == own.SOPInstanceUID
        )
        # Another facility's study is not found, exactly as one that does not exist.
        assert _assert_problem(hidden, 404)["title"] == _assert_problem(missing, 404)["title"]
        _assert_problem(series, 404)
        assert [s["0020000D"]["Value"][0] for s in found.json()] == [own.StudyInstanceUID]
        [a_study] = soi.client("tech-a").search_for_studies()
        assert a_study["00201208"]["Value"] == [1]
        assert soi.stored() == 2

    HOSTILE: ClassVar[list[str]] = [
        "' OR '1'='1",
        "1; DROP TABLE studies;--",
        "<script>alert(1)</script>",
        "%",
    ]

    @pytest.mark.parametrize(
        "name",
        [
            "PatientID",
            "PatientName",
            "AccessionNumber",
            "StudyDescription",
            "StudyDate",
            "StudyTime",
            "ModalitiesInStudy",
            "StudyInstanceUID",
            "limit",
            "offset",
            "includefield",
            "fuzzymatching",
            "' OR 1=1--",
        ],
    )
    def test_hostile_query_parameters(self, soi: Soi, name: str) -> None:
        soi.client().store_instances([make_cr(study_instance_uid=STUDY_A)])
        with soi.http() as http:
            for value in self.HOSTILE:
                for path in ("/studies", "/series", "/instances"):
                    answer = http.get(path, params={name: value})
                    assert answer.status_code in (204, 400), (path, name, value, answer.text)
                    if answer.status_code == 400:
                        _assert_problem(answer, 400)
                    else:
                        assert answer.content == b""
            assert len(http.get("/studies").json()) == 1  # the tables are still there

    def test_retrieve_errors(self, soi: Soi) -> None:
        ds = make_cr(study_instance_uid=STUDY_A)
        soi.client().store_instances([ds])
        instance = f"/studies/{STUDY_A}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
        with soi.http() as http:
            _assert_problem(http.get("/studies/1.2.3'--/metadata"), 400)
            _assert_problem(http.get("/studies/<script>/series"), 400)
            _assert_problem(http.get(f"{instance}/frames/1,x"), 400)
            _assert_problem(http.get(f"{instance}/frames/2"), 404)
            _assert_problem(http.get(f"{instance}/rendered", params={"window": "1,0"}), 400)
            _assert_problem(http.get(f"{instance}/rendered", headers={"Accept": "image/gif"}), 406)
            _assert_problem(http.get(instance, headers={"Accept": "application/json"}), 406)
            _assert_problem(http.get("/studies", headers={"Accept": "application/dicom+xml"}), 406)
            _assert_problem(
                http.get(
                    instance,
                    headers={"Accept": f"{DICOM_PART}; transfer-syntax=1.2.840.10008.1.2.4.50"},
                ),
                406,
            )

    def test_callers(self, soi: Soi) -> None:
        body = _multipart(("application/dicom", _part10(make_cr())))
        with soi.http("research") as http:
            _assert_problem(
                http.post("/studies", content=body, headers={"Content-Type": STOW_TYPE}), 403
            )
            assert http.get("/studies").status_code == 204  # researchers see no identified data
        with httpx.Client(base_url=soi.url) as anonymous:
            _assert_problem(anonymous.get("/studies"), 401)
            _assert_problem(
                anonymous.post("/studies", content=body, headers={"Content-Type": STOW_TYPE}), 401
            )
        assert soi.stored() == 0
