"""The ``pgstreams`` command line: migrate, status, append, read, tail, enqueue, dequeue,
dead-letters, bench and demo.

The DSN comes from ``--dsn``, then ``PGSTREAMS_DSN``, then ``DATABASE_URL``. Without one,
``demo`` and ``bench`` start a throwaway PostgreSQL cluster from the binaries on the machine
(or, for the demo, fall back to the in-memory store) and say which.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any, TextIO

from . import __version__
from .bench import BENCHMARKS  # stdlib-only at import; asyncpg loads when a run starts
from .cluster import ThrowawayCluster, find_postgres_bindir
from .errors import EventStreamingError
from .events import Event
from .memory import InMemoryEventStore
from .migrator import DatabaseMigrator
from .options import PostgresOptions
from .postgres import connect

DSN_VARIABLES = ("PGSTREAMS_DSN", "DATABASE_URL")


class CliError(Exception):
    """A problem the user can fix; printed without a traceback."""


def resolve_dsn(explicit: str | None) -> str | None:
    if explicit:
        return explicit
    for name in DSN_VARIABLES:
        value = os.environ.get(name)
        if value:
            return value
    return None


def require_dsn(args: argparse.Namespace) -> PostgresOptions:
    dsn = resolve_dsn(args.dsn)
    if dsn is None:
        raise CliError("no database given: pass --dsn, or set PGSTREAMS_DSN or DATABASE_URL")
    return PostgresOptions(dsn, schema_name=args.schema)


def progress(out: TextIO, label: str, done: int, total: int) -> None:
    """A one-line progress bar on a terminal (nothing when output is piped)."""
    if not out.isatty():
        return
    width = 30
    filled = width * done // max(total, 1)
    out.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done >= total:
        out.write("\n")
    out.flush()


# ----------------------------------------------------------------------------- commands


async def cmd_migrate(args: argparse.Namespace) -> int:
    if args.sql:
        dsn = resolve_dsn(args.dsn)
        options = PostgresOptions(dsn or "host=localhost", schema_name=args.schema)
        migrator = DatabaseMigrator(options)
        # With a database to look at, print only what it still needs; without one, all.
        pending = await migrator.pending() if dsn and not args.all else None
        sys.stdout.write(migrator.script(pending))
        return 0
    migrator = DatabaseMigrator(require_dsn(args))
    applied = await migrator.migrate()
    if applied:
        print(f"applied migrations {', '.join(str(v) for v in applied)}")
    else:
        print("already up to date")
    print(f"schema version {await migrator.get_current_version()}")
    return 0


async def cmd_status(args: argparse.Namespace) -> int:
    options = require_dsn(args)
    migrator = DatabaseMigrator(options)
    info = await migrator.server_info()
    print(f"server:   PostgreSQL {info['server_version']}")
    print(f"database: {info['database']} as {info['user']} ({options.describe()})")
    print(f"version:  {await migrator.get_current_version()}")
    pending = await migrator.pending()
    print(f"pending:  {', '.join(m.file_name for m in pending) if pending else 'none'}")
    return 0


async def _store_for(args: argparse.Namespace) -> Any:
    options = require_dsn(args)
    return await connect(options)


def _parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise CliError(f"{what} is not valid JSON: {error}") from None


def _event_json(event: Any) -> str:
    record = {
        "stream": event.stream,
        "type": event.type,
        "id": str(event.id),
        "data": event.data,
        "metadata": event.metadata,
    }
    for name in ("offset", "position", "delivery_count"):
        if hasattr(event, name):
            record[name] = getattr(event, name)
    if hasattr(event, "timestamp"):
        record["timestamp"] = event.timestamp.isoformat()
    if hasattr(event, "reason"):
        record["reason"] = event.reason
    return json.dumps(record, ensure_ascii=False)


async def cmd_append(args: argparse.Namespace) -> int:
    store = await _store_for(args)
    async with store:
        event = Event(args.type, _parse_json(args.data, "data"), correlation_id=args.correlation_id)
        offset = await store.append(args.stream, event, expected_version=args.expected_version)
    print(offset)
    return 0


async def cmd_read(args: argparse.Namespace) -> int:
    store = await _store_for(args)
    async with store:
        async for event in store.read_stream(args.stream, args.start, max_count=args.count):
            print(_event_json(event))
    return 0


async def _follow(store: Any, after: int | None, interval: float) -> AsyncIterator[Any]:
    position = after
    while True:
        async for event in store.read_all(position):
            position = event.position
            yield event
        await asyncio.sleep(interval)


async def cmd_tail(args: argparse.Namespace) -> int:
    store = await _store_for(args)
    async with store:
        with contextlib.suppress(asyncio.CancelledError, KeyboardInterrupt):
            async for event in _follow(store, args.after, args.interval):
                print(_event_json(event), flush=True)
    return 0


async def cmd_enqueue(args: argparse.Namespace) -> int:
    store = await _store_for(args)
    async with store:
        event = Event(args.type, _parse_json(args.data, "data"))
        print(await store.enqueue(args.stream, event, delay=args.delay))
    return 0


async def cmd_dequeue(args: argparse.Namespace) -> int:
    store = await _store_for(args)
    async with store:
        batch = await store.dequeue_batch(
            args.stream, args.consumer, args.count, args.visibility, wait=args.wait
        )
        for message in batch:
            print(_event_json(message))
        if args.ack and batch:
            await store.acknowledge_batch(batch)
    return 0


async def cmd_dead_letters(args: argparse.Namespace) -> int:
    store = await _store_for(args)
    async with store:
        if args.redrive:
            print(f"redriven: {await store.redrive_dead_letters(args.stream)}")
            return 0
        for letter in await store.get_dead_letters(args.stream, limit=args.limit):
            print(_event_json(letter))
    return 0


@contextlib.contextmanager
def _embedded_dsn(args: argparse.Namespace, *, allow_memory: bool) -> Any:
    """The DSN to use, or a throwaway cluster's, or None (in-memory) — and say which."""
    dsn = resolve_dsn(args.dsn)
    if dsn is not None:
        print(f"using {PostgresOptions(dsn, schema_name=args.schema).describe()}", file=sys.stderr)
        yield dsn
        return
    if find_postgres_bindir() is not None:
        print("no DSN given: starting a throwaway PostgreSQL cluster...", file=sys.stderr)
        with ThrowawayCluster() as cluster:
            print(f"using throwaway PostgreSQL at {cluster.dsn}", file=sys.stderr)
            yield cluster.dsn
        return
    if not allow_memory:
        raise CliError("no DSN given and no PostgreSQL binaries found to start a throwaway cluster")
    print("no DSN given and no PostgreSQL binaries: using the in-memory store", file=sys.stderr)
    yield None


