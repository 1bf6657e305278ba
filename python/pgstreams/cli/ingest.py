"""Sending JSON lines in atomic batches (``append`` and ``enqueue``), with a progress bar on a
terminal and a one-line account of what was written when a line or a batch fails."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import IO

from ..errors import EventStreamingError
from .common import CliError, exit_code_for
from .jsonlines import BadLine, Batch, count_lines, failing_line, read_batches
from .output import Record, Writer
from .progress import on_terminal, progress

__all__ = ["send_lines"]

SendBatch = Callable[[Batch], Awaitable[list[Record]]]


def _written(events: int, last_line: int) -> str:
    """What a failed run leaves behind, for the end of its error line."""
    if events == 0:
        return "nothing was written"
    lines = "line 1" if last_line == 1 else f"lines 1-{last_line}"
    return f"the {events} event(s) of {lines} were written, nothing from line {last_line + 1} on"


async def send_lines(
    source: IO[bytes],
    batch_size: int,
    send: SendBatch,
    writer: Writer,
    *,
    description: str,
) -> int:
    """Reads ``source`` batch by batch, hands each batch to ``send`` and prints the records it
    returns (one per event). Returns how many events were sent; raises ``CliError`` (exit 3
    for a concurrency conflict) at a bad line or a refused batch."""
    # Counting a file's lines reads it once more: only worth it when a bar will show it.
    total = count_lines(source) if on_terminal() else None
    events_written = 0
    last_written_line = 0
    with progress(description, total, "line") as bar:
        try:
            for batch in read_batches(source, batch_size):
                if batch.events:
                    try:
                        records = await send(batch)
                    except EventStreamingError as error:
                        raise CliError(
                            f"{_located(batch, str(error))}; "
                            + _written(events_written, last_written_line),
                            exit_code_for(error),
                        ) from error
                    with bar.aside():
                        writer.write(records)
                    events_written += len(batch.events)
                    last_written_line = batch.last_line
                bar.advance(batch.lines_read)
        except BadLine as bad:
            raise CliError(f"{bad}; {_written(events_written, last_written_line)}") from None
    return events_written


def _located(batch: Batch, message: str) -> str:
    """The store's error about a batch, led by the input line it names (its ``events[i]``
    becomes that line), else by the batch's lines."""
    located = failing_line(batch, message)
    if located is not None:
        line, rest = located
        return f"line {line}: {rest}"
    if batch.first_line == batch.last_line:
        return f"line {batch.first_line}: {message}"
    return f"the batch of lines {batch.first_line}-{batch.last_line}: {message}"
