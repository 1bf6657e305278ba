"""Queue workers on both stores: concurrency, acks, nacks with backoff, lease extension,
graceful shutdown with nothing lost."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pgstreams import (
    ConfigurationError,
    DeadLetterSettings,
    Event,
    QueuedEvent,
    SerializationError,
    StreamConfiguration,
)
from support import PATIENCE, eventually

from .helpers import name


async def fill(store: Any, queue: str, count: int) -> list[Any]:
    return list(await store.enqueue_batch(queue, [Event("Job", {"n": n}) for n in range(count)]))


async def test_a_worker_handles_every_message_once_within_its_concurrency(store: Any) -> None:
    queue = name("jobs")
    ids = await fill(store, queue, 40)
    handled: list[Any] = []
    running = peak = 0

    async def handler(message: QueuedEvent) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        handled.append(message.id)

    worker = store.worker(queue, handler, concurrency=4, poll_wait=0.05)
    working = asyncio.create_task(worker.run())
    await eventually(lambda: asyncio.sleep(0, len(handled)), lambda n: n == 40)
    worker.stop()
    report = await asyncio.wait_for(working, PATIENCE)
    assert sorted(handled) == sorted(ids)
    assert 1 <= peak <= 4
    assert (report.handled, report.failed, report.interrupted) == (40, 0, 0)
    assert await store.get_pending_count(queue) == 0


async def test_a_failing_handler_nacks_and_the_message_ends_as_a_dead_letter(store: Any) -> None:
    queue = name("jobs")
    await store.set_stream_configuration(
        StreamConfiguration(queue, dead_letter_queue=DeadLetterSettings(max_delivery_attempts=3))
    )
    [job] = await fill(store, queue, 1)
    attempts: list[int] = []

    async def handler(message: QueuedEvent) -> None:
        attempts.append(message.delivery_count)
        raise ValueError("cannot handle it")

    worker = store.worker(queue, handler, concurrency=2, poll_wait=0.05)
    working = asyncio.create_task(worker.run())
    dead = await eventually(lambda: store.get_dead_letters(queue), lambda d: len(d) == 1)
    worker.stop()
    report = await asyncio.wait_for(working, PATIENCE)
    assert attempts == [1, 2, 3]
    assert [d.id for d in dead] == [job]
    assert report.failed == 3


async def test_a_nack_waits_for_the_streams_retry_delay(store: Any) -> None:
    queue = name("jobs")
    await store.set_stream_configuration(
        StreamConfiguration(queue, dead_letter_queue=DeadLetterSettings(retry_delay=60))
    )
    await fill(store, queue, 1)
    failed = asyncio.Event()

    async def handler(message: QueuedEvent) -> None:
        failed.set()
        raise RuntimeError("later")

    worker = store.worker(queue, handler, poll_wait=0.05)
    working = asyncio.create_task(worker.run())
    await asyncio.wait_for(failed.wait(), PATIENCE)
    await eventually(lambda: store.get_queue_stats(queue), lambda s: s.delayed == 1)
    worker.stop()
    report = await asyncio.wait_for(working, PATIENCE)
    assert report.failed == 1  # not retried at once: it waits the minute
    assert (await store.get_queue_stats(queue)).delayed == 1


async def test_a_slow_handler_keeps_its_lease(store: Any) -> None:
    queue = name("jobs")
    await fill(store, queue, 1)
    started, done = asyncio.Event(), asyncio.Event()

    async def handler(message: QueuedEvent) -> None:
        started.set()
        await asyncio.sleep(1.0)  # well past the 0.3 s visibility timeout
        done.set()

    worker = store.worker(queue, handler, visibility_timeout=0.3, poll_wait=0.05)
    working = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), PATIENCE)
    while not done.is_set():
        # Another consumer never gets the message while its handler runs.
        assert await store.dequeue_batch(queue, "thief", 1, visibility_timeout=30) == []
        await asyncio.sleep(0.1)
    worker.stop()
    report = await asyncio.wait_for(working, PATIENCE)
    assert report.handled == 1
    assert report.extended >= 2
    assert await store.get_pending_count(queue) == 0


async def test_stopping_lets_running_handlers_finish_and_leases_nothing_more(
    store: Any,
) -> None:
    queue = name("jobs")
    await fill(store, queue, 10)
    started = asyncio.Event()
    release = asyncio.Event()

    async def handler(message: QueuedEvent) -> None:
        started.set()
        await release.wait()

    worker = store.worker(queue, handler, concurrency=3, grace_period=PATIENCE, poll_wait=0.05)
    working = asyncio.create_task(worker.run())
    await asyncio.wait_for(started.wait(), PATIENCE)
    worker.stop()
    await asyncio.sleep(0.05)
    release.set()
    report = await asyncio.wait_for(working, PATIENCE)
    assert (report.handled, report.interrupted) == (3, 0)
    # Nothing lost, nothing left leased: the other seven are there for the next consumer.
    rest = await store.dequeue_batch(queue, "next", 100, visibility_timeout=30)
    assert len(rest) == 7
    assert all(m.delivery_count == 1 for m in rest)


async def test_cancelling_a_worker_past_its_grace_gives_the_messages_back(store: Any) -> None:
    queue = name("jobs")
    await fill(store, queue, 2)
    started = asyncio.Event()

    async def handler(message: QueuedEvent) -> None:
        started.set()
        await asyncio.sleep(3600)

    working = asyncio.create_task(
        store.run_worker(queue, handler, concurrency=2, grace_period=0.1, poll_wait=0.05)
    )
    await asyncio.wait_for(started.wait(), PATIENCE)
    await asyncio.sleep(0.05)
    working.cancel()
    with pytest.raises(asyncio.CancelledError):
        await working
    again = await store.dequeue_batch(queue, "next", 10, visibility_timeout=30)
    assert len(again) == 2  # given back at once, not after a visibility timeout


async def test_worker_arguments_are_checked(store: Any) -> None:
    async def handler(message: QueuedEvent) -> None:
        pass

    with pytest.raises(ConfigurationError, match="concurrency"):
        store.worker("q", handler, concurrency=0)
    with pytest.raises(ConfigurationError, match="visibility_timeout"):
        store.worker("q", handler, visibility_timeout=1e20)
    with pytest.raises(ConfigurationError, match="grace_period"):
        store.worker("q", handler, grace_period=-1)
    with pytest.raises(SerializationError, match="handler"):
        store.worker("q", "not a function")
    worker = store.worker("q", handler, poll_wait=0.01)
    worker.stop()
    await worker.run()
    with pytest.raises(ConfigurationError, match="once"):
        await worker.run()
