"""The batched read loop both stores share: ``read_stream`` and ``read_all`` are the same loop
over a different query."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")


class PartialBatch(Exception):
    """Raised by a fetch whose batch stops at an item it could not build: ``paginate`` yields
    ``items`` (the good ones before it), then raises ``error``."""

    def __init__(self, items: Sequence[Any], error: BaseException) -> None:
        super().__init__(str(error))
        self.items = items
        self.error = error


async def paginate(
    fetch: Callable[[int, int], Awaitable[Sequence[T]]],
    cursor: int,
    advance: Callable[[T], int],
    remaining: int | None,
    batch_size: int,
) -> AsyncIterator[T]:
    """Yields ``fetch(cursor, limit)`` batch after batch, moving ``cursor`` past the last item
    of each (``advance``), until a batch comes back short or ``remaining`` items were given.

    Each batch is a fresh query keyed by the cursor, never a held cursor or transaction: an
    abandoned iterator holds nothing, and items added meanwhile are seen, never skipped or
    repeated."""
    while remaining is None or remaining > 0:
        limit = batch_size if remaining is None else min(batch_size, remaining)
        try:
            batch = await fetch(cursor, limit)
        except PartialBatch as partial:
            for item in partial.items[:remaining]:
                yield item
            raise partial.error from None
        for item in batch:
            yield item
        if len(batch) < limit:
            return
        cursor = advance(batch[-1])
        if remaining is not None:
            remaining -= len(batch)
