"""Tests for :mod:`inference.gates.run` and :mod:`inference.gates.base`."""

from __future__ import annotations

import pytest

from inference.gates import (
    CXR_GATES,
    ColorGate,
    CxrGateConfig,
    Gate,
    GateOutcome,
    GateReport,
    SizeGate,
    run_gates,
)
from inference.pixels import display_array, read_dataset
from tests.inference.gates.builders import ALL_FINDINGS, chest
from tests.support.data import make_cr, pydicom_file

ORDER = ["modality", "body_part", "size", "color", "exposure", "view", "inverted"]


class TestRunGates:
    @pytest.mark.parametrize("view", ["PA", "AP"])
    @pytest.mark.parametrize("photometric", ["MONOCHROME1", "MONOCHROME2"])
    def test_frontal_phantom_passes_every_gate(self, view: str, photometric: str) -> None:
        ds, display = chest(view, photometric=photometric, findings=ALL_FINDINGS)

        report = run_gates(ds, display, config=CxrGateConfig())

        assert report.passed, report.failures
        assert [outcome.gate for outcome in report.outcomes] == ORDER
        assert report.failures == ()
        assert report.skipped == ()

    def test_real_chest_radiograph_passes(self) -> None:
        ds = read_dataset(pydicom_file("RG1_UNCR.dcm"))

        report = run_gates(ds, display_array(ds))

        assert report.passed, report.failures

    def test_real_chest_radiograph_without_view_position_passes(self) -> None:
        ds = read_dataset(pydicom_file("RG1_UNCR.dcm"))
        del ds.ViewPosition

        report = run_gates(ds, display_array(ds))

        assert report.passed, report.failures
        assert report.outcomes[ORDER.index("view")].measurements["source"] == "image"

    def test_stops_at_the_first_failure(self) -> None:
        ds = make_cr(modality="CT", body_part="HEAD", rows=64, columns=64)

        report = run_gates(ds, display_array(ds))

        assert not report.passed
        assert [outcome.gate for outcome in report.failures] == ["modality"]
        assert len(report.outcomes) == 1
        assert report.skipped == tuple(ORDER[1:])

    def test_inverted_frontal_without_view_position_fails_as_inverted(self) -> None:
        ds, _ = chest(photometric="MONOCHROME1")
        ds.PhotometricInterpretation = "MONOCHROME2"
        del ds.ViewPosition

        report = run_gates(ds, display_array(ds))

        assert [outcome.gate for outcome in report.failures] == ["inverted"]

    def test_custom_gate_list(self) -> None:
        ds = make_cr(rows=64, columns=64)

        report = run_gates(ds, display_array(ds), gates=[ColorGate()])

        assert report.passed
        assert [outcome.gate for outcome in report.outcomes] == ["color"]

    def test_gates_follow_the_protocol(self) -> None:
        assert [gate.code for gate in CXR_GATES] == ORDER
        assert all(isinstance(gate, Gate) for gate in CXR_GATES)


class TestGateReport:
    def test_report_with_skipped_gates_has_not_passed(self) -> None:
        report = GateReport((GateOutcome.ok("modality"),), skipped=("size",))

        assert not report.passed

    def test_outcome_measurements_are_read_only(self) -> None:
        ds = make_cr(rows=64, columns=64)
        outcome = SizeGate().check(ds, display_array(ds), CxrGateConfig())

        with pytest.raises(TypeError):
            outcome.measurements["rows"] = 1  # type: ignore[index]