async def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    with _embedded_dsn(args, allow_memory=True) as dsn:
        if dsn is None:
            store: Any = InMemoryEventStore()
        else:
            store = await connect(dsn, schema_name=args.schema)
        async with store:
            await run_demo(store, sys.stdout)
    return 0


async def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import print_results, run_benchmarks

    with _embedded_dsn(args, allow_memory=False) as dsn:
        results = await run_benchmarks(dsn, quick=args.quick, only=args.only or None)
        print_results(results, sys.stdout)
    # A benchmark whose own correctness check failed reports an error row, not a number.
    return 1 if any(r.error for r in results) else 0


# ----------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pgstreams", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"pgstreams {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dsn", help="connection string (else $PGSTREAMS_DSN, $DATABASE_URL)")
    common.add_argument("--schema", default="event_streaming", help="schema name")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("migrate", parents=[common], help="apply pending migrations")
    p.add_argument("--sql", action="store_true", help="print the SQL for a DBA instead")
    p.add_argument("--all", action="store_true", help="with --sql: every migration")
    p.set_defaults(run=cmd_migrate)

    p = commands.add_parser("status", parents=[common], help="server, version, pending migrations")
    p.set_defaults(run=cmd_status)

    p = commands.add_parser("append", parents=[common], help="append one event")
    p.add_argument("stream")
    p.add_argument("type")
    p.add_argument("data", help="JSON")
    p.add_argument("--expected-version", type=int)
    p.add_argument("--correlation-id")
    p.set_defaults(run=cmd_append)

    p = commands.add_parser("read", parents=[common], help="print a stream as JSON lines")
    p.add_argument("stream")
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int)
    p.set_defaults(run=cmd_read)

    p = commands.add_parser("tail", parents=[common], help="follow the global feed")
    p.add_argument("--after", type=int, help="global position to start after")
    p.add_argument("--interval", type=float, default=0.5, help="poll interval, seconds")
    p.set_defaults(run=cmd_tail)

    p = commands.add_parser("enqueue", parents=[common], help="enqueue one message")
    p.add_argument("stream")
    p.add_argument("type")
    p.add_argument("data", help="JSON")
    p.add_argument("--delay", type=float)
    p.set_defaults(run=cmd_enqueue)

    p = commands.add_parser("dequeue", parents=[common], help="lease messages")
    p.add_argument("stream")
    p.add_argument("--consumer", default="cli")
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--visibility", type=float, default=30.0)
    p.add_argument("--wait", type=float)
    p.add_argument("--ack", action="store_true", help="acknowledge what was received")
    p.set_defaults(run=cmd_dequeue)

    p = commands.add_parser("dead-letters", parents=[common], help="list or redrive dead letters")
    p.add_argument("stream")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--redrive", action="store_true")
    p.set_defaults(run=cmd_dead_letters)

    p = commands.add_parser("demo", parents=[common], help="a tour of streams and queues")
    p.set_defaults(run=cmd_demo)

    p = commands.add_parser("bench", parents=[common], help="pgstreams vs raw asyncpg")
    p.add_argument("--quick", action="store_true", help="smaller runs")
    p.add_argument("--only", nargs="*", choices=BENCHMARKS, help="benchmark names")
    p.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(asyncio.run(args.run(args)))
    except (CliError, EventStreamingError) as error:
        print(f"pgstreams: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
