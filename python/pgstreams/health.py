"""``Health``: what ``store.health()`` reports, and how its status is decided."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

__all__ = [
    "DEFAULT_LAG_DEGRADED",
    "DEFAULT_LAG_UNHEALTHY",
    "ConsumerGroupHealth",
    "Health",
    "PoolHealth",
    "QueueHealth",
    "Status",
    "StreamHealth",
]

Status = Literal["healthy", "degraded", "unhealthy"]

# The original's examples: a consumer group this many events behind is degraded / unhealthy.
DEFAULT_LAG_DEGRADED = 1_000
DEFAULT_LAG_UNHEALTHY = 10_000


@dataclass(frozen=True)
class StreamHealth:
    """A persistent stream: its length and the age in seconds of its newest event (None
    when it holds none)."""

    stream: str
    length: int
    newest_event_age: float | None


@dataclass(frozen=True)
class ConsumerGroupHealth:
    """A consumer group on a stream: ``lag`` events not consumed yet (the stream's next
    offset minus the group's committed offset), and the status that lag gives."""

    stream: str
    group: str
    committed_offset: int
    lag: int
    status: Status


@dataclass(frozen=True)
class QueueHealth:
    """An ephemeral stream: ``depth`` messages not acknowledged (``ready`` + ``delayed`` +
    ``in_flight``; dead letters excluded), and the age in seconds of its oldest one."""

    stream: str
    depth: int
    ready: int
    in_flight: int
    delayed: int
    dead_letters: int
    oldest_message_age: float | None


@dataclass(frozen=True)
class PoolHealth:
    """The connection pool: open connections, idle ones, callers waiting for one, and the
    maximum (all 0 for the in-memory store)."""

    size: int
    available: int
    waiting: int
    max_size: int


@dataclass(frozen=True)
class Health:
    """``status`` is the worst of: each consumer group's (``"degraded"`` at
    ``lag_degraded`` events behind, ``"unhealthy"`` at ``lag_unhealthy``), ``"degraded"``
    while callers wait for a pooled connection, and ``"unhealthy"`` when the store could not
    be read (``error`` says why; the lists are then empty). ``reasons`` explains a status
    other than healthy."""

    status: Status
    reasons: tuple[str, ...]
    checked_at: datetime
    streams: tuple[StreamHealth, ...]
    consumer_groups: tuple[ConsumerGroupHealth, ...]
    queues: tuple[QueueHealth, ...]
    pool: PoolHealth
    error: str | None = None


_RANK: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


def worst(statuses: list[Status]) -> Status:
    return max(statuses, key=_RANK.__getitem__, default="healthy")


def lag_status(lag: int, degraded: int, unhealthy: int) -> Status:
    if lag >= unhealthy:
        return "unhealthy"
    if lag >= degraded:
        return "degraded"
    return "healthy"
