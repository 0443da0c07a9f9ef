"""The printable report: one AI result as an A4 PDF, in Vietnamese or English.

:func:`build_pdf` lays out, from a :class:`~reports.context.ReportContext` alone:

- a header with the facility and the report's title, which names its status
  (*SƠ BỘ* / *PRELIMINARY* while no clinician has signed);
- a boxed statement that an unsigned AI result is not a diagnosis (or, once signed,
  that the result is final or amended);
- the patient (name as ``FAMILY GIVEN`` from the DICOM PN, birth date, sex, CCCD, BHYT,
  MRN) and the exam (date and time, description, accession, modality, Study UID);
- the quality gates' outcome, or why the study was ungradable or the analysis failed;
- for a complete result, a table of the findings (probability, operating point,
  positive or negative) and a heatmap thumbnail per positive finding;
- once a radiologist has signed: their decision on each finding, the impression as
  written and "Signed by <name>, <time>";
- the model that produced it, what it was trained on and the performance its card
  states, with 95 % confidence intervals;
- a footer on every page with the page number and when the result was created.

Text is set in DejaVu Sans, embedded (subset), so Vietnamese diacritics print exactly
as written. Every fixed string exists in both languages (:data:`STRINGS`). The output
depends on the context only: the PDF's creation date and the time printed are the
result's ``created_at`` (the signature's time once signed), so building the report twice
gives the same bytes and re-sending it is idempotent.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from functools import cache
from pathlib import Path
from typing import Final

from fpdf import FPDF, FontFace
from fpdf.enums import XPos, YPos
from fpdf.util import Padding
from PIL import Image, ImageFont

from inference.explain import overlay_font
from reports.context import (
    DecisionInfo,
    FindingInfo,
    GateInfo,
    Language,
    MetricInfo,
    ReportContext,
)

__all__ = [
    "REPORT_TIMEZONE",
    "STRINGS",
    "ReportFontError",
    "build_pdf",
    "format_person_name",
    "report_fonts",
    "report_title",
]

#: Times printed on the report (the result's creation) are shown in Vietnam's time.
REPORT_TIMEZONE: Final = timezone(timedelta(hours=7))

#: Every fixed text of the report, in Vietnamese and English (the same keys in both).
STRINGS: Final[Mapping[Language, Mapping[str, str]]] = {
    "vi": {
        "title": "Kết quả đọc phim X-quang ngực bằng AI",
        "status_preliminary": "SƠ BỘ",
        "status_final": "CHÍNH THỨC",
        "status_amended": "ĐÃ SỬA ĐỔI",
        "notice_preliminary": (
            "**KẾT QUẢ SƠ BỘ DO AI TẠO — KHÔNG PHẢI CHẨN ĐOÁN.** "
            "Kết quả này chưa được bác sĩ xem xét và ký xác nhận; chỉ dùng để tham khảo "
            "cho đến khi bác sĩ ký."
        ),
        "notice_final": (
            "**KẾT QUẢ CHÍNH THỨC — ĐÃ ĐƯỢC BÁC SĨ KÝ.** "
            "Bác sĩ đã xem xét kết quả AI này và ký xác nhận."
        ),
        "notice_amended": (
            "**KẾT QUẢ ĐÃ SỬA ĐỔI — ĐÃ ĐƯỢC BÁC SĨ KÝ.** "
            "Bản này thay thế bản trước; bác sĩ đã xem xét và ký xác nhận."
        ),
        "footer_preliminary": "Kết quả AI sơ bộ — không phải chẩn đoán",
        "result_no": "Mã kết quả",
        "patient": "Người bệnh",
        "name": "Họ tên",
        "birth_date": "Ngày sinh",
        "sex": "Giới tính",
        "sex_F": "Nữ",
        "sex_M": "Nam",
        "sex_O": "Khác",
        "sex_unknown": "Không rõ",
        "national_id": "Số CCCD",
        "health_insurance": "Số thẻ BHYT",
        "mrn": "Mã người bệnh",
        "exam": "Ca chụp",
        "study_datetime": "Ngày giờ chụp",
        "description": "Mô tả",
        "accession": "Số phiếu chụp",
        "modality": "Loại ảnh",
        "study_uid": "Study Instance UID",
        "quality": "Kiểm tra chất lượng ảnh",
        "quality_passed": "Đạt — ảnh đủ điều kiện để AI đọc.",
        "quality_ungradable": "KHÔNG ĐÁNH GIÁ ĐƯỢC — ảnh không đạt yêu cầu để AI đọc.",
        "quality_failed": "AI KHÔNG XỬ LÝ ĐƯỢC CA CHỤP NÀY.",
        "reason": "Lý do",
        "gate_failed": "Không đạt",
        "no_result": ("AI không đưa ra kết quả cho ca chụp này; bác sĩ đọc phim như thường lệ."),
        "findings": "Kết quả AI",
        "finding": "Dấu hiệu",
        "probability": "Xác suất",
        "operating_point": "Ngưỡng (điểm vận hành)",
        "result": "Kết quả",
        "positive": "DƯƠNG TÍNH",
        "negative": "Âm tính",
        "findings_note": (
            "Xác suất là điểm của mô hình AI; dấu hiệu được báo dương tính khi xác suất "
            "đạt ngưỡng (điểm vận hành) của mô hình."
        ),
        "heatmaps": "Bản đồ nhiệt của các dấu hiệu dương tính",
        "heatmaps_note": (
            "Vùng màu sáng là vùng ảnh ảnh hưởng nhiều nhất đến điểm của AI, không phải "
            "vị trí tổn thương đã được xác nhận."
        ),
        "heatmap_missing": "(không đọc được bản đồ nhiệt)",
        "model": "Mô hình AI",
        "model_name": "Mô hình",
        "synthetic": ("Chỉ được huấn luyện trên dữ liệu tổng hợp — chưa đo hiệu năng lâm sàng."),
        "metrics_synthetic": (
            "Hiệu năng theo thẻ mô hình, đo trên tập kiểm tra tổng hợp giữ riêng "
            "(không phải trên người bệnh), kèm khoảng tin cậy 95%:"
        ),
        "metrics_measured": (
            "Hiệu năng theo thẻ mô hình, đo trên tập kiểm tra giữ riêng, kèm khoảng tin cậy 95%:"
        ),
        "metrics_none": "Thẻ mô hình không nêu hiệu năng đo được cho các dấu hiệu này.",
        "auroc": "AUROC",
        "sensitivity": "Độ nhạy",
        "specificity": "Độ đặc hiệu",
        "created": "Kết quả AI tạo lúc",
        "page": "Trang",
        "reading": "Kết luận của bác sĩ",
        "decision": "Bác sĩ đánh giá",
        "ai_probability": "Xác suất AI",
        "probability_class": "Mức độ chắc chắn",
        "decision_accepted": "Đồng ý",
        "decision_rejected": "Không đồng ý",
        "decision_edited": "Đã sửa",
        "decision_added": "Bác sĩ bổ sung",
        "impression": "Kết luận",
        "signed_by": "Ký bởi",
    },
    "en": {
        "title": "AI chest X-ray result",
        "status_preliminary": "PRELIMINARY",
        "status_final": "FINAL",
        "status_amended": "AMENDED",
        "notice_preliminary": (
            "**PRELIMINARY AI RESULT — NOT A DIAGNOSIS.** "
            "This result has not been reviewed or signed by a clinician; use it for "
            "reference only until a clinician signs it."
        ),
        "notice_final": (
            "**FINAL RESULT — SIGNED BY A CLINICIAN.** "
            "A clinician has reviewed this AI result and signed it."
        ),
        "notice_amended": (
            "**AMENDED RESULT — SIGNED BY A CLINICIAN.** "
            "This version replaces the previous one; a clinician has reviewed and signed it."
        ),
        "footer_preliminary": "Preliminary AI result — not a diagnosis",
        "result_no": "Result no.",
        "patient": "Patient",
        "name": "Name",
        "birth_date": "Date of birth",
        "sex": "Sex",
        "sex_F": "Female",
        "sex_M": "Male",
        "sex_O": "Other",
        "sex_unknown": "Unknown",
        "national_id": "National ID (CCCD)",
        "health_insurance": "Health insurance (BHYT)",
        "mrn": "MRN",
        "exam": "Exam",
        "study_datetime": "Study date and time",
        "description": "Description",
        "accession": "Accession number",
        "modality": "Modality",
        "study_uid": "Study Instance UID",
        "quality": "Image quality checks",
        "quality_passed": "Passed — the images are fit for AI reading.",
        "quality_ungradable": "UNGRADABLE — the images are not fit for AI reading.",
        "quality_failed": "THE AI ANALYSIS OF THIS STUDY FAILED.",
        "reason": "Reason",
        "gate_failed": "Not passed",
        "no_result": ("The AI gives no result for this study; read the images as usual."),
        "findings": "AI findings",
        "finding": "Finding",
        "probability": "Probability",
        "operating_point": "Operating point",
        "result": "Result",
        "positive": "POSITIVE",
        "negative": "Negative",
        "findings_note": (
            "The probability is the AI model's score; a finding is reported positive when "
            "its probability reaches the model's operating point."
        ),
        "heatmaps": "Heatmaps of the positive findings",
        "heatmaps_note": (
            "Bright areas are the image regions that most influenced the AI score, not "
            "confirmed lesion locations."
        ),
        "heatmap_missing": "(heatmap could not be read)",
        "model": "AI model",
        "model_name": "Model",
        "synthetic": "Trained on synthetic data only — no clinical performance measured.",
        "metrics_synthetic": (
            "Performance stated by the model card, measured on synthetic held-out test "
            "data (not on patients), with 95% confidence intervals:"
        ),
        "metrics_measured": (
            "Performance stated by the model card, measured on held-out test data, "
            "with 95% confidence intervals:"
        ),
        "metrics_none": "The model card states no measured performance for these findings.",
        "auroc": "AUROC",
        "sensitivity": "Sensitivity",
        "specificity": "Specificity",
        "created": "AI result created",
        "page": "Page",
        "reading": "Radiologist's reading",
        "decision": "Radiologist's decision",
        "ai_probability": "AI probability",
        "probability_class": "Confidence",
        "decision_accepted": "Accepted",
        "decision_rejected": "Rejected",
        "decision_edited": "Edited",
        "decision_added": "Added by the radiologist",
        "impression": "Impression",
        "signed_by": "Signed by",
    },
}

#: Names of the quality gates (``GateInfo.gate``) in each language.
_GATE_NAMES: Final[Mapping[Language, Mapping[str, str]]] = {
    "vi": {
        "modality": "Loại ảnh",
        "body_part": "Vùng chụp",
        "view": "Tư thế chụp",
        "size": "Kích thước ảnh",
        "color": "Ảnh thang xám",
        "exposure": "Độ phơi sáng",
        "inverted": "Chiều thang xám",
    },
    "en": {
        "modality": "Modality",
        "body_part": "Body part",
        "view": "View",
        "size": "Image size",
        "color": "Greyscale",
        "exposure": "Exposure",
        "inverted": "Grey-scale polarity",
    },
}

# fontTools logs each step of subsetting the embedded fonts at INFO: some forty lines
# per report. Keep them out of Soi's logs unless someone asked for them.
_SUBSET_LOG: Final = logging.getLogger("fontTools.subset")
if _SUBSET_LOG.level == logging.NOTSET:
    _SUBSET_LOG.setLevel(logging.WARNING)

_FAMILY: Final = "DejaVu"
_MARGIN: Final = 15.0
_PAGE_WIDTH: Final = 210.0
_CONTENT_WIDTH: Final = _PAGE_WIDTH - 2 * _MARGIN
_THUMBNAIL: Final = 46.0
_THUMBNAIL_PIXELS: Final = 440
_THUMBNAIL_QUALITY: Final = 88

_INK: Final = (25, 25, 25)
_MUTED: Final = (95, 95, 95)
_RULE: Final = (170, 170, 170)
_BAND: Final = (232, 237, 243)
_ACCENT: Final = (22, 62, 112)
_WARN_FILL: Final = (255, 243, 205)
_WARN_LINE: Final = (196, 120, 0)
_OK_FILL: Final = (226, 242, 228)
_OK_LINE: Final = (46, 125, 50)
_BAD_FILL: Final = (253, 228, 228)
_BAD_LINE: Final = (176, 32, 32)
_POSITIVE_TEXT: Final = (160, 20, 20)


class ReportFontError(RuntimeError):
    """No TrueType font able to print Vietnamese was found."""


def _bold_beside(regular: Path) -> Path | None:
    """The bold face of ``regular``: next to it (``DejaVuSans-Bold.ttf``) or Pillow's."""
    stem = regular.stem
    if "Bold" in stem:
        return regular
    names = [f"{stem}-Bold{regular.suffix}"]
    if "Regular" in stem:
        names.insert(0, stem.replace("Regular", "Bold") + regular.suffix)
    for name in names:
        candidate = regular.with_name(name)
        if candidate.is_file():
            return candidate
    for name in names:
        try:
            found = getattr(ImageFont.truetype(name, 12), "path", None)
        except OSError:
            continue
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


