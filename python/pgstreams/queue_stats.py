"""Small result records of the housekeeping calls (shared by both stores)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class StreamMetadata:
    """The seed's ``stream_metadata`` view for one persistent stream."""

    stream: str
    length: int
    first_offset: int | None
    last_offset: int | None
    oldest_timestamp: datetime | None
    newest_timestamp: datetime | None
    version: int


@dataclass(frozen=True)
class QueueStats:
    """Counts of one ephemeral stream: visible now, delayed (incl. nacked with a delay),
    leased, dead letters, and the age in seconds of its oldest message (None when empty)."""

    stream: str
    visible: int
    delayed: int
    leased: int
    dead: int
    oldest_age: float | None
