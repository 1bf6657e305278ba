"""Queues (ephemeral streams): ``enqueue``, ``dequeue``, ``ack``, ``nack`` and
``dead-letters``."""

from __future__ import annotations

import argparse

from .common import (
    EXIT_NOT_FOUND,
    EXIT_OK,
    Parents,
    SubParsers,
    add_command,
    duration,
    open_store,
    positive,
)
from .ingest import send_lines
from .jsonlines import EVENT_LINE_HELP, Batch
from .output import (
    DEAD_LETTER_COLUMNS,
    QUEUED_EVENT_COLUMNS,
    Column,
    Record,
    Writer,
    event_record,
)
from .streams import add_event_arguments, lines_source, single_event

ID_COLUMNS = (Column("id", "id"),)
COUNT_COLUMNS = {name: (Column(name, name, right=True),) for name in ("redriven", "deleted")}


async def cmd_enqueue(args: argparse.Namespace) -> int:
    writer = Writer(args.format, ID_COLUMNS, live=True)
    if args.type is not None:
        event = single_event(args)
        async with open_store(args) as store:
            message_id = await store.enqueue(args.stream, event, delay=args.delay)
        writer.write_one({"id": message_id})
        return EXIT_OK
    # The input first: a missing file is reported without connecting.
    with lines_source(args) as source:
        async with open_store(args) as store:

            async def send(batch: Batch) -> list[Record]:
                ids = await store.enqueue_batch(args.stream, batch.events, delay=args.delay)
                return [{"id": message_id} for message_id in ids]

            await send_lines(source, args.batch_size, send, writer, description="enqueue")
    return EXIT_OK


async def cmd_dequeue(args: argparse.Namespace) -> int:
    writer = Writer(args.format, QUEUED_EVENT_COLUMNS)
    async with open_store(args) as store:
        batch = await store.dequeue_batch(
            args.stream, args.consumer, args.count, args.visibility, wait=args.wait
        )
        writer.write(event_record(message) for message in batch)
        if args.ack and batch:
            await store.acknowledge_batch(batch)
    return EXIT_OK if batch else EXIT_NOT_FOUND


