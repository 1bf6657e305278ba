"""What ``pgstreams demo`` shows: persistent streams, optimistic concurrency, the global
feed, consumer offsets, and a work queue with leases, nacks and dead letters."""

from __future__ import annotations

import secrets
from typing import Any, TextIO

from .errors import ConcurrencyError
from .events import Event


async def run_demo(store: Any, out: TextIO) -> None:
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
