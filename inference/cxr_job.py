"""The ``cxr`` job: a chest X-ray study through :class:`~inference.cxr.CxrPipeline`.

A study may hold several images (a PA and a lateral, a repeat after a bad exposure).
Each is read and gated on its own; the study's result is built from those that pass:

- at least one image passed: ``complete``. Each finding takes the highest probability
  among the passing images (the image that shows it best) and names that image; its
  heatmap comes from the same image.
- none passed and one was refused by a quality gate: ``ungradable``, with that
  image's reason in English and Vietnamese.
- none could be read at all: ``failed``, with the reason.

Every image's own outcome (gates and their measurements, scores) goes into the
result's ``details``, so a reader can see why an image was left out.
"""

from __future__ import annotations

from typing import Any

from inference.cxr import CxrAnalysis, CxrPipeline, ModelFinding
from inference.errors import PixelDataError
from inference.explain import heatmap_files, preliminary_label
from inference.pixels import read_dataset, to_grey
from inference.worker import JobInput, JobOutput
from store import FindingRecord, ResultReason, ResultState

__all__ = ["AGGREGATION", "CxrJobHandler"]

AGGREGATION = "per finding, the highest probability among the images that passed the quality gates"

_MISSING_VI = "Không tìm thấy tệp ảnh đã nhận của nghiên cứu"
_NO_IMAGE_EN = "the study has no image the chest X-ray pipeline can read"
_NO_IMAGE_VI = "Nghiên cứu không có ảnh nào mà mô hình X-quang ngực đọc được"


class CxrJobHandler:
    """Runs ``cxr`` jobs with one loaded pipeline (thread-safe for one worker thread).

    Parameters
    ----------
    pipeline:
        The loaded chest X-ray pipeline; closed by :meth:`close`.
    """

    pipeline_name = "cxr"

    def __init__(self, pipeline: CxrPipeline) -> None:
        self.cxr = pipeline
        self.pipeline = self.pipeline_name
        self.model_name = pipeline.manifest.name
        self.model_version = pipeline.manifest.version

    def close(self) -> None:
        """Close the pipeline's runner."""
        self.cxr.close()

    def handle(self, job: JobInput) -> JobOutput:
        """Analyse every image of the study and build its result.

        Raises
        ------
        RunnerError
            When the model runtime fails (the worker retries the job).
        """
        entries: list[dict[str, Any]] = [
            {
                "sop_instance_uid": uid,
                "state": ResultState.FAILED.value,
                "reason": {"en": "the instance file is missing from the store", "vi": _MISSING_VI},
            }
            for uid in job.missing_instance_uids
        ]
        datasets = []
        uids: list[str] = []
        for item in job.instances:
            try:
                datasets.append(read_dataset(item.path))
            except PixelDataError as exc:
                entries.append(
                    {
                        "sop_instance_uid": item.sop_instance_uid,
                        "state": ResultState.FAILED.value,
                        "reason": {"en": exc.reason, "vi": exc.reason_vi},
                    }
                )
                continue
            uids.append(item.sop_instance_uid)
        analyses = self.cxr.analyse_many(datasets)
        for uid, analysis in zip(uids, analyses, strict=True):
            entry = {"sop_instance_uid": uid, **analysis.to_json()}
            entry.pop("model", None)
            entry.pop("preliminary", None)
            entries.append(entry)
        details: dict[str, Any] = {
            "preliminary": True,
            "aggregation": AGGREGATION,
            "backend": type(self.cxr.runner).__name__,
            "instances": entries,
        }
        complete = [
            (u, a) for u, a in zip(uids, analyses, strict=True) if a.state is ResultState.COMPLETE
        ]
        if complete:
            return self._complete(job, complete, details)
        refused = [a for a in analyses if a.state is ResultState.UNGRADABLE]
        if refused:
            return self._output(
                ResultState.UNGRADABLE,
                ResultReason(en=refused[0].reason_en, vi=refused[0].reason_vi),
                details,
            )
        first_failure = next(
            (entry["reason"] for entry in entries if entry.get("reason", {}).get("en")), None
        )
        reason = (
            ResultReason(en=first_failure["en"], vi=first_failure["vi"])
            if first_failure
            else ResultReason(en=_NO_IMAGE_EN, vi=_NO_IMAGE_VI)
        )
        return self._output(ResultState.FAILED, reason, details)

    def _output(
        self,
        state: ResultState,
        reason: ResultReason,
        details: dict[str, Any],
        findings: tuple[FindingRecord, ...] = (),
        files: dict[str, bytes] | None = None,
    ) -> JobOutput:
        return JobOutput(
            state=state,
            model_name=self.model_name,
            model_version=self.model_version,
            reason=reason,
            findings=findings,
            details=details,
            files=files or {},
        )

    def _complete(
        self, job: JobInput, complete: list[tuple[str, CxrAnalysis]], details: dict[str, Any]
    ) -> JobOutput:
        records: list[FindingRecord] = []
        files: dict[str, bytes] = {}
        keys = [finding.key for finding in complete[0][1].findings]
        for index, key in enumerate(keys):
            uid, analysis = max(complete, key=lambda pair: pair[1].findings[index].probability)
            finding = analysis.findings[index]
            heatmap_path = overlay_path = None
            heatmap = analysis.heatmaps.get(key)
            if finding.positive and heatmap is not None and analysis.display is not None:
                folder = f"{job.file_prefix}/{uid}"
                heatmap_path, overlay_path = f"{folder}/{key}.npy", f"{folder}/{key}.png"
                grey = to_grey(analysis.display).array
                files[heatmap_path], files[overlay_path] = heatmap_files(
                    grey, heatmap, label=_label(finding)
                )
            records.append(
                FindingRecord(
                    label=finding.key,
                    code_scheme=finding.code_scheme,
                    code_value=finding.code_value,
                    code_meaning=finding.code_meaning,
                    probability=finding.probability,
                    threshold=finding.threshold,
                    positive=finding.positive,
                    sop_instance_uid=uid,
                    heatmap_path=heatmap_path,
                    overlay_path=overlay_path,
                )
            )
        details["explanation"] = next((a.explanation for _, a in complete if a.explanation), "")
        return self._output(ResultState.COMPLETE, ResultReason(), details, tuple(records), files)


def _label(finding: ModelFinding) -> str:
    return preliminary_label(finding.display_en, finding.display_vi, finding.probability)
