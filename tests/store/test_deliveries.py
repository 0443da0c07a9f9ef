"""The outbox's rows: planned once per document, claimed for a lease, retried with
exponential backoff and jitter, dead after a refusal or too many attempts, resent on
request; on both databases."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from store import (
    Backoff,
    Database,
    Delivery,
    DeliveryPlan,
    DeliveryState,
    NotFoundError,
    claim_due_delivery,
    list_deliveries,
    mark_delivery_dead,
    mark_delivery_failed,
    mark_delivery_sent,
    plan_deliveries,
    resend_delivery,
    utcnow,
)
from tests.support.results import record_cxr_result

LEASE = timedelta(minutes=2)
PACS_SR = DeliveryPlan("pacs", "dicom-sr")
PACS_PDF = DeliveryPlan("pacs", "dicom-pdf")
HIS_ORU = DeliveryPlan("his", "hl7-oru")
EMR_BUNDLE = DeliveryPlan("emr", "fhir-bundle")

#: A refusal as an EMR words it, kept as it came.
REFUSAL = "HTTP 422: Thiếu mã định danh bệnh nhân (Patient.identifier)"


def _plan(database: Database, uid: str, plans: Sequence[DeliveryPlan]) -> list[Delivery]:
    """Record a result for a new study, plan ``plans`` for it; return its rows."""
    study_id, result_id = record_cxr_result(database, uid)
    with database.write() as session:
        plan_deliveries(session, study_id=study_id, result_id=result_id, plans=plans)
    return _rows(database, study_id)


def _rows(database: Database, study_id: int) -> list[Delivery]:
    with database.read() as session:
        return sorted(list_deliveries(session, study_id=study_id), key=lambda row: row.id)


def _row(database: Database, delivery_id: int) -> Delivery:
    with database.read() as session:
        row = session.get(Delivery, delivery_id)
        assert row is not None
        return row


def _claim(
    database: Database,
    *,
    now: datetime | None = None,
    lease: timedelta = LEASE,
    destinations: Sequence[str] | None = None,
) -> Delivery | None:
    with database.write() as session:
        return claim_due_delivery(session, lease=lease, destinations=destinations, now=now)


def _fail(
    database: Database, delivery_id: int, *, backoff: Backoff, seed: int = 7, error: str = "down"
) -> Delivery:
    with database.write() as session:
        return mark_delivery_failed(
            session, delivery_id, error=error, backoff=backoff, rng=random.Random(seed)
        )


class TestPlanDeliveries:
    def test_one_pending_row_per_destination_and_kind_due_at_once(self, database: Database) -> None:
        before = utcnow()
        rows = _plan(database, "1.2.840.1", [PACS_SR, PACS_PDF, HIS_ORU])
        after = utcnow()

        assert [(r.destination, r.kind) for r in rows] == [
            ("pacs", "dicom-sr"),
            ("pacs", "dicom-pdf"),
            ("his", "hl7-oru"),
        ]
        for row in rows:
            assert row.state is DeliveryState.PENDING
            assert row.attempts == 0
            assert row.next_attempt_at is not None
            assert before <= row.next_attempt_at <= after
            assert (row.last_error, row.document_id, row.remote_reply) == ("", "", "")
            assert row.sent_at is None
        claimed = _claim(database)
        assert claimed is not None
        assert claimed.id == rows[0].id

    def test_planning_the_same_result_again_adds_nothing(self, database: Database) -> None:
        study_id, result_id = record_cxr_result(database, "1.2.840.2")
        added = []
        for plans in ([PACS_SR, HIS_ORU], [PACS_SR, HIS_ORU]):
            with database.write() as session:
                added.append(
                    plan_deliveries(session, study_id=study_id, result_id=result_id, plans=plans)
                )
        planned = _rows(database, study_id)
        with database.write() as session:
            added.append(
                plan_deliveries(
                    session,
                    study_id=study_id,
                    result_id=result_id,
                    plans=[PACS_SR, HIS_ORU, EMR_BUNDLE],
                )
            )

        assert added == [2, 0, 1]

        assert sorted((r.destination, r.kind) for r in planned) == [
            ("his", "hl7-oru"),
            ("pacs", "dicom-sr"),
        ]
        grown = _rows(database, study_id)
        assert [r.id for r in grown[:2]] == [r.id for r in planned]
        assert [(r.destination, r.kind) for r in grown[2:]] == [("emr", "fhir-bundle")]

    def test_a_plan_repeated_in_one_call_is_one_row(self, database: Database) -> None:
        rows = _plan(database, "1.2.840.3", [HIS_ORU, HIS_ORU])

        assert [(r.destination, r.kind) for r in rows] == [("his", "hl7-oru")]

    def test_replanning_leaves_a_row_in_progress_alone(self, database: Database) -> None:
        study_id, result_id = record_cxr_result(database, "1.2.840.4")
        with database.write() as session:
            plan_deliveries(session, study_id=study_id, result_id=result_id, plans=[HIS_ORU])
        [row] = _rows(database, study_id)
        with database.write() as session:
            mark_delivery_dead(session, row.id, error=REFUSAL)
        with database.write() as session:
            plan_deliveries(session, study_id=study_id, result_id=result_id, plans=[HIS_ORU])

        [again] = _rows(database, study_id)
        assert (again.id, again.state, again.last_error) == (row.id, DeliveryState.DEAD, REFUSAL)

    def test_each_result_has_its_own_rows(self, database: Database) -> None:
        first = _plan(database, "1.2.840.5", [PACS_SR])
        second = _plan(database, "1.2.840.6", [PACS_SR])

        assert len(first) == len(second) == 1
        assert first[0].result_id != second[0].result_id
        with database.read() as session:
            assert len(list_deliveries(session)) == 2


class TestClaimDueDelivery:
    def test_claims_the_due_row_counts_the_attempt_and_holds_it_for_the_lease(
        self, database: Database
    ) -> None:
        [row] = _plan(database, "1.2.840.10", [PACS_SR])
        now = utcnow()

        claimed = _claim(database, now=now, lease=timedelta(minutes=10))

        assert claimed is not None
        assert (claimed.id, claimed.attempts, claimed.state) == (row.id, 1, DeliveryState.PENDING)
        stored = _row(database, row.id)
        assert stored.attempts == 1
        assert stored.next_attempt_at == now + timedelta(minutes=10)
        assert stored.updated_at == now
        assert _claim(database, now=now) is None
        assert _claim(database, now=now + timedelta(minutes=9, seconds=59)) is None

    def test_a_row_whose_lease_ended_is_claimed_again(self, database: Database) -> None:
        """A sender that died while holding a row leaves it due again after the lease."""
        [row] = _plan(database, "1.2.840.11", [PACS_SR])
        now = utcnow()
        assert _claim(database, now=now, lease=timedelta(minutes=10)) is not None

        again = _claim(database, now=now + timedelta(minutes=10), lease=timedelta(minutes=10))

        assert again is not None
        assert (again.id, again.attempts) == (row.id, 2)
        assert _row(database, row.id).next_attempt_at == now + timedelta(minutes=20)

    def test_rows_are_taken_in_planned_order_when_due_together(self, database: Database) -> None:
        rows = _plan(database, "1.2.840.12", [PACS_SR, PACS_PDF, HIS_ORU])

        claimed = [_claim(database) for _ in rows]

        assert [c.id for c in claimed if c is not None] == [r.id for r in rows]
        assert _claim(database) is None

    def test_the_row_due_longest_comes_first(self, database: Database) -> None:
        """The order is the next attempt time, then the id: a newer row due earlier wins."""
        [older] = _plan(database, "1.2.840.13", [PACS_SR])
        in_an_hour = utcnow() + timedelta(hours=1)
        assert _claim(database, now=in_an_hour, lease=timedelta(hours=1)) is not None
        [newer] = _plan(database, "1.2.840.14", [PACS_SR])

        later = in_an_hour + timedelta(hours=2)
        first = _claim(database, now=later)
        second = _claim(database, now=later)

        assert first is not None
        assert second is not None
        assert (first.id, second.id) == (newer.id, older.id)
        assert newer.id > older.id

    @pytest.mark.parametrize(
        ("destinations", "expected"),
        [
            (None, ["pacs", "his", "emr"]),
            (["his"], ["his"]),
            (["emr", "pacs"], ["pacs", "emr"]),
            (["ris"], []),
            ([], []),
        ],
    )
    def test_only_the_destinations_asked_for(
        self, database: Database, destinations: list[str] | None, expected: list[str]
    ) -> None:
        _plan(database, "1.2.840.15", [PACS_SR, HIS_ORU, EMR_BUNDLE])

        taken = []
        while (claimed := _claim(database, destinations=destinations)) is not None:
            taken.append(claimed.destination)

        assert taken == expected

    def test_sent_and_dead_rows_are_never_claimed(self, database: Database) -> None:
        [sent, dead] = _plan(database, "1.2.840.16", [PACS_SR, HIS_ORU])
        with database.write() as session:
            mark_delivery_sent(session, sent.id, document_id="1.2.3.4")
            mark_delivery_dead(session, dead.id, error=REFUSAL)

        assert _claim(database) is None
        assert _claim(database, now=utcnow() + timedelta(days=365)) is None
        assert {_row(database, sent.id).attempts, _row(database, dead.id).attempts} == {0}

    def test_a_retrying_row_waits_for_its_time(self, database: Database) -> None:
        [row] = _plan(database, "1.2.840.17", [PACS_SR])
        assert _claim(database) is not None
        failed = _fail(database, row.id, backoff=Backoff(base=timedelta(minutes=1)))
        assert failed.next_attempt_at is not None

        assert _claim(database) is None
        assert _claim(database, now=failed.next_attempt_at - timedelta(seconds=1)) is None
        again = _claim(database, now=failed.next_attempt_at)
        assert again is not None
        assert (again.id, again.state, again.attempts) == (row.id, DeliveryState.RETRYING, 2)

    def test_concurrent_senders_claim_each_row_once(self, database: Database) -> None:
        plans = [DeliveryPlan("pacs", f"dicom-heatmap:{index}") for index in range(12)]
        rows = _plan(database, "1.2.840.18", plans)
        claimed: list[int] = []
        lock = threading.Lock()

        def sender() -> None:
            while (delivery := _claim(database, lease=timedelta(minutes=10))) is not None:
                with lock:
                    claimed.append(delivery.id)

        threads = [threading.Thread(target=sender) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert sorted(claimed) == sorted(row.id for row in rows)
        assert {_row(database, row.id).attempts for row in rows} == {1}


class TestBackoff:
    def test_defaults(self) -> None:
        backoff = Backoff()

        assert (backoff.base, backoff.cap, backoff.max_attempts) == (
            timedelta(seconds=5),
            timedelta(minutes=30),
            200,
        )

    @pytest.mark.parametrize(
        ("attempt", "seconds"),
        [
            (1, 5),
            (2, 10),
            (3, 20),
            (4, 40),
            (8, 640),
            (9, 1280),
            (10, 1800),
            (11, 1800),
            (200, 1800),
        ],
    )
    def test_doubles_from_base_up_to_cap_times_the_jitter(
        self, attempt: int, seconds: float
    ) -> None:
        backoff = Backoff(base=timedelta(seconds=5), cap=timedelta(minutes=30))
        for seed in range(20):
            factor = random.Random(seed).uniform(0.5, 1.0)

            delay = backoff.delay(attempt, random.Random(seed))

            assert delay == timedelta(seconds=seconds * factor)
            assert timedelta(seconds=seconds / 2) <= delay <= timedelta(seconds=seconds)

    @pytest.mark.parametrize("attempt", [0, -3])
    def test_an_attempt_before_the_first_waits_the_base(self, attempt: int) -> None:
        backoff = Backoff(base=timedelta(seconds=8))

        assert backoff.delay(attempt, random.Random(3)) == backoff.delay(1, random.Random(3))

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"base": timedelta(0)}, "`base` must be positive"),
            ({"base": timedelta(seconds=-5)}, "`base` must be positive"),
            (
                {"base": timedelta(minutes=10), "cap": timedelta(minutes=1)},
                "`cap` must be at least `base`",
            ),
            ({"max_attempts": 0}, "`max_attempts` must be at least 1"),
        ],
    )
    def test_nonsense_is_refused(self, arguments: dict[str, Any], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            Backoff(**arguments)

    def test_thousands_of_attempts_wait_the_cap(self) -> None:
        backoff = Backoff(cap=timedelta(minutes=30), max_attempts=5000)

        delay = backoff.delay(4000, random.Random(1))

        assert timedelta(minutes=15) <= delay <= timedelta(minutes=30)

    def test_jitter_spreads_delays_over_the_half_to_whole_range(self) -> None:
        """Deliveries that failed together come back spread out, within [raw/2, raw]."""
        backoff = Backoff(base=timedelta(seconds=10), cap=timedelta(hours=1))
        rng = random.Random(2026)

        seconds = [backoff.delay(3, rng).total_seconds() for _ in range(2000)]

        assert 20.0 <= min(seconds) < 20.5
        assert 39.5 < max(seconds) <= 40.0
        assert 29.0 < sum(seconds) / len(seconds) < 31.0
        assert len({round(s, 3) for s in seconds}) > 1900

    def test_the_same_seed_gives_the_same_delays(self) -> None:
        backoff = Backoff()
        first, second = random.Random(99), random.Random(99)

        assert [backoff.delay(n, first) for n in range(1, 15)] == [
            backoff.delay(n, second) for n in range(1, 15)
        ]

    def test_without_a_generator_the_module_random_is_used(self) -> None:
        backoff = Backoff(base=timedelta(seconds=4), cap=timedelta(seconds=60))

        delays = {backoff.delay(2) for _ in range(50)}

        assert all(timedelta(seconds=4) <= d <= timedelta(seconds=8) for d in delays)
        assert len(delays) > 1


class TestMarkDeliveryFailed:
    def test_a_failure_retries_after_the_backoff_with_the_error_kept(
        self, database: Database
    ) -> None:
        [row] = _plan(database, "1.2.840.20", [PACS_SR])
        _claim(database)
        backoff = Backoff(base=timedelta(minutes=1), cap=timedelta(minutes=30))
        error = "PACS@127.0.0.1:104 is not reachable"

        before = utcnow()
        _fail(database, row.id, backoff=backoff, seed=11, error=error)

        stored = _row(database, row.id)
        assert stored.state is DeliveryState.RETRYING
        assert stored.last_error == error
        assert stored.attempts == 1
        assert stored.next_attempt_at is not None
        assert stored.next_attempt_at > before + timedelta(seconds=30)
        assert stored.next_attempt_at - stored.updated_at == backoff.delay(1, random.Random(11))

    def test_the_wait_grows_with_the_attempts(self, database: Database) -> None:
        [row] = _plan(database, "1.2.840.21", [PACS_SR])
        backoff = Backoff(base=timedelta(minutes=1), cap=timedelta(hours=2))
        waits = []
        due = utcnow()
        for _ in range(4):
            claimed = _claim(database, now=due)
            assert claimed is not None
            failed = _fail(database, row.id, backoff=backoff, seed=1)
            assert failed.next_attempt_at is not None
            waits.append(failed.next_attempt_at - failed.updated_at)
            due = failed.next_attempt_at

        assert waits == [backoff.delay(n, random.Random(1)) for n in (1, 2, 3, 4)]
        assert [w / waits[0] for w in waits] == pytest.approx([1, 2, 4, 8])

    def test_dead_after_max_attempts_with_the_error_kept(self, database: Database) -> None:
        [row] = _plan(database, "1.2.840.22", [HIS_ORU])
        backoff = Backoff(base=timedelta(seconds=1), max_attempts=3)
        states = []
        due = utcnow()
        for attempt in range(1, 4):
            claimed = _claim(database, now=due)
            assert claimed is not None
            assert claimed.attempts == attempt
            failed = _fail(database, row.id, backoff=backoff, error=f"AR number {attempt}")
            states.append(failed.state)
            due = failed.next_attempt_at or due

        assert states == [DeliveryState.RETRYING, DeliveryState.RETRYING, DeliveryState.DEAD]
        stored = _row(database, row.id)
        assert stored.state is DeliveryState.DEAD
        assert stored.next_attempt_at is None
        assert stored.last_error == "gave up after 3 attempts: AR number 3"
        assert _claim(database, now=utcnow() + timedelta(days=30)) is None

    def test_a_long_error_is_kept_up_to_the_limit(self, database: Database) -> None:
        [row] = _plan(database, "1.2.840.23", [EMR_BUNDLE])
        _claim(database)
        error = "Lỗi máy chủ " + "x" * 6000

        _fail(database, row.id, backoff=Backoff(), error=error)

        assert _row(database, row.id).last_error == error[:4000]

    def test_a_destination_down_for_hours_keeps_its_delivery(self, database: Database) -> None:
        """Ten hours of failed attempts with the real schedule: still retrying, not dead."""
        [row] = _plan(database, "1.2.840.24", [PACS_SR])
        backoff = Backoff(base=timedelta(seconds=5), cap=timedelta(minutes=30), max_attempts=200)
        rng = random.Random(42)
        down_for = timedelta()
        due = utcnow()
        waits = []
        while down_for < timedelta(hours=10):
            claimed = _claim(database, now=due)
            assert claimed is not None
            assert claimed.id == row.id
            with database.write() as session:
                failed = mark_delivery_failed(
                    session,
                    row.id,
                    error="PACS@10.0.0.9:104 is not reachable",
                    backoff=backoff,
                    rng=rng,
                )
            assert failed.state is DeliveryState.RETRYING
            assert failed.next_attempt_at is not None
            wait = failed.next_attempt_at - failed.updated_at
            waits.append(wait)
            down_for += wait
            # The next attempt happens when the row is due: simulated, no sleeping.
            due = failed.next_attempt_at

        stored = _row(database, row.id)
        assert stored.state is DeliveryState.RETRYING
        assert stored.last_error == "PACS@10.0.0.9:104 is not reachable"
        # At most 30 min apart, at least 15 once capped: between 20 and 50 attempts.
        assert 20 <= stored.attempts <= 50 < backoff.max_attempts
        assert max(waits) <= timedelta(minutes=30)
        assert min(waits[10:]) >= timedelta(minutes=15)
        with database.read() as session:
            waiting = list_deliveries(session, states=[DeliveryState.RETRYING])
        assert [d.id for d in waiting] == [row.id]


class TestMarkDeliveryDead:
    def test_dead_with_the_remotes_message_kept(self, database: Database) -> None:
        [row] = _plan(database, "1.2.840.30", [EMR_BUNDLE])
        _claim(database)

        with database.write() as session:
            mark_delivery_dead(session, row.id, error=REFUSAL)

        stored = _row(database, row.id)
        assert stored.state is DeliveryState.DEAD
        assert stored.last_error == REFUSAL
        assert stored.next_attempt_at is None
        assert stored.sent_at is None
        with database.read() as session:
            assert [d.id for d in list_deliveries(session, states=[DeliveryState.DEAD])] == [row.id]


class TestMarkDeliverySent:
    def test_records_when_the_document_id_and_the_reply(self, database: Database) -> None:
        [row] = _plan(database, "1.2.840.40", [PACS_SR])
        _claim(database)
        _fail(database, row.id, backoff=Backoff(base=timedelta(milliseconds=1)), error="busy")
        _claim(database, now=utcnow() + timedelta(minutes=1))

        before = utcnow()
        with database.write() as session:
            mark_delivery_sent(
                session,
                row.id,
                document_id="1.2.826.0.1.3680043.8.498.1",
                reply="ORTHANC@127.0.0.1:4242 answered C-STORE status 0x0000",
            )
        after = utcnow()

        stored = _row(database, row.id)
        assert stored.state is DeliveryState.SENT
        assert stored.sent_at is not None
        assert before <= stored.sent_at <= after
        assert stored.document_id == "1.2.826.0.1.3680043.8.498.1"
        assert stored.remote_reply == "ORTHANC@127.0.0.1:4242 answered C-STORE status 0x0000"
        assert stored.last_error == ""
        assert stored.next_attempt_at is None
        assert stored.attempts == 2


class TestResendDelivery:
    @pytest.mark.parametrize("settle", ["dead", "sent"])
    def test_a_settled_row_is_due_again_now(self, database: Database, settle: str) -> None:
        [row] = _plan(database, "1.2.840.50", [EMR_BUNDLE])
        _claim(database)
        with database.write() as session:
            if settle == "dead":
                mark_delivery_dead(session, row.id, error=REFUSAL)
            else:
                mark_delivery_sent(session, row.id, document_id="bundle-1")
        assert _claim(database) is None

        before = utcnow()
        with database.write() as session:
            resend_delivery(session, row.id)
        after = utcnow()

        stored = _row(database, row.id)
        assert stored.state is DeliveryState.PENDING
        assert stored.next_attempt_at is not None
        assert before <= stored.next_attempt_at <= after
        claimed = _claim(database)
        assert claimed is not None
        assert claimed.id == row.id

    def test_a_resent_row_gets_a_new_series_of_attempts(self, database: Database) -> None:
        """After a resend the backoff starts again; the audit log keeps the earlier tries."""
        [row] = _plan(database, "1.2.840.51", [HIS_ORU])
        backoff = Backoff(base=timedelta(seconds=1), max_attempts=2)
        due = utcnow()
        for _ in range(2):
            assert _claim(database, now=due) is not None
            due = _fail(database, row.id, backoff=backoff).next_attempt_at or due
        assert _row(database, row.id).state is DeliveryState.DEAD

        with database.write() as session:
            resend_delivery(session, row.id)
        claimed = _claim(database)

        assert claimed is not None
        assert claimed.attempts == 1
        assert _row(database, row.id).last_error == "gave up after 2 attempts: down"
        assert _fail(database, row.id, backoff=backoff).state is DeliveryState.RETRYING


_SETTLERS: list[tuple[str, Callable[[Session, int], Delivery]]] = [
    ("sent", lambda session, i: mark_delivery_sent(session, i, document_id="x")),
    ("failed", lambda session, i: mark_delivery_failed(session, i, error="x", backoff=Backoff())),
    ("dead", lambda session, i: mark_delivery_dead(session, i, error="x")),
    ("resend", resend_delivery),
]


class TestUnknownDelivery:
    @pytest.mark.parametrize("settle", [s for _, s in _SETTLERS], ids=[n for n, _ in _SETTLERS])
    def test_an_unknown_id_is_not_found(
        self, database: Database, settle: Callable[[Session, int], Delivery]
    ) -> None:
        with database.write() as session, pytest.raises(NotFoundError, match="no delivery 4242"):
            settle(session, 4242)
