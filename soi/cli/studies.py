"""``soi studies``: what has arrived, as a table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.auth import local_caller
from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, cli_database, fail
from soi.schemas import ResultOut, StudyDetail
from soi.services import list_study_page, study_detail

__all__ = ["studies_command"]


def studies_command(
    study_uid: Annotated[
        str | None,
        typer.Argument(help="Show one study: its jobs and AI results with their findings."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many studies.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="One study as JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """List studies received, most recent first; or show one study's results."""
    if study_uid is not None:
        with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
            detail = study_detail(database, study_uid, caller=local_caller())
        if detail is None:
            raise fail(f"no study {study_uid!r} has been received")
        if as_json:
            typer.echo(detail.model_dump_json(indent=2))
        else:
            _print_detail(detail)
        return
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        page = list_study_page(database, caller=local_caller(), limit=limit, offset=0)
    if not page.items:
        typer.echo("No study received yet.")
        return
    table = Table(
        "Study Instance UID", "Patient", "Facility", "Date", "Mod.", "Inst.", "State", "Jobs"
    )
    for study in page.items:
        jobs = ", ".join(f"{job.pipeline}: {job.state}" for job in study.jobs) or "none"
        table.add_row(
            study.study_instance_uid,
            study.patient_name,
            study.facility,
            study.study_date,
            study.modalities,
            str(study.num_instances),
            study.state,
            jobs,
        )
    Console(width=200).print(table)
    typer.echo(f"{len(page.items)} of {page.total} studies shown.")


def _print_detail(study: StudyDetail) -> None:
    typer.echo(
        f"Study {study.study_instance_uid} · {study.patient_name} · {study.facility} · "
        f"{study.modalities} · {study.num_instances} instance(s) · {study.state}"
    )
    for job in study.jobs:
        typer.echo(f"Job {job.pipeline}: {job.state} (attempt {job.attempts}) {job.state_reason}")
    if not study.results:
        typer.echo("No AI result yet.")
        return
    result = study.results[-1]
    typer.echo(
        f"AI result ({result.status.upper()}, not a diagnosis until a clinician signs): "
        f"{result.state} · {result.model_name} {result.model_version}"
    )
    if result.reason.get("en"):
        typer.echo(f"  {result.reason['en']}\n  {result.reason['vi']}")
    if result.findings:
        _print_findings(result)
    _print_deliveries(study)


def _print_deliveries(study: StudyDetail) -> None:
    if not study.deliveries:
        typer.echo("No document sent: no destination is configured for this facility.")
        return
    table = Table("Destination", "Document", "State", "Tries", "Remote")
    for delivery in study.deliveries:
        table.add_row(
            delivery.destination,
            delivery.kind,
            delivery.state,
            str(delivery.attempts),
            delivery.last_error or delivery.remote_reply,
        )
    Console(width=200).print(table)


def _print_findings(result: ResultOut) -> None:
    table = Table("Finding", "Code", "Probability", "Threshold", "Positive", "Overlay")
    for finding in result.findings:
        table.add_row(
            finding.label,
            f"{finding.code['scheme']} {finding.code['value']}",
            f"{finding.probability:.3f}",
            "" if finding.threshold is None else f"{finding.threshold:.3f}",
            "yes" if finding.positive else "no",
            finding.overlay or "",
        )
    Console(width=200).print(table)
