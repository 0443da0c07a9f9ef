"""The outbox: one row per document and destination, until the destination has it.

A delivery is ``pending`` when planned, ``retrying`` after a failure that may pass
(with the next attempt time set by exponential backoff with jitter), ``sent`` once the
destination acknowledged it, or ``dead`` after a refusal that no retry will change or
after too many attempts; a dead delivery stays listed until someone resends it.

Claiming a delivery pushes its next attempt time one lease ahead, in the same
transaction that counts the attempt, so two senders never take the same row at once
and a sender that dies leaves it due again after the lease. Documents are built
deterministically (the same SOP Instance UID, FHIR conditional creates, the same HL7
control id), so a resend after a crash is harmless.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from store._upsert import insert_ignore
from store.enums import DeliveryState
from store.errors import NotFoundError
from store.models import Delivery
from store.types import utcnow

__all__ = [
    "Backoff",
    "DeliveryPlan",
    "claim_due_delivery",
    "list_deliveries",
    "mark_delivery_dead",
    "mark_delivery_failed",
    "mark_delivery_sent",
    "plan_deliveries",
    "resend_delivery",
]

_TEXT_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class DeliveryPlan:
    """One document for one destination."""

    destination: str
    kind: str


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: ``base × 2^(attempt-1)``, at most ``cap``, times
    a random factor in [0.5, 1] so that many deliveries to one destination that came
    back spread out; after ``max_attempts`` failed attempts a delivery is dead."""

    base: timedelta = timedelta(seconds=5)
    cap: timedelta = timedelta(minutes=30)
    max_attempts: int = 200

    def __post_init__(self) -> None:
        if self.base <= timedelta(0):
            raise ValueError(f"`base` must be positive, {self.base} is given")
        if self.cap < self.base:
            raise ValueError(f"`cap` must be at least `base` ({self.base}), {self.cap} is given")
        if self.max_attempts < 1:
            raise ValueError(f"`max_attempts` must be at least 1, {self.max_attempts} is given")

    def delay(self, attempt: int, rng: random.Random | None = None) -> timedelta:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        # 2**62 base seconds exceed any cap; a larger exponent would overflow a float.
        doubling = 2 ** min(62, max(0, attempt - 1))
        raw = min(self.cap.total_seconds(), self.base.total_seconds() * doubling)
        factor = (rng or random).uniform(0.5, 1.0)
        return timedelta(seconds=raw * factor)


def plan_deliveries(
    session: Session, *, study_id: int, result_id: int, plans: Sequence[DeliveryPlan]
) -> int:
    """Add the deliveries of a result to the current transaction; return how many are new.

    Planning the same document for the same destination twice adds nothing (a unique
    constraint on result, destination and kind).
    """
    now = utcnow()
    added = 0
    for plan in plans:
        added += insert_ignore(
            session,
            Delivery,
            {
                "study_id": study_id,
                "result_id": result_id,
                "destination": plan.destination[:64],
                "kind": plan.kind[:96],
                "state": DeliveryState.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "last_error": "",
                "document_id": "",
                "remote_reply": "",
                "created_at": now,
                "updated_at": now,
            },
        )
    return added


def claim_due_delivery(
    session: Session,
    *,
    lease: timedelta,
    destinations: Collection[str] | None = None,
    now: datetime | None = None,
) -> Delivery | None:
    """Take the oldest due delivery (pending or retrying, its time come) for ``lease``.

    The attempt is counted and the next attempt time moved one lease ahead, so no
    other sender takes it meanwhile; :func:`mark_delivery_sent` or
    :func:`mark_delivery_failed` settles it. ``FOR UPDATE SKIP LOCKED`` on PostgreSQL.
    """
    now = now or utcnow()
    statement = (
        select(Delivery)
        .where(
            Delivery.state.in_([DeliveryState.PENDING, DeliveryState.RETRYING]),
            or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        )
        .order_by(Delivery.next_attempt_at, Delivery.id)
        .limit(1)
    )
    if destinations is not None:
        statement = statement.where(Delivery.destination.in_(list(destinations)))
    if session.get_bind().dialect.name == "postgresql":
        statement = statement.with_for_update(skip_locked=True)
    delivery = session.scalars(statement).one_or_none()
    if delivery is None:
        return None
    delivery.attempts += 1
    delivery.next_attempt_at = now + lease
    delivery.updated_at = now
    session.flush()
    return delivery


def _get(session: Session, delivery_id: int) -> Delivery:
    delivery = session.get(Delivery, delivery_id, populate_existing=True)
    if delivery is None:
        raise NotFoundError(f"no delivery {delivery_id}")
    return delivery


def mark_delivery_sent(
    session: Session, delivery_id: int, *, document_id: str = "", reply: str = ""
) -> Delivery:
    """The destination acknowledged the document."""
    delivery = _get(session, delivery_id)
    now = utcnow()
    delivery.state = DeliveryState.SENT
    delivery.sent_at = now
    delivery.updated_at = now
    delivery.next_attempt_at = None
    delivery.last_error = ""
    delivery.document_id = document_id[:128]
    delivery.remote_reply = reply[:_TEXT_LIMIT]
    session.flush()
    return delivery


def mark_delivery_failed(
    session: Session,
    delivery_id: int,
    *,
    error: str,
    backoff: Backoff,
    rng: random.Random | None = None,
) -> Delivery:
    """A failure that may pass: retry after the backoff, or dead after too many attempts."""
    delivery = _get(session, delivery_id)
    now = utcnow()
    delivery.updated_at = now
    delivery.last_error = error[:_TEXT_LIMIT]
    if delivery.attempts >= backoff.max_attempts:
        delivery.state = DeliveryState.DEAD
        delivery.next_attempt_at = None
        delivery.last_error = f"gave up after {delivery.attempts} attempts: {error}"[:_TEXT_LIMIT]
    else:
        delivery.state = DeliveryState.RETRYING
        delivery.next_attempt_at = now + backoff.delay(delivery.attempts, rng)
    session.flush()
    return delivery


def mark_delivery_dead(session: Session, delivery_id: int, *, error: str) -> Delivery:
    """A refusal no retry will change (the remote's message kept); listed for a resend."""
    delivery = _get(session, delivery_id)
    delivery.state = DeliveryState.DEAD
    delivery.next_attempt_at = None
    delivery.updated_at = utcnow()
    delivery.last_error = error[:_TEXT_LIMIT]
    session.flush()
    return delivery


def resend_delivery(session: Session, delivery_id: int) -> Delivery:
    """Queue a delivery again now (a dead one, or a sent one to send once more).

    It gets a whole new series of attempts (the count starts again from 0); the audit
    log keeps the earlier ones.
    """
    delivery = _get(session, delivery_id)
    now = utcnow()
    delivery.attempts = 0
    delivery.state = DeliveryState.PENDING
    delivery.next_attempt_at = now
    delivery.updated_at = now
    session.flush()
    return delivery


def list_deliveries(
    session: Session,
    *,
    states: Collection[DeliveryState] | None = None,
    study_id: int | None = None,
    limit: int = 200,
) -> Sequence[Delivery]:
    """Deliveries, newest first, optionally in some states or of one study."""
    statement = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if states is not None:
        statement = statement.where(Delivery.state.in_(list(states)))
    if study_id is not None:
        statement = statement.where(Delivery.study_id == study_id)
    return session.scalars(statement).all()
