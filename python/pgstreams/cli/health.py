"""``health``: the store's health report, with an exit code for probes."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from datetime import UTC, datetime

from ..health import DEFAULT_LAG_DEGRADED, DEFAULT_LAG_UNHEALTHY, Health, PoolHealth, Status
from .common import (
    ConnectError,
    Parents,
    SubParsers,
    UsageError,
    add_command,
    open_options,
    positive,
    store_options,
)
from .output import Column, Table, Writer

# Probes read the exit code: the worse the status, the higher.
EXIT_FOR_STATUS: dict[Status, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}


async def cmd_health(args: argparse.Namespace) -> int:
    if args.lag_unhealthy < args.lag_degraded:
        # A usage error (2) rather than an error (1), which a probe would read as "degraded".
        raise UsageError("--lag-unhealthy must be at least --lag-degraded")
    options = store_options(args)
    try:
        store = await open_options(options)
    except ConnectError as error:
        # A store nobody can reach is unhealthy, as store.health() says of one it cannot read.
        report = Health(
            "unhealthy",
            (str(error),),
            datetime.now(UTC),
            (),
            (),
            (),
            PoolHealth(0, 0, 0, 0),
            str(error),
        )
    else:
        async with store:
            report = await store.health(
                lag_degraded=args.lag_degraded, lag_unhealthy=args.lag_unhealthy
            )
    if args.format == "table":
        print_for_people(report)
    else:
        Writer("json", ()).write_one(dataclasses.asdict(report))
    return EXIT_FOR_STATUS[report.status]


def print_for_people(report: Health) -> None:
    out = sys.stdout
    out.write(f"status: {report.status}\n")
    for reason in report.reasons:
        out.write(f"  - {reason}\n")
    pool = report.pool
    out.write(
        f"checked at {report.checked_at.replace(microsecond=0).isoformat(sep=' ')}; pool: "
        f"{pool.size} open, {pool.available} idle, {pool.waiting} waiting, max {pool.max_size}\n"
    )
    sections = (
        (
            "streams",
            (
                Column("stream", "stream"),
                Column("length", "length", right=True),
                Column("newest (s ago)", "newest_event_age", right=True),
            ),
            report.streams,
        ),
        (
            "consumer groups",
            (
                Column("stream", "stream"),
                Column("group", "group"),
                Column("offset", "committed_offset", right=True),
                Column("lag", "lag", right=True),
                Column("status", "status"),
            ),
            report.consumer_groups,
        ),
        (
            "queues",
            (
                Column("queue", "stream"),
                Column("depth", "depth", right=True),
                Column("ready", "ready", right=True),
                Column("in flight", "in_flight", right=True),
                Column("delayed", "delayed", right=True),
                Column("dead", "dead_letters", right=True),
                Column("oldest (s)", "oldest_message_age", right=True),
            ),
            report.queues,
        ),
    )
    for title, columns, items in sections:
        if items:
            out.write(f"\n{title}\n")
            Table(columns, out).write(dataclasses.asdict(item) for item in items)


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    p = add_command(
        commands,
        "health",
        summary="the store's health report; exit 0 healthy, 1 degraded, 2 unhealthy",
        description=(
            "Print the store's health in one read: its status (the worst of: each consumer\n"
            "group's, by its lag; degraded while callers wait for a pooled connection;\n"
            "unhealthy when the store cannot be read or reached), the reasons, every\n"
            "persistent stream, consumer group and queue, and the connection pool.\n"
            "The exit code is the status, for probes: 0 healthy, 1 degraded, 2 unhealthy."
        ),
        examples="""
            pgstreams health --format table
            pgstreams health --lag-degraded 5000 --lag-unhealthy 50000 > /dev/null || alert
        """,
        parents=parents.both,
    )
    p.add_argument(
        "--lag-degraded",
        type=positive,
        default=DEFAULT_LAG_DEGRADED,
        metavar="N",
        help=f"a group N events behind is degraded ({DEFAULT_LAG_DEGRADED})",
    )
    p.add_argument(
        "--lag-unhealthy",
        type=positive,
        default=DEFAULT_LAG_UNHEALTHY,
        metavar="N",
        help=f"a group N events behind is unhealthy ({DEFAULT_LAG_UNHEALTHY})",
    )
    p.set_defaults(run=cmd_health)
