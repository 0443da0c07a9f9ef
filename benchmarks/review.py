"""The radiologists' worklist: page times over 100,000 studies, SQLite and PostgreSQL.

Fills a fresh database with synthetic studies, each with one series (CR or DX), a job
and, for most, a result with findings: about 2 % critical (a positive pneumothorax),
25 % positive, 58 % normal and 15 % without a result. About 60 % are signed, 3 % in
review, the rest unread; one in ten is assigned to the benchmark's radiologist. The
rows are written by multi-row ``INSERT``s (no instance files: the worklist reads none),
each study's urgency set as :func:`store.record_result` sets it, which is checked on a
sample with :func:`store.study_urgency` before anything is timed.

Pages are then read in-process through :func:`soi.services.read_worklist`, the
function behind ``GET /worklist`` (audit event included): first pages, filtered pages
(facility, modality, review state, date range, assigned to me) and deep offsets, as an
administrator (every facility) and as a radiologist of one facility. It prints p50 and
p95 per kind and overall against the target p95 <= 200 ms, and a JSON summary line.

    .venv/bin/python benchmarks/review.py --studies 100000 --backend sqlite
    .venv/bin/python benchmarks/review.py --studies 100000 --backend postgresql
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select, text

# Run as a script, this folder comes first on the path, and its inference.py would
# shadow the inference package.
REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks.dicomweb import postgres_schema  # noqa: E402
from soi.auth import Caller  # noqa: E402
from soi.services import WorklistQuery, read_worklist  # noqa: E402
from store import (  # noqa: E402
    DEFAULT_CRITICAL_LABELS,
    Database,
    Facility,
    Finding,
    IdentifierKind,
    Job,
    JobState,
    Patient,
    PatientIdentifier,
    Result,
    ResultState,
    ResultStatus,
    ReviewState,
    Series,
    Study,
    StudyState,
    Urgency,
    User,
    UserRole,
    sqlite_url,
    study_urgency,
    upgrade,
)

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TARGET_P95_S = 0.200
FACILITIES = 20
BATCH = 5000
NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
LABELS = ("cardiomegaly", "effusion", "nodule", "consolidation")


@dataclass(frozen=True, slots=True)
class Plan:
    """One synthetic study: its facility, modality, date, AI outcome and review."""

    index: int
    facility: int
    modality: str
    study_date: str
    received_at: datetime
    outcome: str  # critical, positive, normal, none
    probability: float
    review_state: ReviewState
    assigned: bool


def plan_studies(count: int, seed: int = 20261208) -> list[Plan]:
    """``count`` studies over two years, the newest received last."""
    rng = random.Random(seed)
    plans = []
    for i in range(count):
        received = NOW - timedelta(minutes=(count - i) * 10)
        draw = rng.random()
        outcome = (
            "critical"
            if draw < 0.02
            else "positive"
            if draw < 0.27
            else "normal"
            if draw < 0.85
            else "none"
        )
        state = rng.random()
        plans.append(
            Plan(
                index=i,
                facility=rng.randrange(FACILITIES),
                modality="CR" if rng.random() < 0.6 else "DX",
                study_date=received.strftime("%Y%m%d"),
                received_at=received,
                outcome=outcome,
                probability=round(rng.uniform(0.5, 0.99), 4),
                review_state=ReviewState.SIGNED
                if state < 0.6
                else ReviewState.IN_REVIEW
                if state < 0.63
                else ReviewState.UNREAD,
                assigned=rng.random() < 0.1,
            )
        )
    return plans


def _findings(plan: Plan) -> list[tuple[str, float, bool]]:
    if plan.outcome == "critical":
        return [("pneumothorax", plan.probability, True), ("effusion", 0.2, False)]
    if plan.outcome == "positive":
        return [(LABELS[plan.index % len(LABELS)], plan.probability, True)]
    return [("pneumothorax", 0.05, False), ("cardiomegaly", 0.1, False)]


_URGENCY = {
    "critical": Urgency.CRITICAL,
    "positive": Urgency.POSITIVE,
    "normal": Urgency.NORMAL,
    "none": Urgency.NONE,
}


def fill(database: Database, plans: list[Plan]) -> tuple[list[int], int]:
    """Write the studies; return the facility ids and the radiologist's user id."""
    with database.write() as session:
        session.execute(
            insert(Facility),
            [
                {"code": f"BV-{n:02d}", "name": f"Bệnh viện {n}", "kind": "hospital"}
                for n in range(FACILITIES)
            ],
        )
        facility_ids = list(
            session.scalars(
                select(Facility.id).where(Facility.code.like("BV-%")).order_by(Facility.code)
            )
        )
        session.execute(
            insert(User).values(
                username="bs-mai",
                role=UserRole.RADIOLOGIST,
                facility_id=facility_ids[0],
                password_hash="unused",
            )
        )
        reader = int(session.scalar(select(User.id).where(User.username == "bs-mai")) or 0)
    for start in range(0, len(plans), BATCH):
        chunk = plans[start : start + BATCH]
        with database.write() as session:
            base = start + 1
            session.execute(
                insert(Patient),
                [{"id": base + p.index - start, "name": f"NGUYEN^VAN^{p.index}"} for p in chunk],
            )
            session.execute(
                insert(PatientIdentifier),
                [
                    {
                        "patient_id": base + p.index - start,
                        "kind": IdentifierKind.NATIONAL_ID,
                        "system": "urn:vn:cccd",
                        "value": f"{p.index:012d}",
                    }
                    for p in chunk
                ],
            )
            session.execute(
                insert(Study),
                [
                    {
                        "id": base + p.index - start,
                        "study_instance_uid": f"1.2.826.0.1.3680043.8.498.{p.index + 1}",
                        "patient_id": base + p.index - start,
                        "facility_id": facility_ids[p.facility],
                        "study_date": p.study_date,
                        "modalities": p.modality,
                        "state": StudyState.STABLE,
                        "num_instances": 1,
                        "first_received_at": p.received_at,
                        "last_received_at": p.received_at,
                        "urgency": int(_URGENCY[p.outcome]),
                        "urgency_score": p.probability
                        if p.outcome in ("critical", "positive")
                        else 0.0,
                        "review_state": p.review_state,
                        "assigned_to_user_id": reader if p.assigned else None,
                    }
                    for p in chunk
                ],
            )
            session.execute(
                insert(Series),
                [
                    {
                        "series_instance_uid": f"1.2.826.0.1.3680043.8.498.{p.index + 1}.1",
                        "study_id": base + p.index - start,
                        "modality": p.modality,
                    }
                    for p in chunk
                ],
            )
            session.execute(
                insert(Job),
                [
                    {
                        "id": base + p.index - start,
                        "study_id": base + p.index - start,
                        "pipeline": "cxr",
                        "state": JobState.QUEUED if p.outcome == "none" else JobState.DONE,
                    }
                    for p in chunk
                ],
            )
            with_result = [p for p in chunk if p.outcome != "none"]
            session.execute(
                insert(Result),
                [
                    {
                        "id": base + p.index - start,
                        "job_id": base + p.index - start,
                        "study_id": base + p.index - start,
                        "model_name": "cxr-densenet121",
                        "model_version": "1.0.0",
                        "state": ResultState.COMPLETE,
                        "status": ResultStatus.FINAL
                        if p.review_state is ReviewState.SIGNED
                        else ResultStatus.PRELIMINARY,
                        "details": {},
                    }
                    for p in with_result
                ],
            )
            session.execute(
                insert(Finding),
                [
                    {
                        "result_id": base + p.index - start,
                        "label": label,
                        "probability": probability,
                        "threshold": 0.5,
                        "positive": positive,
                    }
                    for p in with_result
                    for label, probability, positive in _findings(p)
                ],
            )
    return facility_ids, reader


