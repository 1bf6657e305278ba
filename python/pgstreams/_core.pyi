"""Type stubs of the Rust extension (checked against the module by mypy.stubtest)."""

import uuid
from collections.abc import Awaitable, Iterable, Mapping
from datetime import datetime
from typing import Any, Final, Self, final

from .offsets import CommitOutcome
from .options import CoreConfig
from .retention import RuleSource

__all__ = [
    "BUNDLED_MIGRATIONS",
    "MAX_DURATION_SECONDS",
    "MAX_NAME_BYTES",
    "MAX_POOL_SIZE",
    "MAX_READ_BATCH_SIZE",
    "MAX_STATEMENT_TIMEOUT_SECONDS",
    "BlockingCore",
    "BlockingTransaction",
    "Core",
    "DeadLetter",
    "Event",
    "EventBatch",
    "EventPage",
    "FeedFollower",
    "QueuedEvent",
    "Receipts",
    "Session",
    "StoredEvent",
    "Transaction",
    "__version__",
    "_panicking_blocking_call",
    "_panicking_call",
    "_shutdown",
    "event_data_index_sql",
    "json_dumps",
    "json_loads",
    "migration_bootstrap_sql",
    "migration_record_sql",
    "new_event_id",
    "notify_channel",
    "parse_event_ids",
]
__version__: Final[str]
BUNDLED_MIGRATIONS: Final[list[tuple[str, str]]]
MAX_DURATION_SECONDS: Final[float]
MAX_STATEMENT_TIMEOUT_SECONDS: Final[float]
MAX_POOL_SIZE: Final[int]
MAX_NAME_BYTES: Final[int]
MAX_READ_BATCH_SIZE: Final[int]

def _shutdown() -> None: ...
def _panicking_call(place: str) -> Awaitable[Any]: ...
def _panicking_blocking_call(place: str) -> Any: ...
def json_dumps(value: Any, path: str = "value") -> bytes: ...
def json_loads(text: bytes) -> Any: ...
def parse_event_ids(values: Iterable[Any]) -> list[uuid.UUID]: ...
def migration_bootstrap_sql(schema: str) -> str: ...
def migration_record_sql(schema: str, version: int, description: str, checksum: str) -> str: ...
def event_data_index_sql(schema: str, wanted: bool, concurrently: bool) -> str: ...

@final
class EventBatch:
    def __new__(cls, events: Iterable[Any], unique_ids: bool = True) -> Self: ...
    def __len__(self) -> int: ...
    def rows(self) -> list[tuple[uuid.UUID, str, bytes, bytes, str | None, str | None, int]]: ...

@final
class Receipts:
    def __new__(cls, values: Iterable[Any]) -> Self: ...
    def __len__(self) -> int: ...
    def pairs(self) -> list[tuple[uuid.UUID, uuid.UUID | None]]: ...

def new_event_id() -> uuid.UUID: ...

@final
class Event:
    type: str
    data: Any
    metadata: dict[str, Any]
    id: uuid.UUID
    correlation_id: str | None
    causation_id: str | None
    version: int
    def __new__(
        cls,
        type: str,
        data: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        id: uuid.UUID | str | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        version: int | None = None,
    ) -> Self: ...
    def with_metadata(self, extra: Mapping[str, Any]) -> Event: ...
    def __getnewargs_ex__(self) -> tuple[tuple[Any, ...], dict[str, Any]]: ...

@final
class EventPage:
    """A read batch as fetched; ``events()`` builds the ``StoredEvent`` objects."""

    def __len__(self) -> int: ...
    @property
    def last_offset(self) -> int | None: ...
    @property
    def last_position(self) -> int | None: ...
    def events(self) -> list[StoredEvent]: ...

