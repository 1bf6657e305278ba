"""store.health(): the figures of streams, consumer groups, queues and the pool, and each
status."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest

from pgstreams import (
    ConfigurationError,
    ConsumerGroupHealth,
    Event,
    Health,
    QueueHealth,
    StoreClosedError,
    StreamHealth,
)

from .helpers import name


def events(count: int) -> list[Event]:
    return [Event("E", {"i": i}) for i in range(count)]


async def test_an_empty_store_is_healthy(store: Any) -> None:
    health = await store.health()
    assert isinstance(health, Health)
    assert (health.status, health.reasons, health.error) == ("healthy", (), None)
    assert (health.streams, health.consumer_groups, health.queues) == ((), (), ())
    assert isinstance(health.checked_at, datetime) and health.checked_at.tzinfo is not None


async def test_health_figures(store: Any) -> None:
    orders, empty = "a-" + name(), "b-" + name()
    await store.append_batch(orders, events(5))
    await store.append_batch(empty, events(2))
    await store.truncate_stream(empty, 2)
    await store.commit_offset(orders, "billing", 2)
    await store.commit_offset(orders, "audit", 5)
    queue = name("q")
    await store.enqueue_batch(queue, [Event("Job", {"n": n}) for n in range(4)])
    await store.enqueue(queue, Event("Later", {}), delay=timedelta(hours=1))
    leased = await store.dequeue(queue, "c", 60)
    dead = await store.dequeue(queue, "c", 60)
    assert leased is not None and dead is not None
    assert await store.nack(dead, requeue=False)
    await asyncio.sleep(0.05)

    health = await store.health()
    assert health.status == "healthy"
    stream_health = {s.stream: s for s in health.streams}
    assert list(stream_health) == [orders, empty]
    assert stream_health[orders].length == 5
    assert 0.04 <= stream_health[orders].newest_event_age < 60
    assert stream_health[empty] == StreamHealth(empty, 0, None)
    assert health.consumer_groups == (
        ConsumerGroupHealth(orders, "audit", 5, 0, "healthy"),
        ConsumerGroupHealth(orders, "billing", 2, 3, "healthy"),
    )
    [queue_health] = health.queues
    assert isinstance(queue_health, QueueHealth)
    assert (
        queue_health.stream,
        queue_health.depth,
        queue_health.ready,
        queue_health.in_flight,
        queue_health.delayed,
        queue_health.dead_letters,
    ) == (queue, 4, 2, 1, 1, 1)
    assert queue_health.oldest_message_age is not None
    assert 0.04 <= queue_health.oldest_message_age < 60
    pool = health.pool
    assert pool.waiting == 0 and pool.size <= pool.max_size
    assert pool.available <= pool.size


async def test_lag_thresholds_give_each_status(store: Any) -> None:
    # Each step adds a group further behind (commits only move a group forward).
    stream = name()
    await store.append_batch(stream, events(10))
    await store.commit_offset(stream, "a", 7)  # 3 behind
    assert (await store.health(lag_degraded=4, lag_unhealthy=8)).status == "healthy"
    await store.commit_offset(stream, "b", 5)  # 5 behind
    degraded = await store.health(lag_degraded=4, lag_unhealthy=8)
    assert degraded.status == "degraded"
    assert [g.status for g in degraded.consumer_groups] == ["healthy", "degraded"]
    assert degraded.reasons == (f"consumer group 'b' is 5 event(s) behind on stream {stream!r}",)
    await store.commit_offset(stream, "c", 2)  # 8 behind: the worst group decides
    unhealthy = await store.health(lag_degraded=4, lag_unhealthy=8)
    assert unhealthy.status == "unhealthy"
    assert [(g.lag, g.status) for g in unhealthy.consumer_groups] == [
        (3, "healthy"),
        (5, "degraded"),
        (8, "unhealthy"),
    ]
    assert len(unhealthy.reasons) == 2


async def test_default_thresholds_are_1000_and_10000(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(1000))
    await store.commit_offset(stream, "g", 1)
    assert (await store.health()).status == "healthy"  # 999 behind
    await store.commit_offset(stream, "h", 0)
    assert (await store.health()).status == "degraded"  # 1000 behind


async def test_lag_of_a_group_on_a_trimmed_or_unknown_stream(store: Any) -> None:
    stream = name()
    await store.append_batch(stream, events(4))
    await store.truncate_stream(stream, 4)
    await store.commit_offset(stream, "g", 1)
    await store.commit_offset(name(), "h", 0)  # a stream never written: nothing to lag
    health = await store.health()
    assert sorted((g.group, g.lag) for g in health.consumer_groups) == [("g", 3), ("h", 0)]


@pytest.mark.parametrize(
    "thresholds",
    [
        {"lag_degraded": 0},
        {"lag_unhealthy": -1},
        {"lag_degraded": 10, "lag_unhealthy": 5},
        {"lag_degraded": 2**63},
        {"lag_degraded": "1000"},
    ],
    ids=repr,
)
async def test_bad_thresholds_are_refused(store: Any, thresholds: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="lag_"):
        await store.health(**thresholds)


async def test_a_closed_store_refuses_health(make_store: Any) -> None:
    store = await make_store()
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.health()
