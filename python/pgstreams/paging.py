"""The batched read loop both stores share: ``read_stream``, ``read_all`` and the queries are
the same loop over a different query, each batch an ``EventPage``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from .events import StoredEvent


class EventPage(Protocol):
    """A fetched batch of events. ``len()`` and the last row's offset and position are known
    at once; the ``StoredEvent`` objects are built by ``events()``, which raises
    ``PartialBatch`` at an event that cannot be decoded. The PostgreSQL store's pages are
    ``_core.EventPage`` (rows still undecoded); the in-memory store's are ``EventList``."""

    def __len__(self) -> int: ...

    @property
    def last_offset(self) -> int | None: ...

    @property
    def last_position(self) -> int | None: ...

    def events(self) -> Sequence[StoredEvent]: ...


class EventList(list[StoredEvent]):
    """A page of events already built (the in-memory store's)."""

    @property
    def last_offset(self) -> int | None:
        return self[-1].offset if self else None

    @property
    def last_position(self) -> int | None:
        return self[-1].position if self else None

    def events(self) -> Sequence[StoredEvent]:
        return self


def offset_after(page: EventPage) -> int:
    """The cursor after a page read forwards by offset."""
    return _known(page.last_offset) + 1


def offset_before(page: EventPage) -> int:
    """The cursor after a page read backwards by offset."""
    return _known(page.last_offset) - 1


def last_position(page: EventPage) -> int:
    """The cursor after a page read by global position (``after_position``)."""
    return _known(page.last_position)


def _known(value: int | None) -> int:
    if value is None:
        raise AssertionError("an empty page has no cursor")
    return value


Fetch = Callable[[int, int], Awaitable[EventPage]]
"""``fetch(cursor, limit)``: the page from ``cursor``, as an awaitable that may already be
running when it is returned (the PostgreSQL store sends the statement at once)."""


class PartialBatch(Exception):
    """Raised by a page whose batch stops at an item it could not build: ``paginate`` yields
    ``items`` (the good ones before it), then raises ``error``."""

    def __init__(self, items: Sequence[Any], error: BaseException) -> None:
        super().__init__(str(error))
        self.items = items
        self.error = error


async def paginate(
    fetch: Fetch,
    cursor: int,
    advance: Callable[[EventPage], int],
    remaining: int | None,
    batch_size: int | Callable[[], Awaitable[int]],
) -> AsyncGenerator[StoredEvent, None]:
    """Yields the events of ``fetch(cursor, limit)`` page after page, moving ``cursor`` past
    the last row of each (``advance``), until a page comes back short or ``remaining`` events
    were given. ``batch_size`` may be a coroutine function, asked once when iteration starts.

    A full page's successor is asked for as soon as the page arrives, before its events are
    built and yielded: the database reads the next batch while this one is decoded and the
    caller works through it. Each page is a fresh query keyed by the cursor, never a held
    cursor or transaction, so an abandoned iterator holds nothing (a page asked for ahead is
    left to finish and dropped). A short page read ahead ends nothing: the caller was still
    busy when it was read (and may have appended meanwhile), so the end is confirmed by one
    more read; an event appended before that read is seen, never skipped or repeated."""
    if callable(batch_size):
        batch_size = await batch_size()
    limit = _limit(batch_size, remaining)
    if not limit:
        return
    pending: Awaitable[EventPage] | None = _start(fetch, cursor, limit)
    ahead = False
    try:
        while pending is not None:
            page = await pending
            pending = None
            count = len(page)
            if remaining is not None:
                remaining -= count
            full = count == limit
            if remaining != 0 and (full or ahead):
                if count:
                    cursor = advance(page)
                limit = _limit(batch_size, remaining)
                if full:
                    pending, ahead = _start(fetch, cursor, limit), True
            try:
                events = page.events()
            except PartialBatch as partial:
                for event in partial.items:
                    yield event
                raise partial.error from None
            for event in events:
                yield event
            if ahead and not full and remaining != 0:
                # A short page read ahead: read once more, now that the caller is done.
                pending, ahead = _start(fetch, cursor, limit), False
    finally:
        if pending is not None:
            _abandon(pending)


def _limit(batch_size: int, remaining: int | None) -> int:
    return batch_size if remaining is None else min(batch_size, remaining)


def _start(fetch: Fetch, cursor: int, limit: int) -> Awaitable[EventPage]:
    """``fetch(cursor, limit)``; an error raised by the call itself (a closed store) is raised
    where the page is awaited, after the events before it were given."""
    try:
        return fetch(cursor, limit)
    except Exception as error:
        return _raise(error)


async def _raise(error: Exception) -> EventPage:
    raise error


def _abandon(pending: Awaitable[Any]) -> None:
    """Lets go of a page asked for ahead and never awaited, without a warning: a coroutine
    that never started is closed; a running read finishes and its outcome is dropped
    (cancelling it would cost the connection it runs on)."""
    if asyncio.iscoroutine(pending):
        pending.close()
    elif isinstance(pending, asyncio.Future):
        pending.add_done_callback(_drop_outcome)


def _drop_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
