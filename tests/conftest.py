"""Shared fixtures: databases (SQLite and the PostgreSQL server), data folders, a running
gateway on a free loopback port."""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from soi.logs import configure_logging
from soi.runtime import Runtime
from soi.settings import Settings, load_settings
from store import Database, sqlite_url, upgrade

PG_ADMIN_URL = os.environ.get(
    "SOI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RUN_ID = uuid.uuid4().hex[:8]


@pytest.fixture(scope="session", autouse=True)
def _structured_logs() -> None:
    """Route Soi's structured logs through the standard library, where pytest sees them."""
    configure_logging(level="INFO")


def _postgres_available() -> bool:
    try:
        engine = create_engine(PG_ADMIN_URL)
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except OperationalError:
        return False
    return True


@pytest.fixture(scope="session")
def postgres_admin() -> Iterator[str]:
    """The PostgreSQL server's URL; schemas created by this run are dropped at the end."""
    if not _postgres_available():
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN_URL}")
    yield PG_ADMIN_URL
    # Sweep what a test could not drop itself (one transaction per schema: dropping many
    # schemas at once exhausts the server's lock table).
    engine = create_engine(PG_ADMIN_URL)
    with engine.connect() as connection:
        schemas = list(
            connection.execute(
                text("SELECT nspname FROM pg_namespace WHERE nspname LIKE :p"),
                {"p": f"soi_test_{RUN_ID}_%"},
            ).scalars()
        )
    for schema in schemas:
        with engine.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: str) -> Iterator[str]:
    """A URL whose connections use a fresh, empty schema of this test run, dropped after."""
    schema = f"soi_test_{RUN_ID}_{uuid.uuid4().hex[:8]}"
    engine = create_engine(postgres_admin)
    with engine.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield f"{postgres_admin}?options=-csearch_path%3D{schema}"
    with engine.begin() as connection:
        connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database URL: SQLite in a temporary folder, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "db" / "soi.db")
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated, empty database (both backends)."""
    db = Database(database_url)
    upgrade(db)
    yield db
    db.dispose()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for a gateway on free loopback ports with its data in a temporary folder."""
    return load_settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        dicom_host="127.0.0.1",
        dicom_port=0,
        http_port=0,
        min_free_mb=0,
        quiet_period_seconds=0.5,
    )


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """A runtime with its DIMSE listener started on a free port."""
    rt = Runtime.build(settings)
    assert rt.listener is not None
    rt.listener.start()
    yield rt
    rt.close()


_SIGNING_KEYS: list[rsa.RSAPrivateKey] = []
_KEPT_KEYS = 4


@pytest.fixture(autouse=True)
def _reuse_signing_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Making a 3072-bit RSA key takes about half a second, and the certificate and
    review tests make several per test: they take turns with four, made when first
    asked for."""
    import soi.services.certificates as certificates

    make = certificates.new_key
    turn = itertools.count()

    def reused_key() -> rsa.RSAPrivateKey:
        if len(_SIGNING_KEYS) < _KEPT_KEYS:
            _SIGNING_KEYS.append(make())
        return _SIGNING_KEYS[next(turn) % len(_SIGNING_KEYS)]

    monkeypatch.setattr(certificates, "new_key", reused_key)


#: A cheap argon2id for the users tests make by the hundred (about 1 ms a hash instead of
#: 190 ms); the hash names its parameters, so verification is the real one.
_TEST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def _cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of the password hashing itself (``test_credentials``) keep Soi's hasher."""
    if request.module.__name__.endswith("test_credentials"):
        return
    import soi.auth.credentials as credentials

    monkeypatch.setattr(credentials, "_HASHER", _TEST_HASHER)
