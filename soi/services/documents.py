"""Which documents a result sends where, how each is built, and the channels to send them.

When a result is stored, :class:`DeliveryPlanner` adds its outbox rows in the same
transaction: for each configured destination whose facilities include the study's,
the DICOM documents (the SR, one heatmap secondary capture per positive finding, the
encapsulated PDF) for a PACS, the FHIR Bundle for an EMR/PHR/commune station, the
HL7 v2 ORU for a legacy HIS. :class:`DocumentFactory` builds a delivery's document
when it is sent, from the stored result: the builders are deterministic, so a resend
carries the same SOP Instance UIDs, conditional creates and HL7 control id.
"""

from __future__ import annotations

import ssl
import threading
from collections import OrderedDict
from collections.abc import Sequence

from sqlalchemy.orm import Session

from models import ModelRegistry
from reports import (
    IdentifierSystems,
    OrganizationRef,
    build_bundle,
    build_encapsulated_pdf,
    build_heatmap_sc,
    build_oru,
    build_pdf,
    build_sr,
    bundle_json,
)
from reports.channels import Channel, DicomChannel, Document, FhirChannel, MllpChannel
from reports.context import FindingInfo, ReportContext
from soi.services.report_context import load_report_context
from soi.settings import DestinationSettings, Settings
from store import (
    Database,
    DeliveryPlan,
    Finding,
    InstanceFileStore,
    ResultFileStore,
    Study,
    plan_deliveries,
)

__all__ = [
    "DeliveryPlanner",
    "DocumentFactory",
    "make_channels",
    "plan_documents",
]

#: Document kinds, as the ``deliveries.kind`` column names them.
SR, PDF, FHIR_BUNDLE, HL7_ORU = "dicom-sr", "dicom-pdf", "fhir-bundle", "hl7-oru"
HEATMAP_PREFIX = "dicom-heatmap:"


def plan_documents(
    destination: DestinationSettings,
    positive_with_overlay: Sequence[str],
    *,
    positive: bool,
) -> list[DeliveryPlan]:
    """The documents one destination gets for a result (``positive``: any finding is).

    A commune station's system gets only the results with a positive finding: the
    follow-up it is asked to make. It is not told of the others.
    """
    if destination.kind == "fhir":
        if destination.role == "commune-station" and not positive:
            return []
        return [DeliveryPlan(destination.name, FHIR_BUNDLE)]
    if destination.kind == "mllp":
        return [DeliveryPlan(destination.name, HL7_ORU)]
    # The SR first: it carries the findings; the pictures it refers to follow.
    plans: list[DeliveryPlan] = []
    if "sr" in destination.documents:
        plans.append(DeliveryPlan(destination.name, SR))
    if "heatmap" in destination.documents:
        plans += [DeliveryPlan(destination.name, HEATMAP_PREFIX + k) for k in positive_with_overlay]
    if "pdf" in destination.documents:
        plans.append(DeliveryPlan(destination.name, PDF))
    return plans


class DeliveryPlanner:
    """Adds a new result's deliveries to the transaction that stores it."""

    def __init__(self, destinations: Sequence[DestinationSettings]) -> None:
        self.destinations = tuple(destinations)

    def __call__(self, session: Session, result_id: int, study_id: int) -> int:
        """Plan the deliveries of ``result_id``; return how many rows were added."""
        if not self.destinations:
            return 0
        study = session.get(Study, study_id)
        facility = study.facility.code if study is not None else ""
        findings = session.query(Finding).filter(Finding.result_id == result_id).all()
        positives = [f.label for f in findings if f.positive and f.overlay_path]
        positive = any(f.positive for f in findings)
        plans = [
            plan
            for destination in self.destinations
            if not destination.facilities or facility in destination.facilities
            for plan in plan_documents(destination, positives, positive=positive)
        ]
        return plan_deliveries(session, study_id=study_id, result_id=result_id, plans=plans)


