"""``soi users cert``: radiologists' signing certificates (PKCS#12) in the data folder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from reports import SigningError
from soi.auth import local_caller
from soi.cli.options import ConfigOpt, DatabaseUrlOpt, DataDirOpt, fail, settings_or_exit
from soi.runtime import open_database
from soi.services.certificates import (
    MAX_PKCS12_BYTES,
    MIN_PASSPHRASE_LENGTH,
    CertificateError,
    CertificateInfo,
    SigningCertificates,
)
from store import NotFoundError

__all__ = ["cert_app"]

cert_app = typer.Typer(
    help="Radiologists' signing certificates (PKCS#12) for signed report PDFs.",
    no_args_is_help=True,
)

UsernameArg = Annotated[str, typer.Argument(help="The radiologist's user name.")]
PassphraseFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file",
        help="Read the passphrase from the first line of this file (default: asked for).",
        exists=True,
        dir_okay=False,
        readable=True,
        show_default=False,
    ),
]


def _passphrase(path: Path | None, *, prompt: str, confirm: bool) -> str:
    """The passphrase: the first line of ``path``, or typed (hidden) at a prompt."""
    if path is not None:
        try:
            with path.open(encoding="utf-8") as handle:
                line = handle.readline().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            raise fail(f"cannot read the passphrase from {path}: {exc}") from None
        if not line:
            raise fail(f"the first line of {path} is empty: it must hold the passphrase")
        return line
    typed: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm)
    return typed


@contextmanager
def _certificates(
    config: Path | None, *, data_dir: Path | None, database_url: str | None
) -> Iterator[SigningCertificates]:
    settings = settings_or_exit(config, data_dir=data_dir, database_url=database_url)
    database = open_database(settings)
    try:
        yield SigningCertificates(database, settings.data_dir)
    except (NotFoundError, CertificateError, SigningError, ValueError) as exc:
        raise fail(str(exc)) from None
    finally:
        database.dispose()


def _print(info: CertificateInfo) -> None:
    issuer = f"{info.issuer}" + (" (this installation's local CA)" if info.local_ca else "")
    state = " (expired)" if info.expired else ""
    typer.echo(f"User:        {info.username}")
    typer.echo(f"Subject:     {info.subject}")
    typer.echo(f"Issuer:      {issuer}")
    typer.echo(f"Serial:      {info.serial}")
    typer.echo(f"Valid from:  {info.not_valid_before:%Y-%m-%d %H:%M UTC}")
    typer.echo(f"Valid until: {info.not_valid_after:%Y-%m-%d %H:%M UTC}{state}")
    typer.echo(f"SHA-256:     {info.sha256_fingerprint}")


@cert_app.command("create")
def create(
    username: UsernameArg,
    passphrase_file: PassphraseFileOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Issue a signing certificate from this installation's local CA (trials only)."""
    passphrase = _passphrase(
        passphrase_file,
        prompt=f"Passphrase of the new key (at least {MIN_PASSPHRASE_LENGTH} characters)",
        confirm=True,
    )
    with _certificates(config, data_dir=data_dir, database_url=database_url) as certificates:
        info = certificates.create(username, passphrase, actor=local_caller())
    typer.echo(f"Signing certificate created for {username}.")
    _print(info)
    typer.echo(
        "It is issued by the local CA, which PDF readers do not trust by themselves: "
        "for production, import a certificate from a licensed CA with "
        f"`soi users cert import {username} FILE.p12`.",
        err=True,
    )


@cert_app.command("import")
def import_(
    username: UsernameArg,
    file: Annotated[
        Path,
        typer.Argument(
            help="PKCS#12 file (.p12/.pfx) with the key and certificate chain.",
            exists=True,
            dir_okay=False,
            readable=True,
        ),
    ],
    passphrase_file: PassphraseFileOpt = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Import a signing certificate and key from a licensed CA's PKCS#12 file."""
    if file.stat().st_size > MAX_PKCS12_BYTES:
        raise fail(f"{file} is larger than {MAX_PKCS12_BYTES} bytes: not a PKCS#12 file")
    data = file.read_bytes()
    passphrase = _passphrase(passphrase_file, prompt=f"Passphrase of {file.name}", confirm=False)
    with _certificates(config, data_dir=data_dir, database_url=database_url) as certificates:
        info = certificates.import_pkcs12(username, data, passphrase, actor=local_caller())
    typer.echo(f"Signing certificate imported for {username}.")
    _print(info)


@cert_app.command("show")
def show(
    username: UsernameArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Show a radiologist's signing certificate: subject, issuer, validity, fingerprint."""
    with _certificates(config, data_dir=data_dir, database_url=database_url) as certificates:
        info = certificates.show(username)
    _print(info)


@cert_app.command("remove")
def remove(
    username: UsernameArg,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    database_url: DatabaseUrlOpt = None,
) -> None:
    """Delete a radiologist's signing certificate and key from the data folder."""
    with _certificates(config, data_dir=data_dir, database_url=database_url) as certificates:
        info = certificates.remove(username, actor=local_caller())
    typer.echo(f"Signing certificate removed for {username} (serial {info.serial}).")
