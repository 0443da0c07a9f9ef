"""Which documents each destination gets for a result (the outbox plan)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from soi.services.documents import plan_documents
from soi.settings import DestinationSettings

STATION = "http://fhir.hl7.org.vn/core/sid/csyt|01234"


def _fhir(role: str) -> DestinationSettings:
    station = STATION if role == "commune-station" else None
    return DestinationSettings(
        name=role, kind="fhir", url="https://x/fhir", role=role, commune_station=station
    )


class TestPlanDocuments:
    @pytest.mark.parametrize(
        ("role", "positive", "expected"),
        [
            ("emr", False, ["fhir-bundle"]),
            ("emr", True, ["fhir-bundle"]),
            ("phr", False, ["fhir-bundle"]),
            ("commune-station", True, ["fhir-bundle"]),
            ("commune-station", False, []),
        ],
    )
    def test_a_commune_station_hears_only_of_positive_results(
        self, role: str, positive: bool, expected: list[str]
    ) -> None:
        plans = plan_documents(_fhir(role), ["pneumothorax"] if positive else [], positive=positive)
        assert [plan.kind for plan in plans] == expected
        assert all(plan.destination == role for plan in plans)

    def test_pacs_gets_a_heatmap_per_positive_finding_with_an_overlay(self) -> None:
        pacs = DestinationSettings(name="pacs", kind="dicom", ae_title="P", host="h", port=104)
        plans = plan_documents(pacs, ["cardiomegaly", "pleural_effusion"], positive=True)
        assert [plan.kind for plan in plans] == [
            "dicom-sr",
            "dicom-heatmap:cardiomegaly",
            "dicom-heatmap:pleural_effusion",
            "dicom-pdf",
        ]

    def test_pacs_documents_can_be_chosen(self) -> None:
        pacs = DestinationSettings(
            name="pacs", kind="dicom", ae_title="P", host="h", port=104, documents=["sr"]
        )
        assert [p.kind for p in plan_documents(pacs, ["nodule_mass"], positive=True)] == [
            "dicom-sr"
        ]

    def test_his_gets_the_oru(self) -> None:
        his = DestinationSettings(name="his", kind="mllp", host="h", port=2575)
        assert [p.kind for p in plan_documents(his, [], positive=False)] == ["hl7-oru"]


class TestDestinationRoles:
    def test_a_commune_station_needs_its_identifier(self) -> None:
        with pytest.raises(ValidationError, match="needs commune_station"):
            DestinationSettings(name="tyt", kind="fhir", url="https://x", role="commune-station")

    def test_roles_are_for_fhir_destinations(self) -> None:
        with pytest.raises(ValidationError, match="role 'phr' is for fhir only"):
            DestinationSettings(name="his", kind="mllp", host="h", port=1, role="phr")

    def test_unknown_role_is_refused(self) -> None:
        with pytest.raises(ValidationError, match="role"):
            DestinationSettings(name="x", kind="fhir", url="https://x", role="pharmacy")
