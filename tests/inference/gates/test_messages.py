"""Tests for :mod:`inference.gates.messages`: every refusal is explained in two languages."""

from __future__ import annotations

import string
import unicodedata

import numpy as np
import pytest
from pydicom.uid import CTImageStorage

from inference.gates import REASONS, CxrGateConfig, GateOutcome, run_gates
from inference.gates.messages import reason
from inference.pixels import display_array, read_dataset
from tests.inference.gates.builders import chest, grey_dataset
from tests.support.data import make_cr, pydicom_file

#: Letters only Vietnamese uses among the Latin scripts Soi meets, and its tone marks.
VIETNAMESE_LETTERS = set("ăâđêôơưĂÂĐÊÔƠƯ")
TONE_MARKS = {"\u0300", "\u0301", "\u0303", "\u0309", "\u0323"}


def has_vietnamese_diacritics(text: str) -> bool:
    decomposed = unicodedata.normalize("NFD", text)
    return any(c in VIETNAMESE_LETTERS for c in text) and any(c in TONE_MARKS for c in decomposed)


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def _failures() -> list[GateOutcome]:
    """One failing outcome of each kind, from real runs of the gates."""
    ct = make_cr(modality="CT", rows=256, columns=256)
    ct.SOPClassUID = CTImageStorage
    no_modality = make_cr(rows=256, columns=256)
    del no_modality.Modality
    hand = make_cr(body_part="HAND", rows=256, columns=256)
    small = make_cr(rows=128, columns=128)
    lateral, lateral_display = chest("LATERAL")
    unknown_lateral, unknown_display = chest("LATERAL", seed=1)
    del unknown_lateral.ViewPosition
    blank = grey_dataset(np.full((256, 256), 7, dtype=np.uint16))
    saturated_pixels = np.zeros((256, 256), dtype=np.uint16)
    saturated_pixels[:, 128:] = 4095
    saturated_pixels[:, 100:128] = np.linspace(0, 4095, 28, dtype=np.uint16)
    saturated = grey_dataset(saturated_pixels, WindowCenter=2048, WindowWidth=4096)
    inverted, _ = chest()
    inverted.PhotometricInterpretation = "MONOCHROME1"
    colour = read_dataset(pydicom_file("US1_UNCR.dcm"))
    colour.Modality = "CR"
    colour.SOPClassUID = make_cr().SOPClassUID
    config = CxrGateConfig()
    cases = [
        (ct, display_array(ct)),
        (no_modality, display_array(no_modality)),
        (hand, display_array(hand)),
        (small, display_array(small)),
        (lateral, lateral_display),
        (unknown_lateral, unknown_display),
        (blank, display_array(blank)),
        (saturated, display_array(saturated)),
        (inverted, display_array(inverted)),
        (colour, display_array(colour)),
    ]
    outcomes = []
    for dataset, display in cases:
        report = run_gates(dataset, display, config=config)
        assert not report.passed
        outcomes.extend(report.failures)
    return outcomes


FAILURES = _failures()


class TestReasons:
    def test_every_gate_is_exercised(self) -> None:
        gates = {outcome.gate for outcome in FAILURES}

        assert gates == {
            "modality",
            "body_part",
            "size",
            "view",
            "exposure",
            "inverted",
            "color",
        }

    @pytest.mark.parametrize("outcome", FAILURES, ids=lambda o: f"{o.gate}-{o.reason_en[:24]}")
    def test_failure_carries_both_reasons(self, outcome: GateOutcome) -> None:
        assert outcome.reason_en
        assert outcome.reason_vi
        assert outcome.reason_en != outcome.reason_vi
        assert "{" not in outcome.reason_en
        assert "{" not in outcome.reason_vi
        assert has_vietnamese_diacritics(outcome.reason_vi), outcome.reason_vi

    @pytest.mark.parametrize("key", sorted(REASONS))
    def test_templates_agree(self, key: str) -> None:
        row = REASONS[key]

        assert _fields(row.en) == _fields(row.vi)
        assert has_vietnamese_diacritics(row.vi)
        assert unicodedata.is_normalized("NFC", row.vi)

    def test_reason_fills_values(self) -> None:
        assert reason("modality", modality="MR") == (
            "Modality is MR, not a chest radiograph (CR/DX)",
            "Phương thức chụp là MR, không phải X-quang ngực (CR/DX)",
        )

    def test_failed_outcome_without_reasons_is_refused(self) -> None:
        with pytest.raises(ValueError, match="must carry `reason_en` and `reason_vi`"):
            GateOutcome(passed=False, gate="size", reason_en="too small")
