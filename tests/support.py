"""Helpers for tests that poke at the database by hand."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pgstreams import PostgresOptions, _core

PATIENCE = 20.0
"""Seconds a test waits for something that should happen promptly: a bound against hanging,
never a speed check."""


async def drop_schema(dsn: str, schema: str) -> None:
    session = await _core.Session.open(PostgresOptions(dsn).to_core_config(), None)
    try:
        await session.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await session.close()


async def run_sql(dsn: str, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    """Runs one statement on a fresh connection (for tests that poke at tables by hand)."""
    session = await _core.Session.open(PostgresOptions(dsn).to_core_config(), None)
    try:
        return list(await session.query(sql, params))
    finally:
        await session.close()


async def eventually(
    probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], within: float = PATIENCE
) -> Any:
    """Polls ``probe`` until ``done(value)`` or ``within`` seconds have passed; returns the
    last value (the caller asserts on it)."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.05)
