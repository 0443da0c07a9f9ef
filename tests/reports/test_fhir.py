"""The FHIR transaction Bundle of one AI result (reports.fhir)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle

from reports.context import IdentifierInfo, ReportContext
from reports.fhir import (
    AI_DEVICE_EXTENSION_URL,
    IdentifierSystems,
    NoPatientIdentifierError,
    OrganizationRef,
    build_bundle,
    bundle_json,
)

PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << >> endobj\n%%EOF\n"
STATION = OrganizationRef(
    "Trạm Y tế xã Phương Thiện", system="urn:soi:facility", value="TYT-PHUONG-THIEN"
)
CUSTOM = IdentifierSystems(
    national_id="urn:test:cccd",
    health_insurance="urn:test:bhyt",
    health_record="urn:test:hssk",
    dicom_uid="urn:test:dicom",
    result="urn:test:result",
    facility="urn:test:facility",
    model="urn:test:model",
)
SNOMED = "http://snomed.info/sct"


# Building a context renders a phantom radiograph and its heatmaps (~0.3 s); the Bundle
# reads none of those files and contexts are frozen, so each is built once per module.
@pytest.fixture(scope="module")
def _contexts() -> dict[str, ReportContext]:
    return {}


def _shared(
    request: pytest.FixtureRequest, cache: dict[str, ReportContext], name: str
) -> ReportContext:
    if name not in cache:
        cache[name] = request.getfixturevalue(f"{name}_context")
    return cache[name]


@pytest.fixture
def complete(request: pytest.FixtureRequest, _contexts: dict[str, ReportContext]) -> ReportContext:
    """The conftest's complete, preliminary result (cardiomegaly and effusion positive)."""
    return _shared(request, _contexts, "complete")


@pytest.fixture
def ungradable(
    request: pytest.FixtureRequest, _contexts: dict[str, ReportContext]
) -> ReportContext:
    """The conftest's result refused by the view gate."""
    return _shared(request, _contexts, "ungradable")


def as_json(bundle: Bundle) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(bundle_json(bundle))
    return data


def resources(bundle: Bundle, resource_type: str) -> list[dict[str, Any]]:
    return [
        entry["resource"]
        for entry in as_json(bundle)["entry"]
        if entry["resource"]["resourceType"] == resource_type
    ]


def only(bundle: Bundle, resource_type: str) -> dict[str, Any]:
    (found,) = resources(bundle, resource_type)
    return found


def entry_of(bundle: Bundle, resource_type: str) -> dict[str, Any]:
    found: dict[str, Any]
    (found,) = [
        entry
        for entry in as_json(bundle)["entry"]
        if entry["resource"]["resourceType"] == resource_type
    ]
    return found


def types(bundle: Bundle) -> Counter[str]:
    return Counter(entry["resource"]["resourceType"] for entry in as_json(bundle)["entry"])


