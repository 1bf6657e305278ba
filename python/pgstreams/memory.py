"""``InMemoryEventStore``: the whole public API of ``PostgresEventStore`` without a database,
for tests and development.

It is an honest twin, not a mock: the public API is the same class (``StoreBase``, which checks
every argument and validates and serializes events and receipts through the Rust core for both
stores), and the primitives here follow the semantics of the SQL in ``migrations/`` and
``rust/src/db/`` (append retries and conflicts, the dequeue/nack/dead-letter rules of the
queue), so one contract suite passes against both stores. Where this module makes a choice, a
comment names the statement it mirrors.

Events and messages are kept as the serialized JSON bytes and decoded on every read, so a
caller never shares a mutable object with the store and values come back exactly as they do
from PostgreSQL (tuples become lists, ``1e16`` stays a float).

Every operation runs synchronously between two awaits, which makes each one atomic on the
event loop, as each is one statement or one transaction in PostgreSQL. The store belongs to one
event loop at a time and is not thread-safe.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Literal

from . import _core
from . import validation as check
from .administration import StreamInfo
from .base import StoreBase
from .configuration import DEFAULT_MAX_DELIVERY_ATTEMPTS, DeadLetterSettings, StreamConfiguration
from .errors import ConcurrencyError, ConsumerFencedError, DuplicateEventError
from .events import AppendResult, DeadLetter, QueuedEvent, StoredEvent
from .health import QueueHealth, StreamHealth
from .memory_transaction import MemoryTransaction
from .offsets import CommitOutcome, ConsumerGroupInfo
from .operations import GroupOffset, log_dropped_message
from .paging import EventList
from .queries import EventQuery
from .queue_stats import QueueStats, StreamMetadata
from .retention import DEFAULT_POLICY, RetentionPolicy, RetentionTarget, RuleSource

if TYPE_CHECKING:
    from .protocol import EventStore

__all__ = ["InMemoryEventStore"]

# Times are kept as integer microseconds since the Unix epoch, as PostgreSQL keeps timestamptz.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# How often a waiting dequeue looks again without a wake-up: what bounds the pick-up delay of a
# delayed message or an expired lease (only enqueues, nacks and redrives wake waiters).
_WAIT_POLL_SECONDS = 0.05
# How often a reader following the feed looks again without a wake-up (appends always wake).
_FOLLOW_POLL_SECONDS = 0.25

# What `_core.EventBatch.rows()` gives per event, and `_core.Receipts.pairs()` per receipt.
_Serialized = tuple[uuid.UUID, str, bytes, bytes, str | None, str | None, int]
_Receipt = tuple[uuid.UUID, uuid.UUID | None]


def _now_us() -> int:
    return time.time_ns() // 1000


def _later(now_us: int, seconds: float) -> int:
    """``now() + make_interval(secs => seconds)`` (durations are at most 100 years)."""
    return now_us + round(seconds * 1_000_000)


def _datetime(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class _FeedFollower:
    """``read_all(follow=True)``'s wait: woken by every append, polling as a fallback."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self._store = store

    def generation(self) -> int:
        return self._store._feed_generation

    async def wait(self, seen: int) -> None:
        store = self._store
        if store._feed_generation != seen or store._closed:
            return
        waiter = asyncio.Event()
        store._feed_waiters.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waiter.wait(), _FOLLOW_POLL_SECONDS)
        finally:
            store._feed_waiters.discard(waiter)


# ---------------------------------------------------------------------------------- rows


@dataclass(slots=True)
class _EventRow:
    """One row of ``events``."""

    stream: str
    offset: int
    position: int
    id: uuid.UUID
    type: str
    data: bytes
    metadata: bytes
    correlation_id: str | None
    causation_id: str | None
    created_us: int
    version: int

    def to_stored_event(self) -> StoredEvent:
        return StoredEvent(
            self.stream,
            self.offset,
            self.position,
            self.id,
            self.type,
            _core.json_loads(self.data),
            _core.json_loads(self.metadata),
            self.correlation_id,
            self.causation_id,
            _datetime(self.created_us),
            self.version,
        )


@dataclass(slots=True)
class _Message:
    """One row of ``queue_events``. ``lease`` is the token of the current (or last)
    delivery; it stays after the lease expires, until a nack or the next delivery."""

    id: uuid.UUID
    seq: int
    stream: str
    type: str
    data: bytes
    metadata: bytes
    correlation_id: str | None
    causation_id: str | None
    enqueued_us: int
    visible_us: int
    delivery_count: int
    max_deliveries: int
    lease: uuid.UUID | None = None
    consumer_id: str | None = None

    def spent(self, now: int) -> bool:
        """``SPENT`` in ``rust/src/db/sql.rs``: its last allowed delivery has expired, so it
        is a dead letter already, whether or not a dequeue has moved it yet."""
        return (
            self.lease is not None
            and self.visible_us <= now
            and (self.delivery_count >= self.max_deliveries)
        )

    def as_dead_row(self, reason: str, failed_us: int) -> _DeadRow:
        return _DeadRow(
            self.id,
            self.stream,
            self.type,
            self.data,
            self.metadata,
            self.correlation_id,
            self.causation_id,
            self.delivery_count,
            self.enqueued_us,
            failed_us,
            reason,
        )

    def holds(self, token: uuid.UUID | None) -> bool:
        """Does this receipt act on the message? A specific delivery's token only while it is
        the current lease; a bare id (``None``) whenever the message has a lease token
        (``q.lease_token = a.token OR (a.token IS NULL AND q.lease_token IS NOT NULL)``)."""
        return self.lease is not None and (token is None or self.lease == token)

    def to_queued_event(self) -> QueuedEvent:
        assert self.lease is not None
        return QueuedEvent(
            self.id,
            self.stream,
            self.type,
            _core.json_loads(self.data),
            _core.json_loads(self.metadata),
            self.correlation_id,
            self.causation_id,
            self.delivery_count,
            _datetime(self.enqueued_us),
            self.consumer_id,
            _datetime(self.visible_us),
            self.lease,
        )