@cache
def report_fonts() -> tuple[Path, Path]:
    """The regular and bold TrueType files the report is set in.

    The regular face is :func:`inference.explain.overlay_font`'s (DejaVu Sans first);
    the bold one is found next to it (``DejaVuSans-Bold.ttf``) or through Pillow's font
    search, and is the regular face again when there is none.

    Returns
    -------
    tuple of pathlib.Path
        ``(regular, bold)``.

    Raises
    ------
    ReportFontError
        When no TrueType font is installed (Pillow's built-in font cannot be embedded).
    """
    regular = overlay_font().path
    if regular is None:
        raise ReportFontError(
            "no TrueType font for the PDF report: install DejaVu Sans (fonts-dejavu-core)"
        )
    return regular, _bold_beside(regular) or regular


def format_person_name(name: str) -> str:
    """A DICOM PN as printed: ``NGUYỄN^THỊ HƯƠNG`` is ``NGUYỄN THỊ HƯƠNG``.

    The first (alphabetic) group is used; its components are printed in Vietnamese
    order: prefix, family name, middle name, given name, suffix.

    Parameters
    ----------
    name:
        The PN value, ``family^given^middle^prefix^suffix``.

    Returns
    -------
    str
        The name with single spaces, or ``""``.
    """
    parts = [*name.split("=", 1)[0].split("^"), "", "", "", "", ""][:5]
    family, given, middle, prefix, suffix = (part.strip() for part in parts)
    return " ".join(" ".join((prefix, family, middle, given, suffix)).split())


