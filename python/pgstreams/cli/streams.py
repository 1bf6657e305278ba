"""Persistent streams: ``append``, ``read``, ``tail`` and ``streams``."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import AsyncIterator
from typing import IO, Any

from ..events import Event, StoredEvent
from ..postgres import PostgresEventStore
from .common import (
    EXIT_OK,
    Parents,
    SubParsers,
    UsageError,
    add_command,
    natural,
    open_store,
    positive,
)
from .ingest import send_lines
from .jsonlines import EVENT_LINE_HELP, Batch, open_input
from .output import STORED_EVENT_COLUMNS, Column, Record, Writer, event_record

DEFAULT_BATCH_SIZE = 500

APPENDED_COLUMNS = (
    Column("offset", "offset", right=True),
    Column("position", "position", right=True),
)
STREAM_COLUMNS = (
    Column("stream", "stream"),
    Column("length", "length", right=True),
    Column("first", "first_offset", right=True),
    Column("last", "last_offset", right=True),
    Column("version", "version", right=True),
    Column("last write", "last_write"),
)


def parse_json_argument(text: str, what: str) -> Any:
    """A JSON value given on the command line (a usage error when it does not parse)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise UsageError(f"{what} is not valid JSON: {error}") from None


def single_event(args: argparse.Namespace) -> Event:
    """The event of ``append``/``enqueue STREAM TYPE DATA``."""
    if args.data is None:
        raise UsageError(
            f"{args.command} {args.stream} {args.type}: DATA is missing (give TYPE and DATA, "
            "or neither to read JSON lines)"
        )
    if args.file is not None:
        raise UsageError("give either TYPE and DATA or --file, not both")
    metadata = parse_json_argument(args.metadata, "--metadata") if args.metadata else None
    return Event(
        args.type,
        parse_json_argument(args.data, "DATA"),
        metadata=metadata,
        id=args.id,
        correlation_id=args.correlation_id,
        causation_id=args.causation_id,
    )


def lines_source(args: argparse.Namespace) -> contextlib.AbstractContextManager[IO[bytes]]:
    """The JSON lines input of ``append``/``enqueue STREAM`` (no TYPE DATA). The one-event
    options would be silently ignored there: refused instead."""
    for option in ("metadata", "id", "correlation_id", "causation_id"):
        if getattr(args, option) is not None:
            flag = "--" + option.replace("_", "-")
            raise UsageError(f"{flag} goes with TYPE DATA; with JSON lines give it in each line")
    return open_input(args.file)


# ----------------------------------------------------------------------------- append


async def cmd_append(args: argparse.Namespace) -> int:
    writer = Writer(args.format, APPENDED_COLUMNS, live=True)
    if args.type is not None:
        event = single_event(args)
        async with open_store(args) as store:
            result = await store.append_batch(
                args.stream, [event], expected_version=args.expected_version
            )
        writer.write_one({"offset": result[0], "position": result.positions[0]})
        return EXIT_OK
    # The input first: a missing file is reported without connecting.
    with lines_source(args) as source:
        async with open_store(args) as store:
            await append_lines(store, args, source, writer)
    return EXIT_OK


async def append_lines(
    store: PostgresEventStore, args: argparse.Namespace, source: IO[bytes], writer: Writer
) -> None:
    """``append`` of JSON lines, batch by batch."""
    # Each batch after the first expects the version the previous one left: with
    # --expected-version no other writer can slip events between the batches.
    expected = args.expected_version

    async def send(batch: Batch) -> list[Record]:
        nonlocal expected
        result = await store.append_batch(args.stream, batch.events, expected_version=expected)
        if expected is not None:
            expected = result[-1]
        return [
            {"offset": offset, "position": position}
            for offset, position in zip(result, result.positions, strict=True)
        ]

    await send_lines(source, args.batch_size, send, writer, description="append")


