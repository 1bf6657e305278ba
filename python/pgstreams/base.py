"""``StoreBase``: the public API of both stores, written once over the backend primitives.

Every public method here does the same four things, in this order: check each argument
(raising ``ConfigurationError``/``SerializationError`` that names it), turn durations into
seconds and events or receipts into validated input, refuse a closed store
(``StoreClosedError``), then call one primitive of :class:`~pgstreams.backend.Backend`. A bad
call therefore fails the same way on both stores, and before anything is sent or stored.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any, Self

from . import _core
from . import validation as check
from .backend import Backend
from .consumers import CommitStrategy, Selector, Subscription, run_consumer
from .errors import ConfigurationError
from .events import AppendResult, DeadLetter, Event, QueuedEvent, StoredEvent
from .offsets import OffsetsApi
from .operations import OperationsApi
from .paging import EventPage, last_position, offset_after, offset_before, paginate
from .protocol import Receipt
from .queries import EventQuery, QueryApi
from .queue_stats import QueueStats, StreamMetadata
from .replay import ReplayApi
from .transactions import Transaction
from .workers import Handler, Worker, WorkerReport

__all__ = ["StoreBase"]


class StoreBase(ReplayApi, QueryApi, OffsetsApi, OperationsApi, Backend):
    """The event store and queue API shared by ``PostgresEventStore`` and
    ``InMemoryEventStore``; see ``EventStore`` for the contract. Services live in their own
    modules as mixins over the same primitives (``queries``, ``offsets``, ``replay``...)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Later calls raise ``StoreClosedError``. Idempotent."""
        if not self.closed:
            await self._close()

    async def ping(self) -> dict[str, str]:
        """``{"server_version", "database", "user"}``, proving the store answers."""
        self._check_open()
        return await self._ping()

    # ------------------------------------------------------------------ persistent streams

    async def append(
        self,
        stream: str,
        event: Event,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Appends one event; returns its offset. ``metadata`` is merged into the event's
        (the argument wins)."""
        check.check_stream(stream)
        check.check_event(event)
        if metadata:
            event = event.with_metadata(metadata)
        expected = check.check_expected_version(expected_version)
        batch = _core.EventBatch([event])
        self._check_open()
        return (await self._append(stream, batch, expected))[0]

    async def append_batch(
        self, stream: str, events: Iterable[Event], *, expected_version: int | None = None
    ) -> AppendResult:
        """Appends all events atomically (one transaction); returns their offsets (an
        ``AppendResult``: a list, with ``.positions``)."""
        check.check_stream(stream)
        listed = check.check_events(events)
        expected = check.check_expected_version(expected_version)
        batch = _core.EventBatch(listed)
        self._check_open()
        return await self._append(stream, batch, expected)

    def transaction(self, timeout: float | timedelta | None = None) -> Transaction:
        """A transaction across streams, queues, consumer progress and the caller's own SQL:
        ``async with store.transaction() as tx:``; see ``pgstreams.transactions``."""
        return Transaction(self, timeout)

    def read_stream(
        self,
        stream: str,
        start_offset: int | None = None,
        *,
        max_count: int | None = None,
        backwards: bool = False,
    ) -> AsyncIterator[StoredEvent]:
        """Events of ``stream`` from ``start_offset`` (default: the first), fetched
        ``read_batch_size`` at a time (or the stream's configured ``performance.batch_size``).
        ``backwards=True`` reads newest first, from ``start_offset`` (default: the last) down:
        one backward scan of the stream's index."""
        check.check_stream(stream)
        if start_offset is not None:
            check.check_int(start_offset, "start_offset", minimum=0)
        if not isinstance(backwards, bool):
            raise ConfigurationError("backwards must be True or False")
        max_count = check.check_optional_count(max_count, "max_count")

        def forwards(offset: int, limit: int) -> Awaitable[EventPage]:
            self._check_open()
            return self._read_stream(stream, offset, limit)

        def backward(offset: int, limit: int) -> Awaitable[EventPage]:
            self._check_open()
            return self._read_stream_backwards(stream, offset, limit)

        async def batch_size() -> int:
            # The stream's configured batch size, looked up once per read when iteration
            # starts, so a configuration changed by another process is seen by the next read.
            self._check_open()
            return await self._configured_read_batch_size(stream) or self.read_batch_size

        if backwards:
            start = check.MAX_BIGINT if start_offset is None else start_offset
            return paginate(backward, start, offset_before, max_count, batch_size)
        return paginate(forwards, start_offset or 0, offset_after, max_count, batch_size)

    def read_all(
        self,
        after_position: int | None = None,
        *,
        max_count: int | None = None,
        event_types: str | Iterable[str] | None = None,
        stream_prefix: str | None = None,
        until_position: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[StoredEvent]:
        """Every event of every stream in increasing ``position``, after ``after_position``;
        only those of ``event_types`` and of streams starting with ``stream_prefix``, up to
        ``until_position`` (inclusive), when given. The filters are applied in SQL.

        ``follow=True`` never ends (unless ``max_count`` is reached): once caught up it waits
        for the next append (woken by its notification, polling as a fallback) and goes on.
        """
        start = (
            -1
            if after_position is None
            else check.check_int(after_position, "after_position", minimum=-1)
        )
        max_count = check.check_optional_count(max_count, "max_count")
        query = EventQuery.checked(
            event_types=event_types, stream_prefix=stream_prefix, until_position=until_position
        )
        if not isinstance(follow, bool):
            raise ConfigurationError("follow must be True or False")
        if follow and until_position is not None:
            raise ConfigurationError(
                "follow=True reads forever and until_position stops the reading: give one"
            )

        def pages(after: int, limit: int | None) -> AsyncIterator[StoredEvent]:
            if not query.empty:
                return self._query_pages(query, after, limit)

            def fetch(position: int, size: int) -> Awaitable[EventPage]:
                self._check_open()
                return self._read_all(position, size)

            return paginate(fetch, after, last_position, limit, self.read_batch_size)

        if follow:
            self._check_open()
            return self._follow(pages, start, max_count)
        return pages(start, max_count)

    async def _follow(
        self,
        pages: Callable[[int, int | None], AsyncIterator[StoredEvent]],
        after: int,
        max_count: int | None,
    ) -> AsyncIterator[StoredEvent]:
        """``read_all`` from ``after``, then after each wake-up from where it stopped."""
        follower = self._feed_follower()
        remaining = max_count
        while True:
            # Read before looking: an append that commits while this reads is not missed.
            seen = follower.generation()
            async for event in pages(after, remaining):
                yield event
                after = event.position
                if remaining is not None:
                    remaining -= 1
                    if remaining == 0:
                        return
            self._check_open()
            await follower.wait(seen)

    async def get_stream_version(self, stream: str) -> int:
        """Offset of the stream's last event; -1 for a stream never written."""
        check.check_stream(stream)
        self._check_open()
        return await self._stream_version(stream)

    async def get_head_position(self) -> int:
        """The highest position ever committed: 0 for a store never written. It never goes
        back, not even when retention or deletion removes the newest events."""
        self._check_open()
        return await self._head_position()

    async def get_stream_metadata(self, stream: str) -> StreamMetadata | None:
        """Length, first and last offset, oldest and newest timestamp (None: never written)."""
        check.check_stream(stream)
        self._check_open()
        return await self._stream_metadata(stream)

    # ------------------------------------------------------------------ ephemeral streams

    async def enqueue(
        self, stream: str, event: Event, *, delay: float | timedelta | None = None
    ) -> uuid.UUID:
        """Queues one message; returns its id (an id already queued is a no-op)."""
        check.check_stream(stream)
        check.check_event(event)
        seconds = check.check_delay(delay)
        batch = _core.EventBatch([event], unique_ids=False)
        self._check_open()
        await self._enqueue(stream, batch, seconds)
        return event.id

    async def enqueue_batch(
        self, stream: str, events: Iterable[Event], *, delay: float | timedelta | None = None
    ) -> list[uuid.UUID]:
        """Queues a batch atomically in one round trip (one NOTIFY); returns the ids in order.
        An id repeated in the batch, or already queued, is queued once."""
        check.check_stream(stream)
        listed = check.check_events(events)
        seconds = check.check_delay(delay)
        batch = _core.EventBatch(listed, unique_ids=False)
        self._check_open()
        await self._enqueue(stream, batch, seconds)
        return [event.id for event in listed]

    async def dequeue(
        self,
        stream: str,
        consumer_id: str,
        visibility_timeout: float | timedelta = 30.0,
        *,
        wait: float | timedelta | None = None,
    ) -> QueuedEvent | None:
        """Leases the oldest visible message for ``visibility_timeout``; None when empty."""
        batch = await self.dequeue_batch(stream, consumer_id, 1, visibility_timeout, wait=wait)
        return batch[0] if batch else None

    async def dequeue_batch(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        visibility_timeout: float | timedelta = 30.0,
        *,
        wait: float | timedelta | None = None,
        acknowledge: Iterable[Receipt] | None = None,
    ) -> list[QueuedEvent]:
        """Leases up to ``max_count`` messages in enqueue order. ``acknowledge`` acks the
        previous batch in the same step, saving a round trip per batch."""
        check.check_stream(stream)
        check.check_name(consumer_id, "consumer_id")
        check.check_int(max_count, "max_count", minimum=1)
        lease_seconds = check.check_timeout(visibility_timeout, "visibility_timeout")
        wait_seconds = check.check_wait(wait)
        acks = None if acknowledge is None else _core.Receipts(acknowledge)
        self._check_open()
        return await self._dequeue(
            stream, consumer_id, max_count, lease_seconds, wait_seconds, acks
        )

    def subscribe(
        self,
        selector: str | Selector,
        group: str,
        consumer_id: str,
        *,
        batch_size: int = 100,
        commit: CommitStrategy = "after_batch",
        commit_interval: float | timedelta = 5.0,
        from_offset: int | None = None,
        heartbeat_interval: float | timedelta = 10.0,
        session_timeout: float | timedelta = 30.0,
    ) -> Subscription:
        """A consumer group member's subscription (``pgstreams.consumers``):
        ``async with store.subscribe("orders", "billing", "billing-1") as sub:`` then
        ``async for event in sub``. A ``str`` selects one stream; ``Selector.streams``,
        ``Selector.prefix`` and ``Selector.all`` (the global feed) select more."""
        return Subscription(
            self,
            selector,
            group,
            consumer_id,
            batch_size=batch_size,
            commit=commit,
            commit_interval=commit_interval,
            from_offset=from_offset,
            heartbeat_interval=heartbeat_interval,
            session_timeout=session_timeout,
        )

    async def run_consumer(
        self,
        handler: Callable[[StoredEvent], Awaitable[Any]],
        selector: str | Selector,
        group: str,
        consumer_id: str,
        **options: Any,
    ) -> None:
        """Runs ``handler`` on each event of ``subscribe(selector, group, consumer_id,
        **options)`` until cancelled; with ``commit="manual"`` each handled event is
        committed."""
        await run_consumer(self.subscribe(selector, group, consumer_id, **options), handler)

    def worker(
        self,
        queue: str,
        handler: Handler,
        *,
        consumer_id: str | None = None,
        concurrency: int = 10,
        batch_size: int | None = None,
        visibility_timeout: float | timedelta = 30.0,
        grace_period: float | timedelta = 30.0,
        poll_wait: float | timedelta = 5.0,
    ) -> Worker:
        """A queue worker (``pgstreams.workers``), to run with ``await worker.run()`` and stop
        with ``worker.stop()``."""
        return Worker(
            self,
            queue,
            handler,
            consumer_id=consumer_id,
            concurrency=concurrency,
            batch_size=batch_size,
            visibility_timeout=visibility_timeout,
            grace_period=grace_period,
            poll_wait=poll_wait,
        )

    async def run_worker(
        self,
        queue: str,
        handler: Handler,
        *,
        consumer_id: str | None = None,
        concurrency: int = 10,
        batch_size: int | None = None,
        visibility_timeout: float | timedelta = 30.0,
        grace_period: float | timedelta = 30.0,
        poll_wait: float | timedelta = 5.0,
        handle_signals: bool = False,
    ) -> WorkerReport:
        """Runs ``handler`` on the messages of ``queue`` until cancelled (or, with
        ``handle_signals``, SIGINT/SIGTERM): leases in batches, up to ``concurrency`` handlers
        at once, extends slow handlers' leases, acks on success, nacks with the stream's
        backoff on an exception, and stops gracefully (see ``pgstreams.workers``)."""
        worker = self.worker(
            queue,
            handler,
            consumer_id=consumer_id,
            concurrency=concurrency,
            batch_size=batch_size,
            visibility_timeout=visibility_timeout,
            grace_period=grace_period,
            poll_wait=poll_wait,
        )
        return await (worker.run_with_signals() if handle_signals else worker.run())

    async def acknowledge(self, event_or_id: Receipt) -> bool:
        """Deletes the message if this delivery (or, given an id, the current one) holds it."""
        receipts = _core.Receipts([event_or_id])
        self._check_open()
        return await self._acknowledge(receipts) > 0

    async def acknowledge_batch(self, events_or_ids: Iterable[Receipt]) -> int:
        """Acknowledges many in one round trip; returns how many were acknowledged. One bad
        receipt refuses the whole batch."""
        receipts = _core.Receipts(events_or_ids)
        self._check_open()
        return await self._acknowledge(receipts)

    async def nack(
        self, event_or_id: Receipt, requeue: bool = True, *, delay: float | timedelta | None = None
    ) -> bool:
        """Gives the message back (requeue: same place, after the delay) or dead-letters it."""
        if not isinstance(requeue, bool):
            raise ConfigurationError("requeue must be a bool")
        seconds = None if delay is None else check.check_delay(delay)
        receipt = _core.Receipts([event_or_id])
        self._check_open()
        return await self._nack(receipt, requeue, seconds)

    async def extend_lease(
        self, queued_event: Receipt, visibility_timeout: float | timedelta
    ) -> bool:
        """Keeps the message leased for ``visibility_timeout`` from now."""
        seconds = check.check_timeout(visibility_timeout, "visibility_timeout")
        receipt = _core.Receipts([queued_event])
        self._check_open()
        return await self._extend_lease(receipt, seconds)

    async def get_pending_count(self, stream: str) -> int:
        """Visible + delayed + leased messages; dead letters excluded (a message whose last
        allowed lease expired is one already)."""
        stats = await self.get_queue_stats(stream)
        return stats.visible + stats.delayed + stats.leased

    async def get_queue_stats(self, stream: str) -> QueueStats:
        """Visible, delayed, leased and dead messages of the stream, and the age of its
        oldest message; a read that writes nothing."""
        check.check_stream(stream)
        self._check_open()
        return await self._queue_stats(stream)

    async def get_dead_letters(self, stream: str, *, limit: int = 100) -> list[DeadLetter]:
        """The stream's dead letters, oldest failure first."""
        check.check_stream(stream)
        check.check_int(limit, "limit", minimum=1)
        self._check_open()
        return await self._dead_letters(stream, limit)

    async def redrive_dead_letters(
        self, stream: str, event_ids: Iterable[uuid.UUID | str] | None = None
    ) -> int:
        """Moves dead letters back to the tail of the queue (same id, delivery count 0)."""
        check.check_stream(stream)
        ids = None if event_ids is None else _core.parse_event_ids(event_ids)
        self._check_open()
        return await self._redrive(stream, ids)

    async def delete_dead_letters(
        self, stream: str, event_ids: Iterable[uuid.UUID | str] | None = None
    ) -> int:
        """Deletes dead letters (all of the stream's, or those of ``event_ids``)."""
        check.check_stream(stream)
        ids = None if event_ids is None else _core.parse_event_ids(event_ids)
        self._check_open()
        return await self._delete_dead_letters(stream, ids)

    async def purge_queue(self, stream: str) -> int:
        """Deletes every message of the stream (leased or not); dead letters stay."""
        check.check_stream(stream)
        self._check_open()
        return await self._purge_queue(stream)
