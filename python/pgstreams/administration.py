"""Result records of stream administration (``list_streams``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

__all__ = ["StreamInfo"]


@dataclass(frozen=True)
class StreamInfo:
    """One persistent stream as ``list_streams`` sees it.

    ``length`` is ``last_offset - first_offset + 1`` (0 when it holds no event): pgstreams
    removes events only from the start of a stream (retention, ``truncate_stream``) or all of
    them (``delete_stream``), so a stream's events are always one run of offsets; rows deleted
    from the middle by hand are not subtracted. ``version`` is the offset of its last event
    ever written (it survives deletes), ``last_write`` the time of its last append."""

    stream: str
    length: int
    first_offset: int | None
    last_offset: int | None
    version: int
    last_write: datetime
