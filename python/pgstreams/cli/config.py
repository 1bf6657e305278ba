"""Stream configuration: ``config`` (``list``, ``get``, ``set``, ``delete``)."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any, TypeVar, cast

from ..configuration import StreamConfiguration
from .common import (
    EXIT_OK,
    NotFoundError,
    Parents,
    SubParsers,
    UsageError,
    add_command,
    duration,
    natural,
    open_store,
    positive,
)
from .output import Column, Record, Writer

CONFIG_COLUMNS = (
    Column("stream", "stream_name"),
    Column("attempts", "max_delivery_attempts", right=True),
    Column("retry delay (s)", "retry_delay", right=True),
    Column("backoff", "backoff"),
    Column("batch size", "batch_size", right=True),
    Column("max age (s)", "max_age", right=True),
    Column("max count", "max_event_count", right=True),
    Column("description", "description", limit=40),
)
Part = TypeVar("Part")  # a configuration dataclass, or one of its parts

SETTING_COLUMNS = (Column("setting", "setting"), Column("value", "value"))


def config_record(configuration: StreamConfiguration) -> Record:
    """The configuration as stored (durations in seconds), with its stream's name."""
    return {"stream_name": configuration.stream_name, **configuration.to_document()}


def summary_row(configuration: StreamConfiguration) -> Record:
    """The settings pgstreams enforces, one row of ``config list --format table``."""
    document = configuration.to_document()
    dead_letters = document["dead_letter_queue"]
    backoff = (
        f"x{dead_letters['backoff_multiplier']:g}"
        if dead_letters["enable_exponential_backoff"]
        else ""
    )
    return {
        "stream_name": configuration.stream_name,
        "max_delivery_attempts": (
            dead_letters["max_delivery_attempts"] if dead_letters["enabled"] else "unlimited"
        ),
        "retry_delay": dead_letters["retry_delay"],
        "backoff": backoff,
        "batch_size": document["performance"]["batch_size"],
        "max_age": document["retention"]["max_age"],
        "max_event_count": document["retention"]["max_event_count"],
        "description": configuration.description,
    }


def flattened(document: dict[str, Any], prefix: str = "") -> list[Record]:
    """``{"a": {"b": 1}}`` as rows ``a.b = 1``, for ``config get --format table``."""
    rows: list[Record] = []
    for key, value in document.items():
        if isinstance(value, dict) and value and key != "tags":
            rows.extend(flattened(value, f"{prefix}{key}."))
        else:
            rows.append({"setting": f"{prefix}{key}", "value": value})
    return rows


