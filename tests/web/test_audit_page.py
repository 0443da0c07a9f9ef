"""The audit log page in headless Chromium, as a hospital's administrator uses it.

A technician signs in, uploads one of the shipped sample chest radiographs on the
upload page (which reads the study back) and reads the study once more through the
API with the same browser session. Opening the audit page, the technician is told it
is for administrators only. An administrator, signed out, follows a shared link that
filters the log by the patient's CCCD: the sign-in page comes first, then the page
shows the technician's reads of that study, each a success, in the browser's local
time. The administrator narrows the log to reads, pages through it, exports the rows
as CSV and switches to English. Screenshots are saved under the test's temporary
folder; the administrator's first view is copied to ``docs/images/audit-page.png``.

Debian's ``chromium`` is driven by Playwright (``playwright install`` is not used);
the test is skipped without it, except on CI, where it fails.
"""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pydicom
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from soi.settings import SHIPPED_SAMPLES_DIR
from store import DEFAULT_FACILITY_CODE
from tests.support.auth import PASSWORD
from tests.support.soi_process import SoiProcess, soi_executable
from tests.support.tools import require_binary

SAMPLE = SHIPPED_SAMPLES_DIR / "cxr" / "01-normal-pa.dcm"
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "images" / "audit-page.png"
ZONE = "Asia/Ho_Chi_Minh"

pytestmark = pytest.mark.slow