@final
class StoredEvent:
    stream: str
    offset: int
    position: int
    id: uuid.UUID
    type: str
    data: Any
    metadata: dict[str, Any]
    correlation_id: str | None
    causation_id: str | None
    timestamp: datetime
    version: int
    def __new__(
        cls,
        stream: str,
        offset: int,
        position: int,
        id: uuid.UUID,
        type: str,
        data: Any,
        metadata: Any,
        correlation_id: str | None,
        causation_id: str | None,
        timestamp: datetime,
        version: int,
    ) -> Self: ...

@final
class QueuedEvent:
    id: uuid.UUID
    stream: str
    type: str
    data: Any
    metadata: dict[str, Any]
    correlation_id: str | None
    causation_id: str | None
    delivery_count: int
    enqueued_at: datetime
    consumer_id: str | None
    lease_expires_at: datetime
    lease: uuid.UUID
    def __new__(
        cls,
        id: uuid.UUID,
        stream: str,
        type: str,
        data: Any,
        metadata: Any,
        correlation_id: str | None,
        causation_id: str | None,
        delivery_count: int,
        enqueued_at: datetime,
        consumer_id: str | None,
        lease_expires_at: datetime,
        lease: uuid.UUID,
    ) -> Self: ...

@final
class DeadLetter:
    id: uuid.UUID
    stream: str
    type: str
    data: Any
    metadata: dict[str, Any]
    correlation_id: str | None
    causation_id: str | None
    delivery_count: int
    enqueued_at: datetime
    failed_at: datetime
    reason: str
    def __new__(
        cls,
        id: uuid.UUID,
        stream: str,
        type: str,
        data: Any,
        metadata: Any,
        correlation_id: str | None,
        causation_id: str | None,
        delivery_count: int,
        enqueued_at: datetime,
        failed_at: datetime,
        reason: str,
    ) -> Self: ...

@final
class BlockingCore:
    """``Core.blocking()``: these calls of the store for synchronous callers, each blocking its
    thread (not the GIL) until the result."""

    def append(
        self,
        stream: str,
        batch: EventBatch,
        expected_version: int | None = None,
        strict: bool = False,
    ) -> tuple[list[int], list[int]]: ...
    def begin(self, idle_limit: float | None = None) -> BlockingTransaction: ...
    def select_versions(
        self, stream: str, gt: int | None, lte: int | None, limit: int | None, descending: bool
    ) -> list[tuple[int | None, str, bytes | None]]: ...
    def select_notifications(
        self,
        after: int,
        until: int,
        count: int,
        prefix: str,
        event_types: list[str] | None,
        uuid_ids: bool,
    ) -> list[tuple[int, Any, str | None, bytes | None, int | None]]: ...
    def query(self, sql: str, params: Iterable[Any] | None = None) -> list[tuple[Any, ...]]: ...

