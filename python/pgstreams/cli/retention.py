"""Retention policies: ``retention`` (``list``, ``set``, ``delete``, ``apply``)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from ..retention import RetentionPolicy, RetentionReport
from .common import (
    EXIT_OK,
    NotFoundError,
    Parents,
    SubParsers,
    add_command,
    duration,
    natural,
    open_store,
    positive,
)
from .output import Column, Record, Writer
from .progress import elapsed

POLICY_COLUMNS = (
    Column("stream", "stream_name"),
    Column("max age (s)", "max_age", right=True),
    Column("max count", "max_event_count", right=True),
    Column("enabled", "enabled"),
    Column("respect groups", "respect_consumer_groups"),
    Column("dead letter age (s)", "max_dead_letter_age", right=True),
)
TRIM_COLUMNS = (
    Column("stream", "stream"),
    Column("rule", "rule"),
    Column("deleted", "deleted", right=True),
    Column("kept", "kept_for_consumers", right=True),
    Column("waiting groups", "waiting_groups"),
)


def policy_record(policy: RetentionPolicy) -> Record:
    """A policy with its durations in seconds."""
    return {
        "stream_name": policy.stream_name,
        "max_age": _seconds(policy.max_age),
        "max_event_count": policy.max_event_count,
        "enabled": policy.enabled,
        "respect_consumer_groups": policy.respect_consumer_groups,
        "max_dead_letter_age": _seconds(policy.max_dead_letter_age),
    }


def _seconds(value: timedelta | float | None) -> float | None:
    return value.total_seconds() if isinstance(value, timedelta) else value


async def cmd_retention_list(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        policies = await store.get_retention_policies()
    Writer(args.format, POLICY_COLUMNS).write(policy_record(p) for p in policies)
    return EXIT_OK


async def cmd_retention_set(args: argparse.Namespace) -> int:
    policy = RetentionPolicy(
        args.stream,
        max_age=args.max_age,
        max_event_count=args.max_count,
        enabled=not args.disabled,
        respect_consumer_groups=args.respect_consumer_groups,
        max_dead_letter_age=args.max_dead_letter_age,
    )
    async with open_store(args) as store:
        await store.set_retention_policy(policy)
    Writer(args.format, POLICY_COLUMNS).write_one(policy_record(policy))
    return EXIT_OK


async def cmd_retention_delete(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        deleted = await store.delete_retention_policy(args.stream)
    if not deleted:
        raise NotFoundError(f"stream {args.stream!r} has no retention policy")
    Writer(args.format, POLICY_COLUMNS[:1]).write_one({"stream_name": args.stream, "deleted": True})
    return EXIT_OK


def report_records(report: RetentionReport) -> list[Record]:
    return [
        {
            "stream": trim.stream,
            "rule": trim.rule,
            "deleted": trim.deleted,
            "kept_for_consumers": trim.kept_for_consumers,
            "waiting_groups": list(trim.waiting_groups),
        }
        for trim in report.streams
    ]


async def cmd_retention_apply(args: argparse.Namespace) -> int:
    # apply_retention reports no progress while it runs: show at least that it does.
    async with open_store(args) as store, elapsed("applying retention"):
        report = await store.apply_retention(batch_size=args.batch_size)
    if args.format == "table":
        Writer("table", TRIM_COLUMNS).write(report_records(report))
        print(
            f"deleted {report.events_deleted} event(s) and "
            f"{report.dead_letters_deleted} dead letter(s)"
        )
    else:
        Writer("json", ()).write_one(
            {
                "events_deleted": report.events_deleted,
                "dead_letters_deleted": report.dead_letters_deleted,
                "streams": report_records(report),
            }
        )
    return EXIT_OK


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    retention = add_command(
        commands,
        "retention",
        summary="retention policies: list (the default), set, delete, apply",
        examples="""
            pgstreams retention --format table
            pgstreams retention set '*' --max-age 90d               # the default policy
            pgstreams retention set audit-1 --max-count 1000 --respect-consumer-groups
            pgstreams retention delete audit-1
            pgstreams retention apply                                # e.g. from cron
        """,
        parents=parents.both,
    )
    retention.set_defaults(run=cmd_retention_list)
    actions = retention.add_subparsers(dest="action", metavar="ACTION")

    p = add_command(
        actions,
        "list",
        summary="every retention policy ('*' is the default of streams without one)",
        description=(
            "Print every retention policy, one JSON object per line: stream_name, max_age\n"
            "(seconds), max_event_count, enabled, respect_consumer_groups, max_dead_letter_age\n"
            "(seconds)."
        ),
        examples="pgstreams retention list --format table",
        parents=parents.both,
    )
    p.set_defaults(run=cmd_retention_list)

    p = add_command(
        actions,
        "set",
        summary="create or replace a stream's retention policy",
        description=(
            "Create or replace the policy of STREAM ('*': the default of streams without their\n"
            "own). An event goes when it is older than --max-age, or when more than --max-count\n"
            "newer events follow it. A policy is replaced whole: options not given are unset.\n"
            "Durations: seconds, or a number with s, m, h, d or w (90d)."
        ),
        examples="""
            pgstreams retention set '*' --max-age 90d
            pgstreams retention set audit-1 --max-count 1000 --respect-consumer-groups
            pgstreams retention set emails --max-dead-letter-age 7d
            pgstreams retention set keep-forever --disabled    # exempt from the default
        """,
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--max-age", type=duration, metavar="DURATION", help="keep events this long")
    p.add_argument("--max-count", type=natural, metavar="N", help="keep the newest N events")
    p.add_argument(
        "--respect-consumer-groups",
        action="store_true",
        help="keep what a consumer group has not consumed yet",
    )
    p.add_argument(
        "--max-dead-letter-age",
        type=duration,
        metavar="DURATION",
        help="delete the queue's dead letters that failed longer ago",
    )
    p.add_argument("--disabled", action="store_true", help="a policy that exempts the stream")
    p.set_defaults(run=cmd_retention_set)

    p = add_command(
        actions,
        "delete",
        summary="delete a stream's retention policy (exit 4 when it had none)",
        examples="pgstreams retention delete audit-1",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.set_defaults(run=cmd_retention_delete)

    p = add_command(
        actions,
        "apply",
        summary="apply the retention rules once",
        description=(
            "Apply the retention rules once (stream configurations, else the stream's policy,\n"
            "else '*'): trim each stream from its start and delete old dead letters, in short\n"
            "delete statements that appends and readers never wait long behind. Prints what\n"
            "it deleted: events_deleted, dead_letters_deleted, and per stream the rule that\n"
            "governed it, deleted, kept_for_consumers and waiting_groups."
        ),
        examples="""
            pgstreams retention apply
            pgstreams retention apply --format table --verbose
        """,
        parents=parents.both,
    )
    p.add_argument(
        "--batch-size",
        type=positive,
        default=1000,
        metavar="N",
        help="rows per delete statement (1000)",
    )
    p.set_defaults(run=cmd_retention_apply)