async def cmd_config_list(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        configurations = await store.list_stream_configurations()
    if args.format == "table":
        Writer("table", CONFIG_COLUMNS).write(summary_row(c) for c in configurations)
    else:
        Writer("json", ()).write(config_record(c) for c in configurations)
    return EXIT_OK


async def cmd_config_get(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        configuration = await store.get_stream_configuration(args.stream)
    if configuration is None:
        raise NotFoundError(f"stream {args.stream!r} has no configuration")
    _print_configuration(args.format, configuration)
    return EXIT_OK


def _print_configuration(output_format: str, configuration: StreamConfiguration) -> None:
    if output_format == "table":
        Writer("table", SETTING_COLUMNS).write(flattened(config_record(configuration)))
    else:
        Writer("json", ()).write_one(config_record(configuration))


def _changed(part: Part, **changes: Any) -> Part:
    """``part`` with the options given (None: not given) replaced."""
    given = {name: value for name, value in changes.items() if value is not None}
    if not given:
        return part
    changed: Part = dataclasses.replace(cast(Any, part), **given)  # __post_init__ checks it
    return changed


def updated(current: StreamConfiguration, args: argparse.Namespace) -> StreamConfiguration:
    """``current`` with the options given on the command line changed, the rest kept."""
    tags = None
    if args.tag:
        tags = dict(current.tags)
        for item in args.tag:
            key, separator, value = item.partition("=")
            if not separator:
                raise UsageError(f"--tag {item!r}: give KEY=VALUE")
            tags[key] = value
    backoff_on = None if args.backoff is None else args.backoff > 0
    return _changed(
        current,
        description=args.description,
        tags=tags,
        dead_letter_queue=_changed(
            current.dead_letter_queue,
            enabled=args.dead_letters,
            max_delivery_attempts=args.max_delivery_attempts,
            retry_delay=args.retry_delay,
            enable_exponential_backoff=backoff_on,
            backoff_multiplier=args.backoff or None,
            max_retry_delay=args.max_retry_delay,
        ),
        retention=_changed(
            current.retention,
            max_age=args.max_age,
            max_event_count=args.max_count,
            respect_consumer_groups=args.respect_consumer_groups,
            max_dead_letter_age=args.max_dead_letter_age,
        ),
        performance=_changed(current.performance, batch_size=args.batch_size),
    )


async def cmd_config_set(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        current = None if args.replace else await store.get_stream_configuration(args.stream)
        configuration = updated(current or StreamConfiguration(args.stream), args)
        await store.set_stream_configuration(configuration)
    _print_configuration(args.format, configuration)
    return EXIT_OK


async def cmd_config_delete(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        deleted = await store.delete_stream_configuration(args.stream)
    if not deleted:
        raise NotFoundError(f"stream {args.stream!r} has no configuration")
    Writer(args.format, CONFIG_COLUMNS[:1]).write_one({"stream_name": args.stream, "deleted": True})
    return EXIT_OK


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    config = add_command(
        commands,
        "config",
        summary="stream configuration: list (the default), get, set, delete",
        examples="""
            pgstreams config --format table
            pgstreams config get emails
            pgstreams config set emails --max-delivery-attempts 3 --retry-delay 1s --backoff 2
            pgstreams config delete emails
        """,
        parents=parents.both,
    )
    config.set_defaults(run=cmd_config_list)
    actions = config.add_subparsers(dest="action", metavar="ACTION")

    p = add_command(
        actions,
        "list",
        summary="every stream configuration",
        description=(
            "Print every stream configuration, one JSON object per line (as `config get`); the\n"
            "table shows the settings pgstreams enforces."
        ),
        examples="pgstreams config list --format table",
        parents=parents.both,
    )
    p.set_defaults(run=cmd_config_list)

    p = add_command(
        actions,
        "get",
        summary="one stream's configuration (exit 4 when it has none)",
        description=(
            "Print STREAM's configuration as one JSON object: stream_name, description, tags,\n"
            "retention, dead_letter_queue, lifecycle, performance, access_control (durations\n"
            "in seconds). Exit 4 when it has none."
        ),
        examples="pgstreams config get emails --format table",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.set_defaults(run=cmd_config_get)

    p = add_command(
        actions,
        "set",
        summary="change a stream's configuration (the options given; the rest is kept)",
        description=(
            "Change the options given in STREAM's configuration (its persistent stream and its\n"
            "queue alike), keeping the others (--replace: start from the defaults), and print\n"
            "the result. Dead letter settings apply at once to the messages already queued.\n"
            "Durations: seconds, or a number with s, m, h, d or w (5m)."
        ),
        examples="""
            pgstreams config set emails --max-delivery-attempts 3 --retry-delay 1s \\
                --backoff 2 --max-retry-delay 5m
            pgstreams config set pings --no-dead-letters     # retry until acknowledged
            pgstreams config set clicks --batch-size 500 --description "web clicks" --tag team=web
        """,
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("--replace", action="store_true", help="start from the defaults")
    p.add_argument("--description", metavar="TEXT")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="set a tag (repeat)")
    queue = p.add_argument_group("queue")
    queue.add_argument(
        "--max-delivery-attempts",
        type=positive,
        metavar="N",
        help="deliveries before a dead letter",
    )
    queue.add_argument(
        "--retry-delay", type=duration, metavar="DURATION", help="delay before a redelivery"
    )
    queue.add_argument(
        "--backoff",
        type=float,
        metavar="MULTIPLIER",
        help="grow the retry delay by MULTIPLIER per delivery (0: no backoff)",
    )
    queue.add_argument("--max-retry-delay", type=duration, metavar="DURATION")
    queue.add_argument(
        "--dead-letters",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="--no-dead-letters: no delivery limit (a message is retried until acknowledged)",
    )
    retention = p.add_argument_group("retention (overrides the retention policies)")
    retention.add_argument("--max-age", type=duration, metavar="DURATION")
    retention.add_argument("--max-count", type=natural, metavar="N")
    retention.add_argument(
        "--respect-consumer-groups", action=argparse.BooleanOptionalAction, default=None
    )
    retention.add_argument("--max-dead-letter-age", type=duration, metavar="DURATION")
    performance = p.add_argument_group("performance")
    performance.add_argument(
        "--batch-size", type=positive, metavar="N", help="events per round trip reading it"
    )
    p.set_defaults(run=cmd_config_set)

    p = add_command(
        actions,
        "delete",
        summary="delete a stream's configuration (exit 4 when it had none)",
        examples="pgstreams config delete emails",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.set_defaults(run=cmd_config_delete)
