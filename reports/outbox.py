"""The delivery worker: takes due deliveries from the outbox, builds and sends each document.

One loop, any number of processes. A claimed delivery is held for a lease (see
:func:`store.claim_due_delivery`); the document is built (by the injected
``build``: the documents depend on the result, the model registry and the settings)
and sent through the destination's channel; the outcome is committed:

- sent: the destination acknowledged it;
- retry: unreachable, busy, or "try later": due again after exponential backoff with
  jitter, dead only after ``Backoff.max_attempts``;
- refused: the destination will not take this document as it is (a FHIR 4xx, an HL7
  AE, a C-STORE refusal), or it cannot be built (no patient identifier for the EMR):
  dead at once, with the reason, until someone resends it.

A destination down for hours loses nothing: its deliveries wait, and a restart
resumes the outbox where it was.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from reports.channels import Channel, Document, Outcome, SendOutcome
from reports.fhir import NoPatientIdentifierError
from store import (
    AuditOutcome,
    Backoff,
    Database,
    Delivery,
    Study,
    claim_due_delivery,
    mark_delivery_dead,
    mark_delivery_failed,
    mark_delivery_sent,
    record_event,
)

__all__ = ["DeliveryReport", "DeliveryWorker", "DocumentBuilder", "DocumentUnavailable"]

_log = structlog.get_logger("soi.outbox")


class DocumentUnavailable(Exception):
    """The document cannot be built now, but may be later (e.g. a file is being restored)."""


#: Builds the document of a delivery: (result id, document kind, destination name).
DocumentBuilder = Callable[[int, str, str], Document]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """What one :meth:`DeliveryWorker.run_once` did."""

    delivery_id: int
    destination: str
    kind: str
    attempt: int
    outcome: str
    message: str = ""


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    study_id: int
    result_id: int | None
    destination: str
    kind: str
    attempt: int


class DeliveryWorker:
    """Sends due deliveries through the channels of their destinations.

    Parameters
    ----------
    database:
        The store.
    channels:
        Destination name → channel. Deliveries to other destinations are left alone.
    build:
        Builds a delivery's document.
    lease:
        How long a claimed delivery is held before another sender may take it.
    backoff:
        Retry schedule and the attempt limit.
    name:
        Recorded in the audit log.
    """

    def __init__(
        self,
        *,
        database: Database,
        channels: Mapping[str, Channel],
        build: DocumentBuilder,
        lease: timedelta = timedelta(minutes=2),
        backoff: Backoff | None = None,
        name: str = "soi-outbox",
        rng: random.Random | None = None,
    ) -> None:
        self.database = database
        self.channels = dict(channels)
        self.build = build
        self.lease = lease
        self.backoff = backoff or Backoff()
        self.name = name
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets

    def run_once(self) -> DeliveryReport | None:
        """Send one due delivery; ``None`` when none is due."""
        if not self.channels:
            return None
        with self.database.write() as session:
            delivery = claim_due_delivery(session, lease=self.lease, destinations=self.channels)
            if delivery is None:
                return None
            claimed = _Claimed(
                delivery.id,
                delivery.study_id,
                delivery.result_id,
                delivery.destination,
                delivery.kind,
                delivery.attempts,
            )
        outcome = self._attempt(claimed)
        self._settle(claimed, outcome)
        log = _log.bind(delivery=claimed.id, destination=claimed.destination, kind=claimed.kind)
        if outcome.outcome is Outcome.SENT:
            log.info("document delivered", reply=outcome.message)
        else:
            log.warning("document not delivered", outcome=outcome.outcome.value,
                        reason=outcome.message)  # fmt: skip
        return DeliveryReport(
            claimed.id,
            claimed.destination,
            claimed.kind,
            claimed.attempt,
            outcome.outcome.value,
            outcome.message,
        )

    def run_forever(self, stop: threading.Event, *, interval: float = 1.0) -> None:
        """Send until ``stop`` is set, waiting ``interval`` seconds when nothing is due."""
        while not stop.is_set():
            try:
                report = self.run_once()
            except SQLAlchemyError as exc:
                _log.error("outbox: database error; retrying", error=str(exc))
                report = None
            if report is None:
                stop.wait(interval)

    def _attempt(self, claimed: _Claimed) -> SendOutcome:
        if claimed.result_id is None:
            return SendOutcome(Outcome.REFUSED, "the delivery names no result")
        try:
            document = self.build(claimed.result_id, claimed.kind, claimed.destination)
        except NoPatientIdentifierError as exc:
            return SendOutcome(Outcome.REFUSED, str(exc))
        except DocumentUnavailable as exc:
            return SendOutcome(Outcome.RETRY, f"document not available yet: {exc}")
        except Exception as exc:  # noqa: BLE001 - a document that cannot be built is reported
            return SendOutcome(
                Outcome.REFUSED, f"cannot build {claimed.kind}: {type(exc).__name__}: {exc}"
            )
        try:
            return self.channels[claimed.destination].send(document)
        except Exception as exc:  # noqa: BLE001 - a channel bug must not stop the outbox
            return SendOutcome(Outcome.RETRY, f"{type(exc).__name__}: {exc}")

    def _settle(self, claimed: _Claimed, outcome: SendOutcome) -> None:
        with self.database.write() as session:
            if outcome.outcome is Outcome.SENT:
                delivery = mark_delivery_sent(
                    session, claimed.id, document_id=outcome.document_id, reply=outcome.message
                )
            elif outcome.outcome is Outcome.RETRY:
                delivery = mark_delivery_failed(
                    session, claimed.id, error=outcome.message, backoff=self.backoff,
                    rng=self._rng,
                )  # fmt: skip
            else:
                delivery = mark_delivery_dead(session, claimed.id, error=outcome.message)
            self._audit(session, delivery, outcome)

    def _audit(self, session: Session, delivery: Delivery, outcome: SendOutcome) -> None:
        study = session.get(Study, delivery.study_id)
        record_event(
            session,
            actor=self.name,
            actor_kind="outbox",
            action=f"delivery.{delivery.state.value}",
            outcome=AuditOutcome.SUCCESS
            if outcome.outcome is Outcome.SENT
            else AuditOutcome.FAILURE,
            facility_id=study.facility_id if study is not None else None,
            patient_id=study.patient_id if study is not None else None,
            study_instance_uid=study.study_instance_uid if study is not None else "",
            detail={
                "delivery": delivery.id,
                "destination": delivery.destination,
                "kind": delivery.kind,
                "attempt": delivery.attempts,
                "message": outcome.message[:500],
            },
        )
