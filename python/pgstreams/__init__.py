"""pgstreams: PostgreSQL as an event store and a message queue, with its hot paths in Rust."""

from __future__ import annotations

import atexit
import logging

from ._core import __version__, _shutdown
from .administration import StreamInfo
from .configuration import (
    AccessControlSettings,
    DeadLetterSettings,
    LifecycleSettings,
    PerformanceSettings,
    RetentionSettings,
    StreamConfiguration,
)
from .consumers import Selector, Subscription
from .errors import (
    ConcurrencyError,
    ConfigurationError,
    ConsumerFencedError,
    DatabaseError,
    DuplicateEventError,
    EventStreamingError,
    InternalError,
    MigrationError,
    SerializationError,
    StoreClosedError,
    StoreTimeoutError,
    UndecodableEventError,
)
from .events import AppendResult, DeadLetter, Event, QueuedEvent, StoredEvent
from .health import ConsumerGroupHealth, Health, PoolHealth, QueueHealth, StreamHealth
from .memory import InMemoryEventStore
from .migrator import DatabaseMigrator
from .offsets import OMITTED, ConsumerGroupInfo, MemberInfo
from .options import PostgresOptions
from .postgres import PostgresEventStore, connect
from .protocol import EventStore
from .queue_stats import QueueStats, StreamMetadata
from .replay import ReplayProgress
from .retention import RetentionPolicy, RetentionReport, RetentionService, StreamTrim
from .transactions import Staged, Transaction
from .workers import Worker, WorkerReport

logging.getLogger("pgstreams").addHandler(logging.NullHandler())
# No call of the Rust core may finish into a finalizing interpreter (see rust/src/py/bridge.rs).
atexit.register(_shutdown)

__all__ = [
    "OMITTED",
    "AccessControlSettings",
    "AppendResult",
    "ConcurrencyError",
    "ConfigurationError",
    "ConsumerFencedError",
    "ConsumerGroupHealth",
    "ConsumerGroupInfo",
    "DatabaseError",
    "DatabaseMigrator",
    "DeadLetter",
    "DeadLetterSettings",
    "DuplicateEventError",
    "Event",
    "EventStore",
    "EventStreamingError",
    "Health",
    "InMemoryEventStore",
    "InternalError",
    "LifecycleSettings",
    "MemberInfo",
    "MigrationError",
    "PerformanceSettings",
    "PoolHealth",
    "PostgresEventStore",
    "PostgresOptions",
    "QueueHealth",
    "QueueStats",
    "QueuedEvent",
    "ReplayProgress",
    "RetentionPolicy",
    "RetentionReport",
    "RetentionService",
    "RetentionSettings",
    "Selector",
    "SerializationError",
    "Staged",
    "StoreClosedError",
    "StoreTimeoutError",
    "StoredEvent",
    "StreamConfiguration",
    "StreamHealth",
    "StreamInfo",
    "StreamMetadata",
    "StreamTrim",
    "Subscription",
    "Transaction",
    "UndecodableEventError",
    "Worker",
    "WorkerReport",
    "__version__",
    "connect",
]
