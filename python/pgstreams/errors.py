"""The one error hierarchy of pgstreams, raised identically by both stores and by the Rust core.

The Rust extension imports these classes (``pyo3::import_exception!``), so a caller's
``except ConcurrencyError`` works whichever store raised it. Where a stdlib class fits, the
error subclasses it too, so existing ``except TypeError`` / ``except ValueError`` /
``except TimeoutError`` clauses keep working.
"""

from __future__ import annotations

__all__ = [
    "ConcurrencyError",
    "ConfigurationError",
    "ConsumerFencedError",
    "DatabaseError",
    "DuplicateEventError",
    "EventStreamingError",
    "InternalError",
    "MigrationError",
    "SerializationError",
    "StoreClosedError",
    "StoreTimeoutError",
    "UndecodableEventError",
]


class EventStreamingError(Exception):
    """Base class of every error pgstreams raises."""


class ConcurrencyError(EventStreamingError):
    """What was expected did not hold, and nothing was written: a stream's
    ``expected_version``, or a consumer group's ``expected`` committed offset or position
    (None: nothing committed yet). ``expected`` and ``actual`` say what differed."""

    def __init__(
        self,
        stream: str | None,
        expected: int | None,
        actual: int | None,
        message: str | None = None,
    ) -> None:
        super().__init__(
            message
            or f"stream {stream!r}: expected version {expected}, but the stream is at version {actual}"
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual

    def __reduce__(self) -> tuple[type, tuple[str | None, int | None, int | None, str]]:
        return (type(self), (self.stream, self.expected, self.actual, str(self)))


class ConsumerFencedError(EventStreamingError):
    """A consumer group member committed after it lost its stream (evicted for missing
    heartbeats, or the group rebalanced): nothing was committed; another member has the stream
    and goes on from the group's committed offset."""


class DuplicateEventError(EventStreamingError):
    """An event id is already stored elsewhere (not as a retry of the same call); nothing was written."""


class SerializationError(EventStreamingError, TypeError):
    """A value cannot be stored as JSON; the message names the type and where it sat."""


class ConfigurationError(EventStreamingError, ValueError):
    """A bad option, connection-string key or argument; the message names it."""


class MigrationError(EventStreamingError):
    """A migration could not be applied, or the schema is not at the version this code needs."""


class StoreClosedError(EventStreamingError):
    """The store was used after ``close()``."""


class StoreTimeoutError(EventStreamingError, TimeoutError):
    """``command_timeout``, ``connect_timeout`` or ``pool_timeout`` ran out."""


class DatabaseError(EventStreamingError):
    """An error reported by PostgreSQL; ``sqlstate`` keeps its five-character code."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate

    def __reduce__(self) -> tuple[type, tuple[str, str | None]]:
        return (type(self), (str(self), self.sqlstate))


class InternalError(EventStreamingError, RuntimeError):
    """A bug in pgstreams (a panic in its Rust core, say), reported instead of hanging; the
    message says what happened. Please report it."""


class UndecodableEventError(EventStreamingError, ValueError):
    """A stored event that cannot be turned into a ``StoredEvent`` (text that is not UTF-8,
    say, written by another tool into a ``SQL_ASCII`` database). A reader raises it after
    yielding every good event before it; the message and the attributes name the event, so a
    reader can resume past it (``read_all(after_position=error.position)``)."""

    def __init__(
        self,
        message: str,
        stream: str | None = None,
        offset: int | None = None,
        position: int | None = None,
        event_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.stream = stream
        self.offset = offset
        self.position = position
        self.event_id = event_id

    def __reduce__(self) -> tuple[type, tuple[str, str | None, int | None, int | None, str | None]]:
        return (type(self), (str(self), self.stream, self.offset, self.position, self.event_id))
