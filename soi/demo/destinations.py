"""The receiving systems the demo starts on loopback ports: a PACS, an EMR, a personal
health record, a commune health station's system and a legacy HIS.

Orthanc is the PACS when it is installed; otherwise, and for the others, Soi's own
stand-in receivers, each labelled as such wherever it is shown.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from soi.demo.errors import DemoError
from soi.settings import DestinationSettings
from soi.standins import (
    DicomReceiver,
    FhirReceiver,
    MllpReceiver,
    OrthancError,
    OrthancPacs,
    find_orthanc,
)

__all__ = ["COMMUNE_STATION", "DemoDestination", "PacsChoice", "start_destinations"]

PacsChoice = Literal["auto", "orthanc", "standin"]
FhirRole = Literal["emr", "phr", "commune-station"]

#: The commune health station the demo's EMR is told of positive results for.
COMMUNE_STATION = "urn:oid:2.16.704.1.0.1|TYT-DEMO-01"


@dataclass(frozen=True, slots=True)
class DemoDestination:
    """One receiving system: its settings for Soi, what it is, and what it holds."""

    settings: DestinationSettings
    label: str
    address: str
    counts: Callable[[], dict[str, int]]

    @property
    def name(self) -> str:
        """The destination's name in Soi's outbox."""
        return self.settings.name


def start_destinations(
    stack: ExitStack,
    *,
    workdir: Path,
    received_dir: Path,
    soi_ae_title: str,
    pacs: PacsChoice,
    note: Callable[[str], None],
) -> list[DemoDestination]:
    """Start the PACS, the FHIR systems and the HIS; each is stopped when ``stack`` closes.

    Raises
    ------
    DemoError
        Orthanc was asked for (``pacs="orthanc"``) and is not installed or did not start,
        or a stand-in could not listen.
    """
    destinations = [_start_pacs(stack, workdir, received_dir, soi_ae_title, pacs, note)]
    roles: tuple[tuple[str, FhirRole], ...] = (
        ("emr", "emr"),
        ("phr", "phr"),
        ("station", "commune-station"),
    )
    for name, role in roles:
        destinations.append(_start_fhir(stack, received_dir, name, role))
    try:
        his = stack.enter_context(MllpReceiver(store_dir=received_dir / "his"))
    except OSError as exc:
        raise DemoError(f"the MLLP stand-in receiver could not listen: {exc}") from exc
    destinations.append(
        DemoDestination(
            DestinationSettings(name="his", kind="mllp", host=his.host, port=his.port),
            his.label,
            f"mllp://{his.host}:{his.port}",
            his.counts,
        )
    )
    return destinations


#: What each FHIR stand-in plays.
_FHIR_ROLES = {
    "emr": "the hospital's EMR",
    "phr": "the personal health record",
    "commune-station": "the commune health station's system",
}


def _start_fhir(stack: ExitStack, received_dir: Path, name: str, role: FhirRole) -> DemoDestination:
    """A FHIR stand-in with its own bearer token, playing ``role``."""
    token = secrets.token_urlsafe(24)
    try:
        receiver = stack.enter_context(FhirReceiver(store_dir=received_dir / name, token=token))
    except OSError as exc:
        raise DemoError(f"the FHIR stand-in receiver could not listen: {exc}") from exc
    station = COMMUNE_STATION if role == "commune-station" else None
    return DemoDestination(
        DestinationSettings(
            name=name,
            kind="fhir",
            role=role,
            url=receiver.base_url,
            token=token,
            commune_station=station,
        ),
        f"{receiver.label}, standing in for {_FHIR_ROLES[role]}",
        receiver.base_url,
        receiver.counts,
    )


def _start_pacs(
    stack: ExitStack,
    workdir: Path,
    received_dir: Path,
    soi_ae_title: str,
    choice: PacsChoice,
    note: Callable[[str], None],
) -> DemoDestination:
    if choice != "standin":
        if find_orthanc() is None:
            if choice == "orthanc":
                raise DemoError("--pacs orthanc: Orthanc is not installed (Debian: orthanc)")
            note("Orthanc is not installed: Soi's DICOM stand-in receiver plays the PACS.")
        else:
            try:
                orthanc = stack.enter_context(
                    OrthancPacs(workdir / "orthanc", allowed_ae_title=soi_ae_title)
                )
            except OrthancError as exc:
                if choice == "orthanc":
                    raise DemoError(f"Orthanc did not start: {exc}") from exc
                note(f"Orthanc did not start ({exc}); Soi's DICOM stand-in plays the PACS.")
            else:
                return DemoDestination(
                    DestinationSettings(
                        name="pacs",
                        kind="dicom",
                        ae_title=orthanc.ae_title,
                        host=orthanc.host,
                        port=orthanc.dicom_port,
                    ),
                    orthanc.label,
                    f"{orthanc.ae_title}@{orthanc.host}:{orthanc.dicom_port}, {orthanc.url}",
                    orthanc.counts,
                )
    try:
        receiver = stack.enter_context(DicomReceiver(received_dir / "pacs"))
    except OSError as exc:
        raise DemoError(f"the DICOM stand-in receiver could not listen: {exc}") from exc
    return DemoDestination(
        DestinationSettings(
            name="pacs",
            kind="dicom",
            ae_title=receiver.ae_title,
            host=receiver.host,
            port=receiver.port,
        ),
        receiver.label,
        f"{receiver.ae_title}@{receiver.host}:{receiver.port}",
        receiver.counts,
    )
