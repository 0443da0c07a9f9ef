"""``soi studies``: what has arrived, as a table."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, cli_database
from soi.services import list_study_page

__all__ = ["studies_command"]


def studies_command(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many studies.")] = 50,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """List studies received, most recent first, with their state and jobs."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        page = list_study_page(database, limit=limit, offset=0)
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
