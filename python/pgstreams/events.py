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

from ._core import DeadLetter, QueuedEvent, StoredEvent

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
    is recognised as a retry."""

    type: str
    data: Any
    metadata: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=new_event_id)
    correlation_id: str | None = None
    causation_id: str | None = None

    def __init__(
        self,
        type: str,
        data: Any,
        *,
        metadata: Mapping[str, Any] | None = None,
        id: uuid.UUID | None = None,
        correlation_id: str | None = None,
        causation_id: str | None = None,
    ) -> None:
        set_field = object.__setattr__
        set_field(self, "type", type)
        set_field(self, "data", data)
        set_field(self, "metadata", dict(metadata) if metadata is not None else {})
        set_field(self, "id", id if id is not None else new_event_id())
        set_field(self, "correlation_id", correlation_id)
        set_field(self, "causation_id", causation_id)

    def with_metadata(self, extra: Mapping[str, Any]) -> Event:
        """A copy whose metadata is this event's merged with ``extra`` (``extra`` wins)."""
        return Event(
            self.type,
            self.data,
            metadata={**self.metadata, **extra},
            id=self.id,
            correlation_id=self.correlation_id,
            causation_id=self.causation_id,
        )
