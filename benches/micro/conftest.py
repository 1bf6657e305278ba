"""Micro-benchmarks under pytest-benchmark: ``pytest benches/micro`` (not part of the test
suite). A PostgreSQL server is needed for the append and batch-decode ones (the DSN as the
tests take it: ``PGSTREAMS_TEST_DSN``, else the local server)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

import pgstreams
from pgstreams import _core

DSN = os.environ.get("PGSTREAMS_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def store(loop: asyncio.AbstractEventLoop) -> Iterator[Any]:
    schema = f"micro_{uuid.uuid4().hex[:12]}"
    opened = loop.run_until_complete(pgstreams.connect(DSN, schema_name=schema))
    yield opened

    async def drop() -> None:
        await opened.close()
        config = pgstreams.PostgresOptions(DSN).to_core_config()
        session = await _core.Session.open(config, None)
        await session.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await session.close()

    loop.run_until_complete(drop())
