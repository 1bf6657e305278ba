"""Replay: reading a stream, or the global feed, again under control: offset and time bounds
(both apply when both are given), a type filter (in SQL), a cap on the number of events, a
rate limit, and progress reports. Written once on the shared base, over the query primitives.

The rate limit is a token bucket whose capacity is the rate (as the original's), so a replay
may run a second ahead in a burst and then keeps to the rate. Progress goes to a callback (a
plain function or a coroutine function) every ``progress_interval`` seconds and once at the
end; the total is counted in SQL before the first event, so the figures agree with each
other: ``percent_complete == 100 * events_processed / total_events``.

An event that cannot be decoded (``UndecodableEventError``) does not stop a replay: it is
counted in ``error_count``, logged, and skipped.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import validation as check
from .errors import ConfigurationError
from .events import StoredEvent
from .paging import PartialBatch
from .queries import EventQuery, QueryApi

__all__ = ["ReplayApi", "ReplayProgress"]

log = logging.getLogger("pgstreams")

DEFAULT_BATCH_SIZE = 100  # the original's BatchSize
_TIME_NAMES = {"since": "from_time", "until": "to_time"}
MAX_BATCH_SIZE = 1_000_000


@dataclass(frozen=True)
class ReplayProgress:
    """How far a replay is (the original's ``ReplayProgress``)."""

    events_processed: int
    total_events: int
    percent_complete: float
    events_per_second: float
    elapsed: timedelta
    estimated_remaining: timedelta | None
    estimated_completion: datetime | None
    error_count: int


ProgressCallback = Callable[[ReplayProgress], Awaitable[Any] | Any]


class _TokenBucket:
    """``rate`` events a second, with a burst of at most ``rate`` (at least one) events."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.last = time.monotonic()

    async def take(self) -> None:
        while True:
            now = time.monotonic()
            self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.rate)
            self.last = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.rate)


class _Progress:
    """Counts a replay and reports it every ``interval`` seconds and at the end."""

    def __init__(self, callback: ProgressCallback | None, interval: float, total: int) -> None:
        self.callback = callback
        self.interval = interval
        self.total = total
        self.processed = 0
        self.errors = 0
        self.started = time.monotonic()
        self.reported = self.started

    def snapshot(self) -> ReplayProgress:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = self.processed / elapsed
        percent = 100.0 if self.total == 0 else 100.0 * self.processed / self.total
        left = max(self.total - self.processed, 0)
        remaining = None if rate == 0 and left else timedelta(seconds=left / rate if left else 0)
        return ReplayProgress(
            events_processed=self.processed,
            total_events=self.total,
            percent_complete=percent,
            events_per_second=rate,
            elapsed=timedelta(seconds=elapsed),
            estimated_remaining=remaining,
            estimated_completion=None if remaining is None else datetime.now(UTC) + remaining,
            error_count=self.errors,
        )

    async def tick(self, *, final: bool = False) -> None:
        if self.callback is None:
            return
        now = time.monotonic()
        if not final and now - self.reported < self.interval:
            return
        self.reported = now
        outcome = self.callback(self.snapshot())
        if inspect.isawaitable(outcome):
            await outcome


def _check_rate(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError(f"max_events_per_second must be a positive number, got {value!r}")
    if value > 1e9:
        raise ConfigurationError(f"max_events_per_second must be at most 1e9, got {value!r}")
    return float(value)


def _check_callback(value: object) -> ProgressCallback | None:
    if value is not None and not callable(value):
        raise ConfigurationError(f"progress must be a function, got {type(value).__name__}")
    return value


class ReplayApi(QueryApi):
    """``replay`` (one stream) and ``replay_all`` (the global feed)."""

    def replay(
        self,
        stream: str,
        *,
        from_offset: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        event_types: str | Iterable[str] | None = None,
        max_events: int | None = None,
        max_events_per_second: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressCallback | None = None,
        progress_interval: float | timedelta = 1.0,
    ) -> AsyncIterator[StoredEvent]:
        """Replays ``stream``: from ``from_offset`` and/or ``from_time`` (inclusive) to
        ``to_time`` (exclusive), only ``event_types`` if given, at most ``max_events``, at
        most ``max_events_per_second``, reporting to ``progress``."""
        query = EventQuery.checked(
            stream=stream,
            from_offset=from_offset,
            since=from_time,
            until=to_time,
            event_types=event_types,
            names=_TIME_NAMES,
        )
        return self._replay(
            query, -1, max_events, max_events_per_second, batch_size, progress, progress_interval
        )

    def replay_all(
        self,
        *,
        from_position: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        event_types: str | Iterable[str] | None = None,
        stream_prefix: str | None = None,
        max_events: int | None = None,
        max_events_per_second: float | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        progress: ProgressCallback | None = None,
        progress_interval: float | timedelta = 1.0,
    ) -> AsyncIterator[StoredEvent]:
        """Replays the global feed after ``from_position`` (exclusive, as ``read_all``), with
        the bounds and controls of ``replay`` and a ``stream_prefix`` (a category)."""
        after = (
            -1
            if from_position is None
            else check.check_int(from_position, "from_position", minimum=-1)
        )
        query = EventQuery.checked(
            since=from_time,
            until=to_time,
            event_types=event_types,
            stream_prefix=stream_prefix,
            after_position=None if after < 0 else after,
            names=_TIME_NAMES,
        )
        return self._replay(
            query, after, max_events, max_events_per_second, batch_size, progress, progress_interval
        )

    def _replay(
        self,
        query: EventQuery,
        after_position: int,
        max_events: object,
        max_events_per_second: object,
        batch_size: object,
        progress: object,
        progress_interval: float | timedelta,
    ) -> AsyncIterator[StoredEvent]:
        cap = check.check_optional_count(max_events, "max_events")
        rate = _check_rate(max_events_per_second)
        size = check.check_int(batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)
        callback = _check_callback(progress)
        interval = check.check_timeout(progress_interval, "progress_interval")
        return self._replaying(query, after_position, cap, rate, size, callback, interval)

    async def _replaying(
        self,
        query: EventQuery,
        after_position: int,
        cap: int | None,
        rate: float | None,
        size: int,
        callback: ProgressCallback | None,
        interval: float,
    ) -> AsyncIterator[StoredEvent]:
        self._check_open()
        total = await self._count(query)
        if cap is not None:
            total = min(total, cap)
        progress = _Progress(callback, interval, total)
        bucket = None if rate is None else _TokenBucket(rate)
        cursor = after_position
        while cap is None or progress.processed < cap:
            limit = size if cap is None else min(size, cap - progress.processed)
            self._check_open()
            try:
                batch = list((await self._find(query, cursor, limit)).events())
                failed = None
            except PartialBatch as partial:
                batch, failed = list(partial.items), partial.error
            for event in batch:
                if bucket is not None:
                    await bucket.take()
                progress.processed += 1
                yield event
                await progress.tick()
            if failed is not None:
                progress.errors += 1
                position = getattr(failed, "position", None)
                log.warning("pgstreams: replay skipped an event it cannot decode: %s", failed)
                if position is None:
                    raise failed
                cursor = position
                continue
            if len(batch) < limit:
                break
            cursor = batch[-1].position
        await progress.tick(final=True)