def add_event_arguments(parser: argparse.ArgumentParser, verb: str) -> None:
    """STREAM [TYPE DATA], the single event's extras and the JSON lines options."""
    parser.add_argument("stream", metavar="STREAM")
    parser.add_argument(
        "type", metavar="TYPE", nargs="?", help=f"{verb} one event of this type (else JSON lines)"
    )
    parser.add_argument("data", metavar="DATA", nargs="?", help="its data, JSON")
    single = parser.add_argument_group("one event (TYPE DATA)")
    single.add_argument("--metadata", metavar="JSON", help="its metadata, a JSON object")
    single.add_argument("--id", help="its id, a UUID (default: a new UUIDv7)")
    single.add_argument("--correlation-id", metavar="ID")
    single.add_argument("--causation-id", metavar="ID")
    lines = parser.add_argument_group("JSON lines (no TYPE DATA)")
    lines.add_argument("--file", metavar="PATH", help="read the lines from PATH (default: stdin)")
    lines.add_argument(
        "--batch-size",
        type=positive,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"events per atomic batch (default {DEFAULT_BATCH_SIZE}; 1 for a live pipe)",
    )


# ----------------------------------------------------------------------------- read and tail


async def cmd_read(args: argparse.Namespace) -> int:
    if args.follow and args.backwards:
        raise UsageError("--follow reads forwards: drop --backwards")
    writer = Writer(args.format, STORED_EVENT_COLUMNS, live=args.follow)
    async with open_store(args) as store:
        async for event in _read(store, args):
            writer.write_one(event_record(event))
    return EXIT_OK


async def _read(store: PostgresEventStore, args: argparse.Namespace) -> AsyncIterator[StoredEvent]:
    """The stream as asked; with ``--follow``, then every event appended to it later."""
    # The head is read before the stream: every event at or below it is visible to the read
    # that follows (positions become visible in order), so following from it misses none.
    head = await store.get_head_position() if args.follow else 0
    remaining = args.count
    last_offset = (args.start or 0) - 1
    async for event in store.read_stream(
        args.stream, args.start, max_count=args.count, backwards=args.backwards
    ):
        yield event
        last_offset = event.offset
        head = max(head, event.position)
        if remaining is not None:
            remaining -= 1
    if not args.follow or remaining == 0:
        return
    # No per-stream follow in the API: follow the feed, filtered in SQL by the name as a
    # prefix, and keep this stream's own events (other streams may share the prefix).
    async for event in store.read_all(head, stream_prefix=args.stream, follow=True):
        if event.stream != args.stream or event.offset <= last_offset:
            continue
        yield event
        last_offset = event.offset
        if remaining is not None:
            remaining -= 1
            if remaining == 0:
                return


async def cmd_tail(args: argparse.Namespace) -> int:
    writer = Writer(args.format, STORED_EVENT_COLUMNS, live=True)
    async with open_store(args) as store:
        after = args.after
        if after == "end":
            after = await store.get_head_position()
        events = store.read_all(
            after,
            max_count=args.count,
            event_types=args.type or None,
            stream_prefix=args.prefix,
            follow=args.follow,
        )
        async for event in events:
            writer.write_one(event_record(event))
    return EXIT_OK


def position_or_end(text: str) -> int | str:
    return "end" if text == "end" else natural(text)


# ----------------------------------------------------------------------------- streams


async def cmd_streams(args: argparse.Namespace) -> int:
    writer = Writer(args.format, STREAM_COLUMNS)
    async with open_store(args) as store:
        infos = await store.list_streams(args.prefix)
    writer.write(
        {
            "stream": info.stream,
            "length": info.length,
            "first_offset": info.first_offset,
            "last_offset": info.last_offset,
            "version": info.version,
            "last_write": info.last_write,
        }
        for info in infos
    )
    return EXIT_OK


