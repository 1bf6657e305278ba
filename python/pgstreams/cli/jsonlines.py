"""Events from JSON lines (``append`` and ``enqueue`` without TYPE and DATA): each line is
one event, read and checked a batch at a time, so a bad line stops the command before its
batch is sent and the message can say exactly what was written."""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

from ..errors import ConfigurationError, SerializationError
from ..events import Event
from .common import CliError

__all__ = ["EVENT_LINE_HELP", "BadLine", "Batch", "count_lines", "open_input", "read_batches"]

EVENT_KEYS = ("type", "data", "metadata", "id", "correlation_id", "causation_id", "version")

EVENT_LINE_HELP = """\
input: one JSON object per line (blank lines are skipped):
  {"type": "OrderPlaced", "data": {"total": 5}}
  {"type": "OrderPaid", "data": {"amount": 5}, "metadata": {"by": "cli"},
   "id": "0195...", "correlation_id": "web-1", "causation_id": "cmd-7"}
  "type" (a string) and "data" (any JSON) are required; "metadata" (an object), "id" (a
  UUID: a retry with the same ids writes nothing twice), "correlation_id",
  "causation_id" (strings) and "version" (the event's schema version, an integer) are
  optional. Any other key is refused, so a misspelt one is never dropped silently.
  Lines go in batches of --batch-size, each batch atomic: a bad line stops the command,
  nothing of its batch is written, and the message names the line and what was written
  before it. A batch is sent when full or when the input ends."""


class BadLine(Exception):
    """A line that is not an event; ``number`` counts from 1."""

    def __init__(self, number: int, reason: str) -> None:
        super().__init__(f"line {number}: {reason}")
        self.number = number
        self.reason = reason


@dataclass
class Batch:
    """Consecutive events, with the input line each came from."""

    events: list[Event] = field(default_factory=list)
    line_numbers: list[int] = field(default_factory=list)
    lines_read: int = 0
    """Lines consumed for this batch, blank ones included (what a progress bar counts)."""

    def line_of(self, index: int) -> int:
        return self.line_numbers[index]

    @property
    def first_line(self) -> int:
        return self.line_numbers[0]

    @property
    def last_line(self) -> int:
        return self.line_numbers[-1]


def _refuse_constant(name: str) -> Any:
    # json.loads takes NaN and Infinity, which no JSON document may hold (the store refuses
    # them too, but only for the whole batch): refuse them at their line.
    raise ValueError(f"{name} is not JSON")


def parse_event(text: str, number: int) -> Event:
    """One line as an ``Event``, or ``BadLine`` saying why not."""
    try:
        record = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as error:
        raise BadLine(number, f"not valid JSON: {error.msg} (column {error.colno})") from None
    except ValueError as error:
        raise BadLine(number, f"not valid JSON: {error}") from None
    if not isinstance(record, dict):
        raise BadLine(number, 'expected a JSON object such as {"type": "T", "data": {}}')
    unknown = sorted(key for key in record if key not in EVENT_KEYS)
    if unknown:
        raise BadLine(
            number,
            f"unknown key(s) {', '.join(map(repr, unknown))}; an event line has "
            + ", ".join(EVENT_KEYS),
        )
    for required in ("type", "data"):
        if required not in record:
            raise BadLine(number, f'"{required}" is missing')
    try:
        return Event(
            record["type"],
            record["data"],
            metadata=record.get("metadata"),
            id=record.get("id"),
            correlation_id=record.get("correlation_id"),
            causation_id=record.get("causation_id"),
            version=record.get("version"),
        )
    except (ConfigurationError, SerializationError) as error:
        raise BadLine(number, str(error)) from None


def read_batches(source: IO[bytes], batch_size: int) -> Iterator[Batch]:
    """The events of ``source`` in batches of ``batch_size``; raises ``BadLine`` at the first
    bad line, before yielding the batch it belongs to."""
    batch = Batch()
    number = 0
    for raw in source:
        number += 1
        batch.lines_read += 1
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise BadLine(number, f"not UTF-8 (byte {error.start + 1})") from None
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte order mark some editors write
        if not text.strip():
            continue
        batch.events.append(parse_event(text, number))
        batch.line_numbers.append(number)
        if len(batch.events) == batch_size:
            yield batch
            batch = Batch()
    if batch.events or batch.lines_read:
        yield batch


_EVENT_INDEX = re.compile(r"events\[(\d+)\]\.?")


def failing_line(batch: Batch, message: str) -> tuple[int, str] | None:
    """The line of the event a store error names, and the message without that name (the
    store names the place of a value it cannot store as ``events[3].data...``, see the
    README); None when the message names no event of the batch."""
    match = _EVENT_INDEX.match(message)
    if match is None or int(match[1]) >= len(batch.events):
        return None
    return batch.line_of(int(match[1])), message[match.end() :]


def open_input(path: str | None) -> contextlib.AbstractContextManager[IO[bytes]]:
    """``--file PATH`` (``-``: stdin), else stdin, as bytes (lines are decoded one by one, so
    a bad byte is reported at its line); a file is closed after the block, stdin is not."""
    if path is None or path == "-":
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(path, "rb")
    except OSError as error:
        raise CliError(f"cannot read {path}: {error.strerror}") from None


def count_lines(source: IO[bytes]) -> int | None:
    """How many lines a seekable regular file holds (a progress bar's total), reading it
    once and going back to where it was; None for a pipe or a terminal."""
    try:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            return None
        start = source.tell()
    except (OSError, ValueError):
        return None
    lines = 0
    last = b"\n"
    while chunk := source.read(1 << 20):
        lines += chunk.count(b"\n")
        last = chunk[-1:]
    source.seek(start)
    return lines + (last != b"\n")
