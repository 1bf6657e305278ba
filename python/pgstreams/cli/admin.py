"""The schema and the tools: ``migrate``, ``status``, ``demo`` and ``bench``."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ..bench import BENCHMARKS  # stdlib-only at import; asyncpg loads when a run starts
from ..cluster import ThrowawayCluster, find_postgres_bindir
from ..memory import InMemoryEventStore
from ..migrator import DatabaseMigrator
from ..options import PostgresOptions
from ..postgres import connect
from .common import (
    EXIT_ERROR,
    EXIT_OK,
    CliError,
    Parents,
    SubParsers,
    add_command,
    resolve_dsn,
    schema_of,
    store_options,
)


async def cmd_migrate(args: argparse.Namespace) -> int:
    if args.sql:
        dsn = resolve_dsn(args.dsn)
        options = PostgresOptions(dsn or "host=localhost", schema_name=schema_of(args))
        migrator = DatabaseMigrator(options)
        # With a database to look at, print only what it still needs; without one, all.
        pending = await migrator.pending() if dsn and not args.all else None
        sys.stdout.write(migrator.script(pending))
        return EXIT_OK
    migrator = DatabaseMigrator(store_options(args))
    applied = await migrator.migrate()
    if applied:
        print(f"applied migrations {', '.join(str(v) for v in applied)}")
    else:
        print("already up to date")
    print(f"schema version {await migrator.get_current_version()}")
    return EXIT_OK


async def cmd_status(args: argparse.Namespace) -> int:
    options = store_options(args)
    migrator = DatabaseMigrator(options)
    info = await migrator.server_info()
    print(f"server:   PostgreSQL {info['server_version']}")
    print(f"database: {info['database']} as {info['user']} ({options.describe()})")
    print(f"version:  {await migrator.get_current_version()}")
    pending = await migrator.pending()
    print(f"pending:  {', '.join(m.file_name for m in pending) if pending else 'none'}")
    return EXIT_OK


@contextlib.contextmanager
def embedded_dsn(args: argparse.Namespace, *, allow_memory: bool) -> Iterator[str | None]:
    """The DSN to use, or a throwaway cluster's, or None (in-memory), saying which on
    stderr (through ``describe()``: never a password)."""
    dsn = resolve_dsn(args.dsn)
    if dsn is not None:
        described = PostgresOptions(dsn, schema_name=schema_of(args)).describe()
        print(f"using {described}", file=sys.stderr)
        yield dsn
        return
    if find_postgres_bindir() is not None:
        print("no DSN given: starting a throwaway PostgreSQL cluster...", file=sys.stderr)
        with ThrowawayCluster() as cluster:
            described = PostgresOptions(cluster.dsn, schema_name=schema_of(args)).describe()
            print(f"using throwaway PostgreSQL at {described}", file=sys.stderr)
            yield cluster.dsn
        return
    if not allow_memory:
        raise CliError("no DSN given and no PostgreSQL binaries found to start a throwaway cluster")
    print("no DSN given and no PostgreSQL binaries: using the in-memory store", file=sys.stderr)
    yield None


async def cmd_demo(args: argparse.Namespace) -> int:
    from ..demo import run_demo
    from .progress import progress

    with embedded_dsn(args, allow_memory=True) as dsn:
        store: Any
        if dsn is None:
            store = InMemoryEventStore()
        else:
            store = await connect(dsn, schema_name=schema_of(args))
        async with store:
            await run_demo(store, sys.stdout, events=args.events, progress=progress)
    return EXIT_OK


async def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import print_results, results_to_json, run_benchmarks

    if args.sweep:
        return await _sweep(args)
    with embedded_dsn(args, allow_memory=False) as dsn:
        assert dsn is not None  # without allow_memory there is always a server
        results = await run_benchmarks(dsn, quick=args.quick, only=args.only or None)
        print_results(results, sys.stdout)
    if args.json:
        _write(args.json, results_to_json(results) + "\n")
    # A benchmark whose own correctness check failed reports an error row, not a number.
    return EXIT_ERROR if any(r.error for r in results) else EXIT_OK


def _write(path: str, text: str) -> None:
    """A results file (small, written once at the end of a run)."""
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


async def _sweep(args: argparse.Namespace) -> int:
    from ..bench.sweep import format_sweep, plot_sweep, run_sweep, sweep_to_json

    def say(message: str) -> None:
        if sys.stderr.isatty():
            print(f"... {message}", file=sys.stderr, flush=True)

    with embedded_dsn(args, allow_memory=False) as dsn:
        assert dsn is not None
        report = await run_sweep(dsn, quick=args.quick, progress=say)
    print(format_sweep(report))
    if args.json:
        _write(args.json, sweep_to_json(report) + "\n")
    if args.plot:
        plot_sweep(report, args.plot)
    return EXIT_OK


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    p = add_command(
        commands,
        "migrate",
        summary="apply pending migrations, or print their SQL for a DBA",
        description=(
            "Apply the pending migrations to the schema (each in its own transaction; safe to\n"
            "run from several processes at once). --sql prints the SQL instead: what the\n"
            "database still needs, or every migration with --all or without a database."
        ),
        examples="""
            pgstreams migrate --dsn postgresql://app@db/events
            pgstreams migrate --sql --schema events > migrate.sql
        """,
        parents=[parents.connection],
    )
    p.add_argument("--sql", action="store_true", help="print the SQL for a DBA instead")
    p.add_argument("--all", action="store_true", help="with --sql: every migration")
    p.set_defaults(run=cmd_migrate)

    p = add_command(
        commands,
        "status",
        summary="server, database, schema version, pending migrations",
        examples="pgstreams status",
        parents=[parents.connection],
    )
    p.set_defaults(run=cmd_status)

    p = add_command(
        commands,
        "demo",
        summary="a tour of streams and queues",
        description=(
            "A tour of persistent streams, optimistic concurrency, the global feed, consumer\n"
            "offsets and a work queue. Without a DSN it starts a throwaway PostgreSQL cluster\n"
            "(or uses the in-memory store when there are no PostgreSQL binaries)."
        ),
        examples="""
            pgstreams demo
            pgstreams demo --events 10000
        """,
        parents=[parents.connection],
    )
    p.add_argument(
        "--events",
        type=int,
        default=100_000,
        help="how many events the ingestion writes (default 100,000; 0: skip it)",
    )
    p.set_defaults(run=cmd_demo)

    p = add_command(
        commands,
        "bench",
        summary="pgstreams against raw asyncpg, side by side",
        description=(
            "Side by side with raw asyncpg doing the same work (ratios), or, with --sweep,\n"
            "pgstreams under different settings (append and dequeue batch sizes, consumers,\n"
            "read_batch_size, max_pool_size), ending with the fastest settings on this server."
        ),
        examples="""
            pgstreams bench --quick
            pgstreams bench --only append_batch queue --json results.json
            pgstreams bench --sweep --json sweep.json --plot sweep.png
        """,
        parents=[parents.connection],
    )
    p.add_argument("--quick", action="store_true", help="smaller runs")
    p.add_argument("--only", nargs="*", choices=BENCHMARKS, help="benchmark names")
    p.add_argument("--sweep", action="store_true", help="tune: try settings, recommend")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument(
        "--plot", metavar="FILE.png", help="with --sweep: draw rate by setting (pgstreams[plot])"
    )
    p.set_defaults(run=cmd_bench)
