"""How documents travel: DICOM C-STORE to a PACS, FHIR over HTTP(S), HL7 v2 over MLLP.

Each channel sends one document and says what happened as a :class:`SendOutcome`:
``sent``, ``retry`` (the destination is down, busy or said "try later") or ``refused``
(it answered that this document will never be accepted as it is; the remote's message
is kept). Channels never raise for a remote's answer or an unreachable host.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

import httpx
from pydicom import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from reports.mllp import MllpError, send_mllp

__all__ = [
    "Channel",
    "DicomChannel",
    "Document",
    "FhirChannel",
    "MllpChannel",
    "Outcome",
    "SendOutcome",
]


class Outcome(StrEnum):
    """What a send came to."""

    SENT = "sent"
    RETRY = "retry"
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class SendOutcome:
    """The result of one send: the outcome, the remote's words, the document's id there."""

    outcome: Outcome
    message: str = ""
    document_id: str = ""


@dataclass(frozen=True, slots=True)
class Document:
    """One document ready to send: a DICOM data set, FHIR JSON or an HL7 v2 message.

    ``document_id`` names it for people and logs (SOP Instance UID, Bundle identifier,
    HL7 control id).
    """

    kind: str
    document_id: str
    dataset: Dataset | None = None
    text: str = ""


class Channel(Protocol):
    """Sends documents to one destination."""

    def send(self, document: Document) -> SendOutcome:
        """Send one document."""
        ...


#: C-STORE failure statuses worth retrying: out of resources (the PACS is full or busy).
_RETRY_STATUSES = range(0xA700, 0xA800)


@dataclass(frozen=True, slots=True)
class DicomChannel:
    """C-STORE to a PACS (or any Storage SCP).

    Parameters
    ----------
    ae_title, host, port:
        The PACS's AE title and address.
    calling_ae_title:
        Soi's AE title as the PACS knows it.
    timeout:
        Seconds for connecting, each DIMSE exchange and the association.
    """

    ae_title: str
    host: str
    port: int
    calling_ae_title: str = "SOI"
    timeout: float = 30.0

    def send(self, document: Document) -> SendOutcome:
        """Store the document's data set; the status decides the outcome."""
        dataset = document.dataset
        if dataset is None:
            return SendOutcome(Outcome.REFUSED, f"{document.kind} is not a DICOM document")
        ae = AE(ae_title=self.calling_ae_title)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = self.timeout
        ae.connection_timeout = self.timeout
        meta = getattr(dataset, "file_meta", None)
        syntax = str(getattr(meta, "TransferSyntaxUID", None) or ExplicitVRLittleEndian)
        ae.add_requested_context(
            dataset.SOPClassUID,
            [syntax] if syntax != ImplicitVRLittleEndian else [ImplicitVRLittleEndian],
        )
        where = f"{self.ae_title}@{self.host}:{self.port}"
        try:
            assoc = ae.associate(self.host, self.port, ae_title=self.ae_title)
        except OSError as exc:  # pragma: no cover - pynetdicom reports most as not established
            return SendOutcome(Outcome.RETRY, f"cannot reach {where}: {exc}")
        if not assoc.is_established:
            if assoc.rejected_contexts and not assoc.accepted_contexts:
                return SendOutcome(
                    Outcome.REFUSED,
                    f"{where} accepts no presentation context for SOP class "
                    f"{dataset.SOPClassUID} in transfer syntax {syntax}",
                )
            reason = "rejected the association" if assoc.is_rejected else "is not reachable"
            return SendOutcome(Outcome.RETRY, f"{where} {reason}")
        try:
            status = assoc.send_c_store(dataset)
        finally:
            if assoc.is_established:
                assoc.release()
        if not status:
            return SendOutcome(
                Outcome.RETRY, f"{where}: no C-STORE response (connection lost or timed out)"
            )
        code = int(status.Status)
        comment = str(status.get("ErrorComment", ""))
        text = f"{where} answered C-STORE status 0x{code:04X}" + (f": {comment}" if comment else "")
        if code == 0x0000 or 0xB000 <= code <= 0xBFFF:
            return SendOutcome(Outcome.SENT, text, str(dataset.SOPInstanceUID))
        if code in _RETRY_STATUSES:
            return SendOutcome(Outcome.RETRY, text)
        return SendOutcome(Outcome.REFUSED, text)