class DocumentFactory:
    """Builds the document of a delivery from the stored result (a few contexts cached)."""

    def __init__(
        self,
        *,
        settings: Settings,
        database: Database,
        registry: ModelRegistry,
        instance_files: InstanceFileStore,
        result_files: ResultFileStore,
    ) -> None:
        self.settings = settings
        self.database = database
        self.registry = registry
        self.instance_files = instance_files
        self.result_files = result_files
        self.systems = IdentifierSystems(
            **{key: value for key, value in settings.fhir_identifier_systems.items()}
        )
        self.destinations = {d.name: d for d in settings.destinations}
        self._contexts: OrderedDict[int, ReportContext] = OrderedDict()
        self._lock = threading.Lock()

    def context(self, result_id: int) -> ReportContext:
        """The report context of a result (cached: documents of one result come together)."""
        with self._lock:
            if result_id in self._contexts:
                self._contexts.move_to_end(result_id)
                return self._contexts[result_id]
        context = load_report_context(
            self.database,
            result_id,
            registry=self.registry,
            instance_files=self.instance_files,
            result_files=self.result_files,
            default_language=self.settings.report_language,
        )
        with self._lock:
            self._contexts[result_id] = context
            while len(self._contexts) > 16:
                self._contexts.popitem(last=False)
        return context

    def __call__(self, result_id: int, kind: str, destination: str) -> Document:
        """Build one document.

        Raises
        ------
        reports.NoPatientIdentifierError
            A FHIR Bundle for a patient with no identifier.
        ValueError
            An unknown kind, or a document the result cannot give.
        """
        context = self.context(result_id)
        if kind.startswith(HEATMAP_PREFIX):
            finding = _finding(context, kind.removeprefix(HEATMAP_PREFIX))
            dataset = build_heatmap_sc(context, finding)
            return Document(kind, str(dataset.SOPInstanceUID), dataset=dataset)
        if kind == SR:
            heatmaps = {
                finding.key: build_heatmap_sc(context, finding)
                for finding in context.positive_findings
                if finding.overlay_path is not None
            }
            dataset = build_sr(context, heatmap_sc=heatmaps)
            return Document(kind, str(dataset.SOPInstanceUID), dataset=dataset)
        if kind == PDF:
            dataset = build_encapsulated_pdf(context, build_pdf(context))
            return Document(kind, str(dataset.SOPInstanceUID), dataset=dataset)
        if kind == FHIR_BUNDLE:
            station = self.destinations.get(destination)
            bundle = build_bundle(
                context,
                systems=self.systems,
                pdf=build_pdf(context),
                commune_station=_station(station.commune_station if station else None),
            )
            return Document(kind, f"urn:soi:result|{result_id}", text=bundle_json(bundle))
        if kind == HL7_ORU:
            target = self.destinations.get(destination)
            message = build_oru(
                context,
                sending_application=self.settings.ae_title,
                receiving_application=target.receiving_application if target else "HIS",
            )
            control_id = message.split("\r", 1)[0].split("|")[9]
            return Document(kind, control_id, text=message)
        raise ValueError(f"unknown document kind {kind!r}")


def _finding(context: ReportContext, key: str) -> FindingInfo:
    for finding in context.findings:
        if finding.key == key:
            return finding
    raise ValueError(f"result {context.result_id} has no finding {key!r}")


def _station(text: str | None) -> OrganizationRef | None:
    if not text:
        return None
    system, _, value = text.partition("|")
    return OrganizationRef(name="Trạm y tế xã", system=system, value=value)


def make_channels(settings: Settings) -> dict[str, Channel]:
    """One channel per configured destination."""
    channels: dict[str, Channel] = {}
    for destination in settings.destinations:
        timeout = destination.timeout_seconds
        if destination.kind == "dicom":
            assert destination.ae_title
            assert destination.host
            assert destination.port
            channels[destination.name] = DicomChannel(
                destination.ae_title,
                destination.host,
                destination.port,
                calling_ae_title=settings.ae_title,
                timeout=timeout,
            )
        elif destination.kind == "fhir":
            assert destination.url
            token = destination.token
            if destination.token_file is not None:
                token = destination.token_file.read_text(encoding="utf-8").strip()
            cert = (
                (str(destination.client_cert), str(destination.client_key))
                if destination.client_cert and destination.client_key
                else None
            )
            channels[destination.name] = FhirChannel(
                destination.url,
                token=token,
                timeout=timeout,
                verify=str(destination.ca_file) if destination.ca_file else True,
                client_cert=cert,
            )
        else:
            assert destination.host
            assert destination.port
            context = None
            if destination.tls:
                context = ssl.create_default_context(
                    cafile=str(destination.ca_file) if destination.ca_file else None
                )
            channels[destination.name] = MllpChannel(
                destination.host, destination.port, timeout=timeout, ssl_context=context
            )
    return channels
