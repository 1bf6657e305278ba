"""pgstreams: PostgreSQL as an event store and a message queue, with its hot paths in Rust."""

from __future__ import annotations

import atexit
import logging

from ._core import __version__, _shutdown
from .errors import (
    ConcurrencyError,
    ConfigurationError,
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
from .events import DeadLetter, Event, QueuedEvent, StoredEvent
from .memory import InMemoryEventStore
from .migrator import DatabaseMigrator
from .offsets import OMITTED, ConsumerGroupInfo
from .options import PostgresOptions
from .postgres import PostgresEventStore, connect
from .protocol import EventStore
from .queue_stats import QueueStats, StreamMetadata
from .replay import ReplayProgress

logging.getLogger("pgstreams").addHandler(logging.NullHandler())
# No call of the Rust core may finish into a finalizing interpreter (see rust/src/py/bridge.rs).
atexit.register(_shutdown)

__all__ = [
    "OMITTED",
    "ConcurrencyError",
    "ConfigurationError",
    "ConsumerGroupInfo",
    "DatabaseError",
    "DatabaseMigrator",
    "DeadLetter",
    "DuplicateEventError",
    "Event",
    "EventStore",
    "EventStreamingError",
    "InMemoryEventStore",
    "InternalError",
    "MigrationError",
    "PostgresEventStore",
    "PostgresOptions",
    "QueueStats",
    "QueuedEvent",
    "ReplayProgress",
    "SerializationError",
    "StoreClosedError",
    "StoreTimeoutError",
    "StoredEvent",
    "StreamMetadata",
    "UndecodableEventError",
    "__version__",
    "connect",
]
