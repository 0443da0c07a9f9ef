"""``soi peers`` and ``soi facilities``: who may send, and for whom."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, cli_database, fail
from store import (
    DuplicateError,
    NotFoundError,
    add_facility,
    add_peer,
    list_facilities,
    list_peers,
    remove_peer,
)

__all__ = ["app", "facilities_app"]

app = typer.Typer(help="DICOM peers allowed to send to Soi.", no_args_is_help=True)
facilities_app = typer.Typer(help="Hospitals, stations and programs.", no_args_is_help=True)


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="A name for the peer, e.g. the PACS's.")],
    ae: Annotated[str, typer.Option("--ae", help="Its calling AE title.")],
    host: Annotated[str, typer.Option("--host", help="The address it connects from.")],
    facility: Annotated[str, typer.Option("--facility", help="Code of its facility.")],
    port: Annotated[int | None, typer.Option(help="Its own DIMSE port, to send back.")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Allow an AE title calling from an address to send for a facility."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                peer = add_peer(
                    session, name=name, ae_title=ae, host=host, facility_code=facility, port=port
                )
                summary = f"{peer.name}: AE {peer.ae_title} from {peer.host} for {facility}"
        except NotFoundError as exc:
            hint = f"add it first with `soi facilities add {facility} --name NAME`"
            raise fail(f"{exc}; {hint}") from None
        except (DuplicateError, ValueError) as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Peer added: {summary}")


@app.command("list")
def list_(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None
) -> None:
    """List the peers allowed to send."""
    table = Table("Name", "AE title", "Host", "Port", "Facility")
    with (
        cli_database(config, data_dir=data_dir, database_url=database_url) as database,
        database.read() as session,
    ):
        peers = list_peers(session)
        for peer in peers:
            table.add_row(
                peer.name, peer.ae_title, peer.host, str(peer.port or ""), peer.facility.code
            )
    if not peers:
        typer.echo("No peer registered: only the loopback address (this box) may send.")
        return
    Console(width=120).print(table)


@app.command("remove")
def remove(
    name: Annotated[str, typer.Argument(help="The peer's name.")],
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Stop accepting a peer."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                remove_peer(session, name)
        except NotFoundError as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Peer removed: {name}")


@facilities_app.command("add")
def facilities_add(
    code: Annotated[str, typer.Argument(help="Short code, e.g. BV-HAGIANG.")],
    name: Annotated[str, typer.Option("--name", help="Full name.")],
    kind: Annotated[str, typer.Option(help="hospital, station or program.")] = "hospital",
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Add a facility."""
    with cli_database(config, data_dir=data_dir, database_url=database_url) as database:
        try:
            with database.write() as session:
                add_facility(session, code=code, name=name, kind=kind)
        except (DuplicateError, ValueError) as exc:
            raise fail(str(exc)) from None
    typer.echo(f"Facility added: {code} ({name})")


@facilities_app.command("list")
def facilities_list(
    config: ConfigOpt = None, data_dir: DataDirOpt = None, database_url: DatabaseUrlOpt = None
) -> None:
    """List facilities."""
    table = Table("Code", "Name", "Kind")
    with (
        cli_database(config, data_dir=data_dir, database_url=database_url) as database,
        database.read() as session,
    ):
        for facility in list_facilities(session):
            table.add_row(facility.code, facility.name, facility.kind)
    Console(width=120).print(table)
