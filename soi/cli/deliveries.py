"""``soi deliveries``: where each result document went, the dead letters, and resending."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, cli_database, fail
from store import (
    DeliveryState,
    NotFoundError,
    Study,
    list_deliveries,
    resend_delivery,
)

__all__ = ["app"]

app = typer.Typer(
    help="The outbox: documents on their way to PACS, EMR and HIS.",
    invoke_without_command=True,
)


@app.callback()
def list_command(
    ctx: typer.Context,
    state: Annotated[
        list[str] | None,
        typer.Option(help="Only these states: pending, retrying, sent, dead (repeatable)."),
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Only the dead letters.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=5000, help="How many, newest first.")] = 100,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """List deliveries, newest first, with the remote's last answer."""
    if ctx.invoked_subcommand is not None:
        return
    wanted = list(state or []) + (["dead"] if dead else [])
    try:
        states = [DeliveryState(value) for value in wanted] or None
    except ValueError:
        raise fail(
            f"--state must be one of {[s.value for s in DeliveryState]}, {wanted} is given"
        ) from None
    with (
        cli_database(config, data_dir=data_dir, database_url=database_url) as database,
        database.read() as session,
    ):
        rows = []
        for delivery in list_deliveries(session, states=states, limit=limit):
            study = session.get(Study, delivery.study_id)
            rows.append(
                (
                    str(delivery.id),
                    study.study_instance_uid if study is not None else "",
                    delivery.destination,
                    delivery.kind,
                    delivery.state.value,
                    str(delivery.attempts),
                    delivery.next_attempt_at.isoformat(timespec="seconds")
                    if delivery.next_attempt_at and delivery.state.value != "sent"
                    else "",
                    delivery.last_error or delivery.remote_reply,
                )
            )
    if not rows:
        typer.echo("No delivery.")
        return
    table = Table("ID", "Study", "Destination", "Document", "State", "Tries", "Next", "Remote")
    for row in rows:
        table.add_row(*row)
    Console(width=220).print(table)


@app.command("resend")
def resend_command(
    delivery_ids: Annotated[list[int], typer.Argument(help="Delivery IDs (see the list).")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Queue deliveries again now (dead letters, or documents to send once more)."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                for delivery_id in delivery_ids:
                    resend_delivery(session, delivery_id)
        except NotFoundError as exc:
            raise fail(str(exc)) from None
    typer.echo(
        f"Queued again: {', '.join(str(i) for i in delivery_ids)}; "
        "a running `soi serve` sends them shortly."
    )