# ----------------------------------------------------------------------------- parsers


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    p = add_command(
        commands,
        "append",
        summary="append events to a persistent stream: one, or JSON lines from stdin or a file",
        description=(
            "Append one event (STREAM TYPE DATA) or, without TYPE and DATA, JSON lines from\n"
            "stdin or --file. Prints one JSON line per event: its offset in the stream and its\n"
            "global position.\n\n" + EVENT_LINE_HELP + "\n\n"
            "--expected-version N: the stream must be at version N (the offset of its last\n"
            "event; -1: never written), else exit 3 and nothing is written. With JSON lines it\n"
            "applies to the first batch, and each next batch expects where the previous one\n"
            "ended, so no other writer's events land between them."
        ),
        examples="""
            pgstreams append order-42 OrderPlaced '{"total": 39.9}'
            # -> {"offset": 0, "position": 17}
            pgstreams append order-42 OrderPaid '{"amount": 39.9}' --expected-version 0
            pgstreams append clicks --file clicks.jsonl > offsets.jsonl
            producer | pgstreams append clicks --batch-size 1
        """,
        parents=parents.both,
    )
    add_event_arguments(p, "append")
    p.add_argument(
        "--expected-version",
        type=int,
        metavar="N",
        help="the stream's version must be N (-1: new stream); else exit 3",
    )
    p.set_defaults(run=cmd_append)

    p = add_command(
        commands,
        "read",
        summary="print a persistent stream's events",
        description=(
            "Print the events of STREAM in offset order (newest first with --backwards), one\n"
            "JSON object per line: stream, offset, position, id, type, data, metadata,\n"
            "correlation_id, causation_id, timestamp, version."
        ),
        examples="""
            pgstreams read order-42
            pgstreams read order-42 --start 10 --count 5 --format table
            pgstreams read order-42 --backwards --count 1      # the last event
            pgstreams read order-42 -f                         # then wait for new ones
        """,
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--start", type=natural, metavar="OFFSET", help="first offset to print")
    p.add_argument("--count", type=positive, metavar="N", help="print at most N events")
    p.add_argument("--backwards", action="store_true", help="newest first")
    p.add_argument(
        "-f",
        "--follow",
        action="store_true",
        help="after the last event, wait for new ones and print them (until Ctrl-C or --count)",
    )
    p.set_defaults(run=cmd_read)

    p = add_command(
        commands,
        "tail",
        summary="follow the global feed: every stream's events in position order",
        description=(
            "Print every event of every stream in global position order, then wait for new\n"
            "ones and print them as they are appended (until Ctrl-C, or --count events).\n"
            "Nothing is skipped or repeated, whatever order writers commit in: resume after\n"
            "the last position printed with --after POSITION."
        ),
        examples="""
            pgstreams tail                         # from the start, then live
            pgstreams tail --after end             # only what is appended from now on
            pgstreams tail --after 1200 --prefix order- --type OrderPlaced
            pgstreams tail --no-follow --format table   # what is there, then stop
        """,
        parents=parents.both,
    )
    p.add_argument(
        "--after",
        type=position_or_end,
        metavar="POSITION",
        help="start after this global position (end: after the newest event)",
    )
    p.add_argument("--count", type=positive, metavar="N", help="stop after N events")
    p.add_argument("--type", action="append", metavar="TYPE", help="only events of TYPE (repeat)")
    p.add_argument("--prefix", help="only streams whose name starts with PREFIX")
    p.add_argument(
        "-f",
        "--follow",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="wait for new events once caught up (default; --no-follow stops there)",
    )
    p.set_defaults(run=cmd_tail)

    p = add_command(
        commands,
        "streams",
        summary="list persistent streams with their length and last write",
        description=(
            "List every persistent stream written and not deleted, in name order: length,\n"
            "first and last offset, version (the offset of its last event ever written) and\n"
            "the time of its last append."
        ),
        examples="""
            pgstreams streams --format table
            pgstreams streams --prefix order-
        """,
        parents=parents.both,
    )
    p.add_argument("--prefix", help="only streams whose name starts with PREFIX")
    p.set_defaults(run=cmd_streams)
