"""Fixtures for the whole suite.

PostgreSQL tests use a real server: ``PGSTREAMS_TEST_DSN``, else the local default. When no
server answers, the suite starts a throwaway cluster from the PostgreSQL binaries on the
machine; when there are none it fails (never skips), saying why. Each test gets its own
schema, which also proves ``schema_name`` everywhere.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest

import pgstreams
from pgstreams import InMemoryEventStore, PostgresOptions, _core
from pgstreams.cluster import ThrowawayCluster, find_postgres_bindir
from support import drop_schema

DEFAULT_TEST_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"

StoreFactory = Callable[..., Awaitable[Any]]


async def _answers(dsn: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        session = await _core.Session.open(
            PostgresOptions(dsn, connect_timeout=5).to_core_config(), None
        )
        await session.close()
        return None
    except Exception as error:
        return str(error)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    dsn = os.environ.get("PGSTREAMS_TEST_DSN", DEFAULT_TEST_DSN)
    why = asyncio.run(_answers(dsn))
    if why is None:
        yield dsn
        return
    if find_postgres_bindir() is None:
        pytest.fail(
            f"no PostgreSQL server answers at {dsn} ({why}) and no PostgreSQL binaries were "
            "found to start one: set PGSTREAMS_TEST_DSN or install PostgreSQL",
            pytrace=False,
        )
    with ThrowawayCluster() as cluster:
        yield cluster.dsn


@pytest.fixture
def schema_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def pg_options(pg_dsn: str, schema_name: str) -> AsyncIterator[PostgresOptions]:
    yield PostgresOptions(pg_dsn, schema_name=schema_name, max_pool_size=20)
    await drop_schema(pg_dsn, schema_name)


@pytest.fixture(params=["memory", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        # Resolve the session's server here, outside any event loop: pg_dsn calls asyncio.run,
        # which fails if first requested from inside an async fixture such as make_store.
        request.getfixturevalue("pg_dsn")
    return str(request.param)


@pytest.fixture
def pg_dsn_or_none(store_kind: str, request: pytest.FixtureRequest) -> str | None:
    """The server's DSN for a PostgreSQL store, None for the in-memory one (for helpers that
    poke at the database behind the store's back)."""
    return str(request.getfixturevalue("pg_dsn")) if store_kind == "postgres" else None


@pytest.fixture
async def make_store(
    store_kind: str, request: pytest.FixtureRequest
) -> AsyncIterator[StoreFactory]:
    """``await make_store(read_batch_size=3)``: a store of this test's kind. PostgreSQL stores
    share the test's schema; all are closed (and the schema dropped) after the test."""
    opened: list[Any] = []
    schema = f"t_{uuid.uuid4().hex[:16]}"
    dsn = request.getfixturevalue("pg_dsn") if store_kind == "postgres" else None

    async def factory(**options: Any) -> Any:
        if store_kind == "memory":
            # The options that mean something without a database (read_batch_size); the
            # others (pool sizes, timeouts) only concern PostgreSQL.
            accepted = inspect.signature(InMemoryEventStore).parameters
            store: Any = InMemoryEventStore(**{k: v for k, v in options.items() if k in accepted})
        else:
            assert dsn is not None
            options.setdefault("max_pool_size", 20)
            store = await pgstreams.connect(dsn, schema_name=schema, **options)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    if dsn is not None:
        await drop_schema(dsn, schema)


@pytest.fixture
async def store(make_store: StoreFactory) -> Any:
    """A store of each kind: every contract test runs against both."""
    return await make_store()


@pytest.fixture
async def pg_store(pg_options: PostgresOptions) -> AsyncIterator[pgstreams.PostgresEventStore]:
    """A PostgreSQL store in its own schema, for PostgreSQL-only tests."""
    async with pgstreams.connect(pg_options) as opened:
        yield opened
