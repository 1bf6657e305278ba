"""``EventStore``: the interface both stores implement, for type hints and for switching
stores at run time (in-memory in tests and development, PostgreSQL in production)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .administration import StreamInfo
from .configuration import StreamConfiguration
from .events import AppendResult, DeadLetter, Event, QueuedEvent, StoredEvent
from .health import Health
from .offsets import OMITTED, ConsumerGroupInfo, Omitted
from .queue_stats import QueueStats, StreamMetadata
from .replay import ProgressCallback
from .retention import RetentionPolicy, RetentionReport

if TYPE_CHECKING:
    from .consumers import CommitStrategy, Selector, Subscription
    from .transactions import Transaction
    from .workers import Handler, Worker, WorkerReport

Receipt = QueuedEvent | uuid.UUID | str
Seconds = float | timedelta


@runtime_checkable
class EventStore(Protocol):
    async def __aenter__(self) -> EventStore: ...
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    async def close(self) -> None: ...

    async def append(
        self,
        stream: str,
        event: Event,
        metadata: Mapping[str, Any] | None = None,
        *,
        expected_version: int | None = None,
    ) -> int: ...
    async def append_batch(
        self, stream: str, events: Iterable[Event], *, expected_version: int | None = None
    ) -> AppendResult: ...
    def transaction(self, timeout: Seconds | None = None) -> Transaction: ...
    def subscribe(
        self,
        selector: str | Selector,
        group: str,
        consumer_id: str,
        *,
        batch_size: int = 100,
        commit: CommitStrategy = "after_batch",
        commit_interval: Seconds = 5.0,
        from_offset: int | None = None,
        heartbeat_interval: Seconds = 10.0,
        session_timeout: Seconds = 30.0,
    ) -> Subscription: ...
    async def run_consumer(
        self,
        handler: Callable[[StoredEvent], Awaitable[Any]],
        selector: str | Selector,
        group: str,
        consumer_id: str,
        **options: Any,
    ) -> None: ...
    def worker(
        self,
        queue: str,
        handler: Handler,
        *,
        consumer_id: str | None = None,
        concurrency: int = 10,
        batch_size: int | None = None,
        visibility_timeout: Seconds = 30.0,
        grace_period: Seconds = 30.0,
        poll_wait: Seconds = 5.0,
    ) -> Worker: ...
    async def run_worker(
        self,
        queue: str,
        handler: Handler,
        *,
        consumer_id: str | None = None,
        concurrency: int = 10,
        batch_size: int | None = None,
        visibility_timeout: Seconds = 30.0,
        grace_period: Seconds = 30.0,
        poll_wait: Seconds = 5.0,
        handle_signals: bool = False,
    ) -> WorkerReport: ...
    def read_stream(
        self,
        stream: str,
        start_offset: int | None = None,
        *,
        max_count: int | None = None,
        backwards: bool = False,
    ) -> AsyncIterator[StoredEvent]: ...
    def read_all(
        self,
        after_position: int | None = None,
        *,
        max_count: int | None = None,
        event_types: str | Iterable[str] | None = None,
        stream_prefix: str | None = None,
        until_position: int | None = None,
        follow: bool = False,
    ) -> AsyncIterator[StoredEvent]: ...
    async def get_last_event(self, stream: str) -> StoredEvent | None: ...
    async def get_stream_version(self, stream: str) -> int: ...
    async def get_head_position(self) -> int: ...
    async def get_stream_metadata(self, stream: str) -> StreamMetadata | None: ...
    def find_events(
        self,
        *,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        event_type: str | Iterable[str] | None = None,
        stream: str | None = None,
        stream_prefix: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        data_contains: Any = None,
        limit: int | None = None,
    ) -> AsyncIterator[StoredEvent]: ...
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
        batch_size: int = 100,
        progress: ProgressCallback | None = None,
        progress_interval: Seconds = 1.0,
    ) -> AsyncIterator[StoredEvent]: ...
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
        batch_size: int = 100,
        progress: ProgressCallback | None = None,
        progress_interval: Seconds = 1.0,
    ) -> AsyncIterator[StoredEvent]: ...

    async def commit_offset(
        self, stream: str, group: str, offset: int, *, expected: int | Omitted | None = OMITTED
    ) -> bool: ...
    async def reset_offset(self, stream: str, group: str, offset: int) -> None: ...
    async def get_committed_offset(self, stream: str, group: str) -> int | None: ...
    async def delete_consumer_group(self, stream: str | None, group: str) -> bool: ...
    async def list_consumer_groups(self, stream: str | None = None) -> list[ConsumerGroupInfo]: ...
    async def commit_position(
        self, group: str, position: int, *, expected: int | Omitted | None = OMITTED
    ) -> bool: ...
    async def get_committed_position(self, group: str) -> int | None: ...

    async def enqueue(
        self, stream: str, event: Event, *, delay: Seconds | None = None
    ) -> uuid.UUID: ...
    async def enqueue_batch(
        self, stream: str, events: Iterable[Event], *, delay: Seconds | None = None
    ) -> list[uuid.UUID]: ...
    async def dequeue(
        self,
        stream: str,
        consumer_id: str,
        visibility_timeout: Seconds = 30.0,
        *,
        wait: Seconds | None = None,
    ) -> QueuedEvent | None: ...
    async def dequeue_batch(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        visibility_timeout: Seconds = 30.0,
        *,
        wait: Seconds | None = None,
        acknowledge: Iterable[Receipt] | None = None,
    ) -> list[QueuedEvent]: ...
    async def acknowledge(self, event_or_id: Receipt) -> bool: ...
    async def acknowledge_batch(self, events_or_ids: Iterable[Receipt]) -> int: ...
    async def nack(
        self, event_or_id: Receipt, requeue: bool = True, *, delay: Seconds | None = None
    ) -> bool: ...
    async def extend_lease(self, queued_event: Receipt, visibility_timeout: Seconds) -> bool: ...
    async def get_pending_count(self, stream: str) -> int: ...
    async def get_queue_stats(self, stream: str) -> QueueStats: ...
    async def get_dead_letters(self, stream: str, *, limit: int = 100) -> list[DeadLetter]: ...
    async def redrive_dead_letters(
        self, stream: str, event_ids: Iterable[uuid.UUID | str] | None = None
    ) -> int: ...
    async def delete_dead_letters(
        self, stream: str, event_ids: Iterable[uuid.UUID | str] | None = None
    ) -> int: ...
    async def purge_queue(self, stream: str) -> int: ...

    # operating the store: retention, configuration, administration, health
    async def set_retention_policy(self, policy: RetentionPolicy) -> None: ...
    async def get_retention_policies(self) -> list[RetentionPolicy]: ...
    async def delete_retention_policy(self, stream_name: str) -> bool: ...
    async def apply_retention(self, *, batch_size: int = ...) -> RetentionReport: ...
    async def apply_retention_policies(self, *, batch_size: int = ...) -> int: ...
    async def set_stream_configuration(self, configuration: StreamConfiguration) -> None: ...
    async def get_stream_configuration(self, stream: str) -> StreamConfiguration | None: ...
    async def list_stream_configurations(self) -> list[StreamConfiguration]: ...
    async def delete_stream_configuration(self, stream: str) -> bool: ...
    async def delete_stream(self, stream: str) -> int: ...
    async def truncate_stream(self, stream: str, before_offset: int) -> int: ...
    async def list_streams(self, prefix: str | None = None) -> list[StreamInfo]: ...
    async def health(self, *, lag_degraded: int = ..., lag_unhealthy: int = ...) -> Health: ...
