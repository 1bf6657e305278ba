"""Consumer groups on both stores: subscribe, commit strategies, resuming, standing by and
taking over, fencing an evicted member, the global feed and categories."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgstreams import ConfigurationError, ConsumerFencedError, Event, Selector, StoredEvent
from pgstreams.consumers import owner
from support import PATIENCE, eventually

from .helpers import name

FAST = {"heartbeat_interval": 0.05, "session_timeout": 0.3}


def events(count: int, start: int = 0) -> list[Event]:
    return [Event("E", {"n": n}) for n in range(start, start + count)]


async def take(sub: Any, count: int) -> list[StoredEvent]:
    got: list[StoredEvent] = []
    async with asyncio.timeout(PATIENCE):
        async for event in sub:
            got.append(event)
            if len(got) == count:
                break
    return got


async def test_a_subscriber_catches_up_then_gets_new_events_live(store: Any) -> None:
    stream = name("orders")
    await store.append_batch(stream, events(3))
    async with store.subscribe(stream, "billing", "b-1", batch_size=2) as sub:
        assert sub.units == [stream]
        first = await take(sub, 3)
        later = asyncio.create_task(take(sub, 2))
        await asyncio.sleep(0.05)
        await store.append_batch(stream, events(2, 3))
        second = await asyncio.wait_for(later, PATIENCE)
    assert [e.data["n"] for e in first + second] == [0, 1, 2, 3, 4]
    assert await store.get_committed_offset(stream, "billing") == 5


async def test_a_new_subscription_resumes_from_the_committed_offset(store: Any) -> None:
    stream = name("orders")
    await store.append_batch(stream, events(10))
    async with store.subscribe(stream, "g", "m-1", batch_size=3) as sub:
        assert [e.offset for e in await take(sub, 4)] == [0, 1, 2, 3]
    async with store.subscribe(stream, "g", "m-1", batch_size=3) as sub:
        assert [e.offset for e in await take(sub, 6)] == [4, 5, 6, 7, 8, 9]


async def test_an_exception_while_handling_leaves_that_event_for_next_time(store: Any) -> None:
    stream = name("orders")
    await store.append_batch(stream, events(5))

    class HandlerFailed(Exception):
        pass

    with pytest.raises(HandlerFailed):
        async with store.subscribe(stream, "g", "m-1") as sub:
            async for event in sub:
                if event.offset == 2:
                    raise HandlerFailed
    assert await store.get_committed_offset(stream, "g") == 2
    async with store.subscribe(stream, "g", "m-1") as sub:
        assert [e.offset for e in await take(sub, 3)] == [2, 3, 4]


async def test_after_each_commits_an_event_when_the_next_is_asked_for(store: Any) -> None:
    stream = name("s")
    await store.append_batch(stream, events(3))
    async with store.subscribe(stream, "g", "m", commit="after_each") as sub:
        iterator = aiter(sub)
        await anext(iterator)
        assert await store.get_committed_offset(stream, "g") is None
        await anext(iterator)
        assert await store.get_committed_offset(stream, "g") == 1
        await anext(iterator)
        assert await store.get_committed_offset(stream, "g") == 2


async def test_manual_commits_only_when_asked(store: Any) -> None:
    stream = name("s")
    await store.append_batch(stream, events(4))
    async with store.subscribe(stream, "g", "m", commit="manual") as sub:
        got = await take(sub, 2)
        assert await store.get_committed_offset(stream, "g") is None
        await sub.commit()
        assert await store.get_committed_offset(stream, "g") == 2
        await take(sub, 2)
    assert [e.offset for e in got] == [0, 1]
    assert await store.get_committed_offset(stream, "g") == 2  # leaving commits nothing


async def test_periodic_commits_every_interval(store: Any) -> None:
    stream = name("s")
    await store.append_batch(stream, events(3))
    async with store.subscribe(stream, "g", "m", commit="periodic", commit_interval=0.1) as sub:
        idle = asyncio.create_task(take(sub, 4))  # handles 3, then waits for a fourth
        committed = await eventually(
            lambda: store.get_committed_offset(stream, "g"), lambda c: c == 3
        )
        idle.cancel()
    assert committed == 3


async def test_one_member_works_a_stream_while_the_other_stands_by_then_takes_over(
    store: Any,
) -> None:
    stream = name("s")
    await store.append_batch(stream, events(6))
    async with (
        store.subscribe(stream, "g", "a", **FAST) as first,
        store.subscribe(stream, "g", "b", **FAST) as second,
    ):
        # The stream goes to its rendezvous owner among the two (the first may hand it
        # over at its next heartbeat).
        members = {"a": first, "b": second}
        active = members.pop(owner(stream, ["a", "b"]))
        [standby] = members.values()
        await eventually(lambda: asyncio.sleep(0, active.units), lambda u: u == [stream])
        assert standby.units == []
        assert [e.offset for e in await take(active, 3)] == [0, 1, 2]
        await asyncio.sleep(0.2)  # several heartbeats: nothing moves
        assert standby.units == []
        await active.__aexit__(None, None, None)  # leaves; the stand-by takes over
        resumed = await take(standby, 3)
    assert [e.offset for e in resumed] == [3, 4, 5]


async def test_a_member_that_stops_heartbeating_is_replaced_and_its_late_commit_fenced(
    store: Any,
) -> None:
    stream = name("s")
    await store.append_batch(stream, events(4))
    async with store.subscribe(stream, "g", "a", commit="manual", **FAST) as stalled:
        await take(stalled, 2)  # handled, not committed
        assert stalled._heartbeats is not None
        stalled._heartbeats.cancel()  # a long pause: no more heartbeats
        async with store.subscribe(stream, "g", "b", **FAST) as successor:
            got = await take(successor, 4)
            assert [e.offset for e in got] == [0, 1, 2, 3]  # from the last commit: none
            with pytest.raises(ConsumerFencedError, match="no longer holds"):
                await stalled.commit()
            await successor.commit()
    assert await store.get_committed_offset(stream, "g") == 4


async def test_a_global_feed_subscription_commits_positions(store: Any) -> None:
    a, b = name("a"), name("b")
    await store.append(a, Event("E", {}))
    await store.append(b, Event("E", {}))
    group = name("feed")
    async with store.subscribe(Selector.all(), group, "m") as sub:
        got = await take(sub, 2)
    assert [e.stream for e in got] == [a, b]
    assert await store.get_committed_position(group) == got[-1].position


async def test_members_share_a_category_without_overlap(store: Any) -> None:
    prefix = name("cat-")
    streams = [f"{prefix}{i}" for i in range(12)]
    for stream in streams:
        await store.append_batch(stream, events(2))
    selector = Selector.prefix(prefix)
    async with (
        store.subscribe(selector, "g", "m1", **FAST) as one,
        store.subscribe(selector, "g", "m2", **FAST) as two,
    ):
        await eventually(
            lambda: asyncio.sleep(0, (one.units, two.units)),
            lambda u: sorted(u[0] + u[1]) == sorted(streams) and bool(u[0] and u[1]),
        )
        assert sorted(one.units + two.units) == sorted(streams)
        assert not set(one.units) & set(two.units)
        assert one.units and two.units


async def test_subscription_arguments_are_checked(store: Any) -> None:
    with pytest.raises(ConfigurationError, match="commit"):
        store.subscribe("s", "g", "m", commit="sometimes")
    with pytest.raises(ConfigurationError, match="session_timeout"):
        store.subscribe("s", "g", "m", heartbeat_interval=10, session_timeout=5)
    with pytest.raises(ConfigurationError, match="batch_size"):
        store.subscribe("s", "g", "m", batch_size=0)
    with pytest.raises(ConfigurationError, match="at least one"):
        Selector.streams([])
    sub = store.subscribe("s", "g", "m")
    with pytest.raises(ConfigurationError, match="async with"):
        aiter(sub)


async def test_consumer_groups_list_their_members_and_what_they_hold(store: Any) -> None:
    stream = name("s")
    await store.append_batch(stream, events(2))
    async with store.subscribe(stream, "g", "holder", **FAST) as sub:
        await take(sub, 2)
        await sub.commit()
        [info] = await store.list_consumer_groups(stream)
        [member] = info.members
        assert (info.group, info.committed_offset) == ("g", 2)
        assert (member.consumer_id, member.units) == ("holder", (stream,))
        assert member.last_heartbeat is not None
    [info] = await store.list_consumer_groups(stream)
    assert info.members == ()  # left: deregistered


async def test_a_handler_commits_its_writes_and_its_progress_in_one_transaction(
    store: Any,
) -> None:
    source, projection = name("src"), name("proj")
    await store.append_batch(source, events(3))
    async with store.subscribe(source, "projector", "p-1", commit="manual", **FAST) as sub:
        async for event in sub:
            async with store.transaction() as tx:
                tx.append(projection, Event("Projected", {"from": event.offset}))
                sub.commit_in(tx)
            if event.offset == 2:
                break
    assert await store.get_committed_offset(source, "projector") == 3
    assert await store.get_stream_version(projection) == 2


async def test_an_evicted_members_transaction_is_fenced_whole(store: Any) -> None:
    source, projection = name("src"), name("proj")
    await store.append_batch(source, events(2))
    async with store.subscribe(source, "g", "a", commit="manual", **FAST) as stalled:
        [event] = await take(stalled, 1)
        assert stalled._heartbeats is not None
        stalled._heartbeats.cancel()
        async with store.subscribe(source, "g", "b", **FAST) as successor:
            await take(successor, 1)  # b holds the stream now
            with pytest.raises(ConsumerFencedError):
                async with store.transaction() as tx:
                    tx.append(projection, Event("Projected", {"from": event.offset}))
                    stalled.commit_in(tx)
    assert await store.get_stream_version(projection) == -1