@final
class Core:
    def __new__(cls, config: CoreConfig) -> Self: ...
    @property
    def closed(self) -> bool: ...
    def _waited_streams(self) -> int: ...
    def release(self, leased: Iterable[QueuedEvent]) -> None: ...
    def connect(self) -> Awaitable[None]: ...
    def ping(self) -> Awaitable[tuple[str, str, str]]: ...
    def close(self) -> None: ...
    def pool_status(self) -> dict[str, int]: ...
    def execute(self, sql: str) -> Awaitable[None]: ...
    def query(
        self, sql: str, params: Iterable[Any] | None = None
    ) -> Awaitable[list[tuple[Any, ...]]]: ...
    def follow_feed(self) -> FeedFollower: ...
    def consumer_heartbeat(
        self, selector: str, group: str, member: str, session_timeout: float
    ) -> Awaitable[list[str]]: ...
    def consumer_acquire(
        self, group: str, member: str, units: list[str], ttl: float
    ) -> Awaitable[list[tuple[str, int]]]: ...
    def consumer_release(
        self, group: str, member: str, units: list[str] | None = None
    ) -> Awaitable[int]: ...
    def consumer_leave(self, selector: str, group: str, member: str) -> Awaitable[None]: ...
    def commit_as_member(
        self, stream: str | None, group: str, value: int, member: str, generation: int
    ) -> Awaitable[bool]: ...
    def consumer_members(self) -> Awaitable[list[tuple[str, str, datetime, list[str]]]]: ...
    def begin(self, idle_limit: float | None = None) -> Transaction: ...
    def append(
        self,
        stream: str,
        batch: EventBatch,
        expected_version: int | None = None,
        strict: bool = False,
    ) -> Awaitable[tuple[list[int], list[int]]]: ...
    def blocking(self) -> BlockingCore: ...
    def read_stream(self, stream: str, start_offset: int, limit: int) -> Awaitable[EventPage]: ...
    def read_all(self, after_position: int, limit: int) -> Awaitable[EventPage]: ...
    def stream_version(self, stream: str) -> Awaitable[int]: ...
    def head_position(self) -> Awaitable[int]: ...
    def enqueue(self, stream: str, batch: EventBatch, delay: float) -> Awaitable[int]: ...
    def dequeue(
        self,
        stream: str,
        consumer_id: str,
        max_count: int,
        visibility_timeout: float,
        wait: float | None = None,
        acks: Receipts | None = None,
    ) -> Awaitable[list[QueuedEvent]]: ...
    def acknowledge(self, receipts: Receipts) -> Awaitable[int]: ...
    def nack(
        self, receipt: Receipts, requeue: bool, delay: float | None = None
    ) -> Awaitable[tuple[bool, str | None]]: ...
    def extend_lease(self, receipt: Receipts, visibility_timeout: float) -> Awaitable[bool]: ...
    def applied_migrations(self) -> Awaitable[list[tuple[int, str, str | None]]]: ...
    def stream_metadata(self, stream: str) -> Awaitable[list[tuple[Any, ...]]]: ...
    def commit_offset(
        self,
        stream: str,
        group: str,
        offset: int,
        check_expected: bool,
        expected: int | None,
        force: bool,
    ) -> Awaitable[CommitOutcome]: ...
    def committed_offset(self, stream: str, group: str) -> Awaitable[int | None]: ...
    def delete_consumer_group(self, stream: str, group: str) -> Awaitable[bool]: ...
    def commit_position(
        self, group: str, position: int, check_expected: bool, expected: int | None
    ) -> Awaitable[CommitOutcome]: ...
    def committed_position(self, group: str) -> Awaitable[int | None]: ...
    def delete_position_group(self, group: str) -> Awaitable[bool]: ...
    def consumer_groups(
        self, stream: str | None = None
    ) -> Awaitable[list[tuple[str | None, str, int | None, int | None, int, datetime]]]: ...
    def read_stream_backwards(
        self, stream: str, start_offset: int, limit: int
    ) -> Awaitable[EventPage]: ...
    def find(
        self, filter: dict[str, Any], after_position: int, limit: int
    ) -> Awaitable[EventPage]: ...
    def count(self, filter: dict[str, Any]) -> Awaitable[int]: ...
    def _find_sql(self, filter: dict[str, Any]) -> str: ...
    def queue_stats(self, stream: str) -> Awaitable[list[tuple[Any, ...]]]: ...
    def dead_letters(self, stream: str, limit: int) -> Awaitable[list[DeadLetter]]: ...
    def redrive(self, stream: str, ids: Iterable[uuid.UUID] | None = None) -> Awaitable[int]: ...
    def delete_dead_letters(
        self, stream: str, ids: Iterable[uuid.UUID] | None = None
    ) -> Awaitable[int]: ...
    def purge_queue(self, stream: str) -> Awaitable[int]: ...
    # ---- operating the store: retention, configuration, administration, health
    def set_retention_policy(
        self,
        stream_name: str,
        max_age: float | None,
        max_event_count: int | None,
        enabled: bool,
        respect_consumer_groups: bool,
        max_dead_letter_age: float | None,
    ) -> Awaitable[None]: ...
    def retention_policies(
        self,
    ) -> Awaitable[list[tuple[str, float | None, int | None, bool, bool, float | None]]]: ...
    def delete_retention_policy(self, stream_name: str) -> Awaitable[bool]: ...
    def retention_plan(
        self,
    ) -> Awaitable[list[tuple[str, RuleSource, int, int, int, list[str]]]]: ...
    def trim_events(self, stream: str, from_offset: int, below_offset: int) -> Awaitable[int]: ...
    def dead_letter_retention_plan(self) -> Awaitable[list[tuple[str, float]]]: ...
    def trim_dead_letters(self, stream: str, max_age: float, limit: int) -> Awaitable[int]: ...
    def set_stream_configuration(self, stream: str, document: bytes) -> Awaitable[None]: ...
    def stream_configuration(self, stream: str) -> Awaitable[list[tuple[str, dict[str, Any]]]]: ...
    def stream_configurations(self) -> Awaitable[list[tuple[str, dict[str, Any]]]]: ...
    def delete_stream_configuration(self, stream: str) -> Awaitable[bool]: ...
    def mark_stream_deleted(self, stream: str) -> Awaitable[list[tuple[int | None, int]]]: ...
    def offset_range(self, stream: str) -> Awaitable[tuple[int, int] | None]: ...
    def list_streams(
        self, prefix: str | None = None
    ) -> Awaitable[list[tuple[str, int | None, int | None, int, datetime]]]: ...
    def health(
        self,
    ) -> Awaitable[list[tuple[datetime, list[list[Any]], list[list[Any]], list[list[Any]]]]]: ...

