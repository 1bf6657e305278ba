"""``OperationsApi``: operating the store — retention, stream configuration, stream
administration and health — written once for both stores over a few backend primitives
(declared here), like the rest of the public API in ``StoreBase``.

Every public method checks its arguments first (``ConfigurationError`` naming the bad one),
then refuses a closed store, then calls primitives. Deletions of many events (retention,
``delete_stream``, ``truncate_stream``) run as a loop of bounded delete statements over
offset ranges, here, so both stores follow the same steps and no statement holds its locks
for long: appends and readers go on meanwhile, and an interrupted deletion is simply carried
on by the next call.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from datetime import UTC, datetime

from . import validation as check
from .administration import StreamInfo
from .backend import Backend
from .configuration import StreamConfiguration
from .errors import ConfigurationError, DatabaseError, StoreTimeoutError
from .health import (
    DEFAULT_LAG_DEGRADED,
    DEFAULT_LAG_UNHEALTHY,
    ConsumerGroupHealth,
    Health,
    PoolHealth,
    QueueHealth,
    Status,
    StreamHealth,
    lag_status,
    worst,
)
from .retention import (
    DEFAULT_BATCH_SIZE,
    MAX_BATCH_SIZE,
    RetentionPolicy,
    RetentionReport,
    RetentionTarget,
    StreamTrim,
)

__all__ = ["GroupOffset", "OperationsApi"]

log = logging.getLogger("pgstreams")

# A consumer group's committed offset on a stream, and that stream's next offset.
GroupOffset = tuple[str, str, int, int]


def _check_batch_size(batch_size: object) -> int:
    return check.check_int(batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)


def log_dropped_message(message_id: object, stream: str) -> None:
    """The WARNING of a message ``nack(requeue=False)`` deleted because its stream's dead
    letters are disabled: a dropped message is never silent."""
    log.warning(
        "pgstreams: message %s of stream %r was dropped by nack(requeue=False): the stream's "
        "dead letters are disabled",
        message_id,
        stream,
    )


# How long a stream's configured read batch size is remembered, and for how many streams.
BATCH_SIZE_TTL = 5.0
BATCH_SIZE_CACHE_LIMIT = 10_000


class OperationsApi(Backend):
    """Retention, stream configuration, stream administration and health (mixed into
    ``StoreBase``)."""

    # ------------------------------------------------------------------ retention

    async def set_retention_policy(self, policy: RetentionPolicy) -> None:
        """Creates or replaces the policy of ``policy.stream_name`` (``"*"``: the default)."""
        if not isinstance(policy, RetentionPolicy):
            raise ConfigurationError(
                f"policy must be a pgstreams.RetentionPolicy, got {type(policy).__name__}"
            )
        self._check_open()
        await self._set_retention_policy(policy)

    async def get_retention_policies(self) -> list[RetentionPolicy]:
        """Every policy, by stream name (code point order; ``"*"`` sorts first)."""
        self._check_open()
        return await self._retention_policies()

    async def delete_retention_policy(self, stream_name: str) -> bool:
        """Deletes the policy of ``stream_name``; False when it had none."""
        check.check_name(stream_name, "stream_name")
        self._check_open()
        return await self._delete_retention_policy(stream_name)

    async def apply_retention(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> RetentionReport:
        """Applies the retention rules once: trims each persistent stream (and finishes the
        deletion of deleted streams), then deletes old dead letters, in statements of at most
        ``batch_size`` rows. Logs what it deleted, and what it kept for consumer groups."""
        batch_size = _check_batch_size(batch_size)
        self._check_open()
        trims: list[StreamTrim] = []
        for target in await self._retention_plan():
            deleted = await self._delete_range(
                target.stream, target.first_offset, target.delete_below, batch_size
            )
            trims.append(
                StreamTrim(
                    target.stream,
                    target.rule,
                    deleted,
                    target.kept_for_consumers,
                    target.waiting_groups,
                )
            )
            if target.kept_for_consumers:
                log.info(
                    "pgstreams: retention kept %d event(s) of stream %r that consumer "
                    "group(s) %s have not consumed yet",
                    target.kept_for_consumers,
                    target.stream,
                    ", ".join(repr(group) for group in target.waiting_groups),
                )
        dead_letters = 0
        for stream, max_age in await self._dead_letter_retention_plan():
            while True:
                self._check_open()
                deleted = await self._trim_dead_letters(stream, max_age, batch_size)
                dead_letters += deleted
                if deleted < batch_size:
                    break
        report = RetentionReport(sum(t.deleted for t in trims), dead_letters, tuple(trims))
        if report.deleted:
            log.info(
                "pgstreams: retention deleted %d event(s) from %d stream(s) and %d dead letter(s)",
                report.events_deleted,
                sum(1 for t in trims if t.deleted),
                report.dead_letters_deleted,
            )
        return report

    async def apply_retention_policies(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> int:
        """Applies the retention rules once (see ``apply_retention``); returns how many
        events and dead letters it deleted."""
        return (await self.apply_retention(batch_size=batch_size)).deleted

    async def _delete_range(self, stream: str, first: int, below: int, batch_size: int) -> int:
        """Deletes the stream's events from offset ``first`` to below ``below``, one range of
        ``batch_size`` offsets per statement (a range, not "the first N": the index scan
        then never walks again over the rows earlier batches deleted)."""
        deleted = 0
        start = first
        while start < below:
            end = min(start + batch_size, below)
            self._check_open()
            deleted += await self._trim_events(stream, start, end)
            start = end
        return deleted

    # ------------------------------------------------------------------ stream configuration

    async def set_stream_configuration(self, configuration: StreamConfiguration) -> None:
        """Creates or replaces the configuration of ``configuration.stream_name``; its dead
        letter settings apply at once to the messages already queued."""
        if not isinstance(configuration, StreamConfiguration):
            raise ConfigurationError(
                "configuration must be a pgstreams.StreamConfiguration, got "
                f"{type(configuration).__name__}"
            )
        self._check_open()
        await self._set_stream_configuration(configuration)
        self._forget_batch_size(configuration.stream_name)

    async def get_stream_configuration(self, stream: str) -> StreamConfiguration | None:
        check.check_stream(stream)
        self._check_open()
        return await self._stream_configuration(stream)

    async def list_stream_configurations(self) -> list[StreamConfiguration]:
        """Every configuration, by stream name (code point order)."""
        self._check_open()
        return await self._stream_configurations()

    async def delete_stream_configuration(self, stream: str) -> bool:
        """Deletes the configuration (its queued messages get the default limit of 5
        deliveries again); False when there was none."""
        check.check_stream(stream)
        self._check_open()
        deleted = await self._delete_stream_configuration(stream)
        self._forget_batch_size(stream)
        return deleted

    async def _configured_read_batch_size(self, stream: str) -> int | None:
        """The stream's configured ``performance.batch_size``, or None (then reads use the
        store's ``read_batch_size``). Remembered for ``BATCH_SIZE_TTL`` seconds: a read does
        not pay a lookup each time (this store's own configuration changes apply at once,
        another process's within the TTL)."""
        self._check_open()
        remembered = self._batch_sizes()
        now = time.monotonic()
        held = remembered.get(stream)
        if held is not None and held[1] > now:
            return held[0]
        configuration = await self._stream_configuration(stream)
        size = None if configuration is None else configuration.performance.batch_size
        if len(remembered) >= BATCH_SIZE_CACHE_LIMIT:
            remembered.clear()  # bounded: a store reading millions of streams keeps no list
        remembered[stream] = (size, now + BATCH_SIZE_TTL)
        return size

    def _batch_sizes(self) -> dict[str, tuple[int | None, float]]:
        cache: dict[str, tuple[int | None, float]] | None = getattr(self, "_batch_size_cache", None)
        if cache is None:
            cache = {}
            self._batch_size_cache = cache
        return cache

    def _forget_batch_size(self, stream: str) -> None:
        self._batch_sizes().pop(stream, None)

    # ------------------------------------------------------------------ stream administration

    async def delete_stream(self, stream: str) -> int:
        """Deletes a persistent stream: its events, its consumer groups' offsets and its
        configuration. Its version row stays as a tombstone, so offsets and ids are never
        reused: the next append continues after the last offset (and lists the stream
        again). Returns how many events it deleted; 0 for a stream never written. The events
        go in batches; if interrupted, calling it again (or a retention run) finishes."""
        check.check_stream(stream)
        self._check_open()
        marked = await self._mark_stream_deleted(stream)
        self._forget_batch_size(stream)  # its configuration went with it
        if marked is None:
            return 0
        first_offset, deleted_version = marked
        if first_offset is None:
            return 0
        return await self._delete_range(
            stream, first_offset, deleted_version + 1, DEFAULT_BATCH_SIZE
        )

    async def truncate_stream(self, stream: str, before_offset: int) -> int:
        """Deletes the stream's events at offsets below ``before_offset`` (in batches);
        returns how many. Offsets keep counting; consumer offsets are left as they are."""
        check.check_stream(stream)
        check.check_int(before_offset, "before_offset", minimum=0)
        self._check_open()
        bounds = await self._offset_range(stream)
        if bounds is None:
            return 0
        first, last = bounds
        return await self._delete_range(
            stream, first, min(before_offset, last + 1), DEFAULT_BATCH_SIZE
        )

    async def list_streams(self, prefix: str | None = None) -> list[StreamInfo]:
        """Every persistent stream written and not deleted (whose name starts with
        ``prefix``, if given), in code point order."""
        if prefix is not None and prefix != "":
            check.check_name(prefix, "prefix")
        self._check_open()
        return await self._stream_infos(prefix or None)

    # ------------------------------------------------------------------ health

    async def health(
        self,
        *,
        lag_degraded: int = DEFAULT_LAG_DEGRADED,
        lag_unhealthy: int = DEFAULT_LAG_UNHEALTHY,
    ) -> Health:
        """The store's health in one read (one round trip on PostgreSQL): every persistent
        stream, consumer group and queue, and the pool. A store that cannot be read is
        ``"unhealthy"`` (with ``error``), not an exception."""
        check.check_int(lag_degraded, "lag_degraded", minimum=1)
        check.check_int(lag_unhealthy, "lag_unhealthy", minimum=1)
        if lag_unhealthy < lag_degraded:
            raise ConfigurationError(
                f"lag_unhealthy ({lag_unhealthy}) must be at least lag_degraded ({lag_degraded})"
            )
        self._check_open()
        pool = PoolHealth(**self.pool_status())
        try:
            checked_at, streams, offsets, queues = await self._health_snapshot()
        except (DatabaseError, StoreTimeoutError) as error:
            return Health(
                "unhealthy",
                (f"the store could not be read: {error}",),
                datetime.now(UTC),
                (),
                (),
                (),
                pool,
                str(error),
            )
        groups = tuple(
            ConsumerGroupHealth(
                stream,
                group,
                offset,
                lag := max(0, next_offset - offset),
                lag_status(lag, lag_degraded, lag_unhealthy),
            )
            for stream, group, offset, next_offset in offsets
        )
        statuses: list[Status] = []
        reasons: list[str] = []
        for group_health in groups:
            if group_health.status != "healthy":
                statuses.append(group_health.status)
                reasons.append(
                    f"consumer group {group_health.group!r} is {group_health.lag} event(s) "
                    f"behind on stream {group_health.stream!r}"
                )
        if pool.waiting:
            statuses.append("degraded")
            reasons.append(f"{pool.waiting} caller(s) wait for a pooled connection")
        return Health(
            worst(statuses),
            tuple(reasons),
            checked_at,
            tuple(streams),
            groups,
            tuple(queues),
            pool,
        )

    # ------------------------------------------------------------------ primitives

    @abstractmethod
    async def _set_retention_policy(self, policy: RetentionPolicy) -> None:
        """Upserts the policy."""

    @abstractmethod
    async def _retention_policies(self) -> list[RetentionPolicy]:
        """Every policy, by stream name in code point order."""

    @abstractmethod
    async def _delete_retention_policy(self, stream_name: str) -> bool:
        """Deletes one policy; False when there was none."""

    @abstractmethod
    async def _retention_plan(self) -> list[RetentionTarget]:
        """What a run deletes, per persistent stream (in code point order) that has events
        to delete or kept for consumers: the governing rule (configuration, else own
        policy, else ``"*"``), an event going when either limit is exceeded, bounded below
        by the lowest offset a consumer group committed when the rule respects them, and
        at least everything up to a deleted stream's tombstone."""

    @abstractmethod
    async def _trim_events(self, stream: str, from_offset: int, below_offset: int) -> int:
        """Deletes the stream's events with ``from_offset <= offset < below_offset`` (one
        statement); returns how many."""

    @abstractmethod
    async def _dead_letter_retention_plan(self) -> list[tuple[str, float]]:
        """``(queue, max age in seconds)`` of each queue holding dead letters whose rule
        bounds their age (configuration, else own policy, else ``"*"``)."""

    @abstractmethod
    async def _trim_dead_letters(self, stream: str, max_age: float, limit: int) -> int:
        """Deletes at most ``limit`` of the queue's dead letters (spent messages included)
        that failed more than ``max_age`` seconds ago; returns how many."""

    @abstractmethod
    async def _set_stream_configuration(self, configuration: StreamConfiguration) -> None:
        """Upserts it, and sets the delivery limit of the stream's queued messages."""

    @abstractmethod
    async def _stream_configuration(self, stream: str) -> StreamConfiguration | None:
        """The stream's configuration, or None."""

    @abstractmethod
    async def _stream_configurations(self) -> list[StreamConfiguration]:
        """Every configuration, by stream name in code point order."""

    @abstractmethod
    async def _delete_stream_configuration(self, stream: str) -> bool:
        """Deletes it (the queued messages get the default delivery limit back)."""

    @abstractmethod
    async def _mark_stream_deleted(self, stream: str) -> tuple[int | None, int] | None:
        """In one transaction: records the stream's tombstone (its version now), deletes its
        consumer offsets and its configuration. Returns ``(first offset still stored or
        None, version)``, or None for a stream never written."""

    @abstractmethod
    async def _offset_range(self, stream: str) -> tuple[int, int] | None:
        """``(first, last)`` offset of the stream's stored events, or None."""

    @abstractmethod
    async def _stream_infos(self, prefix: str | None) -> list[StreamInfo]:
        """``list_streams``: live streams (version >= 0, written since any deletion)."""

    @abstractmethod
    async def _health_snapshot(
        self,
    ) -> tuple[datetime, list[StreamHealth], list[GroupOffset], list[QueueHealth]]:
        """The time of the read, live persistent streams, consumer group offsets (with their
        stream's next offset) and queues holding any message, each in code point order."""
