"""What the demo leaves for people to look at: each study's PDF report and heatmaps."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from models import ModelRegistry
from reports import build_pdf
from soi.runtime import open_database
from soi.services.documents import DocumentFactory
from soi.settings import load_settings
from store import InstanceFileStore, ResultFileStore

if TYPE_CHECKING:
    from soi.demo.run import StudyOutcome

__all__ = ["write_outputs"]


def write_outputs(studies: Sequence[StudyOutcome], *, config: Path, out_dir: Path) -> None:
    """Write ``out_dir/SAMPLE/report.pdf`` and ``heatmap-LABEL.png`` for each study.

    The PDF is built by the same deterministic builder, from the same stored result, as
    the one the outbox delivered; the heatmaps are the overlays the worker stored.
    Paths written are added to each study's ``outputs``.
    """
    settings = load_settings(config)
    database = open_database(settings, migrate=False)
    try:
        result_files = ResultFileStore(settings.results_dir)
        factory = DocumentFactory(
            settings=settings,
            database=database,
            registry=ModelRegistry(settings.models_dir),
            instance_files=InstanceFileStore(settings.instances_dir),
            result_files=result_files,
        )
        for study in studies:
            if study.detail is None or not study.detail.results:
                continue
            result = study.detail.results[-1]
            folder = out_dir / study.sample
            folder.mkdir(parents=True, exist_ok=True)
            pdf = folder / "report.pdf"
            pdf.write_bytes(build_pdf(factory.context(result.id)))
            study.outputs.append(pdf)
            for finding in result.findings:
                if finding.overlay:
                    picture = folder / f"heatmap-{finding.label}.png"
                    shutil.copyfile(result_files.absolute(finding.overlay), picture)
                    study.outputs.append(picture)
    finally:
        database.dispose()
