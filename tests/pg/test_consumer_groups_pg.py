"""Consumer groups against a real server: members joining and leaving while streams are
appended to, each member on its own store (its own pool), as separate processes would be."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict

import pgstreams
from pgstreams import Event, PostgresOptions, Selector
from support import PATIENCE, eventually

STREAMS = 50
FIRST_EVENTS = 20
MORE_EVENTS = 10
FAST = {"heartbeat_interval": 0.05, "session_timeout": 0.5}


async def test_members_joining_and_leaving_handle_every_event_once_in_order(
    pg_options: PostgresOptions,
) -> None:
    names = [f"acct-{i:02d}" for i in range(STREAMS)]
    async with pgstreams.connect(pg_options) as writer:
        for stream in names:
            await writer.append_batch(stream, [Event("E", {"n": n}) for n in range(FIRST_EVENTS)])

        handled: list[tuple[str, str, int]] = []  # (member, stream, offset)
        working_on: dict[str, set[str]] = defaultdict(set)
        overlaps: list[tuple[str, set[str]]] = []
        stop = {m: asyncio.Event() for m in ("m1", "m2", "m3")}
        rng = random.Random(5)

        async def member(consumer_id: str) -> None:
            async with (
                pgstreams.connect(pg_options) as store,
                store.subscribe(
                    Selector.prefix("acct-"), "ledger", consumer_id, batch_size=7, **FAST
                ) as sub,
            ):
                async for event in sub:
                    working_on[event.stream].add(consumer_id)
                    if len(working_on[event.stream]) > 1:
                        overlaps.append((event.stream, set(working_on[event.stream])))
                    await asyncio.sleep(rng.uniform(0, 0.002))
                    handled.append((consumer_id, event.stream, event.offset))
                    working_on[event.stream].discard(consumer_id)
                    if stop[consumer_id].is_set():
                        break

        async def more_events() -> None:
            for n in range(FIRST_EVENTS, FIRST_EVENTS + MORE_EVENTS):
                for stream in names:
                    await writer.append(stream, Event("E", {"n": n}))
                await asyncio.sleep(0.01)

        members = {"m1": asyncio.create_task(member("m1"))}
        members["m2"] = asyncio.create_task(member("m2"))
        appending = asyncio.create_task(more_events())
        await eventually(lambda: asyncio.sleep(0, len(handled)), lambda n: n >= 300)
        members["m3"] = asyncio.create_task(member("m3"))  # joins mid-run
        await eventually(lambda: asyncio.sleep(0, len(handled)), lambda n: n >= 700)
        stop["m1"].set()  # leaves mid-run
        await asyncio.wait_for(members["m1"], PATIENCE)
        await asyncio.wait_for(appending, PATIENCE)
        total = STREAMS * (FIRST_EVENTS + MORE_EVENTS)
        await eventually(
            lambda: asyncio.sleep(0, len({(s, o) for _, s, o in handled})), lambda n: n == total
        )
        for name in ("m2", "m3"):
            stop[name].set()
            members[name].cancel()
        await asyncio.gather(members["m2"], members["m3"], return_exceptions=True)

    distinct = {(stream, offset) for _, stream, offset in handled}
    assert distinct == {(s, o) for s in names for o in range(FIRST_EVENTS + MORE_EVENTS)}
    # Leaves and joins hand streams over after committing: no event handled twice.
    duplicates = len(handled) - len(distinct)
    print(f"{len(handled)} handled, {duplicates} duplicates, {len(overlaps)} overlaps")
    assert duplicates == 0
    assert overlaps == []
    # Per stream, in order: offsets only go up, whoever handled them.
    by_stream: dict[str, list[int]] = defaultdict(list)
    for _, stream, offset in handled:
        by_stream[stream].append(offset)
    assert all(offsets == sorted(offsets) for offsets in by_stream.values())
    assert {m for m, _, _ in handled} == {"m1", "m2", "m3"}