def _format_date(value: str) -> str:
    """DICOM DA ``YYYYMMDD`` as ``dd/mm/yyyy`` (other values unchanged)."""
    value = value.strip()
    if len(value) == 8 and value.isdigit():
        return f"{value[6:8]}/{value[4:6]}/{value[0:4]}"
    return value


def _format_time(value: str) -> str:
    """DICOM TM ``HHMMSS.FFFFFF`` (or ``HH:MM:SS``) as ``HH:MM``."""
    digits = value.strip().split(".", 1)[0].replace(":", "")
    if len(digits) >= 4 and digits[:4].isdigit():
        return f"{digits[0:2]}:{digits[2:4]}"
    if len(digits) == 2 and digits.isdigit():
        return f"{digits}:00"
    return value.strip()


def _format_created(moment: datetime) -> str:
    """The result's creation time in :data:`REPORT_TIMEZONE`, offset included."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    local = aware.astimezone(REPORT_TIMEZONE)
    return f"{local:%d/%m/%Y %H:%M} (UTC+07:00)"


def _percent(value: float) -> str:
    """A probability as a whole percentage (``<1%`` and ``>99%`` at the ends)."""
    if 0.0 < value < 0.005:
        return "<1%"
    if 0.995 <= value < 1.0:
        return ">99%"
    return f"{value * 100:.0f}%"


def _decimal(value: float, language: Language) -> str:
    """Two decimals, with the decimal comma in Vietnamese."""
    text = f"{value:.2f}"
    return text.replace(".", ",") if language == "vi" else text


def _interval(
    metric: tuple[float, float, float] | None, language: Language, *, percent: bool
) -> str:
    """``value (low–high)`` of a measured figure, ``—`` when not measured."""
    if metric is None:
        return "—"
    value, low, high = metric
    if percent:
        return f"{value * 100:.0f}% ({low * 100:.0f}–{high * 100:.0f}%)"
    return f"{_decimal(value, language)} ({_decimal(low, language)}–{_decimal(high, language)})"


def _status_key(status: str) -> str:
    """``preliminary``, ``final`` or ``amended`` (anything else reads as preliminary)."""
    return status if status in ("final", "amended") else "preliminary"


def report_title(context: ReportContext, language: Language) -> str:
    """The report's title with its status, e.g. ``AI chest X-ray result — PRELIMINARY``."""
    text = STRINGS[language]
    return f"{text['title']} — {text['status_' + _status_key(context.status)]}"


