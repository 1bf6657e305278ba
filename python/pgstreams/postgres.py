"""``PostgresEventStore``: the backend primitives over the Rust core, and ``connect()``.

The public API is :class:`~pgstreams.base.StoreBase`'s, shared with the in-memory store; each
primitive here is one call into ``_core``, which holds every statement this store sends."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Generator
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from . import _core
from .administration import StreamInfo
from .base import StoreBase
from .configuration import StreamConfiguration
from .errors import MigrationError
from .events import AppendResult, DeadLetter, QueuedEvent
from .health import QueueHealth, StreamHealth
from .migrator import AppliedMigration, DatabaseMigrator
from .offsets import CommitOutcome, ConsumerGroupInfo
from .operations import GroupOffset, log_dropped_message
from .options import PostgresOptions
from .queries import EventQuery
from .queue_stats import QueueStats, StreamMetadata
from .retention import RetentionPolicy, RetentionTarget

__all__ = ["PostgresEventStore", "connect"]

log = logging.getLogger("pgstreams")


class PostgresEventStore(StoreBase):
    """An event store and queue in one PostgreSQL schema. Get one with :func:`connect`.

    The public methods are :class:`~pgstreams.base.StoreBase`'s; each primitive here is one
    call into the Rust core, which holds every statement (``rust/src/db/``)."""

    def __init__(self, options: PostgresOptions, core: _core.Core) -> None:
        self.options = options
        self.read_batch_size = options.read_batch_size
        self._core = core

    def __repr__(self) -> str:
        state = "closed" if self._core.closed else "open"
        return f"<PostgresEventStore {self.options.describe()} {state}>"

    @property
    def closed(self) -> bool:
        return bool(self._core.closed)

    async def _close(self) -> None:
        self._core.close()

    async def _ping(self) -> dict[str, str]:
        version, database, user = await self._core.ping()
        return {"server_version": version, "database": database, "user": user}

    def pool_status(self) -> dict[str, int]:
        return dict(self._core.pool_status())

    # ------------------------------------------------------------------ persistent streams

    async def _append(
        self, stream: str, batch: _core.EventBatch, expected_version: int | None
    ) -> AppendResult:
        offsets, positions = await self._core.append(stream, batch, expected_version)
        return AppendResult(offsets, positions)

    async def _consumer_heartbeat(
        self, selector: str, group: str, member: str, session_timeout: float
    ) -> list[str]:
        return list(await self._core.consumer_heartbeat(selector, group, member, session_timeout))

    async def _consumer_acquire(
        self, group: str, member: str, units: list[str], ttl: float
    ) -> list[tuple[str, int]]:
        return list(await self._core.consumer_acquire(group, member, units, ttl))

    async def _consumer_release(self, group: str, member: str, units: list[str] | None) -> int:
        return int(await self._core.consumer_release(group, member, units))

    async def _consumer_leave(self, selector: str, group: str, member: str) -> None:
        await self._core.consumer_leave(selector, group, member)

    async def _commit_as_member(
        self, stream: str | None, group: str, value: int, member: str, generation: int
    ) -> bool:
        return bool(await self._core.commit_as_member(stream, group, value, member, generation))

    async def _consumer_members(self) -> list[tuple[str, str, datetime, list[str]]]:
        return [
            (group, member, heartbeat, list(units))
            for group, member, heartbeat, units in await self._core.consumer_members()
        ]

    def _feed_follower(self) -> _core.FeedFollower:
        return self._core.follow_feed()

    async def _begin(self, idle_limit: float | None) -> _core.Transaction:
        return self._core.begin(idle_limit)

    def _default_transaction_timeout(self) -> float | None:
        return self.options.command_timeout

    def _read_stream(self, stream: str, offset: int, limit: int) -> Awaitable[_core.EventPage]:
        return self._core.read_stream(stream, offset, limit)

    def _read_all(self, after_position: int, limit: int) -> Awaitable[_core.EventPage]:
        return self._core.read_all(after_position, limit)

    async def _stream_version(self, stream: str) -> int:
        return await self._core.stream_version(stream)

    async def _head_position(self) -> int:
        return await self._core.head_position()

    async def _stream_metadata(self, stream: str) -> StreamMetadata | None:
        rows = await self._core.stream_metadata(stream)
        return StreamMetadata(*rows[0]) if rows else None

    # ------------------------------------------------------------------ queries

    def _find(
        self, query: EventQuery, after_position: int, limit: int
    ) -> Awaitable[_core.EventPage]:
        return self._core.find(query.to_core(), after_position, limit)

    async def _count(self, query: EventQuery) -> int:
        return await self._core.count(query.to_core())

    def _read_stream_backwards(
        self, stream: str, start_offset: int, limit: int
    ) -> Awaitable[_core.EventPage]:
        return self._core.read_stream_backwards(stream, start_offset, limit)

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
        return await self._core.commit_offset(
            stream, group, offset, check_expected, expected, force
        )

    async def _committed_offset(self, stream: str, group: str) -> int | None:
        return await self._core.committed_offset(stream, group)

    async def _delete_consumer_group(self, stream: str, group: str) -> bool:
        return await self._core.delete_consumer_group(stream, group)

    async def _commit_position(
        self, group: str, position: int, check_expected: bool, expected: int | None
    ) -> CommitOutcome:
        return await self._core.commit_position(group, position, check_expected, expected)

    async def _committed_position(self, group: str) -> int | None:
        return await self._core.committed_position(group)

    async def _delete_position_group(self, group: str) -> bool:
        return await self._core.delete_position_group(group)

    async def _consumer_groups(self, stream: str | None) -> list[ConsumerGroupInfo]:
        return [ConsumerGroupInfo(*row) for row in await self._core.consumer_groups(stream)]

    # ------------------------------------------------------------------ ephemeral streams

    async def _enqueue(self, stream: str, batch: _core.EventBatch, delay: float) -> None:
        await self._core.enqueue(stream, batch, delay)

    async def _dequeue(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        visibility_timeout: float,
        wait: float | None,
        acks: _core.Receipts | None,
    ) -> list[QueuedEvent]:
        leasing = self._core.dequeue(stream, consumer_id, max_count, visibility_timeout, wait, acks)
        try:
            return await leasing
        except asyncio.CancelledError:
            # Cancelled after the messages arrived but before this task resumed to take them
            # (the bridge releases them itself when the cancellation comes first): release
            # them here, or their deliveries would burn until the visibility timeout.
            if isinstance(leasing, asyncio.Future) and _has_result(leasing):
                self._core.release(leasing.result())
            raise

    async def _acknowledge(self, receipts: _core.Receipts) -> int:
        return await self._core.acknowledge(receipts)

    async def _nack(self, receipt: _core.Receipts, requeue: bool, delay: float | None) -> bool:
        acted, dropped = await self._core.nack(receipt, requeue, delay)
        if dropped is not None:
            log_dropped_message(receipt.pairs()[0][0], dropped)
        return acted

    async def _extend_lease(self, receipt: _core.Receipts, visibility_timeout: float) -> bool:
        return await self._core.extend_lease(receipt, visibility_timeout)

    async def _queue_stats(self, stream: str) -> QueueStats:
        rows = await self._core.queue_stats(stream)
        return QueueStats(stream, *rows[0])

    async def _dead_letters(self, stream: str, limit: int) -> list[DeadLetter]:
        return await self._core.dead_letters(stream, limit)

    async def _redrive(self, stream: str, ids: list[uuid.UUID] | None) -> int:
        return await self._core.redrive(stream, ids)

    async def _delete_dead_letters(self, stream: str, ids: list[uuid.UUID] | None) -> int:
        return await self._core.delete_dead_letters(stream, ids)

    async def _purge_queue(self, stream: str) -> int:
        return await self._core.purge_queue(stream)

    # ---- operating the store: retention, configuration, administration, health

    async def _set_retention_policy(self, policy: RetentionPolicy) -> None:
        await self._core.set_retention_policy(
            policy.stream_name,
            _seconds(policy.max_age),
            policy.max_event_count,
            policy.enabled,
            policy.respect_consumer_groups,
            _seconds(policy.max_dead_letter_age),
        )

    async def _retention_policies(self) -> list[RetentionPolicy]:
        return [
            RetentionPolicy(name, max_age, count, enabled, respect, dead_age)
            for name, max_age, count, enabled, respect, dead_age in (
                await self._core.retention_policies()
            )
        ]

    async def _delete_retention_policy(self, stream_name: str) -> bool:
        return await self._core.delete_retention_policy(stream_name)

    async def _retention_plan(self) -> list[RetentionTarget]:
        return [
            RetentionTarget(stream, rule, first, below, kept, tuple(groups))
            for stream, rule, first, below, kept, groups in await self._core.retention_plan()
        ]

    async def _trim_events(self, stream: str, from_offset: int, below_offset: int) -> int:
        return await self._core.trim_events(stream, from_offset, below_offset)

    async def _dead_letter_retention_plan(self) -> list[tuple[str, float]]:
        return [(stream, age) for stream, age in await self._core.dead_letter_retention_plan()]

    async def _trim_dead_letters(self, stream: str, max_age: float, limit: int) -> int:
        return await self._core.trim_dead_letters(stream, max_age, limit)

    async def _set_stream_configuration(self, configuration: StreamConfiguration) -> None:
        document = _core.json_dumps(configuration.to_document(), "configuration")
        await self._core.set_stream_configuration(configuration.stream_name, document)

    async def _stream_configuration(self, stream: str) -> StreamConfiguration | None:
        rows = await self._core.stream_configuration(stream)
        return StreamConfiguration.from_document(*rows[0]) if rows else None

    async def _stream_configurations(self) -> list[StreamConfiguration]:
        return [
            StreamConfiguration.from_document(name, document)
            for name, document in await self._core.stream_configurations()
        ]

    async def _delete_stream_configuration(self, stream: str) -> bool:
        return await self._core.delete_stream_configuration(stream)

    async def _mark_stream_deleted(self, stream: str) -> tuple[int | None, int] | None:
        rows = await self._core.mark_stream_deleted(stream)
        return (rows[0][0], rows[0][1]) if rows else None

    async def _offset_range(self, stream: str) -> tuple[int, int] | None:
        return await self._core.offset_range(stream)

    async def _stream_infos(self, prefix: str | None) -> list[StreamInfo]:
        return [
            StreamInfo(
                stream,
                0 if first is None or last is None else last - first + 1,
                first,
                last,
                version,
                last_write,
            )
            for stream, first, last, version, last_write in await self._core.list_streams(prefix)
        ]

    async def _health_snapshot(
        self,
    ) -> tuple[datetime, list[StreamHealth], list[GroupOffset], list[QueueHealth]]:
        ((checked_at, streams, groups, queues),) = await self._core.health()
        return (
            checked_at,
            [StreamHealth(name, length, age) for name, length, age in streams],
            [(stream, group, offset, next_offset) for stream, group, offset, next_offset in groups],
            [
                QueueHealth(name, ready + in_flight + delayed, ready, in_flight, delayed, dead, age)
                for name, ready, in_flight, delayed, dead, age in queues
            ],
        )


def _seconds(value: timedelta | float | None) -> float | None:
    """A normalized duration field (a ``timedelta`` after validation) in seconds."""
    if value is None:
        return None
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


def _has_result(future: asyncio.Future[Any]) -> bool:
    return future.done() and not future.cancelled() and future.exception() is None


async def _open(options: PostgresOptions) -> PostgresEventStore:
    """Connects, then reads ``schema_version``; only when migrations are pending does it
    migrate (``auto_migrate``) or refuse. A schema that is up to date costs one read and no
    DDL: a role with only USAGE, SELECT/INSERT/UPDATE/DELETE and EXECUTE can connect, and a
    process start never waits behind the appends of others."""
    core = _core.Core(options.to_core_config())
    try:
        await core.connect()
        migrator = DatabaseMigrator(options)
        applied = [AppliedMigration(*row) for row in await core.applied_migrations()]
        pending = migrator.pending_of(applied)
        if pending and options.auto_migrate:
            versions = await migrator.migrate(adjust_event_data_index=False)
            if versions:
                log.info("pgstreams: migrated %s to version %s", options.describe(), versions[-1])
        elif pending:
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