@dataclass(frozen=True, slots=True)
class FhirChannel:
    """A FHIR R4 transaction Bundle POSTed to a server's base URL.

    Parameters
    ----------
    base_url:
        The FHIR base, e.g. ``https://emr.example.vn/fhir/R4``.
    token:
        Bearer token, when the server wants one.
    timeout:
        Seconds for the whole request.
    verify:
        TLS verification: True, False, or a CA bundle path; a client certificate for
        mTLS goes in ``client_cert`` (``(cert, key)`` paths).
    """

    base_url: str
    token: str | None = None
    timeout: float = 30.0
    verify: bool | str = True
    client_cert: tuple[str, str] | None = None

    def send(self, document: Document) -> SendOutcome:
        """POST the Bundle; 2xx is sent, 408/429/5xx and network errors retry."""
        headers = {
            "Content-Type": "application/fhir+json; charset=utf-8",
            "Accept": "application/fhir+json",
        }
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        verify: bool | str | ssl.SSLContext = self.verify
        if self.client_cert is not None:
            context = ssl.create_default_context(
                cafile=self.verify if isinstance(self.verify, str) else None
            )
            context.load_cert_chain(*self.client_cert)
            verify = context
        try:
            response = httpx.post(
                self.base_url.rstrip("/"),
                content=document.text.encode("utf-8"),
                headers=headers,
                timeout=self.timeout,
                verify=verify,
            )
        except httpx.HTTPError as exc:
            return SendOutcome(Outcome.RETRY, f"{self.base_url}: {type(exc).__name__}: {exc}")
        text = f"{self.base_url} answered HTTP {response.status_code}"
        detail = _operation_outcome(response)
        if detail:
            text += f": {detail}"
        if 200 <= response.status_code < 300:
            return SendOutcome(Outcome.SENT, text, document.document_id)
        if response.status_code in (408, 425, 429) or response.status_code >= 500:
            return SendOutcome(Outcome.RETRY, text)
        return SendOutcome(Outcome.REFUSED, text)


def _operation_outcome(response: httpx.Response) -> str:
    """The diagnostics of an OperationOutcome answer, or the start of the body."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text[:300]
    if isinstance(body, dict) and body.get("resourceType") == "OperationOutcome":
        issues = body.get("issue") or []
        return "; ".join(
            str(issue.get("diagnostics") or issue.get("details", {}).get("text") or "")
            for issue in issues
            if isinstance(issue, dict)
        )[:1000]
    if isinstance(body, dict) and body.get("resourceType") == "Bundle":
        entries = body.get("entry") or []
        statuses = [str((e.get("response") or {}).get("status", "")) for e in entries]
        return f"{len(entries)} entries ({', '.join(sorted(set(statuses)))})"
    return response.text[:300]


@dataclass(frozen=True, slots=True)
class MllpChannel:
    """An HL7 v2 message over MLLP (TLS optional) to a legacy HIS.

    AA/CA is sent; AR/CR (rejected: the receiver cannot take it now) and network
    errors retry; AE/CE (an error in the message) is refused with the receiver's text.
    """

    host: str
    port: int
    timeout: float = 30.0
    ssl_context: ssl.SSLContext | None = None

    def send(self, document: Document) -> SendOutcome:
        """Send the message and read the ACK."""
        try:
            ack = send_mllp(
                self.host,
                self.port,
                document.text,
                timeout=self.timeout,
                ssl_context=self.ssl_context,
            )
        except MllpError as exc:
            return SendOutcome(Outcome.RETRY, str(exc))
        except ValueError as exc:  # not an HL7 message: sending it again will not help
            return SendOutcome(Outcome.REFUSED, f"not sent to {self.host}:{self.port}: {exc}")
        text = f"{self.host}:{self.port} answered {ack.code}" + (
            f": {ack.text}" if ack.text else ""
        )
        if ack.accepted:
            return SendOutcome(Outcome.SENT, text, ack.control_id)
        if ack.code in ("AR", "CR"):
            return SendOutcome(Outcome.RETRY, text)
        return SendOutcome(Outcome.REFUSED, text)
