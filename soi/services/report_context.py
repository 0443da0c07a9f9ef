"""A stored result with everything its documents need, as a :class:`reports.ReportContext`.

The store gives the patient, the study, the images and the result; the model registry
gives the findings' names and the measured performance the model card states.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from models import ModelError, ModelManifest, ModelRegistry
from reports.context import (
    FacilityInfo,
    FindingInfo,
    GateInfo,
    IdentifierInfo,
    ImageInfo,
    Language,
    MetricInfo,
    ModelInfo,
    PatientInfo,
    ReportContext,
    StudyInfo,
)
from store import (
    Database,
    Facility,
    Instance,
    InstanceFileStore,
    Job,
    NotFoundError,
    Patient,
    Result,
    ResultFileStore,
    Series,
    Study,
    result_reason,
)

__all__ = ["load_report_context", "model_info"]

#: The manufacturer named as the observer device in every document.
MANUFACTURER = "Soi"

#: The report languages a facility may store, as the documents name them.
_LANGUAGES: dict[str, Language] = {"vi": "vi", "en": "en"}


def model_info(manifest: ModelManifest) -> ModelInfo:
    """What a report says about a model version: identity, data, measured performance."""
    per_target: dict[str, Any] = manifest.eval_metrics.get("per_target", {})

    def interval(values: dict[str, Any], name: str) -> tuple[float, float, float] | None:
        figure = values.get(name) or {}
        value, low, high = (figure.get(key) for key in ("value", "low", "high"))
        if value is None or low is None or high is None:
            return None
        return (float(value), float(low), float(high))

    return ModelInfo(
        name=manifest.name,
        version=manifest.version,
        manufacturer=MANUFACTURER,
        task=manifest.task,
        synthetic_training_data=manifest.training_data.synthetic,
        training_data=manifest.training_data.description,
        intended_use=manifest.intended_use,
        metrics=tuple(
            MetricInfo(
                key,
                interval(values, "auroc"),
                interval(values, "sensitivity"),
                interval(values, "specificity"),
            )
            for key, values in per_target.items()
        ),
    )


def load_report_context(
    database: Database,
    result_id: int,
    *,
    registry: ModelRegistry,
    instance_files: InstanceFileStore,
    result_files: ResultFileStore,
    default_language: Language = "vi",
) -> ReportContext:
    """Build the context of one stored result.

    Parameters
    ----------
    database:
        The store holding the result.
    result_id:
        The result's id.
    registry:
        The model registry, for the findings' names and the model card.
    instance_files:
        Where the source images lie.
    result_files:
        Where the heatmaps and overlays lie.
    default_language:
        The language of the reports of a facility that has chosen none (the
        ``report_language`` setting); a facility's own ``report_language`` wins.

    Returns
    -------
    ReportContext
        Everything the documents say; ``facility.language`` is the language they are
        written in.

    Raises
    ------
    store.NotFoundError
        No result with that id.
    models.ModelError
        The model version that produced the result is not in the registry.
    ValueError
        The facility's stored language is neither ``"vi"`` nor ``"en"``.
    """
    with database.read() as session:
        result = session.scalars(
            select(Result).where(Result.id == result_id).options(selectinload(Result.findings))
        ).one_or_none()
        if result is None:
            raise NotFoundError(f"no result {result_id}")
        job = session.get(Job, result.job_id)
        study = session.scalars(
            select(Study)
            .where(Study.id == result.study_id)
            .options(
                selectinload(Study.patient).selectinload(Patient.identifiers),
                selectinload(Study.facility),
            )
        ).one()
        wanted = list(job.instance_uids) if job is not None else []
        rows = session.execute(
            select(Instance, Series.series_instance_uid, Series.modality)
            .join(Series, Series.id == Instance.series_id)
            .where(Instance.study_id == study.id, Instance.sop_instance_uid.in_(wanted))
            .order_by(Instance.id)
        ).all()
        reason = result_reason(result)
        manifest = _manifest(registry, result.model_name, result.model_version)
        targets = {target.key: target for target in manifest.targets}
        findings = []
        for finding in result.findings:
            target = targets.get(finding.label)
            findings.append(
                FindingInfo(
                    key=finding.label,
                    display_en=target.display_en if target else finding.code_meaning,
                    display_vi=target.display_vi if target else finding.code_meaning,
                    code_scheme=finding.code_scheme,
                    code_value=finding.code_value,
                    code_meaning=finding.code_meaning,
                    probability=finding.probability,
                    threshold=finding.threshold,
                    positive=finding.positive,
                    sop_instance_uid=finding.sop_instance_uid,
                    heatmap_path=(
                        result_files.absolute(finding.heatmap_path)
                        if finding.heatmap_path
                        else None
                    ),
                    overlay_path=(
                        result_files.absolute(finding.overlay_path)
                        if finding.overlay_path
                        else None
                    ),
                )
            )
        return ReportContext(
            result_id=result.id,
            pipeline=job.pipeline if job is not None else "",
            state=result.state.value,
            status=result.status.value,
            reason_en=reason.en,
            reason_vi=reason.vi,
            created_at=result.created_at,
            facility=FacilityInfo(
                study.facility.code,
                study.facility.name,
                _language(study.facility, default_language),
            ),
            patient=PatientInfo(
                name=study.patient.name,
                birth_date=study.patient.birth_date,
                sex=study.patient.sex,
                identifiers=tuple(
                    IdentifierInfo(item.kind.value, item.system, item.value)
                    for item in study.patient.identifiers
                ),
            ),
            study=StudyInfo(
                study_instance_uid=study.study_instance_uid,
                accession_number=study.accession_number,
                study_date=study.study_date,
                study_time=study.study_time,
                study_description=study.study_description,
                modalities=study.modalities,
            ),
            model=model_info(manifest),
            images=tuple(
                ImageInfo(
                    instance.sop_class_uid,
                    instance.sop_instance_uid,
                    series_uid,
                    modality,
                    instance_files.absolute(instance.file_path),
                )
                for instance, series_uid, modality in rows
            ),
            findings=tuple(findings),
            gates=_gates(result.details or {}),
        )


def _language(facility: Facility, default: Language) -> Language:
    """The language of ``facility``'s reports: its own when it has chosen one."""
    chosen = facility.report_language
    if chosen is None:
        return default
    language = _LANGUAGES.get(chosen)
    if language is not None:
        return language
    raise ValueError(
        f"facility {facility.code!r} has report_language {chosen!r}; "
        "set it with `soi facilities set-language CODE vi|en|default`"
    )


def _manifest(registry: ModelRegistry, name: str, version: str) -> ModelManifest:
    try:
        return registry.get(name, version).manifest
    except ModelError as exc:
        raise ModelError(
            f"the result was produced by {name} {version}, which is not in the registry "
            f"{registry.root}: {exc}"
        ) from None


def _gates(details: dict[str, Any]) -> tuple[GateInfo, ...]:
    gates: list[GateInfo] = []
    for entry in details.get("instances", []):
        uid = str(entry.get("sop_instance_uid", ""))
        for gate in entry.get("gates", []):
            gates.append(
                GateInfo(
                    uid,
                    str(gate.get("gate", "")),
                    bool(gate.get("passed", False)),
                    str(gate.get("reason_en", "")),
                    str(gate.get("reason_vi", "")),
                )
            )
    return tuple(gates)
