"""``soi audit``: who read or changed what, when, from where, with which outcome."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.auth import local_caller
from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, cli_database, fail
from soi.schemas import AuditEventOut
from soi.services import MAX_AUDIT_EVENTS, audit_trail

__all__ = ["audit_command"]


def _detail(event: AuditEventOut) -> str:
    detail = dict(event.detail)
    studies = detail.pop("studies", None)
    parts = [f"{key}={value}" for key, value in detail.items()]
    if isinstance(studies, list) and studies:
        parts.append(f"studies={len(studies)}")
    return " ".join(parts)


def audit_command(
    patient: Annotated[
        str | None,
        typer.Option(
            "--patient",
            help="The patient's identifier as people know it: CCCD, BHYT number, or a "
            "facility's Patient ID.",
            show_default=False,
        ),
    ] = None,
    study: Annotated[
        str | None,
        typer.Option("--study", help="A Study Instance UID.", show_default=False),
    ] = None,
    actor: Annotated[
        str | None,
        typer.Option(
            "--actor", help="A user, service account, AE title or worker.", show_default=False
        ),
    ] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", help="e.g. study.read, auth.login, dimse.store.", show_default=False
        ),
    ] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_AUDIT_EVENTS, help="How many, newest first.")
    ] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="As JSON.")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Show the audit log, newest first: every read and change of patient data, sign-ins."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        trail = audit_trail(
            database,
            caller=local_caller(),
            patient=patient,
            study_instance_uid=study,
            actor=actor,
            action=action,
            limit=limit,
        )
    if as_json:
        typer.echo(trail.model_dump_json(indent=2))
        return
    if trail.patient_ids == []:
        raise fail(f"no patient has an identifier {patient!r}")
    if not trail.items:
        typer.echo("No audit event matches.")
        return
    table = Table("Time (UTC)", "Actor", "Kind", "Action", "Outcome", "From", "Study", "Detail")
    for event in trail.items:
        table.add_row(
            event.occurred_at.strftime("%Y-%m-%d %H:%M:%S"),
            event.actor,
            event.actor_kind,
            event.action,
            event.outcome,
            event.source_address,
            event.study_instance_uid,
            _detail(event),
        )
    Console(width=220).print(table)
    typer.echo(f"{len(trail.items)} event(s) shown, newest first.")