def check_urgency(database: Database, plans: list[Plan], sample: int = 200) -> None:
    """Refuse to go on unless the filled urgencies are those the store computes."""
    rng = random.Random(7)
    with database.read() as session:
        for plan in rng.sample(plans, min(sample, len(plans))):
            computed = study_urgency(
                session, plan.index + 1, critical_labels=DEFAULT_CRITICAL_LABELS
            )
            study = session.get(Study, plan.index + 1)
            assert study is not None
            if (computed.urgency, computed.score) != (study.urgency, study.urgency_score):
                sys.exit(f"study {plan.index + 1}: filled {study.urgency}, computed {computed}")


def _kinds(
    facility_ids: list[int], reader: int, total: int
) -> list[tuple[str, Caller, WorklistQuery, int]]:
    admin = Caller("bench-admin", UserRole.ADMIN, None, None, actor_kind="token")
    radiologist = Caller(
        "bs-mai",
        UserRole.RADIOLOGIST,
        facility_ids[0],
        frozenset({facility_ids[0]}),
        actor_kind="token",
        user_id=reader,
    )
    month_start = (NOW - timedelta(days=60)).strftime("%Y%m%d")
    month_end = (NOW - timedelta(days=30)).strftime("%Y%m%d")
    per_facility = total // FACILITIES
    none = WorklistQuery()
    return [
        ("first page (admin)", admin, none, 0),
        ("first page (radiologist)", radiologist, none, 0),
        ("facility", admin, WorklistQuery(facility="BV-07"), 0),
        ("modality DX", radiologist, WorklistQuery(modality="DX"), 0),
        ("state signed", admin, WorklistQuery(review_states=(ReviewState.SIGNED,)), 0),
        (
            "date range",
            radiologist,
            WorklistQuery(study_date_from=month_start, study_date_to=month_end),
            0,
        ),
        ("assigned to me", radiologist, WorklistQuery(assigned_to="me"), 0),
        ("deep offset (admin)", admin, none, total // 2),
        ("deep offset (radiologist)", radiologist, none, per_facility // 2),
        ("last page (admin)", admin, none, max(0, total - 50)),
    ]


def _percentiles(seconds: list[float]) -> dict[str, float]:
    values = np.asarray(seconds)
    return {
        "p50": float(np.percentile(values, 50)),
        "p95": float(np.percentile(values, 95)),
        "max": float(values.max()),
    }


def measure(
    database: Database, facility_ids: list[int], reader: int, total: int, rounds: int
) -> dict[str, Any]:
    """Time each kind of page ``rounds`` times (after one warm-up)."""
    results: dict[str, Any] = {}
    every: list[float] = []
    for name, caller, query, offset in _kinds(facility_ids, reader, total):

        def call(
            caller: Caller = caller, query: WorklistQuery = query, offset: int = offset
        ) -> int:
            page = read_worklist(
                database, caller=caller, query=query, limit=50, offset=offset, now=NOW
            )
            return page.total

        matched = call()
        times = [_timed(call) for _ in range(rounds)]
        every += times
        results[name] = {"total": matched, **_percentiles(times)}
        stats = results[name]
        print(
            f"  {name:28s} total {matched:7d}  p50 {stats['p50'] * 1000:7.1f} ms  "
            f"p95 {stats['p95'] * 1000:7.1f} ms"
        )
    overall = _percentiles(every)
    results["overall"] = overall
    verdict = "met" if overall["p95"] <= TARGET_P95_S else "MISSED"
    print(
        f"  {'overall':28s}                p50 {overall['p50'] * 1000:7.1f} ms  "
        f"p95 {overall['p95'] * 1000:7.1f} ms  (target p95 <= 200 ms: {verdict})"
    )
    return results


def _timed(call: Callable[[], int]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def explain(database: Database, backend: str) -> None:
    """Print the plan of the first page's id query (the index it walks)."""
    query = (
        "SELECT id FROM studies WHERE review_state IN ('unread', 'in_review') "
        "ORDER BY urgency, urgency_score DESC, first_received_at, id LIMIT 50"
    )
    prefix = "EXPLAIN QUERY PLAN " if backend == "sqlite" else "EXPLAIN "
    with database.engine.connect() as connection:
        for row in connection.execute(text(prefix + query)):
            print("   ", row[-1])


def run(backend: str, studies: int, rounds: int) -> dict[str, Any]:
    """Fill a fresh database of ``backend`` and measure it."""
    plans = plan_studies(studies)

    @contextmanager
    def database_url() -> Iterator[str]:
        if backend == "sqlite":
            with tempfile.TemporaryDirectory() as folder:
                yield sqlite_url(Path(folder) / "soi.db")
        else:
            with postgres_schema(PG_ADMIN_URL) as url:
                yield url

    with database_url() as url:
        database = Database(url)
        try:
            upgrade(database)
            started = time.perf_counter()
            facility_ids, reader = fill(database, plans)
            with database.engine.begin() as connection:
                connection.execute(text("ANALYZE"))
            filled = time.perf_counter() - started
            print(f"{backend}: {studies} studies filled in {filled:.1f} s")
            check_urgency(database, plans)
            explain(database, backend)
            figures = measure(database, facility_ids, reader, studies, rounds)
        finally:
            database.dispose()
    return {"backend": backend, "studies": studies, "fill_s": round(filled, 1), **figures}


def main() -> None:
    """Parse the command line and run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20, help="timed calls per kind of page")
    parser.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    args = parser.parse_args()
    if args.studies < 100:
        parser.error(f"--studies must be at least 100, {args.studies} is given")
    backends = ("sqlite", "postgresql") if args.backend == "both" else (args.backend,)
    summary = [run(backend, args.studies, args.rounds) for backend in backends]
    print(json.dumps({"benchmark": "review.worklist", "runs": summary}))


if __name__ == "__main__":
    main()