class _ReportPdf(FPDF):
    """An A4 page with the report's footer (page number, result, creation time)."""

    def __init__(self, context: ReportContext, language: Language) -> None:
        super().__init__(orientation="P", unit="mm", format="A4")
        self._context = context
        self._language = language

    def footer(self) -> None:
        """Draw the rule, the preliminary reminder and the page number."""
        text = STRINGS[self._language]
        context = self._context
        self.set_y(-15)
        self.set_draw_color(*_RULE)
        self.set_line_width(0.2)
        self.line(_MARGIN, self.get_y(), _PAGE_WIDTH - _MARGIN, self.get_y())
        self.ln(1.2)
        self.set_text_color(*_MUTED)
        if context.preliminary:
            self.set_font(_FAMILY, "B", 7.5)
            self.cell(0, 3.6, text["footer_preliminary"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font(_FAMILY, "", 7.5)
        left = (
            f"Soi · {context.model.device_name} · {text['result_no']} {context.result_id} · "
            f"{text['created']} {_format_created(context.created_at)}"
        )
        y = self.get_y()
        self.cell(0, 3.6, left)
        self.set_xy(_MARGIN, y)
        self.cell(0, 3.6, f"{text['page']} {self.page_no()}/{{nb}}", align="R")


class _Layout:
    """Draws the report's blocks, top to bottom, on one :class:`_ReportPdf`."""

    def __init__(self, pdf: _ReportPdf, context: ReportContext, language: Language) -> None:
        self.pdf = pdf
        self.context = context
        self.language = language
        self.text = STRINGS[language]

    # --- primitives -------------------------------------------------------------------

    def ensure_room(self, height: float) -> None:
        """Start a new page unless ``height`` millimetres fit above the bottom margin."""
        if self.pdf.get_y() + height > self.pdf.page_break_trigger:
            self.pdf.add_page()

    def heading(self, title: str, *, keep: float = 12) -> None:
        """A section heading on a tinted band, kept with the next ``keep`` millimetres."""
        pdf = self.pdf
        self.ensure_room(9 + keep)
        pdf.ln(1.6)
        pdf.set_fill_color(*_BAND)
        pdf.set_text_color(*_ACCENT)
        pdf.set_font(_FAMILY, "B", 10)
        pdf.cell(0, 5.5, f" {title}", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_fill_color(255, 255, 255)
        pdf.ln(1.2)
        pdf.set_text_color(*_INK)

    def boxed(
        self,
        body: str,
        *,
        fill: tuple[int, int, int],
        line: tuple[int, int, int],
        size: float = 9.5,
    ) -> None:
        """A paragraph in a filled, outlined box (``**bold**`` allowed)."""
        pdf = self.pdf
        pdf.set_fill_color(*fill)
        pdf.set_draw_color(*line)
        pdf.set_line_width(0.6)
        pdf.set_text_color(*_INK)
        pdf.set_font(_FAMILY, "", size)
        pdf.multi_cell(
            0,
            size * 0.55,
            body,
            border=1,
            fill=True,
            markdown=True,
            align="L",
            padding=Padding(top=2.2, right=3, bottom=2.2, left=3),
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_line_width(0.2)

    def paragraph(self, body: str, *, size: float = 8, muted: bool = True) -> None:
        """A small paragraph across the page."""
        pdf = self.pdf
        pdf.set_font(_FAMILY, "", size)
        pdf.set_text_color(*(_MUTED if muted else _INK))
        pdf.multi_cell(0, size * 0.5, body, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_text_color(*_INK)

    def fields(self, x: float, width: float, rows: Sequence[tuple[str, str]]) -> float:
        """Label–value rows in a column starting at ``x``; returns the bottom."""
        pdf = self.pdf
        pdf.set_font(_FAMILY, "", 8)
        widest = max((pdf.get_string_width(label) for label, _ in rows), default=0.0)
        label_width = min(max(widest + 3, 30.0), width / 2)
        for label, value in rows:
            y = pdf.get_y()
            pdf.set_xy(x, y)
            pdf.set_font(_FAMILY, "", 8)
            pdf.set_text_color(*_MUTED)
            pdf.cell(label_width, 4.6, label)
            pdf.set_font(_FAMILY, "", 9.5)
            pdf.set_text_color(*_INK)
            pdf.multi_cell(
                width - label_width, 4.6, value or "—", align="L", new_x=XPos.LEFT, new_y=YPos.NEXT
            )
        return pdf.get_y()

    # --- blocks -----------------------------------------------------------------------

    def header(self) -> None:
        """Facility, and the title with the result's status."""
        pdf, context = self.pdf, self.context
        pdf.set_font(_FAMILY, "B", 10)
        pdf.set_text_color(*_MUTED)
        pdf.multi_cell(0, 5, context.facility.name, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(1)
        pdf.set_font(_FAMILY, "B", 15)
        pdf.set_text_color(*_ACCENT)
        pdf.multi_cell(
            0,
            7,
            report_title(context, self.language),
            align="L",
            new_x=XPos.LMARGIN,
            new_y=YPos.NEXT,
        )
        pdf.set_draw_color(*_ACCENT)
        pdf.set_line_width(0.5)
        pdf.line(_MARGIN, pdf.get_y() + 1, _PAGE_WIDTH - _MARGIN, pdf.get_y() + 1)
        pdf.set_line_width(0.2)
        pdf.ln(4)

    def notice(self) -> None:
        """The boxed statement of what the result is (preliminary, final, amended)."""
        key = _status_key(self.context.status)
        colours = (_WARN_FILL, _WARN_LINE) if key == "preliminary" else (_OK_FILL, _OK_LINE)
        self.boxed(self.text["notice_" + key], fill=colours[0], line=colours[1], size=10)

    def patient_and_exam(self) -> None:
        """Patient (left) and exam (right) side by side, the Study UID below."""
        pdf, context, text = self.pdf, self.context, self.text
        patient, study = context.patient, context.study
        column = (_CONTENT_WIDTH - 6) / 2

        def identifier(kind: str) -> str:
            found = patient.identifier(kind)
            return found.value if found is not None else ""

        sex = text.get("sex_" + patient.sex.strip().upper(), text["sex_unknown"])
        left_rows = [
            (text["name"], format_person_name(patient.name)),
            (text["birth_date"], _format_date(patient.birth_date)),
            (text["sex"], sex),
            (text["national_id"], identifier("national_id")),
            (text["health_insurance"], identifier("health_insurance")),
            (text["mrn"], identifier("mrn")),
        ]
        moments = (_format_date(study.study_date), _format_time(study.study_time))
        when = " ".join(part for part in moments if part)
        right_rows = [
            (text["study_datetime"], when),
            (text["description"], study.study_description),
            (text["accession"], study.accession_number),
            (text["modality"], study.modalities),
            (text["result_no"], str(context.result_id)),
        ]
        self.ensure_room(60)
        pdf.ln(1)
        top = pdf.get_y()
        pdf.set_font(_FAMILY, "B", 10)
        pdf.set_text_color(*_ACCENT)
        pdf.cell(column, 6, text["patient"])
        pdf.set_x(_MARGIN + column + 6)
        pdf.cell(column, 6, text["exam"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(*_RULE)
        pdf.line(_MARGIN, pdf.get_y(), _MARGIN + column, pdf.get_y())
        pdf.line(_MARGIN + column + 6, pdf.get_y(), _PAGE_WIDTH - _MARGIN, pdf.get_y())
        pdf.ln(1)
        start = pdf.get_y()
        bottom_left = self.fields(_MARGIN, column, left_rows)
        pdf.set_y(start)
        bottom_right = self.fields(_MARGIN + column + 6, column, right_rows)
        pdf.set_xy(_MARGIN, max(bottom_left, bottom_right, top) + 0.5)
        pdf.set_font(_FAMILY, "", 6.5)
        pdf.set_text_color(*_MUTED)
        pdf.cell(0, 3.5, f"{text['study_uid']}: {study.study_instance_uid}")
        pdf.ln(4)
        pdf.set_text_color(*_INK)

    def quality(self) -> None:
        """The quality gates' outcome, or why there is no result."""
        context, text = self.context, self.text
        self.heading(text["quality"])
        failed = [gate for gate in context.gates if not gate.passed]
        if context.state == "complete":
            names = self._gate_list(context.gates, passed=True)
            body = text["quality_passed"] + (f" ({names})" if names else "")
            self.paragraph(body, size=9, muted=False)
            return
        headline = text["quality_failed" if context.state == "failed" else "quality_ungradable"]
        reason = context.reason_vi if self.language == "vi" else context.reason_en
        lines = [f"**{headline}**"]
        if reason:
            lines.append(f"{text['reason']}: {reason}")
        for gate in failed:
            detail = gate.reason_vi if self.language == "vi" else gate.reason_en
            name = _GATE_NAMES[self.language].get(gate.gate, gate.gate)
            lines.append(f"{text['gate_failed']}: {name}" + (f" — {detail}" if detail else ""))
        lines.append(text["no_result"])
        self.boxed("\n".join(lines), fill=_BAD_FILL, line=_BAD_LINE, size=9.5)

    def _gate_list(self, gates: Sequence[GateInfo], *, passed: bool) -> str:
        """``View ✓, Exposure ✓`` for the distinct gates with that outcome."""
        names: list[str] = []
        for gate in gates:
            if gate.passed is passed:
                name = _GATE_NAMES[self.language].get(gate.gate, gate.gate)
                if name not in names:
                    names.append(name)
        return ", ".join(f"{name} ✓" for name in names)

    def findings(self) -> None:
        """The findings table and a heatmap per positive finding."""
        pdf, context, text = self.pdf, self.context, self.text
        if context.state != "complete" or not context.findings:
            return
        self.heading(text["findings"], keep=6.5 * (len(context.findings) + 1))
        head = FontFace(emphasis="BOLD", size_pt=8.5, color=_INK, fill_color=_BAND)
        positive_style = FontFace(
            emphasis="BOLD", size_pt=9.5, color=_POSITIVE_TEXT, fill_color=_BAD_FILL
        )
        positive_name = FontFace(emphasis="BOLD", size_pt=9.5, color=_INK)
        plain = FontFace(emphasis="", size_pt=9.5, color=_INK)
        negative_style = FontFace(emphasis="", size_pt=9.5, color=_MUTED)
        pdf.set_font(_FAMILY, "", 9.5)
        pdf.set_draw_color(*_RULE)
        pdf.set_fill_color(255, 255, 255)
        with pdf.table(
            col_widths=(64, 28, 48, 40),
            width=_CONTENT_WIDTH,
            align="LEFT",
            line_height=5,
            padding=(0.6, 2),
            borders_layout="HORIZONTAL_LINES",
            headings_style=head,
        ) as table:
            row = table.row()
            row.cell(text["finding"], align="LEFT")
            for label in ("probability", "operating_point", "result"):
                row.cell(text[label], align="CENTER")
            for finding in context.findings:
                row = table.row()
                row.cell(
                    finding.display(self.language),
                    align="LEFT",
                    style=positive_name if finding.positive else plain,
                )
                row.cell(_percent(finding.probability), align="CENTER", style=plain)
                threshold = "—" if finding.threshold is None else _percent(finding.threshold)
                row.cell(threshold, align="CENTER", style=plain)
                if finding.positive:
                    row.cell(text["positive"], align="CENTER", style=positive_style)
                else:
                    row.cell(text["negative"], align="CENTER", style=negative_style)
        pdf.ln(1)
        self.paragraph(text["findings_note"])
        self.heatmaps([f for f in context.positive_findings if f.overlay_path is not None])

    def reading(self) -> None:
        """The radiologist's decisions, impression and signature line (signed only)."""
        reading, pdf, text = self.context.reading, self.pdf, self.text
        if reading is None:
            return
        self.heading(text["reading"], keep=6.5 * (len(reading.decisions) + 1))
        if reading.decisions:
            self._decisions(reading.decisions)
        if reading.impression:
            pdf.ln(1.5)
            pdf.set_font(_FAMILY, "B", 9.5)
            pdf.cell(0, 5, text["impression"], new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            self.paragraph(reading.impression, size=9.5, muted=False)
        pdf.ln(2)
        signed = f"{text['signed_by']} {reading.signer_name}, {_format_created(reading.signed_at)}"
        pdf.set_font(_FAMILY, "B", 9.5)
        pdf.set_text_color(*_INK)
        pdf.multi_cell(0, 5, signed, align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def _decisions(self, decisions: Sequence[DecisionInfo]) -> None:
        pdf, text = self.pdf, self.text
        head = FontFace(emphasis="BOLD", size_pt=8.5, color=_INK, fill_color=_BAND)
        plain = FontFace(emphasis="", size_pt=9.5, color=_INK)
        pdf.set_font(_FAMILY, "", 9.5)
        pdf.set_draw_color(*_RULE)
        with pdf.table(
            col_widths=(64, 28, 48, 40),
            width=_CONTENT_WIDTH,
            align="LEFT",
            line_height=5,
            padding=(0.6, 2),
            borders_layout="HORIZONTAL_LINES",
            headings_style=head,
        ) as table:
            row = table.row()
            row.cell(text["finding"], align="LEFT")
            for label in ("ai_probability", "decision", "probability_class"):
                row.cell(text[label], align="CENTER")
            for decision in decisions:
                row = table.row()
                row.cell(decision.display(self.language), align="LEFT", style=plain)
                probability = decision.ai_probability
                row.cell(
                    "—" if probability is None else _percent(probability),
                    align="CENTER",
                    style=plain,
                )
                row.cell(
                    text.get("decision_" + decision.decision, decision.decision),
                    align="CENTER",
                    style=plain,
                )
                row.cell(decision.probability_class or "—", align="CENTER", style=plain)

    def heatmaps(self, findings: Sequence[FindingInfo]) -> None:
        """Thumbnails of the positive findings' overlays, three to a row."""
        if not findings:
            return
        pdf, text = self.pdf, self.text
        self.heading(text["heatmaps"], keep=_THUMBNAIL + 8)
        per_row, gap = 3, 8.0
        for start in range(0, len(findings), per_row):
            self.ensure_room(_THUMBNAIL + 8)
            top = pdf.get_y()
            row = findings[start : start + per_row]
            left = _MARGIN + (_CONTENT_WIDTH - len(row) * _THUMBNAIL - (len(row) - 1) * gap) / 2
            for column, finding in enumerate(row):
                self._thumbnail(finding, left + column * (_THUMBNAIL + gap), top)
            pdf.set_xy(_MARGIN, top + _THUMBNAIL + 7)
        self.paragraph(text["heatmaps_note"])

    def _thumbnail(self, finding: FindingInfo, x: float, top: float) -> None:
        """One overlay, fitted into a square, with its caption underneath."""
        pdf = self.pdf
        image = _load_thumbnail(finding.overlay_path)
        pdf.set_draw_color(*_RULE)
        if image is None:
            pdf.rect(x, top, _THUMBNAIL, _THUMBNAIL)
            pdf.set_xy(x, top + _THUMBNAIL / 2 - 3)
            pdf.set_font(_FAMILY, "", 8)
            pdf.set_text_color(*_MUTED)
            pdf.multi_cell(_THUMBNAIL, 4, self.text["heatmap_missing"], align="C")
        else:
            scale = _THUMBNAIL / max(image.width, image.height)
            width, height = image.width * scale, image.height * scale
            left = x + (_THUMBNAIL - width) / 2
            pdf.image(_jpeg(image), left, top + (_THUMBNAIL - height) / 2, w=width, h=height)
            pdf.rect(left, top + (_THUMBNAIL - height) / 2, width, height)
        pdf.set_xy(x, top + _THUMBNAIL + 1)
        pdf.set_text_color(*_INK)
        caption = f"{finding.display(self.language)} — {_percent(finding.probability)}"
        size = 8.5
        pdf.set_font(_FAMILY, "B", size)
        while size > 6 and pdf.get_string_width(caption) > _THUMBNAIL + 4:
            size -= 0.5
            pdf.set_font(_FAMILY, "B", size)
        pdf.set_x(x - 2)
        pdf.cell(_THUMBNAIL + 4, 4.5, caption, align="C")

    def model(self) -> None:
        """The model, its training data and the performance its card states."""
        pdf, context, text = self.pdf, self.context, self.text
        model = context.model
        self.heading(text["model"])
        pdf.set_font(_FAMILY, "", 8)
        pdf.set_text_color(*_MUTED)
        pdf.cell(34, 5, text["model_name"])
        pdf.set_text_color(*_INK)
        pdf.set_font(_FAMILY, "B", 9.5)
        pdf.cell(0, 5, f"{model.device_name} — {model.manufacturer}")
        pdf.ln(5.5)
        if model.synthetic_training_data:
            pdf.set_font(_FAMILY, "B", 9.5)
            pdf.set_text_color(*_BAD_LINE)
            pdf.multi_cell(0, 5, text["synthetic"], align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            pdf.set_text_color(*_INK)
        metrics = self._metrics()
        if not context.findings:
            return
        if not metrics:
            self.paragraph(text["metrics_none"])
            return
        note = text["metrics_synthetic" if model.synthetic_training_data else "metrics_measured"]
        self.ensure_room(10 + 5.2 * (len(metrics) + 1))
        pdf.ln(0.5)
        self.paragraph(note, size=8)
        pdf.ln(1)
        head = FontFace(emphasis="BOLD", size_pt=8, color=_INK, fill_color=_BAND)
        cell = FontFace(emphasis="", size_pt=8.5, color=_INK)
        pdf.set_draw_color(*_RULE)
        pdf.set_fill_color(255, 255, 255)
        with pdf.table(
            col_widths=(60, 40, 40, 40),
            width=_CONTENT_WIDTH,
            align="LEFT",
            line_height=4.2,
            padding=(0.5, 2),
            borders_layout="HORIZONTAL_LINES",
            headings_style=head,
        ) as table:
            row = table.row()
            row.cell(text["finding"], align="LEFT")
            for label in ("auroc", "sensitivity", "specificity"):
                row.cell(f"{text[label]} (95% CI)", align="CENTER")
            for name, metric in metrics:
                row = table.row()
                row.cell(name, align="LEFT", style=cell)
                row.cell(
                    _interval(metric.auroc, self.language, percent=False), "CENTER", style=cell
                )
                row.cell(
                    _interval(metric.sensitivity, self.language, percent=True),
                    "CENTER",
                    style=cell,
                )
                row.cell(
                    _interval(metric.specificity, self.language, percent=True),
                    "CENTER",
                    style=cell,
                )

    def _metrics(self) -> list[tuple[str, MetricInfo]]:
        """The card's figures for the result's findings, in the findings' order."""
        by_key = {metric.key: metric for metric in self.context.model.metrics}
        return [
            (finding.display(self.language), by_key[finding.key])
            for finding in self.context.findings
            if finding.key in by_key
        ]


def _load_thumbnail(path: Path | None) -> Image.Image | None:
    """The overlay PNG, RGB, at most :data:`_THUMBNAIL_PIXELS` wide; None if unreadable."""
    if path is None:
        return None
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")
    except (OSError, ValueError):
        return None
    image.thumbnail((_THUMBNAIL_PIXELS, _THUMBNAIL_PIXELS), Image.Resampling.LANCZOS)
    return image


def _jpeg(image: Image.Image) -> io.BytesIO:
    """``image`` as a JPEG (embedded as it is: a tenth of the size of the raw pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_THUMBNAIL_QUALITY, subsampling=0)
    buffer.seek(0)
    return buffer


def build_pdf(context: ReportContext, *, language: Language | None = None) -> bytes:
    """Lay out one AI result as an A4 PDF.

    Parameters
    ----------
    context:
        The result and everything it says (see :class:`~reports.context.ReportContext`).
    language:
        ``"vi"`` or ``"en"``; by default the facility's language.

    Returns
    -------
    bytes
        The PDF; the same context gives the same bytes (the creation date is the
        result's ``created_at``).

    Raises
    ------
    ReportFontError
        When no TrueType font is installed.
    ValueError
        When ``language`` is not ``"vi"`` or ``"en"``.
    """
    chosen: Language = language or context.facility.language
    if chosen not in STRINGS:
        raise ValueError(f"`language` must be 'vi' or 'en', {chosen!r} is given")
    regular, bold = report_fonts()
    created = context.created_at if context.reading is None else context.reading.signed_at
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)

    pdf = _ReportPdf(context, chosen)
    pdf.add_font(_FAMILY, "", str(regular))
    pdf.add_font(_FAMILY, "B", str(bold))
    pdf.set_margins(_MARGIN, 12, _MARGIN)
    pdf.set_auto_page_break(auto=True, margin=18)
    pdf.set_creation_date(created)
    pdf.set_lang(chosen)
    title = report_title(context, chosen)
    pdf.set_title(title)
    pdf.set_subject(f"{title} · {format_person_name(context.patient.name)}")
    pdf.set_author(context.facility.name)
    pdf.set_creator(f"Soi · {context.model.device_name}")
    pdf.alias_nb_pages()
    pdf.add_page()

    layout = _Layout(pdf, context, chosen)
    layout.header()
    layout.notice()
    layout.patient_and_exam()
    layout.quality()
    layout.findings()
    layout.reading()
    layout.model()
    return bytes(pdf.output())
