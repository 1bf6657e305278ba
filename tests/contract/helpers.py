"""Small helpers shared by the contract suite."""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncIterable
from typing import Any, TypeVar

T = TypeVar("T")


async def collect(events: AsyncIterable[T]) -> list[T]:
    """Every item of an async iterator, in order."""
    return [event async for event in events]


def name(prefix: str = "s") -> str:
    """A stream (or group, or consumer) name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def delete_events(store: Any, stream: str, pg_dsn: str | None) -> None:
    """Deletes a persistent stream's events behind the store's back, as retention would."""
    if pg_dsn is None:
        result = store._delete_events(stream)
        if inspect.isawaitable(result):
            await result
        return
    from support import run_sql

    schema = store.options.schema_name
    await run_sql(pg_dsn, f'DELETE FROM "{schema}".events WHERE stream_name = $1', [stream])
