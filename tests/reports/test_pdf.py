"""The PDF report: its text (as poppler extracts it), its rendering, and determinism."""

from __future__ import annotations

import re
import subprocess
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reports.context import FacilityInfo, Language, ReportContext
from reports.pdf import STRINGS, build_pdf, format_person_name, report_title
from tests.support.tools import require_binary


def _words(text: str) -> str:
    """Text with every run of white space made one space (lines wrap anywhere)."""
    return " ".join(text.split())


def _statement(key: str, language: Language) -> str:
    """A fixed string as printed (without its markdown bold markers)."""
    return _words(STRINGS[language][key].replace("**", ""))


def pdf_text(pdf: bytes, tmp_path: Path, name: str = "report") -> str:
    """Poppler's ``pdftotext -layout`` of the whole document, white space normalised."""
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        [str(require_binary("pdftotext")), "-layout", "-enc", "UTF-8", str(path), "-"],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return _words(done.stdout.decode("utf-8"))


def page_count(pdf: bytes, tmp_path: Path) -> int:
    """Poppler's ``pdfinfo`` page count."""
    path = tmp_path / "count.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        [str(require_binary("pdfinfo")), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    match = re.search(r"^Pages:\s+(\d+)", done.stdout, re.MULTILINE)
    assert match is not None, done.stdout
    return int(match[1])


def render_page(pdf: bytes, tmp_path: Path, page: int = 1, name: str = "page") -> Path:
    """Poppler's ``pdftoppm -png -r 60`` rendering of one page."""
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    prefix = tmp_path / name
    subprocess.run(
        [
            str(require_binary("pdftoppm")),
            "-png",
            "-r",
            "60",
            "-f",
            str(page),
            "-l",
            str(page),
            "-singlefile",
            str(path),
            str(prefix),
        ],
        capture_output=True,
        check=True,
        timeout=30,
    )
    return prefix.with_suffix(".png")


