"""``read_all(follow=True)``: catch up, then follow new appends live, on both stores."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgstreams import ConfigurationError, Event, StoreClosedError, StoredEvent
from support import PATIENCE

from .helpers import name


async def test_a_follower_catches_up_then_gets_each_new_append_in_order(store: Any) -> None:
    a, b = name("a"), name("b")
    await store.append_batch(a, [Event("Old", {"n": n}) for n in range(3)])
    seen: list[StoredEvent] = []
    caught_up = asyncio.Event()

    async def follow() -> None:
        async for event in store.read_all(follow=True, max_count=8):
            seen.append(event)
            if len(seen) == 3:
                caught_up.set()

    following = asyncio.create_task(follow())
    await asyncio.wait_for(caught_up.wait(), PATIENCE)
    await store.append(b, Event("New", {"n": 3}))
    async with store.transaction() as tx:
        tx.append_batch(a, [Event("New", {"n": 4})])
        tx.append_batch(b, [Event("New", {"n": 5})])
    await store.append_batch(a, [Event("New", {"n": n}) for n in (6, 7)])
    await asyncio.wait_for(following, PATIENCE)
    assert [e.data["n"] for e in seen] == list(range(8))
    positions = [e.position for e in seen]
    assert positions == sorted(positions)


async def test_a_follower_with_filters_gets_only_matching_events(store: Any) -> None:
    prefix = name("order-")
    got: list[str] = []

    async def follow() -> None:
        async for event in store.read_all(
            follow=True, event_types="Paid", stream_prefix=prefix, max_count=2
        ):
            got.append(event.stream)

    following = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    await store.append(f"{prefix}1", Event("Placed", {}))
    await store.append(name("other"), Event("Paid", {}))
    await store.append(f"{prefix}1", Event("Paid", {}))
    await store.append(f"{prefix}2", Event("Paid", {}))
    await asyncio.wait_for(following, PATIENCE)
    assert got == [f"{prefix}1", f"{prefix}2"]


async def test_follow_and_until_position_cannot_go_together(store: Any) -> None:
    with pytest.raises(ConfigurationError, match="follow"):
        store.read_all(follow=True, until_position=10)
    with pytest.raises(ConfigurationError, match="follow"):
        store.read_all(follow="yes")


async def test_closing_the_store_ends_a_follower(store: Any) -> None:
    waiting = asyncio.Event()

    async def follow() -> None:
        waiting.set()
        async for _ in store.read_all(follow=True):
            pass

    following = asyncio.create_task(follow())
    await waiting.wait()
    await asyncio.sleep(0.05)
    await store.close()
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(following, PATIENCE)
