"""What ``pgstreams demo`` shows: persistent streams, optimistic concurrency, the global
feed, consumer offsets, a work queue with leases, nacks and dead letters; then a realistic
volume: an ingestion of many events over many streams, reading them back, following the feed
live, workers draining a queue, and a table of what it did and how fast."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, TextIO

from .errors import ConcurrencyError
from .events import Event, QueuedEvent

INGEST_BATCH = 1000


class Advance(Protocol):
    def advance(self, amount: int) -> None: ...


# ``progress(description, total, unit)``: a context manager giving something to ``advance``.
ProgressFactory = Callable[[str, int | None, str], contextlib.AbstractContextManager[Advance]]


class _Silent:
    def advance(self, amount: int) -> None:
        pass


@contextlib.contextmanager
def _no_progress(description: str, total: int | None, unit: str) -> Iterator[Advance]:
    yield _Silent()


async def run_demo(
    store: Any,
    out: TextIO,
    *,
    events: int = 100_000,
    streams: int = 1_000,
    progress: ProgressFactory = _no_progress,
) -> None:
    def say(text: str = "") -> None:
        out.write(text + "\n")

    # A fresh suffix per run, so the demo can run again on the same database.
    run = secrets.token_hex(3)
    stream = f"order-1001-{run}"
    say("== Persistent stream: an order's history ==")
    offsets = await store.append_batch(
        stream,
        [
            Event(
                "OrderPlaced", {"order": 1001, "items": [{"sku": "A-1", "qty": 2}], "total": 39.9}
            ),
            Event("PaymentReceived", {"order": 1001, "amount": 39.9}),
        ],
        expected_version=-1,
    )
    say(f"appended 2 events at offsets {offsets}")
    offset = await store.append(
        stream, Event("OrderShipped", {"order": 1001, "carrier": "DHL"}), {"by": "demo"}
    )
    say(f"appended OrderShipped at offset {offset}")
    async for event in store.read_stream(stream):
        say(f"  #{event.offset} {event.type:<16} {event.data}  (position {event.position})")

    say()
    say("== Optimistic concurrency ==")
    try:
        await store.append(stream, Event("OrderCancelled", {}), expected_version=0)
    except ConcurrencyError as error:
        say(f"refused, nothing written: {error}")
    say(f"stream version is still {await store.get_stream_version(stream)}")

    say()
    say("== Global feed and a consumer group's offset ==")
    await store.append(f"order-1002-{run}", Event("OrderPlaced", {"order": 1002, "total": 5.0}))
    async for event in store.read_all():
        if not event.stream.endswith(run):
            continue  # other runs' events on a shared database
        say(f"  position {event.position}: {event.stream}#{event.offset} {event.type}")
    await store.commit_offset(stream, "billing", 2)
    say(
        f"billing will resume {stream} at offset {await store.get_committed_offset(stream, 'billing')}"
    )

    say()
    say("== Work queue: lease, ack, nack, dead letters ==")
    queue = f"emails-{run}"
    await store.enqueue_batch(
        queue, [Event("SendEmail", {"to": f"user{i}@example.com"}) for i in range(3)]
    )
    say(f"enqueued 3 messages, pending: {await store.get_pending_count(queue)}")
    batch = await store.dequeue_batch(queue, "worker-1", 3, visibility_timeout=30)
    say(f"worker-1 leased {[m.data['to'] for m in batch]}")
    await store.acknowledge(batch[0])
    await store.nack(batch[1], requeue=True)
    await store.nack(batch[2], requeue=False)
    say("acked the first, requeued the second, dead-lettered the third")
    again = await store.dequeue(queue, "worker-2")
    assert again is not None
    say(f"worker-2 got {again.data['to']} (delivery {again.delivery_count})")
    await store.acknowledge(again)
    for letter in await store.get_dead_letters(queue):
        say(f"dead letter: {letter.data['to']} reason={letter.reason}")
    say(
        f"redriven: {await store.redrive_dead_letters(queue)}, pending: {await store.get_pending_count(queue)}"
    )

    if events:
        say()
        await _at_volume(store, say, run, events, max(1, min(streams, events)), progress)


async def _at_volume(
    store: Any,
    say: Callable[[str], None],
    run: str,
    events: int,
    streams: int,
    progress: ProgressFactory,
) -> None:
    figures: list[tuple[str, str, float, str]] = []

    say(f"== Ingestion: {events:,} events over {streams:,} streams ==")
    names = [f"account-{i:04d}-{run}" for i in range(streams)]
    started = time.perf_counter()
    with progress("ingest", events, "ev") as bar:
        written = 0
        while written < events:
            count = min(INGEST_BATCH, events - written)
            stream = names[(written // INGEST_BATCH) % streams]
            batch = [
                Event("Deposited", {"account": stream, "amount": (written + k) % 500 + 1})
                for k in range(count)
            ]
            await store.append_batch(stream, batch)
            written += count
            bar.advance(count)
    figures.append(("append_batch(1000)", f"{events:,} events", _rate(events, started), "ev/s"))
    say(f"appended {events:,} events in batches of {INGEST_BATCH}")

    say("")
    say("== Reading a stream back, and the whole feed ==")
    started = time.perf_counter()
    one = sum([1 async for _ in store.read_stream(names[0])])
    say(f"{names[0]} holds {one:,} events")
    seen = 0
    with progress("read_all", None, "ev") as bar:
        async for event in store.read_all():
            if event.stream.endswith(run):
                seen += 1
            bar.advance(1)
    figures.append(("read_all", f"{seen:,} events", _rate(seen, started), "ev/s"))
    say(f"the global feed holds this run's {seen:,} events, in position order")

    say("")
    say("== Following the feed live ==")
    head = await store.get_head_position()
    followed: list[str] = []

    async def follow() -> None:
        async for event in store.read_all(head, follow=True, max_count=3):
            followed.append(f"{event.stream}#{event.offset}")

    following = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    for i in range(3):
        await store.append(f"live-{run}", Event("Tick", {"n": i}))
    await asyncio.wait_for(following, 10)
    say(f"a follower parked at the head got {followed} as they were appended")
    figures.append(("append -> follower", "3 events", (time.perf_counter() - started) * 1000, "ms"))

    say("")
    say("== Workers draining a queue ==")
    queue = f"jobs-{run}"
    jobs = min(3_000, events)
    for start in range(0, jobs, INGEST_BATCH):
        count = min(INGEST_BATCH, jobs - start)
        await store.enqueue_batch(queue, [Event("Job", {"n": start + k}) for k in range(count)])
    handled = 0
    finished = asyncio.Event()

    async def handle(message: QueuedEvent) -> None:
        nonlocal handled
        handled += 1
        if handled == jobs:
            finished.set()

    workers = [store.worker(queue, handle, concurrency=50, poll_wait=0.1) for _ in range(3)]
    started = time.perf_counter()
    with progress("work", jobs, "msg") as bar:
        running = [asyncio.create_task(w.run()) for w in workers]
        last = 0
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), 0.2)
            bar.advance(handled - last)
            last = handled
        for worker in workers:
            worker.stop()
        reports = await asyncio.gather(*running)
    figures.append(("3 workers", f"{jobs:,} messages", _rate(jobs, started), "msg/s"))
    say(
        f"3 workers handled {sum(r.handled for r in reports):,} messages; "
        f"pending now: {await store.get_pending_count(queue)}"
    )

    say("")
    say("== What it did, and how fast ==")
    width = max(len(what) for what, *_ in figures)
    for what, amount, value, unit in figures:
        say(f"  {what:<{width}}  {amount:>16}  {value:>12,.1f} {unit}")


def _rate(count: int, started: float) -> float:
    return count / max(time.perf_counter() - started, 1e-9)