@final
class FeedFollower:
    def generation(self) -> int: ...
    def wait(self, seen: int) -> Awaitable[None]: ...

def notify_channel(schema: str) -> str: ...

@final
class Transaction:
    def execute(self, sql: str, params: Iterable[Any] | None = None) -> Awaitable[int]: ...
    def fetch(
        self, sql: str, params: Iterable[Any] | None = None
    ) -> Awaitable[list[tuple[Any, ...]]]: ...
    def commit(
        self,
        appends: list[tuple[str, EventBatch, int | None]],
        enqueues: list[tuple[str, EventBatch, float]],
        commits: list[tuple[str | None, str, int, bool, int | None, tuple[str, int] | None]],
        acknowledgements: list[Receipts],
    ) -> Awaitable[tuple[list[tuple[list[int], list[int]]], list[int], list[bool], list[int]]]: ...
    def rollback(self) -> Awaitable[None]: ...
    def is_open(self) -> bool: ...

@final
class BlockingTransaction:
    """``BlockingCore.begin()``: ``Transaction``'s calls, each blocking its thread."""

    def execute(self, sql: str, params: Iterable[Any] | None = None) -> int: ...
    def commit(
        self,
        appends: list[tuple[str, EventBatch, int | None]],
        enqueues: list[tuple[str, EventBatch, float]],
        commits: list[tuple[str | None, str, int, bool, int | None, tuple[str, int] | None]],
        acknowledgements: list[Receipts],
    ) -> tuple[list[tuple[list[int], list[int]]], list[int], list[bool], list[int]]: ...
    def rollback(self) -> None: ...

@final
class Session:
    @staticmethod
    def open(config: CoreConfig, statement_timeout: float | None = None) -> Awaitable[Session]: ...
    def execute(self, sql: str) -> Awaitable[None]: ...
    def query(
        self, sql: str, params: Iterable[Any] | None = None
    ) -> Awaitable[list[tuple[Any, ...]]]: ...
    def close(self) -> Awaitable[None]: ...
    def ping(self) -> Awaitable[tuple[str, str, str]]: ...
    def applied_migrations(self, schema: str) -> Awaitable[list[tuple[int, str, str | None]]]: ...
    def event_data_index_state(self, schema: str) -> Awaitable[tuple[bool, bool, bool] | None]: ...
    def lock_migrations(self, lock_class: int, key: int, wait: float) -> Awaitable[None]: ...
