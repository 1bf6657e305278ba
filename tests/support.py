"""Helpers for tests that poke at the database by hand."""

from __future__ import annotations

from typing import Any

from pgstreams import PostgresOptions, _core


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
