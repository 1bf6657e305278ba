"""Consumer groups: ``groups`` (``list``, ``reset``, ``delete``)."""

from __future__ import annotations

import argparse

from ..offsets import ConsumerGroupInfo
from .common import (
    EXIT_OK,
    NotFoundError,
    Parents,
    SubParsers,
    UsageError,
    add_command,
    natural,
    open_store,
)
from .output import Column, Record, Writer

GROUP_COLUMNS = (
    Column("stream", "stream"),
    Column("group", "group"),
    Column("offset", "committed_offset", right=True),
    Column("position", "committed_position", right=True),
    Column("lag", "lag", right=True),
    Column("updated", "updated_at"),
    Column("members", "member_ids"),
)


def group_record(info: ConsumerGroupInfo) -> Record:
    return {
        "stream": info.stream,
        "group": info.group,
        "committed_offset": info.committed_offset,
        "committed_position": info.committed_position,
        "lag": info.lag,
        "updated_at": info.updated_at,
        "members": [
            {
                "consumer_id": member.consumer_id,
                "streams": list(member.units),
                "last_heartbeat": member.last_heartbeat,
            }
            for member in info.members
        ],
    }


async def cmd_groups_list(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        groups = await store.list_consumer_groups(getattr(args, "stream", None))
    records = [group_record(info) for info in groups]
    for record in records:
        if args.format == "table":
            # One cell for people: the members' ids (the JSON form has what each holds).
            record["member_ids"] = ", ".join(m["consumer_id"] for m in record["members"])
            record["stream"] = record["stream"] if record["stream"] is not None else "(feed)"
    Writer(args.format, GROUP_COLUMNS).write(records)
    return EXIT_OK


def offset_or_edge(text: str) -> int | str:
    return text if text in ("start", "end") else natural(text)


async def cmd_groups_reset(args: argparse.Namespace) -> int:
    async with open_store(args) as store:
        offset = args.offset
        if offset == "start":
            offset = 0
        elif offset == "end":
            offset = await store.get_stream_version(args.stream) + 1
        await store.reset_offset(args.stream, args.group, offset)
    Writer(args.format, GROUP_COLUMNS[:3]).write_one(
        {"stream": args.stream, "group": args.group, "committed_offset": offset}
    )
    return EXIT_OK


async def cmd_groups_delete(args: argparse.Namespace) -> int:
    if args.feed:
        if args.group is not None:
            raise UsageError("with --feed give only GROUP: groups delete --feed GROUP")
        stream, group = None, args.stream_or_group
    else:
        if args.group is None:
            raise UsageError("give STREAM and GROUP (or --feed GROUP for a global feed group)")
        stream, group = args.stream_or_group, args.group
    async with open_store(args) as store:
        deleted = await store.delete_consumer_group(stream, group)
    where = "the global feed" if stream is None else f"stream {stream!r}"
    if not deleted:
        raise NotFoundError(f"consumer group {group!r} has nothing committed on {where}")
    Writer(args.format, GROUP_COLUMNS[:2]).write_one(
        {"stream": stream, "group": group, "deleted": True}
    )
    return EXIT_OK


def register(commands: SubParsers[argparse.ArgumentParser], parents: Parents) -> None:
    groups = add_command(
        commands,
        "groups",
        summary="consumer groups: list (the default), reset, delete",
        examples="""
            pgstreams groups --format table
            pgstreams groups list order-42
            pgstreams groups reset order-42 billing 0      # process the stream again
            pgstreams groups reset order-42 billing end    # skip to the end
            pgstreams groups delete order-42 billing
            pgstreams groups delete --feed search-index    # a global feed group
        """,
        parents=parents.both,
    )
    groups.set_defaults(run=cmd_groups_list)
    actions = groups.add_subparsers(dest="action", metavar="ACTION")

    p = add_command(
        actions,
        "list",
        summary="every consumer group with its progress, lag and members",
        description=(
            "List consumer groups (of STREAM, or every stream's then the global feed's), one\n"
            "JSON object per line: stream (null: the global feed), group, committed_offset\n"
            "(the next offset it reads), committed_position (global feed: the last position\n"
            "it processed), lag (events not consumed yet), updated_at, and members (each\n"
            "registered subscriber: consumer_id, the streams it holds, last_heartbeat)."
        ),
        examples="pgstreams groups list order-42 --format table",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM", nargs="?", help="only this stream's groups")
    p.set_defaults(run=cmd_groups_list)

    p = add_command(
        actions,
        "reset",
        summary="move a group's committed offset on a stream, back or forward",
        description=(
            "Set GROUP's committed offset on STREAM (the next offset it reads) to OFFSET, back\n"
            "or forward: a deliberate replay or skip. OFFSET: a number, start, or end (the\n"
            "stream's next offset). Past the end is an error. Global feed groups have no\n"
            "reset (the API moves their position forward only)."
        ),
        examples="pgstreams groups reset order-42 billing 0",
        parents=parents.both,
    )
    p.add_argument("stream", metavar="STREAM")
    p.add_argument("group", metavar="GROUP")
    p.add_argument("offset", metavar="OFFSET", type=offset_or_edge, help="a number, start or end")
    p.set_defaults(run=cmd_groups_reset)

    p = add_command(
        actions,
        "delete",
        summary="forget a group's progress (exit 4 when it had none)",
        description=(
            "Forget GROUP's committed offset on STREAM, or with --feed its committed position\n"
            "on the global feed. Exit 4 when there was none."
        ),
        examples="""
            pgstreams groups delete order-42 billing
            pgstreams groups delete --feed search-index
        """,
        parents=parents.both,
    )
    p.usage = "%(prog)s [options] (STREAM GROUP | --feed GROUP)"
    p.add_argument("stream_or_group", metavar="STREAM")
    p.add_argument("group", metavar="GROUP", nargs="?")
    p.add_argument("--feed", action="store_true", help="GROUP is a global feed group")
    p.set_defaults(run=cmd_groups_delete)
