"""Retention: policies that bound how long events (and dead letters) are kept, what one run
of them did, and ``RetentionService``, which applies them in the background.

Which rule governs a persistent stream, most specific first: the retention of the stream's
``StreamConfiguration`` (when it sets a limit), else the stream's own ``RetentionPolicy``
(even a disabled one, which exempts the stream), else the default policy ``"*"``. An event
goes when either limit is exceeded; retention always trims a stream from its start, so what
stays is one run of offsets (an event older than ``max_age`` that follows a younger one, as
concurrent appends can leave by a few milliseconds, goes with the next run).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from types import TracebackType
from typing import Literal, Protocol, Self

from . import validation as check
from .configuration import duration, flag, optional_count
from .errors import ConfigurationError

__all__ = ["RetentionPolicy", "RetentionReport", "RetentionService", "StreamTrim"]

log = logging.getLogger("pgstreams")

DEFAULT_POLICY = "*"
# Rows per delete statement. Each batch is its own short transaction: at 1000 rows it holds
# its locks for a few milliseconds (see tests/pg/test_retention_pg.py for a measured rate),
# so appends and readers never wait long, and an interrupted run loses nothing (the next one
# carries on).
DEFAULT_BATCH_SIZE = 1000
MAX_BATCH_SIZE = 100_000

RuleSource = Literal["configuration", "policy", "default", "deleted"]


@dataclass(frozen=True)
class RetentionPolicy:
    """How long a persistent stream keeps its events: ``stream_name`` is a stream, or ``"*"``
    for the default of streams without their own. An event goes when it is older than
    ``max_age`` or when more than ``max_event_count`` newer events follow it.

    ``respect_consumer_groups``: events a consumer group (one that committed an offset on the
    stream) has not consumed yet are kept. ``max_dead_letter_age``: dead letters of the queue
    of the same name (or of every queue, for ``"*"``) older than this are deleted."""

    stream_name: str
    max_age: timedelta | float | None = None
    max_event_count: int | None = None
    enabled: bool = True
    respect_consumer_groups: bool = False
    max_dead_letter_age: timedelta | float | None = None

    def __post_init__(self) -> None:
        check.check_name(self.stream_name, "stream_name")
        object.__setattr__(self, "max_age", duration(self.max_age, "max_age"))
        optional_count(self.max_event_count, "max_event_count")
        flag(self.enabled, "enabled")
        flag(self.respect_consumer_groups, "respect_consumer_groups")
        object.__setattr__(
            self,
            "max_dead_letter_age",
            duration(self.max_dead_letter_age, "max_dead_letter_age"),
        )


@dataclass(frozen=True)
class RetentionTarget:
    """What a run does to one stream (a backend primitive's answer): delete its events from
    ``first_offset`` to below ``delete_below``. ``kept_for_consumers`` events from there on
    would have gone but ``waiting_groups`` have not consumed them yet."""

    stream: str
    rule: RuleSource
    first_offset: int
    delete_below: int
    kept_for_consumers: int
    waiting_groups: tuple[str, ...]


@dataclass(frozen=True)
class StreamTrim:
    """What a run did to one stream."""

    stream: str
    rule: RuleSource
    deleted: int
    kept_for_consumers: int
    waiting_groups: tuple[str, ...]


@dataclass(frozen=True)
class RetentionReport:
    """What one run of the retention policies deleted (and kept for consumers)."""

    events_deleted: int
    dead_letters_deleted: int
    streams: tuple[StreamTrim, ...]

    @property
    def deleted(self) -> int:
        return self.events_deleted + self.dead_letters_deleted

    @property
    def kept_for_consumers(self) -> int:
        return sum(trim.kept_for_consumers for trim in self.streams)


class AppliesRetention(Protocol):
    """What ``RetentionService`` needs of a store (both stores, and any ``EventStore``)."""

    async def apply_retention(self, *, batch_size: int = ...) -> RetentionReport: ...


def _utc_time(value: object, what: str) -> time:
    if not isinstance(value, time):
        raise ConfigurationError(f"{what} must be a datetime.time, got {type(value).__name__}")
    offset = value.utcoffset()
    if offset is not None and offset != timedelta(0):
        raise ConfigurationError(f"{what} must be a UTC time (or naive, read as UTC)")
    return value.replace(tzinfo=None)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class RetentionService:
    """Applies the retention policies every ``interval`` (seconds or a ``timedelta``), the
    first time at ``start()``; with ``window=(start, end)`` (UTC ``datetime.time``s; a window
    may cross midnight, e.g. 22:00-04:00) only when ``clock()`` is inside it. A failed run is
    logged and tried again at the next interval. ``clock`` returns the current time (UTC) and
    is there for tests.

    ``async with RetentionService(store, 3600, window=(time(2), time(6))):`` runs it for the
    block; or ``start()`` and ``await stop()``."""

    def __init__(
        self,
        store: AppliesRetention,
        interval: float | timedelta,
        window: tuple[time, time] | None = None,
        clock: Callable[[], datetime] | None = None,
        *,
        batch_size: int = DEFAULT_BATCH_SIZE,
    ) -> None:
        self.store = store
        self.interval = check.check_timeout(interval, "interval")
        if window is not None:
            if not isinstance(window, tuple) or len(window) != 2:
                raise ConfigurationError("window must be a (start, end) pair of datetime.time")
            start, end = _utc_time(window[0], "window start"), _utc_time(window[1], "window end")
            if start == end:
                raise ConfigurationError("window start and end must differ")
            window = (start, end)
        self.window = window
        if clock is not None and not callable(clock):
            raise ConfigurationError("clock must be a callable returning a datetime")
        self.clock = clock or _utc_now
        self.batch_size = check.check_int(
            batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE
        )
        self.runs = 0
        self.failures = 0
        self.last_report: RetentionReport | None = None
        self.last_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    def in_window(self) -> bool:
        """Is ``clock()`` inside the window (always, without one)?"""
        if self.window is None:
            return True
        now = self.clock()
        if now.tzinfo is not None:
            now = now.astimezone(UTC)
        moment = now.time().replace(tzinfo=None)
        start, end = self.window
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end  # crosses midnight

    async def run_once(self) -> RetentionReport | None:
        """One run now if inside the window (None outside it). Errors propagate."""
        if not self.in_window():
            log.debug("pgstreams: retention skipped: outside its window %s", self.window)
            return None
        report = await self.store.apply_retention(batch_size=self.batch_size)
        self.runs += 1
        self.last_report = report
        return report

    async def _loop(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self.failures += 1
                self.last_error = error
                log.error(
                    "pgstreams: retention run failed (%s); trying again in %.3g s",
                    error,
                    self.interval,
                    exc_info=True,
                )
            await asyncio.sleep(self.interval)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Starts the background task on the running event loop (a no-op if running)."""
        if not self.running:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="pgstreams-retention"
            )

    async def stop(self) -> None:
        """Stops the task; a run in progress is cancelled between (or inside) its delete
        batches, each of which is whole or not at all. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # stop() itself was cancelled

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
