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

    with embedded_dsn(args, allow_memory=True) as dsn:
        store: Any
        if dsn is None:
            store = InMemoryEventStore()
        else:
            store = await connect(dsn, schema_name=schema_of(args))
        async with store:
            await run_demo(store, sys.stdout)
    return EXIT_OK


async def cmd_bench(args: argparse.Namespace) -> int:
    from ..bench import print_results, run_benchmarks

    with embedded_dsn(args, allow_memory=False) as dsn:
        assert dsn is not None  # without allow_memory there is always a server
        results = await run_benchmarks(dsn, quick=args.quick, only=args.only or None)
        print_results(results, sys.stdout)
    # A benchmark whose own correctness check failed reports an error row, not a number.
    return EXIT_ERROR if any(r.error for r in results) else EXIT_OK


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
        examples="pgstreams demo",
        parents=[parents.connection],
    )
    p.set_defaults(run=cmd_demo)

    p = add_command(
        commands,
        "bench",
        summary="pgstreams against raw asyncpg, side by side",
        examples="""
            pgstreams bench --quick
            pgstreams bench --only append_batch queue
        """,
        parents=[parents.connection],
    )
    p.add_argument("--quick", action="store_true", help="smaller runs")
    p.add_argument("--only", nargs="*", choices=BENCHMARKS, help="benchmark names")
    p.set_defaults(run=cmd_bench)