def references(node: Any) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "reference" and isinstance(value, str):
                found.append(value)
            else:
                found.extend(references(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(references(item))
    return found


def full_url(bundle: Bundle, resource_type: str) -> str:
    url: str = entry_of(bundle, resource_type)["fullUrl"]
    return url


def observation(bundle: Bundle, key: str) -> dict[str, Any]:
    (found,) = [
        item
        for item in resources(bundle, "Observation")
        if item["identifier"][0]["value"].endswith(f"-{key}")
    ]
    return found


def vi_date(dicom_date: str) -> str:
    return f"{dicom_date[6:8]}/{dicom_date[4:6]}/{dicom_date[:4]}"


# ------------------------------------------------------------------ shape


def test_complete_result_with_station_has_every_resource(
    complete: ReportContext,
) -> None:
    bundle = build_bundle(complete, pdf=PDF, commune_station=STATION)
    assert bundle.type == "transaction"
    assert types(bundle) == {
        "Organization": 1,
        "Patient": 1,
        "Device": 1,
        "ImagingStudy": 1,
        "Observation": len(complete.findings),
        "DiagnosticReport": 1,
        "ServiceRequest": 1,
        "Task": 1,
        "Communication": 1,
    }


def test_no_communication_without_a_station(complete: ReportContext) -> None:
    counts = types(build_bundle(complete))
    assert counts["ServiceRequest"] == counts["Task"] == 1
    assert "Communication" not in counts


def test_no_follow_up_without_a_positive_finding(complete: ReportContext) -> None:
    negative = replace(
        complete,
        findings=tuple(replace(f, positive=False) for f in complete.findings),
    )
    bundle = build_bundle(negative, commune_station=STATION)
    counts = types(bundle)
    assert counts["Observation"] == len(negative.findings)
    assert not {"ServiceRequest", "Task", "Communication"} & set(counts)
    report = only(bundle, "DiagnosticReport")
    assert "conclusionCode" not in report
    assert report["conclusion"].startswith("Kết quả AI sơ bộ")
    assert "Không có dấu hiệu nào đạt ngưỡng" in report["conclusion"]


@pytest.mark.parametrize("state", ["ungradable", "failed"])
def test_unread_result_has_quality_observation_only(ungradable: ReportContext, state: str) -> None:
    context = replace(ungradable, state=state)
    bundle = build_bundle(context, commune_station=STATION)
    assert types(bundle) == {
        "Organization": 1,
        "Patient": 1,
        "Device": 1,
        "ImagingStudy": 1,
        "Observation": 1,
        "DiagnosticReport": 1,
    }
    quality = only(bundle, "Observation")
    assert quality["code"]["coding"][0]["code"] == "quality-gate-outcome"
    assert quality["valueCodeableConcept"]["coding"][0]["code"] == state
    assert quality["valueCodeableConcept"]["text"] == context.reason_vi
    assert [note["text"] for note in quality["note"]] == [context.reason_vi, context.reason_en]
    (gate,) = quality["component"]
    assert gate["code"]["text"] == "view"
    assert gate["valueCodeableConcept"]["coding"][0]["code"] == "gate-failed"
    assert gate["valueCodeableConcept"]["text"] == "phim nghiêng"
    report = only(bundle, "DiagnosticReport")
    assert report["result"] == [
        {
            "reference": full_url(bundle, "Observation"),
            "type": "Observation",
            "display": "Kết quả kiểm tra chất lượng ảnh của AI",
        }
    ]
    assert "conclusionCode" not in report


def test_ungradable_conclusion_carries_the_reason_in_both_languages(
    ungradable: ReportContext,
) -> None:
    report = only(build_bundle(ungradable), "DiagnosticReport")
    assert report["conclusion"] == (
        "AI không đánh giá được phim: Tư thế chụp LL là phim nghiêng; "
        "cần phim ngực thẳng (PA hoặc AP)"
    )
    (translation,) = report["_conclusion"]["extension"]
    assert translation["url"] == "http://hl7.org/fhir/StructureDefinition/translation"
    parts = {item["url"]: item for item in translation["extension"]}
    assert parts["lang"]["valueCode"] == "en"
    assert parts["content"]["valueString"] == (
        "Not gradable by AI: View Position is LL: a lateral view; a frontal (PA or AP) "
        "chest radiograph is needed"
    )


def test_english_facility_concludes_in_english(ungradable: ReportContext) -> None:
    context = replace(ungradable, facility=replace(ungradable.facility, language="en"))
    report = only(build_bundle(context), "DiagnosticReport")
    assert report["conclusion"].startswith("Not gradable by AI: View Position is LL")
    parts = {item["url"]: item for item in report["_conclusion"]["extension"][0]["extension"]}
    assert parts["lang"]["valueCode"] == "vi"
    assert parts["content"]["valueString"].endswith(ungradable.reason_vi)


# ------------------------------------------------------------- references


@pytest.mark.parametrize("fixture", ["complete", "ungradable"])
def test_references_resolve_within_the_bundle(fixture: str, request: pytest.FixtureRequest) -> None:
    context: ReportContext = request.getfixturevalue(fixture)
    data = as_json(build_bundle(context, pdf=PDF, commune_station=STATION))
    full_urls = [entry["fullUrl"] for entry in data["entry"]]
    assert len(set(full_urls)) == len(full_urls)
    assert all(url.startswith("urn:uuid:") for url in full_urls)
    internal = [ref for ref in references(data) if ref.startswith("urn:uuid:")]
    assert internal
    assert set(internal) <= set(full_urls)
    # Nothing refers to a server id this Bundle cannot know.
    assert set(references(data)) == set(internal)


def test_links_between_resources(complete: ReportContext) -> None:
    bundle = build_bundle(complete, pdf=PDF, commune_station=STATION)
    patient = full_url(bundle, "Patient")
    study = full_url(bundle, "ImagingStudy")
    device = full_url(bundle, "Device")
    facility = full_url(bundle, "Organization")
    report_url = full_url(bundle, "DiagnosticReport")
    observations = [
        entry["fullUrl"]
        for entry in as_json(bundle)["entry"]
        if entry["resource"]["resourceType"] == "Observation"
    ]
    report = only(bundle, "DiagnosticReport")
    assert report["subject"]["reference"] == patient
    assert [ref["reference"] for ref in report["imagingStudy"]] == [study]
    assert [ref["reference"] for ref in report["result"]] == observations
    assert [ref["reference"] for ref in report["performer"]] == [facility]
    (extension,) = report["extension"]
    assert extension["url"] == AI_DEVICE_EXTENSION_URL
    assert extension["valueReference"]["reference"] == device
    for item in resources(bundle, "Observation"):
        assert item["device"]["reference"] == device
        assert [ref["reference"] for ref in item["derivedFrom"]] == [study]
        assert item["subject"]["reference"] == patient
    request = only(bundle, "ServiceRequest")
    positive = [observation(bundle, "cardiomegaly"), observation(bundle, "pleural_effusion")]
    assert len(request["reasonReference"]) == len(positive)
    task = only(bundle, "Task")
    assert task["focus"]["reference"] == full_url(bundle, "ServiceRequest")
    assert task["for"]["reference"] == patient
    communication = only(bundle, "Communication")
    assert [ref["reference"] for ref in communication["about"]] == [report_url]
    (recipient,) = communication["recipient"]
    assert recipient == {
        "type": "Organization",
        "identifier": {"system": "urn:soi:facility", "value": "TYT-PHUONG-THIEN"},
        "display": "Trạm Y tế xã Phương Thiện",
    }


# -------------------------------------------------------------- identifiers


def test_default_identifier_systems_are_vn_core(complete: ReportContext) -> None:
    bundle = build_bundle(complete)
    patient = only(bundle, "Patient")
    by_system = {item["system"]: item for item in patient["identifier"]}
    assert set(by_system) == {
        "http://fhir.hl7.org.vn/core/sid/cccd",
        "http://fhir.hl7.org.vn/core/sid/bhyt",
        "urn:soi:mrn:BV-DK-HAGIANG",
    }
    cccd = by_system["http://fhir.hl7.org.vn/core/sid/cccd"]
    assert cccd["value"] == "001180000123"
    assert [(c["system"], c["code"]) for c in cccd["type"]["coding"]] == [
        ("http://terminology.hl7.org/CodeSystem/v2-0203", "NI"),
        ("http://fhir.hl7.org.vn/core/CodeSystem/vn-identifier-type-cs", "CCCD"),
    ]
    mrn = by_system["urn:soi:mrn:BV-DK-HAGIANG"]
    assert mrn["value"] == "HG-000123"
    assert mrn["type"]["coding"][0]["code"] == "MR"
    assert mrn["assigner"]["reference"] == full_url(bundle, "Organization")
    assert by_system["http://fhir.hl7.org.vn/core/sid/bhyt"]["value"] == "DN4010100000123"
    assert only(bundle, "DiagnosticReport")["identifier"] == [
        {"system": "urn:soi:result", "value": "17"}
    ]
    study = only(bundle, "ImagingStudy")
    assert study["identifier"][0] == {
        "system": "urn:dicom:uid",
        "value": f"urn:oid:{complete.study.study_instance_uid}",
    }


def test_custom_identifier_systems(complete: ReportContext) -> None:
    patient_info = replace(
        complete.patient,
        identifiers=(
            *complete.patient.identifiers,
            IdentifierInfo("health_record", "urn:vn:hssk", "HSSK-42"),
        ),
    )
    context = replace(complete, patient=patient_info)
    bundle = build_bundle(context, systems=CUSTOM, commune_station=STATION)
    systems = {item["system"]: item["value"] for item in only(bundle, "Patient")["identifier"]}
    assert systems == {
        "urn:test:cccd": "001180000123",
        "urn:test:bhyt": "DN4010100000123",
        "urn:test:hssk": "HSSK-42",
        "urn:soi:mrn:BV-DK-HAGIANG": "HG-000123",
    }
    requests = {
        entry["resource"]["resourceType"]: entry["request"]
        for entry in as_json(bundle)["entry"]
        if entry["resource"]["resourceType"] != "Observation"
    }
    assert requests["Patient"]["ifNoneExist"] == "identifier=urn:test:cccd|001180000123"
    assert requests["ImagingStudy"]["ifNoneExist"] == (
        f"identifier=urn:test:dicom|urn:oid:{context.study.study_instance_uid}"
    )
    assert requests["DiagnosticReport"]["ifNoneExist"] == "identifier=urn:test:result|17"
    assert requests["ServiceRequest"]["ifNoneExist"] == ("identifier=urn:test:result|17-follow-up")
    assert requests["Organization"]["ifNoneExist"] == "identifier=urn:test:facility|BV-DK-HAGIANG"
    assert requests["Device"]["ifNoneExist"] == "identifier=urn:test:model|cxr@0.2.0"
    assert observation(bundle, "cardiomegaly")["identifier"] == [
        {"system": "urn:test:result", "value": "17-cardiomegaly"}
    ]


def test_every_entry_is_a_conditional_create(complete: ReportContext) -> None:
    bundle = build_bundle(complete, pdf=PDF, commune_station=STATION)
    for entry in as_json(bundle)["entry"]:
        resource, request = entry["resource"], entry["request"]
        assert request["method"] == "POST"
        assert request["url"] == resource["resourceType"]
        identifier = resource["identifier"][0] if resource["resourceType"] != "Patient" else None
        if identifier is not None:
            assert request["ifNoneExist"] == (
                f"identifier={identifier['system']}|{identifier['value']}"
            )
    finding = next(
        entry
        for entry in as_json(bundle)["entry"]
        if entry["resource"]["resourceType"] == "Observation"
    )
    assert finding["request"]["ifNoneExist"] == "identifier=urn:soi:result|17-cardiomegaly"


@pytest.mark.parametrize(
    ("kinds", "expected"),
    [
        (
            ("health_insurance", "mrn"),
            "identifier=http://fhir.hl7.org.vn/core/sid/bhyt|DN4010100000123",
        ),
        (("mrn",), "identifier=urn:soi:mrn:BV-DK-HAGIANG|HG-000123"),
    ],
)
def test_patient_matched_on_the_best_identifier_it_has(
    complete: ReportContext, kinds: tuple[str, ...], expected: str
) -> None:
    kept = tuple(item for item in complete.patient.identifiers if item.kind in kinds)
    context = replace(complete, patient=replace(complete.patient, identifiers=kept))
    entry = entry_of(build_bundle(context), "Patient")
    assert entry["request"]["ifNoneExist"] == expected
    assert len(entry["resource"]["identifier"]) == len(kinds)


@pytest.mark.parametrize(
    "identifiers",
    [
        (),
        (IdentifierInfo("mrn", "urn:soi:no-patient-id:BV-DK-HAGIANG", "study-0123abcd"),),
        (IdentifierInfo("national_id", "urn:vn:cccd", "  "),),
    ],
    ids=["none", "gateway-placeholder", "blank"],
)
def test_patient_without_identifier_is_not_sent(
    complete: ReportContext, identifiers: tuple[IdentifierInfo, ...]
) -> None:
    context = replace(complete, patient=replace(complete.patient, identifiers=identifiers))
    with pytest.raises(NoPatientIdentifierError, match="not sent to EMR: no patient identifier"):
        build_bundle(context)


def test_organization_ref_needs_an_identifier_or_reference() -> None:
    with pytest.raises(ValueError):
        OrganizationRef("Trạm Y tế xã")
    with pytest.raises(ValueError):
        OrganizationRef("Trạm Y tế xã", system="urn:x")
    assert OrganizationRef("Trạm", reference="Organization/7").to_reference().reference == (
        "Organization/7"
    )


# ------------------------------------------------------------------ content


def test_patient_demographics_as_the_images_spell_them(complete: ReportContext) -> None:
    patient = only(build_bundle(complete), "Patient")
    assert patient["name"] == [
        {
            "use": "official",
            "text": "NGUYỄN THỊ HƯƠNG",
            "family": "NGUYỄN",
            "given": ["THỊ", "HƯƠNG"],
        }
    ]
    assert patient["birthDate"] == "1980-02-14"
    assert patient["gender"] == "female"


def test_imaging_study(complete: ReportContext) -> None:
    study = only(build_bundle(complete), "ImagingStudy")
    image = complete.images[0]
    assert study["status"] == "available"
    assert study["modality"] == [
        {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "DX"}
    ]
    assert study["numberOfSeries"] == study["numberOfInstances"] == 1
    assert study["identifier"][1]["value"] == "HG2611230001"
    assert study["identifier"][1]["type"]["coding"][0]["code"] == "ACSN"
    (series,) = study["series"]
    assert series["uid"] == image.series_instance_uid
    assert series["modality"]["code"] == "DX"
    assert series["instance"] == [
        {
            "uid": image.sop_instance_uid,
            "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{image.sop_class_uid}"},
        }
    ]


def test_device_describes_the_model(complete: ReportContext) -> None:
    device = only(build_bundle(complete), "Device")
    assert device["manufacturer"] == "Soi"
    assert device["deviceName"][0] == {"name": "cxr 0.2.0", "type": "user-friendly-name"}
    assert device["version"] == [{"value": "0.2.0"}]
    notes = [note["text"] for note in device["note"]]
    assert any(text.startswith("Trained on synthetic data only") for text in notes)
    assert any("chỉ được huấn luyện trên dữ liệu tổng hợp" in text for text in notes)
    real = replace(complete, model=replace(complete.model, synthetic_training_data=False))
    notes = [note["text"] for note in only(build_bundle(real), "Device").get("note", [])]
    assert not any(text.startswith("Trained on synthetic data only") for text in notes)
    assert not any("dữ liệu tổng hợp" in text for text in notes)


def test_finding_observation(complete: ReportContext) -> None:
    bundle = build_bundle(complete)
    positive = observation(bundle, "cardiomegaly")
    assert positive["status"] == "preliminary"
    assert positive["code"] == {
        "coding": [{"system": SNOMED, "code": "8186001", "display": "Cardiomegaly"}],
        "text": "Bóng tim to",
    }
    assert positive["valueQuantity"] == {
        "value": 0.91,
        "unit": "probability",
        "system": "http://unitsofmeasure.org",
        "code": "1",
    }
    assert positive["interpretation"][0]["coding"][0]["code"] == "POS"
    (operating_point,) = positive["component"]
    assert operating_point["code"]["coding"][0]["code"] == "operating-point"
    assert operating_point["valueQuantity"]["value"] == 0.5
    assert positive["bodySite"]["coding"][0]["code"] == "51185008"
    assert positive["meta"]["security"][0]["code"] == "AIAST"
    negative = observation(bundle, "pneumothorax")
    assert negative["valueQuantity"]["value"] == 0.03
    assert negative["interpretation"][0]["coding"][0]["code"] == "NEG"


def test_diagnostic_report(complete: ReportContext) -> None:
    report = only(build_bundle(complete), "DiagnosticReport")
    assert report["status"] == "preliminary"
    assert [(c["system"], c["code"]) for c in report["category"][0]["coding"]] == [
        ("http://loinc.org", "LP29684-5"),
        ("http://terminology.hl7.org/CodeSystem/v2-0074", "RAD"),
    ]
    assert report["code"]["coding"] == [
        {"system": "http://loinc.org", "code": "36554-4", "display": "XR Chest Single view"}
    ]
    assert [concept["coding"][0]["code"] for concept in report["conclusionCode"]] == [
        "8186001",
        "60046008",
    ]
    assert report["issued"] == "2026-11-23T08:30:00Z"
    assert "presentedForm" not in report


def test_vietnamese_texts_exact(complete: ReportContext) -> None:
    bundle = build_bundle(complete, commune_station=STATION)
    report = only(bundle, "DiagnosticReport")
    assert report["language"] == "vi"
    assert report["conclusion"] == (
        "Kết quả AI sơ bộ — không phải chẩn đoán, chưa được bác sĩ xác nhận. "
        "Nghi ngờ: Bóng tim to (0,91); Tràn dịch màng phổi (0,97)."
    )
    english = report["_conclusion"]["extension"][0]["extension"][1]["valueString"]
    assert english == (
        "Preliminary AI result — not a diagnosis, not yet confirmed by a clinician. "
        "Suspected: Cardiomegaly (0.91); Pleural effusion (0.97)."
    )
    communication = only(bundle, "Communication")
    assert communication["status"] == "preparation"
    assert communication["payload"] == [
        {
            "contentString": (
                "Kết quả AI sơ bộ — không phải chẩn đoán, chưa được bác sĩ xác nhận. "
                "Phim X-quang ngực thẳng chụp ngày "
                f"{vi_date(complete.study.study_date)} "
                "tại Bệnh viện Đa khoa tỉnh Hà Giang: AI nghi ngờ Bóng tim to, "
                "Tràn dịch màng phổi. Đề nghị trạm y tế liên hệ người bệnh để được bác sĩ "
                "khám lại và theo dõi."
            )
        }
    ]
    request = only(bundle, "ServiceRequest")
    assert (request["status"], request["intent"]) == ("active", "proposal")
    assert request["code"]["text"] == (
        "Bác sĩ xem lại dấu hiệu AI phát hiện và hẹn theo dõi, tái khám"
    )
    assert only(bundle, "Task")["description"] == (
        "Bác sĩ xem lại kết quả AI và quyết định theo dõi người bệnh: "
        "Bóng tim to; Tràn dịch màng phổi."
    )
    text = bundle_json(bundle)
    assert "NGUYỄN THỊ HƯƠNG" in text
    assert "\\u" not in text


@pytest.mark.parametrize(
    ("status", "opening"),
    [
        ("preliminary", "Kết quả AI sơ bộ"),
        ("final", "Kết quả AI đã được bác sĩ xác nhận."),
        ("amended", "Kết quả AI đã được bác sĩ sửa đổi."),
    ],
)
def test_status_follows_the_context(complete: ReportContext, status: str, opening: str) -> None:
    bundle = build_bundle(replace(complete, status=status), commune_station=STATION)
    report = only(bundle, "DiagnosticReport")
    assert report["status"] == status
    assert report["conclusion"].startswith(opening)
    assert {item["status"] for item in resources(bundle, "Observation")} == {status}
    assert only(bundle, "Communication")["payload"][0]["contentString"].startswith(opening)


def test_pdf_attachment(complete: ReportContext) -> None:
    report = only(build_bundle(complete, pdf=PDF), "DiagnosticReport")
    (form,) = report["presentedForm"]
    assert form["contentType"] == "application/pdf"
    assert base64.b64decode(form["data"]) == PDF
    assert form["size"] == len(PDF)
    assert base64.b64decode(form["hash"]) == hashlib.sha1(PDF).digest()
    assert form["language"] == "vi"
    with pytest.raises(ValueError):
        build_bundle(complete, pdf=b"")


# ------------------------------------------------------ determinism, validity


def test_same_result_same_bundle(complete: ReportContext) -> None:
    first = bundle_json(build_bundle(complete, pdf=PDF, commune_station=STATION))
    second = bundle_json(build_bundle(complete, pdf=PDF, commune_station=STATION))
    assert first == second
    other = build_bundle(replace(complete, result_id=18))
    assert full_url(other, "DiagnosticReport") != full_url(
        build_bundle(complete), "DiagnosticReport"
    )


@pytest.mark.parametrize("fixture", ["complete", "ungradable"])
def test_bundle_round_trips(fixture: str, request: pytest.FixtureRequest) -> None:
    context: ReportContext = request.getfixturevalue(fixture)
    bundle = build_bundle(context, pdf=PDF, commune_station=STATION)
    assert Bundle.model_validate(bundle.model_dump()).model_dump_json() == bundle.model_dump_json()
    assert bundle_json(Bundle.model_validate_json(bundle_json(bundle))) == bundle_json(bundle)


def test_unknown_state_is_refused(complete: ReportContext) -> None:
    with pytest.raises(ValueError, match="unknown result state"):
        build_bundle(replace(complete, state="running"))