@dataclass(slots=True)
class _DeadRow:
    """One row of ``dead_letter_queue``."""

    id: uuid.UUID
    stream: str
    type: str
    data: bytes
    metadata: bytes
    correlation_id: str | None
    causation_id: str | None
    delivery_count: int
    enqueued_us: int
    failed_us: int
    reason: str

    def to_dead_letter(self) -> DeadLetter:
        return DeadLetter(
            self.id,
            self.stream,
            self.type,
            _core.json_loads(self.data),
            _core.json_loads(self.metadata),
            self.correlation_id,
            self.causation_id,
            self.delivery_count,
            _datetime(self.enqueued_us),
            _datetime(self.failed_us),
            self.reason,
        )


# ---------------------------------------------------------------------------------- the store


class InMemoryEventStore(StoreBase):
    """The event store and queue of :class:`PostgresEventStore`, kept in memory.

    ``read_batch_size`` plays the role of ``PostgresOptions.read_batch_size``: how many
    events a read iterator takes from the store at a time."""

    def __init__(self, *, read_batch_size: int = 1000) -> None:
        self.read_batch_size = check.check_int(
            read_batch_size, "read_batch_size", minimum=1, maximum=_core.MAX_READ_BATCH_SIZE
        )
        self._closed = False

        # Persistent streams. `_versions` is the `streams` table: it outlives the events.
        self._versions: dict[str, int] = {}
        self._streams: dict[str, list[_EventRow]] = {}  # per stream, in offset order
        self._feed: list[_EventRow] = []  # every event, in position order
        self._events_by_id: dict[uuid.UUID, _EventRow] = {}
        self._last_position = 0
        # Consumer progress: (stream, group) -> (next offset, updated); group -> (position,
        # updated) on the global feed.
        self._consumer_offsets: dict[tuple[str, str], tuple[int, int]] = {}
        self._consumer_positions: dict[str, tuple[int, int]] = {}

        # Ephemeral streams. A stream's dict keeps insertion order, which is `seq` order: a
        # message gets its seq when inserted and keeps it (and its place) until it leaves.
        self._messages: dict[uuid.UUID, _Message] = {}
        self._queues: dict[str, dict[uuid.UUID, _Message]] = {}
        self._dead: dict[uuid.UUID, _DeadRow] = {}
        self._seq = itertools.count(1)
        self._waiters: dict[str, set[asyncio.Event]] = {}
        # Readers following the feed: how many appends so far, and who waits for the next.
        self._feed_generation = 0
        self._feed_waiters: set[asyncio.Event] = set()
        # Consumer groups (migration 006): registrations by (selector, group, member) ->
        # (last heartbeat, session timeout), in microseconds; leases by (group, unit) ->
        # (holder, generation, expiry).
        self._registrations: dict[tuple[str, str, str], tuple[int, int]] = {}
        self._leases: dict[tuple[str, str], tuple[str, int, int]] = {}

        # Operating the store: `retention_policies`, `stream_configurations`, the tombstones
        # of deleted streams (`streams.deleted_version`) and, for streams whose newest events
        # were deleted, the time of their last append (`streams.updated_at`).
        self._policies: dict[str, RetentionPolicy] = {}
        self._configurations: dict[str, StreamConfiguration] = {}
        self._deleted_versions: dict[str, int] = {}
        self._last_writes: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<InMemoryEventStore {'closed' if self._closed else 'open'}>"

    @property
    def closed(self) -> bool:
        return self._closed

    async def _close(self) -> None:
        """Waiting dequeues wake, and raise ``StoreClosedError``."""
        self._closed = True
        for waiters in [*self._waiters.values(), self._feed_waiters]:
            for waiter in waiters:
                waiter.set()

    async def _ping(self) -> dict[str, str]:
        return {"server_version": "in-memory", "database": "memory", "user": ""}

    def pool_status(self) -> dict[str, int]:
        return {"size": 0, "available": 0, "waiting": 0, "max_size": 0}

    # ------------------------------------------------------------------ persistent streams

    async def _append(
        self, stream: str, batch: _core.EventBatch, expected_version: int | None
    ) -> AppendResult:
        """The ``append_events`` function of migrations 001 and 005."""
        rows: Sequence[_Serialized] = batch.rows()
        if not rows:
            return AppendResult()
        ids = [row[0] for row in rows]
        version = self._versions.get(stream, -1)
        outcome, first_offset = self._classify_existing(stream, ids)
        # A retry of a call that already committed wins over everything else, a version
        # mismatch included: its caller must get the offsets it was first given.
        if outcome == "retry":
            return AppendResult(
                range(first_offset, first_offset + len(ids)),
                (self._events_by_id[event_id].position for event_id in ids),
            )
        if expected_version is not None and expected_version != version:
            raise ConcurrencyError(stream, expected_version, version)
        if outcome == "duplicate":
            raise DuplicateEventError(
                f"stream {stream!r}: one or more event ids of this call are already "
                "stored (in another stream, at other offsets or in another order); nothing was "
                "written"
            )
        return self._insert_events(stream, rows, version)

    def _insert_events(
        self, stream: str, rows: Sequence[_Serialized], version: int
    ) -> AppendResult:
        """The insert of an append, at offsets after ``version``, positions in row order."""
        now = _now_us()
        stored = self._streams.setdefault(stream, [])
        positions = []
        for index, (
            event_id,
            event_type,
            data,
            metadata,
            correlation,
            causation,
            schema_version,
        ) in enumerate(rows):
            self._last_position += 1
            row = _EventRow(
                stream,
                version + 1 + index,
                self._last_position,
                event_id,
                event_type,
                data,
                metadata,
                correlation,
                causation,
                now,
                schema_version,
            )
            stored.append(row)
            self._feed.append(row)
            self._events_by_id[event_id] = row
            positions.append(self._last_position)
        self._versions[stream] = version + len(rows)
        self._feed_generation += 1  # the feed's NOTIFY (migration 005)
        for waiter in self._feed_waiters:
            waiter.set()
        return AppendResult(range(version + 1, version + 1 + len(rows)), positions)

    # ------------------------------------------------------------------ consumer groups

    async def _consumer_heartbeat(
        self, selector: str, group: str, member: str, session_timeout: float
    ) -> list[str]:
        """``consumer_heartbeat()`` of migration 006."""
        now = _now_us()
        expired = [
            key
            for key, (heartbeat, timeout) in self._registrations.items()
            if key[1] == group and heartbeat + timeout < now and key != (selector, group, member)
        ]
        for key in expired:
            del self._registrations[key]
            for lease_key, lease in list(self._leases.items()):
                if lease_key[0] == group and lease[0] == key[2]:
                    del self._leases[lease_key]
        self._registrations[selector, group, member] = (now, round(session_timeout * 1e6))
        return sorted(m for (s, g, m) in self._registrations if s == selector and g == group)

    async def _consumer_acquire(
        self, group: str, member: str, units: list[str], ttl: float
    ) -> list[tuple[str, int]]:
        """``consumer_acquire()``: free, expired or own leases are taken or renewed."""
        now = _now_us()
        held = []
        for unit in sorted(set(units)):
            lease = self._leases.get((group, unit))
            if lease is None:
                generation = 1
            elif lease[0] == member:
                generation = lease[1]
            elif lease[2] < now:
                generation = lease[1] + 1
            else:
                continue
            self._leases[group, unit] = (member, generation, _later(now, ttl))
            held.append((unit, generation))
        return held

    async def _consumer_release(self, group: str, member: str, units: list[str] | None) -> int:
        mine = [
            key
            for key, lease in self._leases.items()
            if key[0] == group and lease[0] == member and (units is None or key[1] in units)
        ]
        for key in mine:
            del self._leases[key]
        return len(mine)

    async def _consumer_leave(self, selector: str, group: str, member: str) -> None:
        await self._consumer_release(group, member, None)
        self._registrations.pop((selector, group, member), None)

    async def _commit_as_member(
        self, stream: str | None, group: str, value: int, member: str, generation: int
    ) -> bool:
        """``commit_offset_as_member()``/``commit_position_as_member()``: fenced, then
        forward only."""
        self._check_fence(stream, group, member, generation)
        if stream is None:
            outcome = await self._commit_position(group, value, False, None)
        else:
            outcome = await self._commit_offset(stream, group, value, False, None, False)
        return outcome[0] == "committed"

    def _check_fence(self, stream: str | None, group: str, member: str, generation: int) -> None:
        """``consumer_check_fence()``: the member must hold the unit under ``generation``."""
        lease = self._leases.get((group, "" if stream is None else stream))
        if lease is None or lease[0] != member or lease[1] != generation:
            where = "the global feed" if stream is None else f"stream {stream!r}"
            holder = "nobody" if lease is None else repr(lease[0])
            raise ConsumerFencedError(
                f"consumer {member!r} of group {group!r} no longer holds {where} (generation "
                f"{generation}; now {holder} of generation {'-' if lease is None else lease[1]}): "
                "it was evicted or the group rebalanced, and its commit was refused"
            )

    async def _consumer_members(self) -> list[tuple[str, str, datetime, list[str]]]:
        return [
            (
                group,
                member,
                _datetime(heartbeat),
                sorted(
                    u for (g, u), lease in self._leases.items() if g == group and lease[0] == member
                ),
            )
            for (_, group, member), (heartbeat, _) in sorted(
                self._registrations.items(), key=lambda item: (item[0][1], item[0][2])
            )
        ]

    def _feed_follower(self) -> _FeedFollower:
        return _FeedFollower(self)

    async def _begin(self, idle_limit: float | None) -> MemoryTransaction:
        return MemoryTransaction(self)

    def _classify_existing(
        self, stream: str, ids: Sequence[uuid.UUID]
    ) -> tuple[Literal["none", "retry", "duplicate"], int]:
        """``classify_existing_events``: a retry when every id is stored in ``stream``,
        contiguous and in this order; a duplicate when any other id is stored."""
        found = [self._events_by_id.get(event_id) for event_id in ids]
        present = [row for row in found if row is not None]
        if not present:
            return "none", -1
        if (
            len(present) == len(ids)
            and all(row.stream == stream for row in present)
            and len({row.offset - index for index, row in enumerate(present)}) == 1
        ):
            return "retry", present[0].offset
        return "duplicate", -1

    async def _read_stream(self, stream: str, offset: int, limit: int) -> EventList:
        """``WHERE stream_name = $1 AND stream_offset >= $2 ORDER BY stream_offset LIMIT $3``.
        Looked up afresh by offset (never by list index, which retention may shift)."""
        rows = self._streams.get(stream, [])
        start = bisect.bisect_left(rows, offset, key=attrgetter("offset"))
        return EventList(row.to_stored_event() for row in rows[start : start + limit])

    async def _read_all(self, after_position: int, limit: int) -> EventList:
        """``WHERE position > $1 ORDER BY position LIMIT $2``"""
        start = bisect.bisect_right(self._feed, after_position, key=attrgetter("position"))
        return EventList(row.to_stored_event() for row in self._feed[start : start + limit])

    async def _stream_version(self, stream: str) -> int:
        return self._versions.get(stream, -1)

    async def _head_position(self) -> int:
        return self._last_position  # a counter: deleting events never lowers it

    async def _stream_metadata(self, stream: str) -> StreamMetadata | None:
        version = self._versions.get(stream, -1)
        if version < 0:
            return None
        rows = self._streams.get(stream, [])
        if not rows:
            return StreamMetadata(stream, 0, None, None, None, None, version)
        # Rows are in offset order, and offsets are taken in time order.
        times = [row.created_us for row in rows]
        return StreamMetadata(
            stream,
            len(rows),
            rows[0].offset,
            rows[-1].offset,
            _datetime(min(times)),
            _datetime(max(times)),
            version,
        )

    def _delete_events(self, stream: str) -> int:
        """Test hook: deletes the stream's events but keeps its version, as deleting the rows
        of ``events`` by hand (or retention) does in PostgreSQL. Returns how many went."""
        return self._remove_events(stream, 0, check.MAX_BIGINT)

    # ------------------------------------------------------------------ queries

    def _matching(self, query: EventQuery, rows: Iterable[_EventRow]) -> Iterator[_EventRow]:
        for row in rows:
            if query.matches(
                stream=row.stream,
                offset=row.offset,
                position=row.position,
                event_type=row.type,
                correlation_id=row.correlation_id,
                causation_id=row.causation_id,
                created_us=row.created_us,
                data=row.data,
            ):
                yield row

    async def _find(self, query: EventQuery, after_position: int, limit: int) -> EventList:
        """The WHERE of ``db::query`` over the feed, after ``after_position``."""
        start = bisect.bisect_right(self._feed, after_position, key=attrgetter("position"))
        found = itertools.islice(self._matching(query, self._feed[start:]), limit)
        return EventList(row.to_stored_event() for row in found)

    async def _count(self, query: EventQuery) -> int:
        return sum(1 for _ in self._matching(query, self._feed))

    async def _read_stream_backwards(self, stream: str, start_offset: int, limit: int) -> EventList:
        """``WHERE stream_name = $1 AND stream_offset <= $2 ORDER BY stream_offset DESC``"""
        rows = self._streams.get(stream, [])
        end = bisect.bisect_right(rows, start_offset, key=attrgetter("offset"))
        return EventList(row.to_stored_event() for row in reversed(rows[max(0, end - limit) : end]))

    # ------------------------------------------------------------------ consumer progress

    async def _commit_offset(
        self,
        stream: str,
        group: str,
        offset: int,
        check_expected: bool,
        expected: int | None,
        force: bool,
    ) -> CommitOutcome:
        """``commit_offset()`` of migration 001."""
        next_offset = self._versions.get(stream, -1) + 1
        if offset > next_offset:
            return "past_end", None, next_offset
        held = self._consumer_offsets.get((stream, group))
        current = None if held is None else held[0]
        if check_expected and current != expected:
            return "conflict", current, next_offset
        if current is not None and current > offset and not force:
            return "behind", current, next_offset
        self._consumer_offsets[stream, group] = (offset, _now_us())
        return "committed", offset, next_offset

    async def _committed_offset(self, stream: str, group: str) -> int | None:
        held = self._consumer_offsets.get((stream, group))
        return None if held is None else held[0]

    async def _delete_consumer_group(self, stream: str, group: str) -> bool:
        return self._consumer_offsets.pop((stream, group), None) is not None

    async def _commit_position(
        self, group: str, position: int, check_expected: bool, expected: int | None
    ) -> CommitOutcome:
        """``commit_position()`` of migration 001."""
        head = self._last_position
        if position > head:
            return "past_end", None, head
        held = self._consumer_positions.get(group)
        current = None if held is None else held[0]
        if check_expected and current != expected:
            return "conflict", current, head
        if current is not None and current > position:
            return "behind", current, head
        self._consumer_positions[group] = (position, _now_us())
        return "committed", position, head

    async def _committed_position(self, group: str) -> int | None:
        held = self._consumer_positions.get(group)
        return None if held is None else held[0]

    async def _delete_position_group(self, group: str) -> bool:
        return self._consumer_positions.pop(group, None) is not None

    async def _consumer_groups(self, stream: str | None) -> list[ConsumerGroupInfo]:
        """The ``consumer_groups`` view, in its order."""
        groups = [
            ConsumerGroupInfo(
                name,
                group,
                offset,
                None,
                max(self._versions.get(name, -1) + 1 - offset, 0),
                _datetime(updated),
            )
            for (name, group), (offset, updated) in sorted(self._consumer_offsets.items())
            if stream is None or name == stream
        ]
        if stream is None:
            for group, (position, updated) in sorted(self._consumer_positions.items()):
                after = bisect.bisect_right(self._feed, position, key=attrgetter("position"))
                groups.append(
                    ConsumerGroupInfo(
                        None, group, None, position, len(self._feed) - after, _datetime(updated)
                    )
                )
        return groups

    # ------------------------------------------------------------------ ephemeral streams

    async def _enqueue(self, stream: str, batch: _core.EventBatch, delay: float) -> None:
        """The enqueue statement: insert in input order, skipping ids already queued (in any
        stream: the id is the table's key) or dead-lettered."""
        rows: Sequence[_Serialized] = batch.rows()
        now = _now_us()
        visible = _later(now, delay)
        max_deliveries = self._max_delivery_attempts(stream)
        inserted = False
        for event_id, event_type, data, metadata, correlation, causation, _ in rows:
            if event_id in self._messages or event_id in self._dead:
                continue
            self._insert_message(
                _Message(
                    event_id,
                    next(self._seq),
                    stream,
                    event_type,
                    data,
                    metadata,
                    correlation,
                    causation,
                    enqueued_us=now,
                    visible_us=visible,
                    delivery_count=0,
                    max_deliveries=max_deliveries,
                )
            )
            inserted = True
        if inserted:
            self._wake(stream)

    async def _dequeue(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        visibility_timeout: float,
        wait: float | None,
        acks: _core.Receipts | None,
    ) -> list[QueuedEvent]:
        pairs: list[_Receipt] = [] if acks is None else acks.pairs()
        if wait:
            return await self._dequeue_waiting(
                stream, consumer_id, max_count, visibility_timeout, pairs, wait
            )
        return self._dequeue_now(stream, consumer_id, max_count, visibility_timeout, pairs)

    def _dequeue_now(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        lease_seconds: float,
        acks: list[_Receipt],
    ) -> list[QueuedEvent]:
        """``queue::dequeue``: the dequeue statement, repeated while dead-lettering (or the
        retry delay of expired leases) left the batch short, so a dead or waiting head never
        hides live messages behind it."""
        self._check_open()
        self._acknowledge_pairs(acks)
        # The statement excludes every id of its ack list from the pick (the acked rows are
        # still in its snapshot); only its first run carries the acks.
        excluded = {event_id for event_id, _ in acks}
        leased: list[QueuedEvent] = []
        while True:
            now = _now_us()
            picked = self._visible(stream, now, max_count - len(leased), excluded)
            excluded = set()
            set_aside = 0
            for message in picked:
                retry_at = self._expired_lease_retry_at(message)
                if message.delivery_count >= message.max_deliveries:
                    self._dead_letter(message, "max_deliveries", now)
                    set_aside += 1
                elif retry_at is not None and retry_at > now:
                    # The dequeue statement's `backoff`: an expired lease is a failed
                    # delivery, which waits for the stream's retry delay like a nack.
                    message.visible_us = retry_at
                    message.lease = None
                    message.consumer_id = None
                    set_aside += 1
                else:
                    message.delivery_count += 1
                    message.lease = uuid.uuid4()
                    message.consumer_id = consumer_id
                    message.visible_us = _later(now, lease_seconds)
                    leased.append(message.to_queued_event())
            if set_aside == 0 or len(leased) >= max_count:
                return leased

    def _visible(
        self, stream: str, now: int, limit: int, excluded: set[uuid.UUID]
    ) -> list[_Message]:
        """The oldest ``limit`` messages of ``stream`` visible at ``now``, in enqueue order."""
        picked: list[_Message] = []
        for message in self._queues.get(stream, {}).values():
            if len(picked) >= limit:
                break
            if message.visible_us <= now and message.id not in excluded:
                picked.append(message)
        return picked

    async def _dequeue_waiting(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        lease_seconds: float,
        acks: list[_Receipt],
        wait_seconds: float,
    ) -> list[QueuedEvent]:
        """``queue::dequeue_waiting``: looks, then sleeps until woken by an enqueue to the
        stream or for one poll interval, until a message comes or ``wait`` has passed (and
        looks a last time then)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_seconds
        waiter = asyncio.Event()
        self._waiters.setdefault(stream, set()).add(waiter)
        try:
            while True:
                # Cleared before looking: nothing can enqueue between the look and the wait,
                # as both run without an await in between.
                waiter.clear()
                batch = self._dequeue_now(stream, consumer_id, max_count, lease_seconds, acks)
                acks = []
                remaining = deadline - loop.time()
                if batch or remaining <= 0:
                    return batch
                try:
                    async with asyncio.timeout(min(remaining, _WAIT_POLL_SECONDS)):
                        await waiter.wait()
                except TimeoutError:
                    pass
        finally:
            waiters = self._waiters.get(stream)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[stream]

    async def _acknowledge(self, receipts: _core.Receipts) -> int:
        return self._acknowledge_pairs(receipts.pairs())

    def _acknowledge_pairs(self, receipts: Iterable[_Receipt]) -> int:
        acknowledged = 0
        for event_id, token in receipts:
            message = self._messages.get(event_id)
            if message is not None and message.holds(token):
                self._remove_message(message)
                acknowledged += 1
        return acknowledged

    async def _nack(self, receipt: _core.Receipts, requeue: bool, delay: float | None) -> bool:
        ((event_id, token),) = receipt.pairs()
        message = self._messages.get(event_id)
        if message is None or not message.holds(token):
            return False
        now = _now_us()
        if not requeue and not self._dead_letter_settings(message.stream).enabled:
            self._remove_message(message)  # the nack statement's `dropped`
            log_dropped_message(message.id, message.stream)
        elif not requeue:
            self._dead_letter(message, "nacked", now)
        elif message.delivery_count >= message.max_deliveries:
            self._dead_letter(message, "max_deliveries", now)
        else:
            if delay is None:
                delay = self._retry_delay(message.stream, message.delivery_count)
            # It keeps its seq, hence its place in the queue.
            message.visible_us = _later(now, delay)
            message.lease = None
            message.consumer_id = None
            self._wake(message.stream)
        return True

    async def _extend_lease(self, receipt: _core.Receipts, visibility_timeout: float) -> bool:
        ((event_id, token),) = receipt.pairs()
        message = self._messages.get(event_id)
        if message is None or not message.holds(token):
            return False
        message.visible_us = _later(_now_us(), visibility_timeout)
        return True

    async def _queue_stats(self, stream: str) -> QueueStats:
        """``queue_admin`` stats: counted as if spent messages had been moved already."""
        now = _now_us()
        live = [m for m in self._queues.get(stream, {}).values() if not m.spent(now)]
        visible = sum(1 for m in live if m.visible_us <= now)
        leased = sum(1 for m in live if m.visible_us > now and m.lease is not None)
        dead = sum(1 for d in self._dead.values() if d.stream == stream)
        oldest = min((m.enqueued_us for m in live), default=None)
        return QueueStats(
            stream,
            visible,
            len(live) - visible - leased,
            leased,
            dead + len(self._queues.get(stream, {})) - len(live),
            None if oldest is None else (now - oldest) / 1_000_000,
        )

    async def _dead_letters(self, stream: str, limit: int) -> list[DeadLetter]:
        """``queue_admin`` dead letters: the moved ones and the spent ones, which failed when
        their last lease expired."""
        now = _now_us()
        rows = self._dead_rows(stream, None) + [
            m.as_dead_row("max_deliveries", m.visible_us)
            for m in self._queues.get(stream, {}).values()
            if m.spent(now)
        ]
        rows.sort(key=lambda row: (row.failed_us, row.id))
        return [row.to_dead_letter() for row in rows[:limit]]

    async def _redrive(self, stream: str, ids: list[uuid.UUID] | None) -> int:
        """``redrive_dead_letters()`` of migration 001: spent messages are marked dead first,
        then every dead letter goes back to the tail, in failure order."""
        wanted = None if ids is None else set(ids)
        self._sweep_expired(stream, wanted)
        now = _now_us()
        max_deliveries = self._max_delivery_attempts(stream)
        redriven = 0
        for row in self._dead_rows(stream, wanted):
            del self._dead[row.id]
            self._insert_message(
                _Message(
                    row.id,
                    next(self._seq),
                    row.stream,
                    row.type,
                    row.data,
                    row.metadata,
                    row.correlation_id,
                    row.causation_id,
                    enqueued_us=row.enqueued_us,
                    visible_us=now,
                    delivery_count=0,
                    max_deliveries=max_deliveries,
                )
            )
            redriven += 1
        if redriven:
            self._wake(stream)
        return redriven

    async def _delete_dead_letters(self, stream: str, ids: list[uuid.UUID] | None) -> int:
        """Dead letters, spent messages included (what ``_dead_letters`` lists)."""
        wanted = None if ids is None else set(ids)
        self._sweep_expired(stream, wanted)
        rows = self._dead_rows(stream, wanted)
        for row in rows:
            del self._dead[row.id]
        return len(rows)

    async def _purge_queue(self, stream: str) -> int:
        """Live messages only: spent ones are dead letters, which stay."""
        now = _now_us()
        live = [m for m in self._queues.get(stream, {}).values() if not m.spent(now)]
        for message in live:
            self._remove_message(message)
        return len(live)

    # ------------------------------------------------------------------ queue internals

    def _dead_letter_settings(self, stream: str) -> DeadLetterSettings:
        configuration = self._configurations.get(stream)
        return DeadLetterSettings() if configuration is None else configuration.dead_letter_queue

    def _max_delivery_attempts(self, stream: str) -> int:
        """``max_delivery_attempts(stream)``: the stream's configuration, else 5; no limit
        (the largest integer) when its dead letters are disabled."""
        return self._dead_letter_settings(stream).delivery_limit

    def _retry_delay(self, stream: str, delivery_count: int) -> float:
        """``retry_delay(stream, delivery_count)``: a failed delivery's delay when the nack
        gives none: the stream's configured retry backoff, else none."""
        return self._dead_letter_settings(stream).retry_delay_after(delivery_count) or 0.0

    def _expired_lease_retry_at(self, message: _Message) -> int | None:
        """When a message whose lease expired may be delivered again: the end of that lease
        plus the stream's retry delay (None: not an expired lease, or no retry delay)."""
        if message.lease is None:
            return None
        delay = self._dead_letter_settings(message.stream).retry_delay_after(message.delivery_count)
        return None if delay is None else _later(message.visible_us, delay)

    def _insert_message(self, message: _Message) -> None:
        self._messages[message.id] = message
        self._queues.setdefault(message.stream, {})[message.id] = message

    def _remove_message(self, message: _Message) -> None:
        del self._messages[message.id]
        queue = self._queues[message.stream]
        del queue[message.id]
        if not queue:
            del self._queues[message.stream]

    def _dead_letter(self, message: _Message, reason: str, now: int) -> None:
        """``dead_letter()`` of migration 001: the message becomes a dead letter, keeping its
        delivery count. It failed when its last lease expired if it did, else now."""
        expired = message.lease is not None and message.visible_us <= now
        failed_us = message.visible_us if reason == "max_deliveries" and expired else now
        self._remove_message(message)
        self._dead[message.id] = message.as_dead_row(reason, failed_us)

    def _sweep_expired(self, stream: str, ids: set[uuid.UUID] | None) -> None:
        """Marks the stream's spent messages (those of ``ids``, if given) dead."""
        now = _now_us()
        for message in [
            m
            for m in self._queues.get(stream, {}).values()
            if m.spent(now) and (ids is None or m.id in ids)
        ]:
            self._dead_letter(message, "max_deliveries", now)

    def _dead_rows(self, stream: str, ids: set[uuid.UUID] | None) -> list[_DeadRow]:
        """The stream's dead letters (those of ``ids`` if given), by failure time, then id."""
        rows = [
            row
            for row in self._dead.values()
            if row.stream == stream and (ids is None or row.id in ids)
        ]
        rows.sort(key=lambda row: (row.failed_us, row.id))
        return rows

    def _wake(self, stream: str) -> None:
        """Wakes the dequeues waiting on ``stream`` (the NOTIFY of the PostgreSQL store)."""
        for waiter in self._waiters.get(stream, ()):
            waiter.set()

    # ---- operating the store: retention, configuration, administration, health

    async def _set_retention_policy(self, policy: RetentionPolicy) -> None:
        self._policies[policy.stream_name] = policy

    async def _retention_policies(self) -> list[RetentionPolicy]:
        return [self._policies[name] for name in sorted(self._policies)]

    async def _delete_retention_policy(self, stream_name: str) -> bool:
        return self._policies.pop(stream_name, None) is not None

    def _retention_rule(
        self, stream: str
    ) -> tuple[RuleSource | None, float | None, int | None, bool]:
        """``(rule, max age in seconds, max count, respect consumer groups)`` governing the
        stream's events: its configuration's retention when it limits events, else its own
        policy (a disabled one: no limit), else ``"*"`` (the ``rules`` of the plan)."""
        configuration = self._configurations.get(stream)
        if configuration is not None and configuration.retention.limits_events:
            retention = configuration.retention
            return (
                "configuration",
                _seconds(retention.max_age),
                retention.max_event_count,
                retention.respect_consumer_groups,
            )
        rule: RuleSource = "policy"
        policy = self._policies.get(stream)
        if policy is None:
            rule, policy = "default", self._policies.get(DEFAULT_POLICY)
            if policy is None:
                return None, None, None, False
        if not policy.enabled:
            return rule, None, None, False
        return (
            rule,
            _seconds(policy.max_age),
            policy.max_event_count,
            policy.respect_consumer_groups,
        )

    async def _retention_plan(self) -> list[RetentionTarget]:
        """``retention::plan``, step for step."""
        now = _now_us()
        targets: list[RetentionTarget] = []
        for stream in sorted(self._versions):
            version = self._versions[stream]
            rows = self._streams.get(stream)
            if version < 0 or not rows:
                continue
            rule, max_age, max_count, respect = self._retention_rule(stream)
            deleted_version = self._deleted_versions.get(stream)
            tombstone = None if deleted_version is None else deleted_version + 1
            if max_age is None and max_count is None and tombstone is None:
                continue
            first = rows[0].offset
            bounds: list[int] = []
            if max_count is not None:
                bounds.append(version + 1 - max_count)
            if max_age is not None:
                young = _later(now, -max_age)
                bounds.append(
                    next((row.offset for row in rows if row.created_us >= young), version + 1)
                )
            rule_below = max(bounds) if bounds else None
            committed = self._group_offsets(stream)
            consumed_below = min(o for _, _, o in committed) if respect and committed else None
            allowed = (
                None
                if rule_below is None
                else min(b for b in (rule_below, consumed_below) if b is not None)
            )
            delete_below = max(b for b in (allowed, tombstone) if b is not None)
            kept = (
                0
                if rule_below is None
                else max(0, min(rule_below, version + 1) - max(delete_below, first))
            )
            if tombstone is not None and tombstone >= (tombstone if allowed is None else allowed):
                rule = "deleted"
            waiting = tuple(
                group
                for _, group, offset in committed
                if kept > 0 and rule_below is not None and offset < rule_below
            )
            if delete_below > first or kept > 0:
                assert rule is not None
                targets.append(RetentionTarget(stream, rule, first, delete_below, kept, waiting))
        return targets

    def _group_offsets(self, stream: str | None) -> list[tuple[str, str, int]]:
        """``(stream, group, committed offset)`` of the groups on ``stream`` (every stream
        for None), by stream then group: the one reader of ``consumer_offsets`` here."""
        return sorted(
            (name, group, offset)
            for (name, group), (offset, _updated) in self._consumer_offsets.items()
            if stream is None or name == stream
        )

    async def _trim_events(self, stream: str, from_offset: int, below_offset: int) -> int:
        return self._remove_events(stream, from_offset, below_offset)

    def _remove_events(self, stream: str, from_offset: int, below_offset: int) -> int:
        """``DELETE FROM events WHERE stream_name = $1 AND stream_offset >= $2 AND
        stream_offset < $3``. The time of the stream's last append survives (as
        ``streams.updated_at`` does) when its newest event goes."""
        rows = self._streams.get(stream, [])
        start = bisect.bisect_left(rows, from_offset, key=attrgetter("offset"))
        end = bisect.bisect_left(rows, below_offset, key=attrgetter("offset"))
        removed = rows[start:end]
        if not removed:
            return 0
        if end == len(rows):
            self._last_writes[stream] = max(
                self._last_writes.get(stream, 0), removed[-1].created_us
            )
        del rows[start:end]
        if not rows:
            del self._streams[stream]
        for row in removed:
            del self._events_by_id[row.id]
        gone = {row.position for row in removed}
        self._feed = [row for row in self._feed if row.position not in gone]
        return len(removed)

    def _dead_letter_age(self, stream: str) -> float | None:
        """The dead letter age the queue's rule allows: its configuration's, else its own
        policy's (None when disabled), else the default policy's."""
        configuration = self._configurations.get(stream)
        if configuration is not None and configuration.retention.max_dead_letter_age is not None:
            return _seconds(configuration.retention.max_dead_letter_age)
        policy = self._policies.get(stream, self._policies.get(DEFAULT_POLICY))
        if policy is None or not policy.enabled:
            return None
        return _seconds(policy.max_dead_letter_age)

    async def _dead_letter_retention_plan(self) -> list[tuple[str, float]]:
        now = _now_us()
        queues = {row.stream for row in self._dead.values()} | {
            message.stream for message in self._messages.values() if message.spent(now)
        }
        plan = [(stream, self._dead_letter_age(stream)) for stream in sorted(queues)]
        return [(stream, age) for stream, age in plan if age is not None]

    async def _trim_dead_letters(self, stream: str, max_age: float, limit: int) -> int:
        """Dead letters (spent messages included, failed when their last lease expired) that
        failed before ``max_age`` seconds ago, at most ``limit``."""
        now = _now_us()
        cutoff = _later(now, -max_age)
        dead = [d for d in self._dead.values() if d.stream == stream and d.failed_us < cutoff]
        spent = [
            m
            for m in self._queues.get(stream, {}).values()
            if m.spent(now) and m.visible_us < cutoff
        ]
        deleted = 0
        for row in dead[:limit]:
            del self._dead[row.id]
            deleted += 1
        for message in spent[: limit - deleted]:
            self._remove_message(message)
            deleted += 1
        return deleted

    async def _set_stream_configuration(self, configuration: StreamConfiguration) -> None:
        self._configurations[configuration.stream_name] = configuration
        self._set_delivery_limit(
            configuration.stream_name, configuration.dead_letter_queue.delivery_limit
        )

    def _set_delivery_limit(self, stream: str, limit: int) -> None:
        """Every queued (not dead) message of the stream gets this delivery limit."""
        for message in self._queues.get(stream, {}).values():
            message.max_deliveries = limit

    async def _stream_configuration(self, stream: str) -> StreamConfiguration | None:
        return self._configurations.get(stream)

    async def _stream_configurations(self) -> list[StreamConfiguration]:
        return [self._configurations[name] for name in sorted(self._configurations)]

    async def _delete_stream_configuration(self, stream: str) -> bool:
        if self._configurations.pop(stream, None) is None:
            return False
        self._set_delivery_limit(stream, DEFAULT_MAX_DELIVERY_ATTEMPTS)
        return True

    async def _mark_stream_deleted(self, stream: str) -> tuple[int | None, int] | None:
        """``admin::mark_deleted``: the tombstone, the consumer offsets, the configuration."""
        version = self._versions.get(stream, -1)
        if version < 0:
            return None
        self._deleted_versions[stream] = version
        for key in [key for key in self._consumer_offsets if key[0] == stream]:
            del self._consumer_offsets[key]
        await self._delete_stream_configuration(stream)
        rows = self._streams.get(stream)
        return (rows[0].offset if rows else None), version

    async def _offset_range(self, stream: str) -> tuple[int, int] | None:
        rows = self._streams.get(stream)
        return (rows[0].offset, rows[-1].offset) if rows else None

    def _live_streams(self) -> list[str]:
        """Written, and written again since any deletion; in code point order."""
        return sorted(
            name
            for name, version in self._versions.items()
            if version >= 0 and version > self._deleted_versions.get(name, -1)
        )

    async def _stream_infos(self, prefix: str | None) -> list[StreamInfo]:
        infos: list[StreamInfo] = []
        for name in self._live_streams():
            if prefix is not None and not name.startswith(prefix):
                continue
            rows = self._streams.get(name, [])
            last_write = max(self._last_writes.get(name, 0), rows[-1].created_us if rows else 0)
            infos.append(
                StreamInfo(
                    name,
                    len(rows),
                    rows[0].offset if rows else None,
                    rows[-1].offset if rows else None,
                    self._versions[name],
                    _datetime(last_write),
                )
            )
        return infos

    async def _health_snapshot(
        self,
    ) -> tuple[datetime, list[StreamHealth], list[GroupOffset], list[QueueHealth]]:
        now = _now_us()
        streams = []
        for name in self._live_streams():
            rows = self._streams.get(name, [])
            age = (now - rows[-1].created_us) / 1_000_000 if rows else None
            streams.append(StreamHealth(name, len(rows), age))
        groups = [
            (stream, group, offset, self._versions.get(stream, -1) + 1)
            for stream, group, offset in self._group_offsets(None)
        ]
        queues = []
        for name in sorted(set(self._queues) | {row.stream for row in self._dead.values()}):
            stats = await self._queue_stats(name)
            queues.append(
                QueueHealth(
                    name,
                    stats.visible + stats.delayed + stats.leased,
                    stats.visible,
                    stats.leased,
                    stats.delayed,
                    stats.dead,
                    stats.oldest_age,
                )
            )
        return _datetime(now), streams, groups, queues


def _seconds(value: timedelta | float | None) -> float | None:
    """A normalized duration field (a ``timedelta`` after validation) in seconds."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


if TYPE_CHECKING:

    def _implements_event_store(store: InMemoryEventStore) -> EventStore:
        return store  # mypy checks here that the class implements the whole protocol