def _soi_cli(*args: str, data_dir: Path, stdin: str = "") -> None:
    done = subprocess.run(
        [*soi_executable(), *args, "--data-dir", str(data_dir)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _sample() -> tuple[str, str]:
    """The sample's Study Instance UID and its patient's CCCD (an Other Patient ID)."""
    ds = pydicom.dcmread(SAMPLE, stop_before_pixels=True)
    [cccd] = [
        item.PatientID for item in ds.OtherPatientIDsSequence if item.IssuerOfPatientID == "CCCD"
    ]
    return str(ds.StudyInstanceUID), str(cccd)


def _sign_in(page: Page, username: str) -> None:
    expect(page.get_by_role("heading", name="Đăng nhập")).to_be_visible()
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def _new_context(browser: Browser) -> BrowserContext:
    """A screen of a hospital's office computer, in Vietnam's time zone."""
    return browser.new_context(
        viewport={"width": 1366, "height": 768},
        timezone_id=ZONE,
        locale="vi-VN",
        accept_downloads=True,
    )


def _local_time(iso: str) -> str:
    return datetime.fromisoformat(iso).astimezone(ZoneInfo(ZONE)).strftime("%d/%m/%Y %H:%M:%S")


def test_an_admin_finds_a_technicians_reads_of_a_patient(tmp_path: Path) -> None:
    chromium = require_binary("chromium")
    study_uid, cccd = _sample()
    data_dir = tmp_path / "data"
    _soi_cli(
        "users", "add", "lan", "--role", "technician", "--facility", DEFAULT_FACILITY_CODE,
        "--password-stdin", data_dir=data_dir, stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    _soi_cli(
        "users", "add", "quan", "--role", "admin", "--password-stdin",
        data_dir=data_dir, stdin=f"{PASSWORD}\n",
    )  # fmt: skip
    shots = tmp_path / "screenshots"
    shots.mkdir()

    with SoiProcess(data_dir, quiet_period=1.0) as soi, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium), headless=True, args=["--no-sandbox"]
        )
        # The technician uploads the study; the upload page reads it back.
        technician = _new_context(browser)
        page = technician.new_page()
        page.goto(f"{soi.url}/ui/upload")
        page.wait_for_url("**/ui/login?*")
        _sign_in(page, "lan")
        page.wait_for_url("**/ui/upload")
        page.wait_for_selector("body[data-ready=true]")
        expect(page.locator("#nav-audit")).to_be_hidden()
        page.set_input_files("#pick-files", SAMPLE)
        page.get_by_role("button", name="Tải lên").click()
        expect(page.locator(f'#studies .study[data-study-uid="{study_uid}"] dl')).to_be_visible(
            timeout=30_000
        )
        again = page.request.get(f"{soi.url}/studies/{study_uid}")
        assert again.status == 200, again.text()

        page.goto(f"{soi.url}/ui/admin/audit")
        forbidden = page.locator("#forbidden")
        expect(forbidden).to_contain_text("Chỉ quản trị viên được xem trang này.")
        expect(forbidden).to_contain_text("lan (Kỹ thuật viên)")
        expect(page.locator("#audit")).to_be_hidden()
        page.screenshot(path=shots / "1-technician.png")
        technician.close()

        # The administrator, signed out, follows a link filtered by the patient's CCCD.
        admin = _new_context(browser)
        page = admin.new_page()
        page.goto(f"{soi.url}/ui/admin/audit?patient={cccd}")
        page.wait_for_url("**/ui/login?*")
        _sign_in(page, "quan")
        page.wait_for_url(f"**/ui/admin/audit?patient={cccd}")
        page.wait_for_selector("body[data-ready=true]")
        expect(page.get_by_role("heading", name="Nhật ký truy cập")).to_be_visible()
        expect(page.get_by_label("Bệnh nhân (CCCD, BHYT, mã hồ sơ)")).to_have_value(cccd)
        expect(page.locator("#who")).to_have_text("quan · Quản trị viên")

        rows = page.locator("#events tbody tr")
        reads = page.locator('#events tbody tr[data-action="study.read"]')
        expect(reads).not_to_have_count(0)
        count = reads.count()
        assert count >= 2  # the upload page's reads and the one through the API
        patients = {rows.nth(i).locator("td").nth(6).inner_text() for i in range(rows.count())}
        [patient] = patients  # every event is about the one patient holding the CCCD
        assert re.fullmatch(r"#\d+", patient), patient
        read = reads.first
        expect(read.locator("td.actor a")).to_have_text("lan")
        expect(read.locator("td.actor")).to_contain_text("phiên đăng nhập")
        expect(read.locator("td.action")).to_contain_text("Xem ca chụp")
        expect(read.locator("td.action code")).to_have_text("study.read")
        expect(read.locator(".outcome")).to_have_text("Thành công")
        expect(read.locator(".outcome")).to_have_class(re.compile(r"\boutcome-success\b"))
        expect(read.locator("td.source")).to_have_text("127.0.0.1")
        expect(read.locator("td.object .uid-line").first).to_have_text(study_uid)
        expect(read.locator("td.object .uid-line").first).to_have_attribute(
            "title", re.compile(re.escape(study_uid))
        )
        iso = read.locator("time").get_attribute("datetime")
        assert iso is not None
        expect(read.locator("time")).to_have_text(_local_time(iso))
        expect(read.locator("time")).to_have_attribute("title", iso)
        expect(page.locator("#patients")).to_have_text(f"Mã “{cccd}” thuộc về bệnh nhân {patient}.")
        patient_view = shots / "2-patient.png"
        page.screenshot(path=patient_view)

        # Narrow to reads with the form: the address keeps the filters.
        page.get_by_label("Hành động").select_option("study.read")
        page.get_by_role("button", name="Lọc", exact=True).click()
        page.wait_for_url(re.compile(r"\?patient=\d+&action=study\.read$"))
        expect(rows).to_have_count(count)
        expect(page.locator("#summary")).to_have_text(f"{count} sự kiện")
        api = page.request.get(
            f"{soi.url}/admin/audit", params={"patient": cccd, "action": "study.read"}
        ).json()
        ids = [str(event["id"]) for event in api["items"]]
        shown = [rows.nth(i).get_attribute("data-event-id") for i in range(count)]
        assert shown == ids, (shown, ids)
        assert [int(i) for i in ids] == sorted((int(i) for i in ids), reverse=True)

        # One row at a time, then the older ones on demand.
        page.goto(f"{soi.url}/ui/admin/audit?patient={cccd}&action=study.read&limit=1")
        expect(rows).to_have_count(1)
        expect(page.locator("#summary")).to_contain_text("còn sự kiện cũ hơn")
        more = page.get_by_role("button", name="Tải thêm")
        for loaded in range(2, count + 1):
            more.click()
            expect(rows).to_have_count(loaded)
        expect(more).to_be_hidden()
        assert [rows.nth(i).get_attribute("data-event-id") for i in range(count)] == ids

        # The rows shown, as CSV.
        with page.expect_download() as download:
            page.get_by_role("button", name="Xuất CSV").click()
        assert re.fullmatch(r"soi-audit-\d{8}T\d{6}Z\.csv", download.value.suggested_filename)
        text = Path(download.value.path()).read_text("utf-8-sig")
        table = list(csv.DictReader(io.StringIO(text, newline="")))
        assert [line["id"] for line in table] == ids
        assert {(line["actor"], line["action"], line["outcome"]) for line in table} == {
            ("lan", "study.read", "success")
        }
        assert {line["study_instance_uid"] for line in table} == {study_uid}

        # In English; the filters stay.
        page.goto(f"{soi.url}/ui/admin/audit?patient={cccd}")
        page.wait_for_selector("body[data-ready=true]")
        page.get_by_role("button", name="English").click()
        expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
        expect(page.get_by_label("Patient (CCCD, BHYT, record number)")).to_have_value(cccd)
        read = reads.first
        expect(read.locator(".outcome")).to_have_text("Success")
        expect(read.locator("td.action")).to_contain_text("Read a study")
        expect(read.locator("td.actor")).to_contain_text("browser session")
        expect(page.get_by_role("button", name="Export CSV")).to_be_enabled()
        page.screenshot(path=shots / "3-patient-english.png")
        page.get_by_role("button", name="Tiếng Việt").click()
        expect(page.locator("#audit-heading")).to_have_text("Nhật ký truy cập")
        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=shots / "4-phone.png")

        # The upload page links administrators to the log, and the log links back.
        page.get_by_role("link", name="Tải lên ảnh").click()
        page.wait_for_url("**/ui/upload")
        page.get_by_role("link", name="Nhật ký truy cập").click()
        page.wait_for_url("**/ui/admin/audit")
        expect(page.locator("#events tbody tr").first).to_be_visible()
        admin.close()
        browser.close()

    DOCS_SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(patient_view, DOCS_SCREENSHOT)
    print(f"screenshots: {shots} ({patient_view.name} copied to {DOCS_SCREENSHOT})")
