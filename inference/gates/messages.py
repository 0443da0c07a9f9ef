"""The reasons a gate gives for refusing a study, in English and Vietnamese.

One row per failure: its key, the English text and the Vietnamese text, both
``str.format`` templates filled with the gate's measurements.
"""

from __future__ import annotations

from typing import Any, Final, NamedTuple

__all__ = ["REASONS", "Reason", "reason"]


class Reason(NamedTuple):
    """The English and Vietnamese templates of one failure."""

    en: str
    vi: str


REASONS: Final[dict[str, Reason]] = {
    "modality": Reason(
        "Modality is {modality}, not a chest radiograph (CR/DX)",
        "Phương thức chụp là {modality}, không phải X-quang ngực (CR/DX)",
    ),
    "modality_missing": Reason(
        "Modality (0008,0060) is missing, so the image cannot be taken as a chest radiograph "
        "(CR/DX)",
        "Thiếu thẻ Modality (0008,0060) nên không xác định được đây là X-quang ngực (CR/DX)",
    ),
    "sop_class": Reason(
        "SOP Class {sop_class} is not a CR or DX image, so it is not a chest radiograph",
        "Lớp SOP {sop_class} không phải ảnh CR hoặc DX, nên không phải X-quang ngực",
    ),
    "body_part": Reason(
        "Body Part Examined is {body_part}, not the chest",
        "Vùng chụp (Body Part Examined) là {body_part}, không phải lồng ngực",
    ),
    "view_lateral": Reason(
        "View Position is {view_position}: a lateral view; a frontal (PA or AP) chest "
        "radiograph is needed",
        "Tư thế chụp (View Position) là {view_position}: phim nghiêng; cần phim X-quang ngực "
        "thẳng (PA hoặc AP)",
    ),
    "view_image": Reason(
        "View Position is {view_position} and the image does not look like a frontal chest "
        "radiograph (left-right symmetry {symmetry:.2f}, at least {min_symmetry:.2f} needed; "
        "lung-field contrast {lung_contrast:.2f}, at least {min_lung_contrast:.2f} needed); "
        "it may be a lateral view",
        "Tư thế chụp (View Position) là {view_position} và ảnh không giống phim X-quang ngực "
        "thẳng (độ đối xứng trái – phải {symmetry:.2f}, cần ít nhất {min_symmetry:.2f}; độ "
        "tương phản phế trường {lung_contrast:.2f}, cần ít nhất {min_lung_contrast:.2f}); "
        "có thể là phim nghiêng",
    ),
    "size": Reason(
        "Image is {rows} × {columns} pixels; the shorter side must be at least {min_side} pixels",
        "Ảnh có kích thước {rows} × {columns} điểm ảnh; cạnh ngắn phải có ít nhất {min_side} "
        "điểm ảnh",
    ),
    "exposure_blank": Reason(
        "Image is almost blank: contrast {contrast:.3f} is below {min_contrast:.3f}",
        "Ảnh gần như trống: độ tương phản {contrast:.3f} thấp hơn mức tối thiểu {min_contrast:.3f}",
    ),
    "exposure_saturated": Reason(
        "Image is saturated: {saturated_percent:.1f}% of pixels are pure black or white "
        "(at most {max_percent:.1f}% allowed)",
        "Ảnh bị bão hòa: {saturated_percent:.1f}% điểm ảnh hoàn toàn đen hoặc trắng "
        "(chỉ cho phép tối đa {max_percent:.1f}%)",
    ),
    "inverted": Reason(
        "Image looks inverted: the lung fields are brighter than the mediastinum (reversed "
        "contrast {inverted_contrast:.2f}); Photometric Interpretation {photometric} is "
        "probably wrong",
        "Ảnh có vẻ bị đảo ngược thang xám: phế trường sáng hơn trung thất (độ tương phản "
        "đảo {inverted_contrast:.2f}); thẻ Photometric Interpretation {photometric} có lẽ bị "
        "ghi sai",
    ),
    "color": Reason(
        "Colour image, not a radiograph: {color_percent:.1f}% of pixels have colour "
        "(Photometric Interpretation {photometric})",
        "Ảnh màu, không phải phim X-quang: {color_percent:.1f}% điểm ảnh có màu "
        "(Photometric Interpretation {photometric})",
    ),
}


def reason(key: str, **values: Any) -> tuple[str, str]:
    """Return the (English, Vietnamese) reason ``key`` filled with ``values``.

    Raises
    ------
    KeyError
        When ``key`` is not in :data:`REASONS` or a template field is not given.
    """
    row = REASONS[key]
    return row.en.format(**values), row.vi.format(**values)
