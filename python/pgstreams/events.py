"""The event a caller writes. The result classes (`StoredEvent`, `QueuedEvent`, `DeadLetter`)
are frozen classes of the Rust core, shared by both stores."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._core import MAX_NAME_BYTES, DeadLetter, QueuedEvent, StoredEvent
from .errors import ConfigurationError, SerializationError

__all__ = ["DeadLetter", "Event", "QueuedEvent", "StoredEvent", "new_event_id"]

_last_uuid7 = 0
_uuid7_lock = threading.Lock()


def new_event_id() -> uuid.UUID:
    """A UUIDv7: time-ordered, so ids appended together sit together in the unique index
    (random v4 ids scatter every insert across the whole B-tree). Monotonic within a process."""
    global _last_uuid7
    with _uuid7_lock:
        millis = time.time_ns() // 1_000_000
        random_bits = int.from_bytes(os.urandom(10), "big") & ((1 << 74) - 1)
        candidate = (millis << 74) | random_bits
        if candidate <= _last_uuid7:
            candidate = _last_uuid7 + 1
        _last_uuid7 = candidate
    millis, random_bits = candidate >> 74, candidate & ((1 << 74) - 1)
    rand_a, rand_b = random_bits >> 62, random_bits & ((1 << 62) - 1)
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)


@dataclass(frozen=True, slots=True)
class Event:
    """An event to append or enqueue. ``data`` and ``metadata`` must be JSON (see the README);
    the id is generated (time-ordered) when not given, so retrying the same ``Event`` object
    is recognised as a retry. ``version`` is the event's schema version, kept with a
    persistent stream's events (``StoredEvent.version``); the queue does not keep it."""

    type: str
    data: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=new_event_id)
    correlation_id: str | None = None
    causation_id: str | None = None
    version: int = 1

    def __init__(
        self,
        type: str,
        data: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        id: uuid.UUID | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        version: int = 1,
    ) -> None:
        set_field = object.__setattr__
        set_field(self, "type", _check_type(type))
        set_field(self, "data", data)
        set_field(self, "metadata", _check_metadata(metadata))
        set_field(self, "id", new_event_id() if id is None else _check_id(id))
        set_field(self, "correlation_id", _check_optional_text(correlation_id, "correlation_id"))
        set_field(self, "causation_id", _check_optional_text(causation_id, "causation_id"))
        set_field(self, "version", _check_version(version))

    def with_metadata(self, extra: Mapping[str, Any]) -> Event:
        """A copy whose metadata is this event's merged with ``extra`` (``extra`` wins)."""
        return Event(
            self.type,
            self.data,
            metadata={**self.metadata, **extra},
            id=self.id,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
            version=self.version,
        )


# The Event's own checks: a wrong type or value fails where the Event is made, naming the
# argument. What its JSON may hold (and NUL or lone surrogates in its strings) is checked when
# it is stored, by the Rust codec, which names the place (``events[2].data["x"]``).


def _check_length(value: str, name: str) -> str:
    """Types and correlation and causation ids are index keys: at most MAX_NAME_BYTES."""
    try:
        size = len(value.encode())
    except UnicodeEncodeError:
        return value  # refused when stored, with the place named
    if size > MAX_NAME_BYTES:
        raise ConfigurationError(f"Event {name} is longer than {MAX_NAME_BYTES} bytes in UTF-8")
    return value


def _check_type(value: object) -> str:
    if not isinstance(value, str):
        raise SerializationError(f"Event type must be a str, got {type(value).__name__}")
    if not value:
        raise ConfigurationError("Event type must not be empty")
    return _check_length(value, "type")


def _check_metadata(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise SerializationError(
            f"Event metadata must be a mapping (a dict) or None, got {type(value).__name__}"
        )
    return dict(value)


def _check_id(value: object) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            raise ConfigurationError(f"Event id {value!r} is not a UUID") from None
    raise SerializationError(
        f"Event id must be a uuid.UUID (or its text), got {type(value).__name__}"
    )


def _check_optional_text(value: object, name: str) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _check_length(value, name)
    raise SerializationError(f"Event {name} must be a str or None, got {type(value).__name__}")


def _check_version(value: object) -> int:
    """The event's schema version (``events.version``, a PostgreSQL integer): 1 to 2**31-1."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SerializationError(f"Event version must be an int, got {type(value).__name__}")
    if not 1 <= value <= 2**31 - 1:
        raise ConfigurationError(f"Event version must be from 1 to 2147483647, got {value}")
    return value
