"""What the commands print: JSON lines for scripts (the default), or an aligned table for
people (``--format table``), from the same records."""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TextIO

from ..events import DeadLetter, QueuedEvent, StoredEvent

__all__ = [
    "Table",
    "Writer",
    "event_record",
    "to_json",
]

Record = dict[str, Any]


def _jsonable(value: Any) -> Any:
    """``json.dumps``' fallback for the values records hold besides JSON's own."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Decimal):
        # Read back from a number beyond a float's range: the exact digits, as text.
        return str(value)
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (tuple, set, frozenset)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"cannot print a value of type {type(value).__name__} as JSON")


def to_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_jsonable)


def event_record(event: StoredEvent | QueuedEvent | DeadLetter) -> Record:
    """An event, a leased message or a dead letter as the JSON object ``read``, ``tail``,
    ``dequeue`` and ``dead-letters list`` print."""
    record: Record = {"stream": event.stream}
    if isinstance(event, StoredEvent):
        record |= {"offset": event.offset, "position": event.position}
    record |= {
        "id": event.id,
        "type": event.type,
        "data": event.data,
        "metadata": event.metadata,
        "correlation_id": event.correlation_id,
        "causation_id": event.causation_id,
    }
    if isinstance(event, StoredEvent):
        record |= {"timestamp": event.timestamp, "version": event.version}
    elif isinstance(event, QueuedEvent):
        record |= {
            "delivery_count": event.delivery_count,
            "enqueued_at": event.enqueued_at,
            "consumer_id": event.consumer_id,
            "lease_expires_at": event.lease_expires_at,
            "lease": event.lease,
        }
    else:
        record |= {
            "delivery_count": event.delivery_count,
            "enqueued_at": event.enqueued_at,
            "failed_at": event.failed_at,
            "reason": event.reason,
        }
    return record


# ----------------------------------------------------------------------------- tables

TRUNCATE_AT = 60  # characters of a free-text cell (an event's data) in a table


def cell(value: Any, *, limit: int | None = None) -> str:
    """A table cell: blank for None, ISO times without microseconds, JSON for structures."""
    if value is None:
        text = ""
    elif isinstance(value, datetime):
        text = value.replace(microsecond=0).isoformat(sep=" ")
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, float):
        # Seconds and ages: whole numbers as such, else to the millisecond; never 7.8e+06.
        text = f"{value:.3f}".rstrip("0").rstrip(".")
    elif isinstance(value, (str, int, uuid.UUID)):
        text = str(value)
    else:
        text = to_json(value)
    text = text.replace("\n", " ")
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


@dataclasses.dataclass
class Column:
    header: str
    key: str
    right: bool = False  # numbers align right
    limit: int | None = None


class Table:
    """Aligned columns, header first. Rows may come in several chunks (a long read, a
    follow): each chunk widens the columns if it needs to, and rows already printed stay as
    they are, so nothing is held back waiting for the widest value."""

    def __init__(self, columns: Sequence[Column], out: TextIO) -> None:
        self.columns = list(columns)
        self.out = out
        self.widths = [len(c.header) for c in self.columns]
        self.started = False

    def write(self, records: Iterable[Record]) -> None:
        rows = [
            [cell(record.get(c.key), limit=c.limit) for c in self.columns] for record in records
        ]
        for row in rows:
            self.widths = [max(w, len(v)) for w, v in zip(self.widths, row, strict=True)]
        if not self.started:
            self.started = True
            self._line([c.header for c in self.columns])
            self._line(["-" * w for w in self.widths])
        for row in rows:
            self._line(row)

    def _line(self, values: Sequence[str]) -> None:
        parts = [
            value.rjust(width) if column.right else value.ljust(width)
            for value, width, column in zip(values, self.widths, self.columns, strict=True)
        ]
        self.out.write("  ".join(parts).rstrip() + "\n")


class Writer:
    """Prints records as JSON lines or as a table (``--format``). ``live`` flushes after
    each write: a follower's output reaches a pipe at once, not when a buffer fills."""

    def __init__(
        self,
        output_format: str,
        columns: Sequence[Column],
        *,
        live: bool = False,
        out: TextIO | None = None,
    ) -> None:
        self.out = out or sys.stdout
        self.live = live
        self.table = Table(columns, self.out) if output_format == "table" else None
        self.count = 0

    def write(self, records: Iterable[Record]) -> None:
        listed = list(records)
        self.count += len(listed)
        if self.table is not None:
            if listed or not self.table.started:
                self.table.write(listed)
        else:
            self.out.write("".join(to_json(record) + "\n" for record in listed))
        if self.live:
            self.out.flush()

    def write_one(self, record: Record) -> None:
        self.write([record])


# Columns of the event-like records, for --format table.
STORED_EVENT_COLUMNS = (
    Column("stream", "stream"),
    Column("offset", "offset", right=True),
    Column("position", "position", right=True),
    Column("timestamp", "timestamp"),
    Column("type", "type"),
    Column("data", "data", limit=TRUNCATE_AT),
)
QUEUED_EVENT_COLUMNS = (
    Column("id", "id"),
    Column("type", "type"),
    Column("deliveries", "delivery_count", right=True),
    Column("enqueued at", "enqueued_at"),
    Column("lease expires", "lease_expires_at"),
    Column("data", "data", limit=TRUNCATE_AT),
)
DEAD_LETTER_COLUMNS = (
    Column("id", "id"),
    Column("type", "type"),
    Column("deliveries", "delivery_count", right=True),
    Column("failed at", "failed_at"),
    Column("reason", "reason"),
    Column("data", "data", limit=TRUNCATE_AT),
)
