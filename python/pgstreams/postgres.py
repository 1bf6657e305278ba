"""``PostgresEventStore``: the public API over the Rust core. The hot paths (appends, reads,
enqueue, dequeue, acknowledgements) are single calls into ``_core``; this module validates
arguments, shapes results and holds the few statements that are not hot."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Generator, Iterable, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from . import _core
from . import validation as check
from .errors import ConfigurationError, MigrationError, StoreClosedError
from .events import DeadLetter, Event, QueuedEvent, StoredEvent
from .migrator import DatabaseMigrator
from .options import PostgresOptions
from .paging import paginate
from .protocol import Receipt
from .queue_stats import QueueStats, StreamMetadata

__all__ = ["PostgresEventStore", "connect"]

log = logging.getLogger("pgstreams")


class PostgresEventStore:
    """An event store and queue in one PostgreSQL schema. Get one with :func:`connect`."""

    def __init__(self, options: PostgresOptions, core: _core.Core) -> None:
        self.options = options
        self._core = core
        self._schema = f'"{options.schema_name}"'

    def __repr__(self) -> str:
        state = "closed" if self._core.closed else "open"
        return f"<PostgresEventStore {self.options.describe()} {state}>"

    async def __aenter__(self) -> PostgresEventStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the pool; later calls raise ``StoreClosedError``. Idempotent."""
        self._core.close()

    @property
    def closed(self) -> bool:
        return bool(self._core.closed)

    async def ping(self) -> dict[str, str]:
        """``{"server_version", "database", "user"}`` of the server, proving it answers."""
        version, database, user = await self._core.ping()
        return {"server_version": version, "database": database, "user": user}

    def pool_status(self) -> dict[str, int]:
        return dict(self._core.pool_status())

    def _check_open(self) -> None:
        if self._core.closed:
            raise StoreClosedError("the store is closed")

    # ------------------------------------------------------------------ persistent streams

    async def append(
        self,
        stream: str,
        event: Event,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int:
        """Appends one event; returns its offset. ``metadata`` is merged into the event's."""
        check.check_stream(stream)
        check.check_event(event)
        if metadata:
            event = event.with_metadata(metadata)
        offsets = await self._core.append(
            stream, [event], check.check_expected_version(expected_version)
        )
        return int(offsets[0])

    async def append_batch(
        self, stream: str, events: Iterable[Event], *, expected_version: int | None = None
    ) -> list[int]:
        """Appends all events in one transaction; returns their offsets."""
        check.check_stream(stream)
        batch = check.check_events(events)
        return list(
            await self._core.append(stream, batch, check.check_expected_version(expected_version))
        )

    def read_stream(
        self, stream: str, start_offset: int = 0, *, max_count: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Events of ``stream`` from ``start_offset``, fetched ``read_batch_size`` at a time."""
        check.check_stream(stream)
        check.check_int(start_offset, "start_offset", minimum=0)
        return paginate(
            lambda offset, limit: self._core.read_stream(stream, offset, limit),
            start_offset,
            lambda last: last.offset + 1,
            check.check_optional_count(max_count, "max_count"),
            self.options.read_batch_size,
        )

    def read_all(
        self, after_position: int | None = None, *, max_count: int | None = None
    ) -> AsyncIterator[StoredEvent]:
        """Every event of every stream in increasing ``position``, after ``after_position``."""
        start = (
            -1
            if after_position is None
            else check.check_int(after_position, "after_position", minimum=-1)
        )
        return paginate(
            self._core.read_all,
            start,
            lambda last: last.position,
            check.check_optional_count(max_count, "max_count"),
            self.options.read_batch_size,
        )

    async def get_stream_version(self, stream: str) -> int:
        """Offset of the stream's last event; -1 for a stream never written."""
        check.check_stream(stream)
        return int(await self._core.stream_version(stream))

    async def list_streams(self) -> list[str]:
        rows = await self._core.query(
            f'SELECT stream_name FROM {self._schema}.streams WHERE version >= 0 ORDER BY stream_name COLLATE "C"'
        )
        return [r[0] for r in rows]

    async def get_stream_metadata(self, stream: str) -> StreamMetadata | None:
        """Length, first and last offset, oldest and newest timestamp (None: never written)."""
        check.check_stream(stream)
        rows = await self._core.query(
            "SELECT stream_name, length, first_offset, last_offset, oldest_timestamp, "
            f"newest_timestamp, version FROM {self._schema}.stream_metadata WHERE stream_name = $1",
            [stream],
        )
        if not rows or rows[0][6] < 0:
            return None
        return StreamMetadata(*rows[0])

    # ------------------------------------------------------------------ consumer offsets

    async def commit_offset(self, stream: str, group: str, offset: int) -> bool:
        """Stores the NEXT offset ``group`` will read from ``stream`` (Kafka-style)."""
        check.check_stream(stream)
        check.check_name(group, "group")
        check.check_int(offset, "offset", minimum=0)
        await self._core.query(
            f'INSERT INTO {self._schema}.consumer_offsets (stream_name, consumer_group, "offset") '
            "VALUES ($1, $2, $3) ON CONFLICT (stream_name, consumer_group) "
            'DO UPDATE SET "offset" = excluded."offset", updated_at = now()',
            [stream, group, offset],
        )
        return True

    async def get_committed_offset(self, stream: str, group: str) -> int | None:
        check.check_stream(stream)
        check.check_name(group, "group")
        rows = await self._core.query(
            f'SELECT "offset" FROM {self._schema}.consumer_offsets '
            "WHERE stream_name = $1 AND consumer_group = $2",
            [stream, group],
        )
        return int(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ ephemeral streams

    async def enqueue(
        self, stream: str, event: Event, *, delay: float | timedelta | None = None
    ) -> uuid.UUID:
        """Queues one message; returns its id (an id already queued is a no-op)."""
        check.check_stream(stream)
        check.check_event(event)
        await self._core.enqueue(stream, [event], check.check_delay(delay))
        return event.id

    async def enqueue_batch(
        self, stream: str, events: Iterable[Event], *, delay: float | timedelta | None = None
    ) -> list[uuid.UUID]:
        """Queues a batch in one round trip (one NOTIFY); returns the ids in order."""
        check.check_stream(stream)
        batch = check.check_events(events)
        await self._core.enqueue(stream, batch, check.check_delay(delay))
        return [e.id for e in batch]

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
        previous batch in the same statement, saving a round trip per batch."""
        check.check_stream(stream)
        check.check_name(consumer_id, "consumer_id")
        check.check_int(max_count, "max_count", minimum=1)
        return list(
            await self._core.dequeue(
                stream,
                consumer_id,
                max_count,
                check.check_timeout(visibility_timeout, "visibility_timeout"),
                check.check_wait(wait),
                list(acknowledge) if acknowledge is not None else None,
            )
        )

    async def acknowledge(self, event_or_id: Receipt) -> bool:
        """Deletes the message if this delivery (or, given an id, the current one) holds it."""
        return bool(await self._core.acknowledge([event_or_id]))

    async def acknowledge_batch(self, events_or_ids: Iterable[Receipt]) -> int:
        return int(await self._core.acknowledge(list(events_or_ids)))

    async def nack(
        self, event_or_id: Receipt, requeue: bool = True, *, delay: float | timedelta | None = None
    ) -> bool:
        """Gives the message back (requeue: same place, after the delay) or dead-letters it."""
        if not isinstance(requeue, bool):
            raise ConfigurationError("requeue must be a bool")
        seconds = None if delay is None else check.check_delay(delay)
        return bool(await self._core.nack(event_or_id, requeue, seconds))

    async def extend_lease(
        self, queued_event: Receipt, visibility_timeout: float | timedelta
    ) -> bool:
        """Keeps the message leased for ``visibility_timeout`` from now."""
        seconds = check.check_timeout(visibility_timeout, "visibility_timeout")
        return bool(await self._core.extend_lease(queued_event, seconds))

    async def get_pending_count(self, stream: str) -> int:
        """Visible + delayed + leased messages; dead letters excluded."""
        check.check_stream(stream)
        await self._core.sweep_expired(stream)
        rows = await self._core.query(
            f"SELECT count(*) FROM {self._schema}.queue_events WHERE stream_name = $1", [stream]
        )
        return int(rows[0][0])

    async def get_queue_stats(self, stream: str) -> QueueStats:
        check.check_stream(stream)
        await self._core.sweep_expired(stream)
        rows = await self._core.query(
            "SELECT count(*) FILTER (WHERE visible_at <= now()), "
            "count(*) FILTER (WHERE visible_at > now() AND lease_token IS NULL), "
            "count(*) FILTER (WHERE visible_at > now() AND lease_token IS NOT NULL), "
            f"(SELECT count(*) FROM {self._schema}.dead_letter_queue d WHERE d.stream_name = $1), "
            "extract(epoch FROM now() - min(enqueued_at))::float8 "
            f"FROM {self._schema}.queue_events WHERE stream_name = $1",
            [stream],
        )
        return QueueStats(stream, *rows[0])

    async def get_dead_letters(self, stream: str, *, limit: int = 100) -> list[DeadLetter]:
        check.check_stream(stream)
        check.check_int(limit, "limit", minimum=1)
        await self._core.sweep_expired(stream)
        rows = await self._core.query(
            "SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, "
            "delivery_attempts::int8, enqueued_at, failed_at, reason "
            f"FROM {self._schema}.dead_letter_queue WHERE stream_name = $1 "
            "ORDER BY failed_at, id LIMIT $2",
            [stream, limit],
        )
        return [DeadLetter(*row) for row in rows]

    async def redrive_dead_letters(
        self, stream: str, event_ids: Iterable[uuid.UUID] | None = None
    ) -> int:
        """Moves dead letters back to the tail of the queue (same id, delivery count 0)."""
        check.check_stream(stream)
        ids = None if event_ids is None else [_as_uuid(i) for i in event_ids]
        await self._core.sweep_expired(stream)
        rows = await self._core.query(
            f"WITH moved AS (DELETE FROM {self._schema}.dead_letter_queue "
            "WHERE stream_name = $1 AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) "
            "RETURNING *), "
            f"requeued AS (INSERT INTO {self._schema}.queue_events (id, stream_name, event_type, "
            "data, metadata, correlation_id, causation_id, enqueued_at, max_delivery_attempts) "
            "SELECT id, stream_name, event_type, data, metadata, correlation_id, causation_id, "
            f"enqueued_at, {self._schema}.max_delivery_attempts($1) FROM moved "
            "ORDER BY failed_at, id ON CONFLICT (id) DO NOTHING RETURNING 1) "
            "SELECT count(*) FROM requeued",
            [stream, ids],
        )
        return int(rows[0][0])

    async def delete_dead_letters(
        self, stream: str, event_ids: Iterable[uuid.UUID] | None = None
    ) -> int:
        check.check_stream(stream)
        ids = None if event_ids is None else [_as_uuid(i) for i in event_ids]
        rows = await self._core.query(
            f"WITH gone AS (DELETE FROM {self._schema}.dead_letter_queue WHERE stream_name = $1 "
            "AND ($2::uuid[] IS NULL OR id = ANY($2::uuid[])) RETURNING 1) SELECT count(*) FROM gone",
            [stream, ids],
        )
        return int(rows[0][0])

    async def purge_queue(self, stream: str) -> int:
        """Deletes every message of the stream (leased or not); dead letters stay."""
        check.check_stream(stream)
        rows = await self._core.query(
            f"WITH gone AS (DELETE FROM {self._schema}.queue_events WHERE stream_name = $1 "
            "RETURNING 1) SELECT count(*) FROM gone",
            [stream],
        )
        return int(rows[0][0])


def _as_uuid(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise ConfigurationError(f"{value!r} is not an event id (UUID)")


async def _open(options: PostgresOptions) -> PostgresEventStore:
    core = _core.Core(options.to_core_config())
    try:
        await core.connect()
        migrator = DatabaseMigrator(options)
        if options.auto_migrate:
            applied = await migrator.migrate()
            if applied:
                log.info("pgstreams: migrated %s to version %s", options.describe(), applied[-1])
        else:
            pending = await migrator.pending()
            if pending:
                raise MigrationError(
                    f'schema "{options.schema_name}" has pending migrations: '
                    f"{', '.join(m.file_name for m in pending)}; run `pgstreams migrate` "
                    "(or DatabaseMigrator(options).migrate()), or connect with auto_migrate=True"
                )
    except BaseException:
        core.close()
        raise
    return PostgresEventStore(options, core)


class _Connecting:
    """What ``connect()`` returns: awaitable (``store = await connect(...)``) and an async
    context manager (``async with connect(...) as store``) that closes the store on exit."""

    def __init__(self, options: PostgresOptions) -> None:
        self._options = options
        self._store: PostgresEventStore | None = None

    def __await__(self) -> Generator[Any, None, PostgresEventStore]:
        return _open(self._options).__await__()

    async def __aenter__(self) -> PostgresEventStore:
        self._store = await _open(self._options)
        return self._store

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._store is not None:
            await self._store.close()


def connect(options_or_connection_string: PostgresOptions | str, **overrides: Any) -> _Connecting:
    """Opens a store: ``await connect(dsn)`` or ``async with connect(dsn) as store``.

    Keyword arguments override the options (and beat the connection string)."""
    return _Connecting(PostgresOptions.coerce(options_or_connection_string, **overrides))