def _fonts(pdf: bytes, tmp_path: Path) -> list[str]:
    """Poppler's ``pdffonts`` table rows."""
    path = tmp_path / "fonts.pdf"
    path.write_bytes(pdf)
    done = subprocess.run(
        [str(require_binary("pdffonts")), str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return done.stdout.splitlines()[2:]


class TestComplete:
    def test_vietnamese_report_prints_every_fact_exactly(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        pdf = build_pdf(complete_context)

        text = pdf_text(pdf, tmp_path)

        for expected in (
            "Bệnh viện Đa khoa tỉnh Hà Giang",
            "Kết quả đọc phim X-quang ngực bằng AI — SƠ BỘ",
            # the boxed statement, and its reminder in the footer
            "KẾT QUẢ SƠ BỘ DO AI TẠO — KHÔNG PHẢI CHẨN ĐOÁN.",
            _statement("notice_preliminary", "vi"),
            "Kết quả AI sơ bộ — không phải chẩn đoán",
            # patient and exam
            "NGUYỄN THỊ HƯƠNG",
            "14/02/1980",
            "Giới tính Nữ",
            "Số CCCD 001180000123",
            "Số thẻ BHYT DN4010100000123",
            "Mã người bệnh HG-000123",
            "Số phiếu chụp HG2611230001",
            "X-quang ngực thẳng",
            complete_context.study.study_instance_uid,
            "Đạt — ảnh đủ điều kiện để AI đọc.",
            # findings, their operating point, heatmap captions
            "Bóng tim to 91% 50% DƯƠNG TÍNH",
            "Tràn dịch màng phổi 97% 50% DƯƠNG TÍNH",
            "Tràn khí màng phổi 3% 50% Âm tính",
            "Đông đặc phổi 12% 50% Âm tính",
            "Nốt / khối u phổi 8% 50% Âm tính",
            "Bóng tim to — 91%",
            "Tràn dịch màng phổi — 97%",
            # the model and what its card measured
            "cxr 0.2.0",
            "Chỉ được huấn luyện trên dữ liệu tổng hợp — chưa đo hiệu năng lâm sàng.",
            _statement("metrics_synthetic", "vi"),
            "Bóng tim to 0,99 (0,97–1,00) 95% (90–99%) 98% (96–100%)",
            # footer
            "Mã kết quả 17",
            "23/11/2026 15:30 (UTC+07:00)",
            "Trang 1/1",
        ):
            assert expected in text, expected
        assert "NGUYỄN^THỊ" not in text
        fonts = _fonts(pdf, tmp_path)
        assert fonts
        assert all(" yes yes " in line for line in fonts), fonts  # embedded subsets
        assert any("+DejaVuSansBook " in line for line in fonts), fonts
        assert any("+DejaVuSansBold " in line for line in fonts), fonts

    def test_english_report_and_the_facility_default(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        english_facility = replace(
            complete_context, facility=FacilityInfo("BV-TEST", "Test Hospital", "en")
        )

        asked = pdf_text(build_pdf(complete_context, language="en"), tmp_path, "asked")
        default = pdf_text(build_pdf(english_facility), tmp_path, "default")

        for expected in (
            "AI chest X-ray result — PRELIMINARY",
            "PRELIMINARY AI RESULT — NOT A DIAGNOSIS.",
            _statement("notice_preliminary", "en"),
            "Preliminary AI result — not a diagnosis",
            "NGUYỄN THỊ HƯƠNG",
            "Sex Female",
            "National ID (CCCD) 001180000123",
            "Health insurance (BHYT) DN4010100000123",
            "Cardiomegaly 91% 50% POSITIVE",
            "Pneumothorax 3% 50% Negative",
            "Passed — the images are fit for AI reading.",
            "Trained on synthetic data only — no clinical performance measured.",
            _statement("metrics_synthetic", "en"),
            "Cardiomegaly 0.99 (0.97–1.00) 95% (90–99%) 98% (96–100%)",
            "Page 1/1",
        ):
            assert expected in asked, expected
            assert expected in default, expected
        for vietnamese in ("Bóng tim to", "SƠ BỘ", "DƯƠNG TÍNH", "Trang"):
            assert vietnamese not in asked
        assert "Test Hospital" in default

    def test_page_one_renders_with_the_heatmaps(
        self, complete_context: ReportContext, tmp_path: Path
    ) -> None:
        pdf = build_pdf(complete_context)

        png = render_page(pdf, tmp_path)

        with Image.open(png) as opened:
            pixels = np.asarray(opened.convert("RGB")).astype(np.int16)
        assert pixels.shape[0] == 702  # A4 at 60 dpi: 496.1 x 701.6 pixels
        assert pixels.shape[1] in (496, 497)
        grey = pixels.mean(axis=2)
        assert (grey < 80).mean() > 0.005  # text was drawn
        spread = pixels.max(axis=2) - pixels.min(axis=2)
        assert (spread > 120).sum() > 500  # the colour heatmaps and the notice box
        assert page_count(pdf, tmp_path) == 1


def test_both_languages_have_the_same_strings() -> None:
    assert set(STRINGS["vi"]) == set(STRINGS["en"])


class TestUngradableAndFailed:
    def test_ungradable_shows_the_reason_and_no_findings(
        self, ungradable_context: ReportContext, tmp_path: Path
    ) -> None:
        pdf = build_pdf(ungradable_context)

        text = pdf_text(pdf, tmp_path, "vi")
        english = pdf_text(build_pdf(ungradable_context, language="en"), tmp_path, "en")

        assert "KHÔNG ĐÁNH GIÁ ĐƯỢC" in text
        assert f"Lý do: {ungradable_context.reason_vi}" in text
        assert "Không đạt: Tư thế chụp — phim nghiêng" in text
        assert _statement("no_result", "vi") in text
        assert "KẾT QUẢ SƠ BỘ DO AI TẠO — KHÔNG PHẢI CHẨN ĐOÁN." in text
        for absent in (
            "Bóng tim to",
            STRINGS["vi"]["finding"],
            STRINGS["vi"]["probability"],
            STRINGS["vi"]["operating_point"],
            "DƯƠNG TÍNH",
            "Âm tính",
            STRINGS["vi"]["heatmaps"],
            "Đạt — ảnh đủ",
        ):
            assert absent not in text, absent
        assert "UNGRADABLE" in english
        assert f"Reason: {_words(ungradable_context.reason_en)}" in english
        assert "Not passed: View — lateral view" in english
        for absent in ("Probability", "Cardiomegaly", "POSITIVE", "Negative"):
            assert absent not in english, absent
        with Image.open(render_page(pdf, tmp_path)) as opened:
            assert opened.size in ((496, 702), (497, 702))
        assert page_count(pdf, tmp_path) == 1

    def test_failed_shows_its_reason(
        self, ungradable_context: ReportContext, tmp_path: Path
    ) -> None:
        failed = replace(
            ungradable_context,
            state="failed",
            reason_en="The model runtime failed three times",
            reason_vi="Mô hình AI lỗi ba lần liên tiếp",
            gates=(),
        )

        text = pdf_text(build_pdf(failed), tmp_path)

        assert "AI KHÔNG XỬ LÝ ĐƯỢC CA CHỤP NÀY." in text
        assert "Lý do: Mô hình AI lỗi ba lần liên tiếp" in text
        assert "Xác suất" not in text


class TestStatus:
    @pytest.mark.parametrize(
        ("status", "language", "title", "notice"),
        [
            ("final", "vi", "Kết quả đọc phim X-quang ngực bằng AI — CHÍNH THỨC", "notice_final"),
            ("amended", "en", "AI chest X-ray result — AMENDED", "notice_amended"),
        ],
    )
    def test_signed_results_say_so_instead(
        self,
        complete_context: ReportContext,
        tmp_path: Path,
        status: str,
        language: Language,
        title: str,
        notice: str,
    ) -> None:
        signed = replace(complete_context, status=status)

        text = pdf_text(build_pdf(signed, language=language), tmp_path)

        assert title in text
        assert _statement(notice, language) in text
        for preliminary in ("SƠ BỘ", "KHÔNG PHẢI CHẨN ĐOÁN", "PRELIMINARY", "NOT A DIAGNOSIS"):
            assert preliminary not in text
        assert report_title(signed, language) == title


def test_the_same_context_gives_the_same_bytes(complete_context: ReportContext) -> None:
    later = replace(complete_context, created_at=datetime(2026, 11, 24, 1, 0, tzinfo=UTC))

    first = build_pdf(complete_context)
    second = build_pdf(complete_context)

    assert first == second
    assert first.startswith(b"%PDF-")
    assert b"D:20261123083000Z" in first  # the creation date is the result's
    assert build_pdf(later) != first


@pytest.mark.parametrize(
    ("pn", "printed"),
    [
        ("NGUYỄN^THỊ HƯƠNG", "NGUYỄN THỊ HƯƠNG"),
        ("TRẦN^AN^VĂN", "TRẦN VĂN AN"),
        ("LÊ^MINH^^BS.^", "BS. LÊ MINH"),
        ("PHẠM^HÀ=ファム", "PHẠM HÀ"),
        ("", ""),
    ],
)
def test_person_names_print_family_name_first(pn: str, printed: str) -> None:
    assert format_person_name(pn) == printed
