"""``Backend``: the primitives a store implements, and nothing else.

The public API lives once, in :class:`pgstreams.base.StoreBase`: it checks every argument,
refuses a closed store, turns durations into seconds and receipts and events into validated
input (``_core.Receipts``, ``_core.EventBatch``), and only then calls one of these. So a
primitive receives input that is already valid, and both stores raise the same errors, in the
same order, for the same bad call. ``PostgresEventStore`` implements each primitive as one
call into the Rust core; ``InMemoryEventStore`` as the same semantics over Python data.

Services written on the base (offsets, queries, retention, replay, ...) add primitives here
when they need the backend to do something new, never a second copy of a public method.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable
from datetime import datetime
from typing import Any, Protocol

from . import _core
from .errors import StoreClosedError
from .events import AppendResult, DeadLetter, QueuedEvent
from .paging import EventPage
from .queue_stats import QueueStats, StreamMetadata

# What `commit` answers, in call order per kind: (offsets, positions) per append, new messages
# per enqueue, whether each offset or position commit moved its group, acknowledged messages
# per acknowledgement.
Flushed = tuple[list[tuple[list[int], list[int]]], list[int], list[bool], list[int]]
# A staged offset or position commit: (stream or None for the feed, group, value,
# check_expected, expected, (member, generation) for a consumer group member's fenced commit).
StagedCommit = tuple[str | None, str, int, bool, int | None, tuple[str, int] | None]


class TransactionSession(Protocol):
    """What a backend's ``_begin`` gives (``transactions``): ``_core.Transaction``, or the
    in-memory store's."""

    def execute(self, sql: str, params: list[Any]) -> Any: ...
    def fetch(self, sql: str, params: list[Any]) -> Any: ...
    def commit(
        self,
        appends: list[tuple[str, _core.EventBatch, int | None]],
        enqueues: list[tuple[str, _core.EventBatch, float]],
        commits: list[StagedCommit],
        acknowledgements: list[_core.Receipts],
    ) -> Any: ...
    def rollback(self) -> Any: ...


class FeedFollower(Protocol):
    """How ``read_all(follow=True)`` waits once caught up: read ``generation()`` before
    looking, then ``wait(seen)`` returns at the next append after it (or after a polling
    interval, whichever comes first)."""

    def generation(self) -> int: ...
    def wait(self, seen: int) -> Awaitable[None]: ...


