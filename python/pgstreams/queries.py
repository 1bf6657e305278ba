"""Finding events by what they are: ``EventQuery`` (the filter both stores apply: PostgreSQL in
SQL, each condition served by an index of migration 001; the in-memory store by ``matches``)
and ``find_events``, ``read_all``'s filters and ``get_last_event`` on the shared base.

Time bounds are half-open, ``[since, until)``, and must be timezone-aware: a naive datetime
could mean any time zone, so it is refused rather than guessed.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from . import _core
from . import validation as check
from .backend import Backend
from .errors import ConfigurationError
from .events import StoredEvent
from .paging import EventPage, last_position, paginate

__all__ = ["EventQuery", "QueryApi", "contains", "to_micros"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(value: object, what: str) -> int:
    """A timezone-aware ``datetime`` as microseconds since the Unix epoch (exact)."""
    if not isinstance(value, datetime):
        raise ConfigurationError(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ConfigurationError(
            f"{what} must be timezone-aware (a naive datetime could mean any zone), got {value!r}"
        )
    return (value - _EPOCH) // timedelta(microseconds=1)


def _names(value: object, what: str) -> tuple[str, ...] | None:
    """One name or an iterable of names (event types), each checked; None: no filter."""
    if value is None:
        return None
    if isinstance(value, str):
        return (check.check_name(value, what),)
    if not isinstance(value, Iterable):
        raise ConfigurationError(
            f"{what} must be a str or a list of str, got {type(value).__name__}"
        )
    names = tuple(check.check_name(name, what) for name in value)
    if not names:
        raise ConfigurationError(f"{what} must not be empty (None means any)")
    return names


@dataclass(frozen=True)
class EventQuery:
    """Which events a read selects, beyond its cursor. Every field is optional; all given
    conditions must hold. ``since`` and ``until`` are microseconds since the Unix epoch
    (``since`` inclusive, ``until`` exclusive); ``from_offset`` and ``until_position`` are
    inclusive, ``after_position`` exclusive. ``data_contains`` is the JSON of a document the event's data must contain
    (jsonb's ``@>``)."""

    stream: str | None = None
    stream_prefix: str | None = None
    event_types: tuple[str, ...] | None = None
    correlation_id: str | None = None
    causation_id: str | None = None
    since: int | None = None
    until: int | None = None
    data_contains: bytes | None = None
    from_offset: int | None = None
    until_position: int | None = None
    after_position: int | None = None

    @classmethod
    def checked(
        cls,
        *,
        stream: object = None,
        stream_prefix: object = None,
        event_types: object = None,
        correlation_id: object = None,
        causation_id: object = None,
        since: object = None,
        until: object = None,
        data_contains: object = None,
        from_offset: object = None,
        until_position: object = None,
        after_position: object = None,
        names: Mapping[str, str] | None = None,
    ) -> EventQuery:
        """The query of these arguments, each checked (a ``ConfigurationError`` or, for a
        document that cannot be JSON, a ``SerializationError``, naming it: by the caller's
        name for it, ``names[field]``, when the caller calls it otherwise)."""
        named = dict(names or {})

        def name(field: str) -> str:
            return named.get(field, field)

        return cls(
            stream=None if stream is None else check.check_stream(stream),
            stream_prefix=(
                None if stream_prefix is None else check.check_name(stream_prefix, "stream_prefix")
            ),
            event_types=_names(event_types, "event_types"),
            correlation_id=(
                None
                if correlation_id is None
                else check.check_name(correlation_id, "correlation_id")
            ),
            causation_id=(
                None if causation_id is None else check.check_name(causation_id, "causation_id")
            ),
            since=None if since is None else to_micros(since, name("since")),
            until=None if until is None else to_micros(until, name("until")),
            data_contains=(
                None if data_contains is None else _core.json_dumps(data_contains, "data_contains")
            ),
            from_offset=(
                None
                if from_offset is None
                else check.check_int(from_offset, "from_offset", minimum=0)
            ),
            until_position=(
                None
                if until_position is None
                else check.check_int(until_position, "until_position", minimum=0)
            ),
            after_position=(
                None
                if after_position is None
                else check.check_int(after_position, "after_position", minimum=-1)
            ),
        )

    @property
    def empty(self) -> bool:
        """No condition at all: every event."""
        return self == EventQuery()

    def to_core(self) -> dict[str, Any]:
        """The filter as the Rust core takes it (``RawFilter``)."""
        return {
            "stream": self.stream,
            "stream_prefix": self.stream_prefix,
            "event_types": None if self.event_types is None else list(self.event_types),
            "correlation_id": self.correlation_id,
            "causation_id": self.causation_id,
            "since": self.since,
            "until": self.until,
            "data_contains": self.data_contains,
            "from_offset": self.from_offset,
            "until_position": self.until_position,
            "after_position": self.after_position,
        }

    def matches(
        self,
        *,
        stream: str,
        offset: int,
        position: int,
        event_type: str,
        correlation_id: str | None,
        causation_id: str | None,
        created_us: int,
        data: bytes,
    ) -> bool:
        """Whether an event with these columns is selected (the in-memory store's WHERE)."""
        return (
            (self.stream is None or stream == self.stream)
            and (self.stream_prefix is None or stream.startswith(self.stream_prefix))
            and (self.event_types is None or event_type in self.event_types)
            and (self.correlation_id is None or correlation_id == self.correlation_id)
            and (self.causation_id is None or causation_id == self.causation_id)
            and (self.since is None or created_us >= self.since)
            and (self.until is None or created_us < self.until)
            and (self.from_offset is None or offset >= self.from_offset)
            and (self.until_position is None or position <= self.until_position)
            and (self.after_position is None or position > self.after_position)
            and (
                self.data_contains is None
                or contains(_core.json_loads(data), _core.json_loads(self.data_contains))
            )
        )


def contains(document: Any, pattern: Any, *, top: bool = True) -> bool:
    """jsonb's ``document @> pattern``: an object contains an object whose every member it
    contains; an array contains an array whose every element one of its elements contains
    (and, at the top level only, a scalar it holds); a scalar contains an equal scalar
    (numbers by value, so 1 and 1.0 are equal, as jsonb compares numerics)."""
    if isinstance(pattern, dict):
        return isinstance(document, dict) and all(
            key in document and contains(document[key], value, top=False)
            for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(document, list) and all(
            any(contains(element, wanted, top=False) for element in document) for wanted in pattern
        )
    if isinstance(document, list) and top:
        return any(_scalar_equal(element, pattern) for element in document)
    return _scalar_equal(document, pattern)


def _scalar_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return not (isinstance(a, float) and math.isnan(a)) and a == b
    if isinstance(a, dict | list) or isinstance(b, dict | list):
        return False
    return bool(a == b) and type(a) is type(b)


class QueryApi(Backend):
    """``find_events`` and ``get_last_event``, over the query primitives."""

    @abstractmethod
    def _find(self, query: EventQuery, after_position: int, limit: int) -> Awaitable[EventPage]:
        """At most ``limit`` events after ``after_position`` matching ``query``, in position
        order (an awaitable, like ``Backend._read_stream``)."""

    @abstractmethod
    async def _count(self, query: EventQuery) -> int:
        """How many events match ``query``."""

    @abstractmethod
    def _read_stream_backwards(
        self, stream: str, start_offset: int, limit: int
    ) -> Awaitable[EventPage]:
        """At most ``limit`` events of ``stream`` from ``start_offset`` down, newest first (an
        awaitable, like ``Backend._read_stream``)."""

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
    ) -> AsyncIterator[StoredEvent]:
        """The events matching every filter given, in position order, fetched
        ``read_batch_size`` at a time. ``event_type`` is one type or several; a stream prefix
        selects a category (``"order-"``); ``since``/``until`` bound the event's time,
        ``[since, until)``, timezone-aware; ``data_contains`` is a JSON document the data must
        contain (jsonb's ``@>``, served by the GIN index)."""
        query = EventQuery.checked(
            correlation_id=correlation_id,
            causation_id=causation_id,
            event_types=event_type,
            stream=stream,
            stream_prefix=stream_prefix,
            since=since,
            until=until,
            data_contains=data_contains,
        )
        return self._query_pages(query, -1, check.check_optional_count(limit, "limit"))

    def _query_pages(
        self, query: EventQuery, after_position: int, max_count: int | None
    ) -> AsyncIterator[StoredEvent]:
        """The matching events after ``after_position``, a batch at a time."""

        def fetch(position: int, limit: int) -> Awaitable[EventPage]:
            self._check_open()
            return self._find(query, position, limit)

        return paginate(fetch, after_position, last_position, max_count, self.read_batch_size)

    async def get_last_event(self, stream: str) -> StoredEvent | None:
        """The stream's newest event (None when it has none): one indexed lookup, never a
        scan of the stream, for loading an aggregate from its snapshot onwards."""
        check.check_stream(stream)
        self._check_open()
        newest = (await self._read_stream_backwards(stream, check.MAX_BIGINT, 1)).events()
        return newest[0] if newest else None
