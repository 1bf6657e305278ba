"""Stream administration: delete_stream (a tombstone: offsets continue), truncate_stream and
list_streams."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from pgstreams import (
    ConfigurationError,
    Event,
    RetentionPolicy,
    StoreClosedError,
    StreamConfiguration,
    StreamInfo,
)

from .helpers import collect, delete_events, name


def events(count: int) -> list[Event]:
    return [Event("E", {"i": i}) for i in range(count)]


async def offsets(store: Any, stream: str) -> list[int]:
    return [e.offset for e in await collect(store.read_stream(stream))]


async def listed(store: Any, prefix: str | None = None) -> list[str]:
    return [info.stream for info in await store.list_streams(prefix)]


# ---------------------------------------------------------------- delete_stream


async def test_delete_stream_keeps_a_tombstone_and_offsets_continue(store: Any) -> None:
    stream, other = name(), name()
    await store.append_batch(stream, events(5))
    await store.append_batch(other, events(1))
    head = await store.get_head_position()
    assert await store.delete_stream(stream) == 5
    assert await offsets(store, stream) == []
    assert await store.get_stream_version(stream) == 4  # the tombstone
    assert await listed(store) == [other]
    assert await store.get_head_position() == head
    assert [e.stream for e in await collect(store.read_all())] == [other]
    # The next append continues the offsets, and the stream is listed again.
    assert await store.append(stream, Event("E", {})) == 5
    assert await offsets(store, stream) == [5]
    assert sorted(await listed(store)) == sorted([stream, other])
    [info] = await store.list_streams(stream)
    assert (info.length, info.first_offset, info.last_offset, info.version) == (1, 5, 5, 5)


async def test_delete_stream_with_expected_version_after_it(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    await store.delete_stream(stream)
    assert await store.append(stream, Event("E", {}), expected_version=2) == 3


async def test_delete_stream_removes_offsets_and_configuration(store: Any) -> None:
    stream, other = name(), name()
    await store.append_batch(stream, events(2))
    await store.append_batch(other, events(2))
    await store.commit_offset(stream, "g", 2)
    await store.commit_offset(other, "g", 1)
    await store.set_stream_configuration(StreamConfiguration(stream, description="gone"))
    await store.set_retention_policy(RetentionPolicy(stream, max_event_count=10))
    await store.delete_stream(stream)
    assert await store.get_committed_offset(stream, "g") is None
    assert await store.get_committed_offset(other, "g") == 1
    assert await store.get_stream_configuration(stream) is None
    # A retention policy names a stream, not its content: it stays.
    assert [p.stream_name for p in await store.get_retention_policies()] == [stream]


async def test_delete_stream_of_an_unknown_stream_does_nothing(store: Any) -> None:
    stream = name()
    await store.set_stream_configuration(StreamConfiguration(stream))  # of its queue
    assert await store.delete_stream(stream) == 0
    assert await store.get_stream_version(stream) == -1
    assert await store.get_stream_configuration(stream) is not None
    assert await store.list_streams() == []


async def test_delete_stream_twice_and_an_emptied_stream(store: Any, pg_dsn_or_none: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(2))
    assert await store.delete_stream(stream) == 2
    assert await store.delete_stream(stream) == 0
    emptied = name()
    await store.append_batch(emptied, events(2))
    await delete_events(store, emptied, pg_dsn_or_none)
    assert await store.delete_stream(emptied) == 0
    assert emptied not in await listed(store)


async def test_an_interrupted_deletion_is_finished_by_retention(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(4))
    # What a delete_stream stopped after its first step leaves: the tombstone, the events.
    assert await store._mark_stream_deleted(stream) == (0, 3)
    await store.append(stream, Event("E", {}))  # written after the deletion: stays
    report = await store.apply_retention()
    assert [(t.stream, t.rule, t.deleted) for t in report.streams] == [(stream, "deleted", 4)]
    assert await offsets(store, stream) == [4]


async def test_delete_stream_leaves_the_queue_of_the_same_name(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(1))
    await store.enqueue(stream, Event("Job", {}))
    await store.delete_stream(stream)
    assert await store.get_pending_count(stream) == 1


# ---------------------------------------------------------------- truncate_stream


async def test_truncate_stream_deletes_the_offsets_below(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(10))
    assert await store.truncate_stream(stream, 4) == 4
    assert await offsets(store, stream) == list(range(4, 10))
    assert await store.truncate_stream(stream, 4) == 0
    assert await store.truncate_stream(stream, 0) == 0
    assert await store.get_stream_version(stream) == 9
    assert await store.append(stream, Event("E", {})) == 10


async def test_truncate_stream_past_the_end_empties_it_but_keeps_it_listed(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(3))
    [before] = await store.list_streams(stream)
    assert await store.truncate_stream(stream, 10**12) == 3
    [info] = await store.list_streams(stream)
    assert (info.length, info.first_offset, info.last_offset, info.version) == (0, None, None, 2)
    assert info.last_write == before.last_write  # the last append's time survives


async def test_truncate_stream_of_an_unknown_stream(store: Any) -> None:
    assert await store.truncate_stream(name(), 5) == 0


@pytest.mark.parametrize("offset", [-1, 2**63, 1.5, None, "3"], ids=repr)
async def test_truncate_stream_refuses_a_bad_offset(store: Any, offset: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(2))
    with pytest.raises(ConfigurationError, match="before_offset"):
        await store.truncate_stream(stream, offset)
    assert await offsets(store, stream) == [0, 1]


# ---------------------------------------------------------------- list_streams


async def test_list_streams_describes_each_stream(store: Any) -> None:
    stream = name()
    assert await store.list_streams() == []
    before = datetime.now().astimezone()
    await store.append_batch(stream, events(3))
    await store.enqueue(name(), Event("Job", {}))  # queues are not persistent streams
    [info] = await store.list_streams()
    assert isinstance(info, StreamInfo)
    assert (info.stream, info.length, info.first_offset, info.last_offset, info.version) == (
        stream,
        3,
        0,
        2,
        2,
    )
    assert info.last_write.tzinfo is not None
    assert abs((info.last_write - before).total_seconds()) < 60
    await asyncio.sleep(0.05)
    await store.append(stream, Event("E", {}))
    [later] = await store.list_streams()
    assert later.last_write > info.last_write
    await store.truncate_stream(stream, 2)
    [trimmed] = await store.list_streams()
    assert (trimmed.length, trimmed.first_offset, trimmed.last_offset) == (2, 2, 3)


async def test_list_streams_in_code_point_order_with_a_prefix(store: Any) -> None:
    tag = name("p")
    names = [f"{tag}-é", f"{tag}-b", f"{tag}-B", f"{tag}-a", f"{tag}x", "other-" + tag]
    for stream in names:
        await store.append(stream, Event("E", {}))
    assert await listed(store, tag) == [f"{tag}-B", f"{tag}-a", f"{tag}-b", f"{tag}-é", f"{tag}x"]
    assert await listed(store, f"{tag}-") == [f"{tag}-B", f"{tag}-a", f"{tag}-b", f"{tag}-é"]
    assert await listed(store, "%") == []  # no pattern characters
    assert await listed(store, "_") == []
    assert len(await listed(store)) == len(names)
    assert len(await listed(store, "")) == len(names)


@pytest.mark.parametrize("prefix", [5, "a\x00", "x" * 1001], ids=repr)
async def test_list_streams_refuses_a_bad_prefix(store: Any, prefix: Any) -> None:
    with pytest.raises(ConfigurationError, match="prefix"):
        await store.list_streams(prefix)


async def test_a_closed_store_refuses_administration(make_store: Any) -> None:
    store = await make_store()
    await store.close()
    for call in (
        lambda: store.delete_stream("s"),
        lambda: store.truncate_stream("s", 1),
        lambda: store.list_streams(),
    ):
        with pytest.raises(StoreClosedError):
            await call()