class Backend(ABC):
    """What each store provides. ``read_batch_size`` is how many events a read fetches at a
    time. Every primitive may assume its arguments were checked and the store is open."""

    read_batch_size: int

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once ``close()`` has run."""

    def _check_open(self) -> None:
        """Refuses a closed store: the last check before any primitive runs."""
        if self.closed:
            raise StoreClosedError("the store is closed")

    @abstractmethod
    async def _close(self) -> None:
        """Releases what the store holds and wakes waiting calls. Runs once."""

    @abstractmethod
    async def _ping(self) -> dict[str, str]:
        """``{"server_version", "database", "user"}``."""

    @abstractmethod
    def pool_status(self) -> dict[str, int]:
        """``{"size", "available", "waiting", "max_size"}`` of the connection pool."""

    # ------------------------------------------------------------------ persistent streams

    @abstractmethod
    async def _append(
        self, stream: str, batch: _core.EventBatch, expected_version: int | None
    ) -> AppendResult:
        """Appends the batch atomically (or recognizes a retry); returns the offsets and
        positions."""

    # ------------------------------------------------------------------ consumer groups
    # (``consumers``: the functions of migration 006)

    @abstractmethod
    async def _consumer_heartbeat(
        self, selector: str, group: str, member: str, session_timeout: float
    ) -> list[str]:
        """Records the member's heartbeat, removes the group's expired members (and their
        leases); returns the live members on ``selector``, by id."""

    @abstractmethod
    async def _consumer_acquire(
        self, group: str, member: str, units: list[str], ttl: float
    ) -> list[tuple[str, int]]:
        """Takes or renews the leases of ``units`` that are free, expired or the member's;
        returns those now held, with their generations."""

    @abstractmethod
    async def _consumer_release(self, group: str, member: str, units: list[str] | None) -> int:
        """Gives up the member's leases of ``units`` (all when None)."""

    @abstractmethod
    async def _consumer_leave(self, selector: str, group: str, member: str) -> None:
        """Deregisters the member and gives up its leases."""

    @abstractmethod
    async def _commit_as_member(
        self, stream: str | None, group: str, value: int, member: str, generation: int
    ) -> bool:
        """``commit_offset`` (``stream`` None: ``commit_position``) if the member holds the
        unit under ``generation``, else ``ConsumerFencedError``."""

    @abstractmethod
    async def _consumer_members(self) -> list[tuple[str, str, datetime, list[str]]]:
        """``(group, member, last heartbeat, units held)`` of every registered member."""

    @abstractmethod
    def _feed_follower(self) -> FeedFollower:
        """Registers for the wake-up of appends to any stream (until dropped)."""

    # ------------------------------------------------------------------ transactions

    @abstractmethod
    async def _begin(self, idle_limit: float | None) -> TransactionSession:
        """Begins a transaction (``transactions``) that the server ends if it sits idle for
        ``idle_limit`` seconds."""

    def _default_transaction_timeout(self) -> float | None:
        """How long a transaction may take when ``transaction()`` does not say."""
        return None

    # The reads return an awaitable ``paging.EventPage`` rather than being coroutines, so a
    # store can start the read when it is called (PostgreSQL: the statement is sent at once):
    # ``paging.paginate`` asks for the next page before the current one is decoded.

    @abstractmethod
    def _read_stream(self, stream: str, offset: int, limit: int) -> Awaitable[EventPage]:
        """At most ``limit`` events of ``stream`` from ``offset``, in offset order."""

    @abstractmethod
    def _read_all(self, after_position: int, limit: int) -> Awaitable[EventPage]:
        """At most ``limit`` events after ``after_position``, in position order."""

    @abstractmethod
    async def _stream_version(self, stream: str) -> int:
        """The offset of the stream's last event; -1 for a stream never written."""

    @abstractmethod
    async def _head_position(self) -> int:
        """The highest position ever committed; 0 when never written. Never goes back."""

    @abstractmethod
    async def _stream_metadata(self, stream: str) -> StreamMetadata | None:
        """The seed's ``stream_metadata`` of one stream; None when never written."""

    # ------------------------------------------------------------------ ephemeral streams

    @abstractmethod
    async def _enqueue(self, stream: str, batch: _core.EventBatch, delay: float) -> None:
        """Queues the batch in order, skipping ids already queued or dead-lettered."""

    @abstractmethod
    async def _dequeue(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        visibility_timeout: float,
        wait: float | None,
        acks: _core.Receipts | None,
    ) -> list[QueuedEvent]:
        """Acknowledges ``acks``, then leases up to ``max_count`` messages in enqueue order;
        with ``wait`` (seconds), waits that long at most for one to come."""

    @abstractmethod
    async def _acknowledge(self, receipts: _core.Receipts) -> int:
        """Deletes the messages whose receipts still hold their lease; returns how many."""

    @abstractmethod
    async def _nack(self, receipt: _core.Receipts, requeue: bool, delay: float | None) -> bool:
        """Requeues (after ``delay``, else the stream's backoff) or dead-letters one message."""

    @abstractmethod
    async def _extend_lease(self, receipt: _core.Receipts, visibility_timeout: float) -> bool:
        """Keeps one message leased for ``visibility_timeout`` seconds from now."""

    @abstractmethod
    async def _queue_stats(self, stream: str) -> QueueStats:
        """The queue's counts, read without writing: a message whose last lease expired
        counts as a dead letter already."""

    @abstractmethod
    async def _dead_letters(self, stream: str, limit: int) -> list[DeadLetter]:
        """The stream's dead letters (spent messages included), by failure time, then id."""

    @abstractmethod
    async def _redrive(self, stream: str, ids: list[uuid.UUID] | None) -> int:
        """Moves dead letters (all, or those of ``ids``) back to the tail of the queue."""

    @abstractmethod
    async def _delete_dead_letters(self, stream: str, ids: list[uuid.UUID] | None) -> int:
        """Deletes dead letters (all, or those of ``ids``); returns how many."""

    @abstractmethod
    async def _purge_queue(self, stream: str) -> int:
        """Deletes every message of the stream, leased or not; returns how many."""