async def cmd_ack(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        acknowledged = await store.acknowledge_batch(args.ids)
    Writer(args.format, (Column("acknowledged", "acknowledged", right=True),)).write_one(
        {"acknowledged": acknowledged}
    )
    return EXIT_OK if acknowledged else EXIT_NOT_FOUND


async def cmd_nack(args: argparse.Namespace) -> int:
    nacked = 0
    async with open_store(args) as store:
        for message_id in args.ids:  # no batch nack in the API: one call per message
            nacked += await store.nack(message_id, not args.dead_letter, delay=args.delay)
    Writer(args.format, (Column("nacked", "nacked", right=True),)).write_one({"nacked": nacked})
    return EXIT_OK if nacked else EXIT_NOT_FOUND


async def cmd_dead_letters_list(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        letters = await store.get_dead_letters(args.stream, limit=args.limit)
    Writer(args.format, DEAD_LETTER_COLUMNS).write(event_record(letter) for letter in letters)
    return EXIT_OK


async def cmd_dead_letters_redrive(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        redriven = await store.redrive_dead_letters(args.stream, args.id)
    Writer(args.format, COUNT_COLUMNS["redriven"]).write_one({"redriven": redriven})
    return EXIT_OK


async def cmd_dead_letters_purge(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        deleted = await store.delete_dead_letters(args.stream, args.id)
    Writer(args.format, COUNT_COLUMNS["deleted"]).write_one({"deleted": deleted})
    return EXIT_OK


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    p = add_command(
        commands,
        "enqueue",
        summary="queue messages: one, or JSON lines from stdin or a file",
        description=(
            "Queue one message (STREAM TYPE DATA) or, without TYPE and DATA, JSON lines from\n"
            'stdin or --file. Prints one JSON line per message: {"id": "..."}. Queueing an id\n'
            "already queued, leased or dead is a no-op.\n\n" + EVENT_LINE_HELP
        ),
        examples="""
            pgstreams enqueue emails SendEmail '{"to": "a@example.com"}'
            pgstreams enqueue emails SendEmail '{"to": "b@example.com"}' --delay 5m
            pgstreams enqueue emails --file backlog.jsonl
        """,
        parents=parents.both,
    )
    add_event_arguments(p, "queue")
    p.add_argument("--delay", type=duration, metavar="DURATION", help="visible only after DURATION")
    p.set_defaults(run=cmd_enqueue)

    p = add_command(
        commands,
        "dequeue",
        summary="lease messages and print them (exit 4 when none came)",
        description=(
            "Lease up to --count messages of STREAM for --visibility and print them, one JSON\n"
            "object per line: stream, id, type, data, metadata, correlation_id, causation_id,\n"
            "delivery_count, enqueued_at, consumer_id, lease_expires_at, lease. Settle each\n"
            "with `pgstreams ack ID` (or nack) before the lease expires, or pass --ack to\n"
            "acknowledge them at once. Exit 4 when no message came."
        ),
        examples="""
            pgstreams dequeue emails --count 10 --wait 5
            while msg=$(pgstreams dequeue emails --ack); do handle "$msg"; done
        """,
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--consumer", default="cli", help="consumer id holding the leases (cli)")
    p.add_argument("--count", type=positive, default=1, metavar="N", help="at most N (1)")
    p.add_argument(
        "--visibility",
        type=duration,
        default=30.0,
        metavar="DURATION",
        help="lease for DURATION (30 s)",
    )
    p.add_argument(
        "--wait", type=duration, metavar="DURATION", help="wait up to DURATION for a message"
    )
    p.add_argument("--ack", action="store_true", help="acknowledge what was received")
    p.set_defaults(run=cmd_dequeue)

    p = add_command(
        commands,
        "ack",
        summary="acknowledge (delete) leased messages by id (exit 4 when none was)",
        examples="""
            pgstreams ack 0195f3c2-8a1e-7c4d-9b2a-5e6f7a8b9c0d
        """,
        parents=parents.both,
    )
    p.add_argument("ids", nargs="+", metavar="ID")
    p.set_defaults(run=cmd_ack)

    p = add_command(
        commands,
        "nack",
        summary="give leased messages back, or dead-letter them (exit 4 when none was)",
        description=(
            "Give leased messages back to their queue in their place (after --delay, else the\n"
            "stream's retry backoff), or make them dead letters with --dead-letter."
        ),
        examples="""
            pgstreams nack 0195f3c2-8a1e-7c4d-9b2a-5e6f7a8b9c0d --delay 30s
            pgstreams nack 0195f3c2-8a1e-7c4d-9b2a-5e6f7a8b9c0d --dead-letter
        """,
        parents=parents.both,
    )
    p.add_argument("ids", nargs="+", metavar="ID")
    p.add_argument("--delay", type=duration, metavar="DURATION", help="redeliver after DURATION")
    p.add_argument("--dead-letter", action="store_true", help="dead-letter instead of requeue")
    p.set_defaults(run=cmd_nack)

    dead = add_command(
        commands,
        "dead-letters",
        summary="list, redrive or purge a queue's dead letters",
        examples="""
            pgstreams dead-letters list emails --format table
            pgstreams dead-letters redrive emails                 # all of them
            pgstreams dead-letters redrive emails --id ID --id ID
            pgstreams dead-letters purge emails
        """,
        parents=[parents.connection],
    )
    actions = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    p = add_command(
        actions,
        "list",
        summary="print the dead letters, oldest failure first",
        description=(
            "Print STREAM's dead letters, oldest failure first, one JSON object per line:\n"
            "stream, id, type, data, metadata, correlation_id, causation_id, delivery_count,\n"
            "enqueued_at, failed_at, reason (max_deliveries, nacked or undecodable)."
        ),
        examples="pgstreams dead-letters list emails --limit 10",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--limit", type=positive, default=100, metavar="N", help="at most N (100)")
    p.set_defaults(run=cmd_dead_letters_list)

    p = add_command(
        actions,
        "redrive",
        summary="put dead letters back at the tail of the queue",
        description=(
            "Put STREAM's dead letters (all, or those of --id) back at the tail of the queue,\n"
            'same id, delivery count 0. Prints {"redriven": N}.'
        ),
        examples="pgstreams dead-letters redrive emails --id 0195f3c2-8a1e-7c4d-9b2a-5e6f7a8b9c0d",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--id", action="append", metavar="ID", help="only this one (repeat)")
    p.set_defaults(run=cmd_dead_letters_redrive)

    p = add_command(
        actions,
        "purge",
        summary="delete dead letters",
        description=(
            "Delete STREAM's dead letters (all, or those of --id); the queue's other messages\n"
            'stay. Prints {"deleted": N}.'
        ),
        examples="pgstreams dead-letters purge emails",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--id", action="append", metavar="ID", help="only this one (repeat)")
    p.set_defaults(run=cmd_dead_letters_purge)
